"""Table builders: DataFrames in, DataFrames out. No drawing and no file writing here.

Trials are scored and ordered by ``analysis.rank``: the metric at the last epoch a trial reported.
Beside the score each trial shows its peak and whether it overfit in the face-parsing reports'
sense (val mIoU peaked before the last epoch while pixel accuracy kept rising).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.rank import best_first, rank
from trainable.classes import CLASSES
from trainable.metrics import DEFAULT_METRIC, METRICS

__all__ = [
    "ablation_table",
    "configurations_table",
    "factor_tables",
    "importance_table",
    "per_class_table",
    "schedule_table",
    "trial_summary",
]


def trial_summary(trials: pd.DataFrame, epochs: pd.DataFrame, baseline: dict, metric: str = DEFAULT_METRIC,
                  mode: str = "max") -> pd.DataFrame:
    """One row per trial, in the order of ``trials``: its score (``metric`` at its last reported epoch)
    and rank, val mIoU and accuracy at that epoch, the peak, overfitting, and the delta vs the
    baseline."""
    rows = []
    for _, t in trials.iterrows():
        e = epochs[epochs["trial"] == t["trial"]].sort_values("epoch")
        row = {"trial": t["trial"], "status": t["status"], "epochs": int(t["epochs"]),
               "wall_time_s": t["wall_time_s"],
               "is_baseline": all(t.get(k) == v for k, v in baseline.items())}
        if e.empty or e[metric].isna().all():
            rows.append({**row, "score": np.nan, "overfitting": False})
            continue
        peak = e.loc[e["val_miou"].idxmax()]
        last = e.iloc[-1]
        overfit = bool(peak["epoch"] < last["epoch"] and last["val_acc"] > peak["val_acc"])
        rows.append({**row, "score": last[metric], "val_miou": last["val_miou"], "val_acc": last["val_acc"],
                     "reported_epoch": int(last["epoch"]), "peak_miou": peak["val_miou"],
                     "peak_epoch": int(peak["epoch"]), "overfitting": overfit})
    out = pd.DataFrame(rows)
    # a diverged trial is never ranked: whatever it reached before its loss blew up, its
    # configuration does not train, so it must never be picked as the best (nor compared)
    out["rank"] = rank(out, mode)
    for col in ("val_miou", "val_acc"):
        if col not in out:
            out[col] = np.nan
        out.loc[out["rank"].isna(), col] = np.nan
    base = out.loc[out["is_baseline"] & out["rank"].notna(), "score"]
    out.loc[out["rank"].isna(), "score"] = np.nan
    out["delta"] = out["score"] - (base.mean() if len(base) else np.nan)
    return out


def configurations_table(summary: pd.DataFrame, trials: pd.DataFrame, searched: list[str],
                         metric_name: str = METRICS[DEFAULT_METRIC].name) -> pd.DataFrame:
    """One row per configuration, best first, baseline marked: the experiment's main table, its score
    under ``metric_name`` (and val mIoU beside it when the metric is another)."""
    t = best_first(summary).merge(trials[["trial", *searched]], on="trial", how="left")
    miou = [] if metric_name == METRICS["val_miou"].name else ["val_miou"]
    cols = ["trial", *searched, "score", *miou, "val_acc", "delta", "epochs", "status", "peak_miou", "overfitting"]
    out = t[cols].rename(columns={"score": metric_name, **{key: METRICS[key].name for key in ("val_miou", "val_acc")},
                                  "delta": "delta vs baseline", "peak_miou": "peak mIoU"})
    out["trial"] = [f"{n} (baseline)" if b else n for n, b in zip(t["trial"], t["is_baseline"])]
    return out.reset_index(drop=True)


def _factor_of(row: pd.Series, baseline: dict, levels: dict) -> tuple[str, object]:
    changed = [k for k in levels if row.get(k) != baseline.get(k)]
    if not changed:
        return "baseline", "-"
    return changed[0], row[changed[0]]


def ablation_table(summary: pd.DataFrame, trials: pd.DataFrame, baseline: dict, levels: dict,
                   metric_name: str = METRICS[DEFAULT_METRIC].name) -> pd.DataFrame:
    """One-factor-at-a-time table: factor, level, mean +- std over seeds, delta vs the baseline row."""
    t = summary.merge(trials, on=["trial", "status", "epochs", "wall_time_s"])
    keys = [_factor_of(r, baseline, levels) for _, r in t.iterrows()]
    t["factor"], t["level"] = [k for k, _ in keys], [str(v) for _, v in keys]
    order = {k: i for i, k in enumerate(["baseline", *levels])}
    grouped = t.groupby(["factor", "level"], sort=False)
    out = grouped.agg(seeds=("trial", "count"), miou=("score", "mean"), miou_std=("score", "std"),
                      acc=("val_acc", "mean"), epochs=("epochs", "max"), overfitting=("overfitting", "sum"))
    out = out.reset_index()
    base = out.loc[out["factor"] == "baseline", "miou"]
    out["delta"] = out["miou"] - (base.iloc[0] if len(base) else np.nan)
    out["miou_std"] = out["miou_std"].fillna(0.0)
    out = out.sort_values(["factor", "level"], key=lambda s: s.map(order) if s.name == "factor" else s)
    return out.rename(columns={"miou": metric_name, "miou_std": "std", "acc": METRICS["val_acc"].name,
                               "delta": "delta vs baseline"}).reset_index(drop=True)


def factor_tables(summary: pd.DataFrame, trials: pd.DataFrame, searched: list[str], bins: int = 4,
                  metric_name: str = METRICS[DEFAULT_METRIC].name) -> dict[str, pd.DataFrame]:
    """Per searched key: level (or binned range) vs the best and mean score of the trials that completed.

    Trials the scheduler stopped early are left out so that their short training does not drag a level down.
    """
    done = summary[summary["status"] == "completed"].merge(trials[["trial", *searched]], on="trial")
    tables = {}
    for key in searched:
        values = done[key]
        if values.empty:
            continue
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        level = pd.cut(values, bins=bins, precision=3) if numeric and values.nunique() > bins else values
        table = done.groupby(level, sort=True, observed=True)["score"].agg(trials="count", best="max", mean="mean")
        table.index = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in table.index]
        short = metric_name.removeprefix("val ")
        tables[key] = table.rename_axis("level").reset_index().rename(columns={"best": f"best {short}",
                                                                               "mean": f"mean {short}"})
    return tables


def per_class_table(summary: pd.DataFrame, epochs: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """IoU per class (rows named by class) for the best ``top`` trials and the baseline."""
    ranked = best_first(summary.dropna(subset=["rank"]))
    chosen = list(ranked.head(top).itertuples())
    chosen += [r for r in ranked[ranked["is_baseline"]].head(1).itertuples() if r.trial not in
               {c.trial for c in chosen}]
    columns = {}
    for r in chosen:
        row = epochs[(epochs["trial"] == r.trial) & (epochs["epoch"] == r.reported_epoch)].iloc[0]
        name = f"{r.trial} (baseline)" if r.is_baseline else r.trial
        columns[name] = [row.get(f"iou/{c}", np.nan) for c in CLASSES]
    return pd.DataFrame(columns, index=pd.Index(CLASSES, name="class"))


def importance_table(study, min_trials: int = 2) -> tuple[pd.DataFrame, str]:
    """Hyperparameter importances from the Optuna study and a sentence naming the method."""
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < min_trials:
        return pd.DataFrame(columns=["parameter", "importance"]), (
            f"not computed: {len(complete)} trials completed all epochs, at least {min_trials} are needed")
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    table = pd.DataFrame({"parameter": [k.replace("/", ".") for k in importances],
                          "importance": list(importances.values())})
    return table, (f"PED-ANOVA (Optuna's PedAnovaImportanceEvaluator) over the {len(complete)} trials that "
                   f"completed all epochs; importances sum to 1")


def schedule_table(schedule: list[dict], keys: list[str], epochs: int) -> pd.DataFrame:
    """A population trial's augmentation schedule: one row per segment, its epochs (1-based), the
    trial that trained them, the trial whose weights it took over there, and each searched ``aug.*``
    key's value."""
    rows = []
    ordered = sorted(schedule, key=lambda s: s["epoch"])
    for i, seg in enumerate(ordered):
        last = ordered[i + 1]["epoch"] if i + 1 < len(ordered) else epochs
        first = seg["epoch"] + 1
        row = {"epochs": f"{first}-{last}" if last > first else str(first), "trained by": seg.get("trial", ""),
               "weights from": seg["from"] or "(initialised)"}
        row.update({k: seg["aug"][k.split(".", 1)[1]] for k in keys})
        rows.append(row)
    return pd.DataFrame(rows)
