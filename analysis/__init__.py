"""Turn an experiment directory into ablation tables, importances and plots for a report; rank its
trials (the one notion of the best trial) and summarise a search that returned.

    python -m analysis EXP_DIR [--out DIR] [--format md,tex,csv]
    python -m analysis EXP_DIR EXP_DIR ... | RUN    # experiments, or a staged search's stages, compared
"""

from analysis.compare import best_so_far, comparison_table, config_differences, write_comparison
from analysis.load import Experiment, checkpoint_of, load_experiment, load_study
from analysis.rank import best_first, rank, select
from analysis.report import to_latex, to_markdown, write_report
from analysis.summary import search_summary
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
    "best_first",
    "best_so_far",
    "checkpoint_of",
    "comparison_table",
    "config_differences",
    "configurations_table",
    "factor_tables",
    "importance_table",
    "load_experiment",
    "load_study",
    "per_class_table",
    "rank",
    "search_summary",
    "select",
    "to_latex",
    "to_markdown",
    "trial_summary",
    "write_comparison",
    "write_report",
]
