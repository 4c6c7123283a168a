"""Turn an experiment directory into ablation tables, importances and plots for a report.

    python -m analysis EXP_DIR [--out DIR] [--format md,tex,csv]
"""

from analysis.load import Experiment, load_experiment, load_study
from analysis.report import to_latex, to_markdown, write_report
from analysis.tables import (
    ablation_table,
    configurations_table,
    factor_tables,
    importance_table,
    per_class_table,
    trial_summary,
)

__all__ = [
    "Experiment",
    "ablation_table",
    "configurations_table",
    "factor_tables",
    "importance_table",
    "load_experiment",
    "load_study",
    "per_class_table",
    "to_latex",
    "to_markdown",
    "trial_summary",
    "write_report",
]
