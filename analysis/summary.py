"""What a search prints when it returns, read from the experiment folder like every other analysis.

A finished search: the best trial and the baseline (by ``analysis.rank``), how each trial ended,
where the study is, and the next commands. An interrupted one: how many of its trials ended and
the command that resumes it, and nothing that would read as a finished search.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.load import load_experiment
from analysis.rank import best_first
from search_spaces.algorithms import SCHEDULERS
from search_spaces.driver.record import read_record
from trainable.layout import JOURNAL_FILE, trial_dirs
from trainable.objectstore import uri_of

__all__ = ["search_summary"]

ENDED = ("completed", "stopped", "diverged", "errored", "refused")  # statuses (first word) of an ended trial


def search_summary(exp_dir: str | Path, interrupted: str = "") -> list[str]:
    """The lines to print after a fit of ``exp_dir``; ``interrupted`` names the signal that stopped it."""
    exp_dir = Path(exp_dir)
    shown = uri_of(exp_dir) or exp_dir  # an object store's experiment by its URI, not its local mirror
    exp = load_experiment(exp_dir) if trial_dirs(exp_dir) else None
    record = exp.record if exp else read_record(exp_dir)
    kinds = exp.trials["status"].astype(str).str.split().str[0] if exp else pd.Series(dtype=str)
    if interrupted:
        return [f"interrupted ({interrupted}): {int(kinds.isin(ENDED).sum())} of {record.planned_trials} trials "
                f"ended; the search's state is saved",
                f"experiment      {shown}",
                f"resume with     python launch.py resume {shown}"]
    if exp is None:
        return [f"no trial reported a result; see the trial logs under {exp_dir}"]

    summary = exp.summary()
    lines = [f"note: {t} {s}" for t, s in zip(exp.trials["trial"], exp.trials["status"]) if s.startswith("diverged")]
    ranked = best_first(summary.dropna(subset=["rank"]))
    if ranked.empty:
        return [*lines, f"no trial reported a result; see the trial logs under {exp_dir}"]
    config = exp.trials.set_index("trial")
    best = ranked.iloc[0]
    lines += ["", f"best trial      {_scored(best, record)}"]
    lines += [f"  {key:<28} {config.loc[best['trial'], key]}" for key in exp.searched]
    baseline = ranked[ranked["is_baseline"]]
    if len(baseline) and baseline.iloc[0]["trial"] != best["trial"]:
        lines.append(f"baseline        {_scored(baseline.iloc[0], record)}")
    stopper = SCHEDULERS[record.scheduler].name
    counts = kinds.map(lambda k: f"stopped by {stopper}" if k == "stopped" else k).value_counts()
    lines.append(f"trials          {len(exp.trials)} ended: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    lines.append(f"experiment      {shown}")
    if record.has_study:
        lines.append(f"optuna study    optuna-dashboard {exp_dir / JOURNAL_FILE}")
    return [*lines, "next:", f"  python -m analysis {shown}", f"  python launch.py retrain {shown}"]


def _scored(row, record) -> str:
    base = " (the baseline)" if row["is_baseline"] else ""
    return (f"{row['trial']}: {record.metric_name} {row['score']:.4g} at epoch {int(row['epochs'])} of "
            f"{record.max_t}{base}")
