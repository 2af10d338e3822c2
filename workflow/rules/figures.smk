rule figure_rupture_rate:
    input:
        "results/descriptives/rupture_rate_by_session.csv",
    output:
        pdf="results/figures/rupture_rate_by_session.pdf",
        png=report(
            "results/figures/rupture_rate_by_session.png",
            category="Figures",
            caption="../report/rupture_rate_figure.rst",
        ),
    log:
        "results/logs/figure_rupture_rate.log",
    conda:
        ENV
    script:
        "../../scripts/figure_rupture_rate.py"


rule figure_resistance_profile:
    input:
        "results/descriptives/resistance_profile.csv",
    output:
        pdf="results/figures/resistance_profile.pdf",
        png=report(
            "results/figures/resistance_profile.png",
            category="Figures",
            caption="../report/resistance_profile_figure.rst",
        ),
    log:
        "results/logs/figure_resistance_profile.log",
    conda:
        ENV
    script:
        "../../scripts/figure_resistance_profile.py"
