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
from search_spaces.base import rounded
from search_spaces.driver.record import read_record
from search_spaces.driver.stages import StagedRun, next_space
from trainable.errors import UserError
from trainable.layout import ERROR_FILE, JOURNAL_FILE, ORPHANED_DIR, STAGES_FILE, trial_dirs
from trainable.objectstore import uri_of

__all__ = ["search_summary", "stage_summary", "trial_counts"]

ENDED = ("completed", "stopped", "diverged", "errored", "refused")  # statuses (first word) of an ended trial


def trial_counts(exp_dir: str | Path) -> tuple[int, int]:
    """How many trials of the experiment started and how many of them ended (from its folders; a trial
    a killed driver never recorded, moved to ``orphaned/``, counts as ended). An errored trial has
    ended when a study records it (``resume`` trains it no more); without a study (an ablation, a
    population) ``resume`` retries it, so it has not."""
    exp_dir = Path(exp_dir)
    orphaned = len(trial_dirs(exp_dir / ORPHANED_DIR))
    if not trial_dirs(exp_dir):
        return orphaned, orphaned
    exp = load_experiment(exp_dir)
    kinds = exp.trials["status"].astype(str).str.split().str[0]
    ended = ENDED if exp.record.has_study else tuple(k for k in ENDED if k != "errored")
    return len(kinds) + orphaned, int(kinds.isin(ended).sum()) + orphaned


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
    values = {key: rounded(config.loc[best["trial"], key]) for key in exp.searched}
    lines += [f"  {key:<28} {value}" for key, value in values.items()]
    lines.append("  as flags:    " + " ".join(f"--set {key}={value}" for key, value in values.items()))
    baseline = ranked[ranked["is_baseline"]]
    if len(baseline) and baseline.iloc[0]["trial"] != best["trial"]:
        lines.append(f"baseline        {_scored(baseline.iloc[0], record)}")
    stopper = SCHEDULERS[record.scheduler].name
    counts = kinds.map(lambda k: f"stopped by {stopper}" if k == "stopped" else k).value_counts()
    lines.append(f"trials          {len(exp.trials)} ended: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    lines.append(f"experiment      {shown}")
    if record.has_study:
        lines.append(f"optuna study    optuna-dashboard {exp_dir / JOURNAL_FILE}")
    lines += ["next:", f"  python -m analysis {shown}", f"  python launch.py retrain {shown}"]
    following = next_space(record.space)
    if not (exp_dir.parent / STAGES_FILE).is_file():  # (a staged search goes on by itself)
        lines.append(f"  python launch.py search --space {following} --from {shown}" if following and
                     not record.ablation else f"  python launch.py tta {shown}")
    return lines


def stage_summary(run: StagedRun, index: int) -> list[str]:
    """What a staged search prints after stage ``index`` (from 0): its best trial against its baseline and
    what goes on to the next stage; after the last, every stage's and the next commands."""
    number, total = index + 1, len(run.spaces)
    best, baseline, record = _stage_scores(run.stage_dir(index))
    onward = f" to stage {number + 1} ({run.spaces[index + 1]})" if number < total else ""
    if best is None and number == total:
        return [f"stage {number} ({run.spaces[index]}): no trial has a result to rank"]
    if best is None:
        raise UserError(f"stage {number} ({run.spaces[index]}): no trial of {run.stage_dir(index)} has a result to "
                        f"rank, so the next stage has no configuration to start from; see the trials' {ERROR_FILE} "
                        f"there")
    if best["is_baseline"]:
        lines = [f"stage {number} ({run.spaces[index]}): no trial beat its baseline ({record.metric_name} "
                 f"{best['score']:.4g})" + (f"; the baseline goes on{onward}" if onward else "")]
    else:
        lines = [f"stage {number} ({run.spaces[index]}): best {best['trial']}, {record.metric_name} "
                 f"{best['score']:.4g}{_gain(best, baseline)}" + (f"; it goes on{onward}" if onward else "")]
    if number < total:
        return lines
    shown = uri_of(run.path) or run.path
    last = uri_of(run.stage_dir(index)) or run.stage_dir(index)
    lines += ["", f"stages          {record.metric_name} of each stage's best trial (gain over its baseline)"]
    for i, space in enumerate(run.spaces):
        best, baseline, _ = _stage_scores(run.stage_dir(i))
        score = "no result" if best is None else f"{best['score']:.4g}" + (" (its baseline)" if best["is_baseline"]
                                                                          else _gain(best, baseline))
        lines.append(f"  {i + 1} {space:<14} {best['trial'] if best is not None else '':<16} {score}")
    return [*lines, "next:", f"  python -m analysis {shown}", f"  python launch.py tta {last}",
            f"  python launch.py retrain {last}"]


def _stage_scores(exp_dir: Path):
    """(the best trial's row, the baseline's row or None, the record) of a stage; the rows None without results."""
    exp = load_experiment(exp_dir)
    ranked = best_first(exp.summary().dropna(subset=["rank"]))
    if ranked.empty:
        return None, None, exp.record
    baseline = ranked[ranked["is_baseline"]]
    return ranked.iloc[0], baseline.iloc[0] if len(baseline) else None, exp.record


def _gain(best, baseline) -> str:
    if baseline is None or baseline["trial"] == best["trial"]:
        return ""
    return f", {best['score'] - baseline['score']:+.4g} over its baseline"


def _scored(row, record) -> str:
    base = " (the baseline)" if row["is_baseline"] else ""
    return (f"{row['trial']}: {record.metric_name} {row['score']:.4g} at epoch {int(row['epochs'])} of "
            f"{record.max_t}{base}")
