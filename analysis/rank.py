"""The one order of an experiment's trials, best first: the summary printed at the end of a search,
the analysis tables, ``retrain`` and ``tta`` all take the best trial from here.

A trial's score is the experiment's metric at the last epoch it reported: the value ASHA compared
at its rungs, the value Optuna was told, and the value a retrain of the configuration with the same
epochs and seed reproduces. Trials that completed every epoch come first, best score first; then
the others (stopped by the scheduler, still running, errored after reporting) by the epochs they reached,
then score: the order Optuna's TPE gives COMPLETE and PRUNED trials. A trial whose loss diverged,
one the rules refused and one that never reported are not ranked.

Not the peak epoch: a peak chosen on the validation set is an early stop on it, which neither the
search (ASHA and Optuna compare last values) nor a retrain (which trains the whole schedule)
performs. The peak, and whether a trial overfit, are shown beside the score instead.
"""

from __future__ import annotations

import pandas as pd

from trainable.errors import UserError
from trainable.layout import trial_dir_name

__all__ = ["UNRANKED", "best_first", "rank", "select"]

UNRANKED = ("diverged", "refused")  # statuses (their first word) that never rank


def rank(summary: pd.DataFrame, mode: str = "max") -> pd.Series:
    """The rank of each row of ``summary`` (``status``, ``epochs``, ``score`` per trial): 1 for the
    best; NaN for a trial that cannot be ranked."""
    rankable = summary["score"].notna() & ~summary["status"].astype(str).str.split().str[0].isin(UNRANKED)
    ranked = summary[rankable]
    order = ranked.assign(_complete=ranked["status"] == "completed",
                          _score=ranked["score"] if mode == "max" else -ranked["score"])
    order = order.sort_values(["_complete", "epochs", "_score"], ascending=False, kind="stable")
    return pd.Series(range(1, len(order) + 1), index=order.index, dtype=float).reindex(summary.index)


def best_first(summary: pd.DataFrame) -> pd.DataFrame:
    """``summary`` (with its ``rank`` column) best first; unranked trials last, in their order."""
    return summary.sort_values("rank", na_position="last", kind="stable")


def select(summary: pd.DataFrame, trial: str | None = None, top: int | None = None) -> pd.DataFrame:
    """The row of trial ``trial`` (its id or folder name), or the best ``top`` (default 1) ranked trials."""
    if trial is not None and top is not None:
        raise UserError(f"--trial {trial} and --top {top}: give one of them")
    ranked = best_first(summary.dropna(subset=["rank"]))
    if trial is None:
        if ranked.empty:
            raise UserError("no trial of the experiment has a result to rank yet; run or resume it first")
        return ranked.head(top or 1)
    chosen = summary[summary["trial"] == trial_dir_name(trial)]
    if chosen.empty or chosen["rank"].isna().all():
        names = list(ranked["trial"])
        listed = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
        raise UserError(f"no ranked trial {trial!r} in the experiment; trials with results are {listed or 'none'}")
    return chosen
