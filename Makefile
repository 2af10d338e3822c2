# The two commands of the README:
#   make run   set up .venv, run the workflow on the embedded example, render the report
#   make test  set up .venv, run the test suite
#   make power make run plus the power analyses under power: of the configuration
# and, after a run was killed hard (README, "Reruns, and resuming after an interruption"):
#   make resume [CONFIGFILE=my-study.yaml]   unlock, redo the steps cut short, the report
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CORES ?= all
CONFIGFILE ?=
SNAKEMAKE := $(BIN)/snakemake --workflow-profile workflow/profiles/default \
	$(if $(CONFIGFILE),--configfile $(CONFIGFILE))

.PHONY: run resume test report lint format clean example benchmark power slurm-deps

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --workflow-profile workflow/profiles/default --cores $(CORES)
	$(BIN)/snakemake --workflow-profile workflow/profiles/default --report results/report.html

resume: $(STAMP)
	$(SNAKEMAKE) --unlock
	$(SNAKEMAKE) --cores $(CORES) --rerun-incomplete
	$(SNAKEMAKE) --report results/report.html

# the whole workflow and the power analyses of the configuration (power:), and the
# report with both (results/report.html gains its "Power" section)
power: $(STAMP)
	$(SNAKEMAKE) --cores $(CORES) all power
	$(SNAKEMAKE) all power --report results/report.html

# the test files shared between one worker per core (pytest-xdist), each file on one
# worker so that its end-to-end workflow run (a module fixture) is made once
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile

# the SLURM executor plugin, for `snakemake --workflow-profile workflow/profiles/slurm`
# (README.md, "Running on a SLURM cluster") and the test marked slurm
slurm-deps: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,slurm]'

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check workflow/Snakefile workflow/rules

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/snakefmt workflow/Snakefile workflow/rules

example: $(STAMP)
	$(BIN)/resistance-outcomes-simulate --out resources/example

benchmark: $(STAMP)
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/power.py

clean:
	rm -rf results/* .snakemake
