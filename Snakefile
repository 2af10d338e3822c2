# resistance-outcomes: coded therapy-session data -> validated tables, descriptives and
# figures by therapeutic framework, and a report. Run with `make run` (README.md).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/derive.smk"
include: "workflow/rules/describe.smk"
include: "workflow/rules/reliability.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/power.smk"
include: "workflow/rules/influence.smk"
include: "workflow/rules/inference.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        final_outputs(),
