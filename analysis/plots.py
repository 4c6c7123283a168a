"""Plots drawn from the frames the table builders computed; each function writes one PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters and CI
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import MaxNLocator

from trainable.metrics import DEFAULT_METRIC, METRICS, axis_label

__all__ = ["plot_best_so_far", "plot_importances", "plot_learning_curves", "plot_per_class", "plot_schedules",
           "plot_score_vs_params"]

STATUS_COLOURS = {"completed": "tab:blue", "stopped": "tab:orange", "errored": "tab:red", "running": "tab:green",
                  "diverged": "tab:purple"}


def _colour(status: str) -> str:
    return STATUS_COLOURS.get(status.split(" ")[0], "tab:gray")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_learning_curves(epochs: pd.DataFrame, summary: pd.DataFrame, path: Path,
                         metric: str = DEFAULT_METRIC) -> Path:
    """The metric per epoch for every trial; trials the scheduler stopped end early and are drawn in orange."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    status = dict(zip(summary["trial"], summary["status"]))
    baseline = set(summary.loc[summary["is_baseline"], "trial"])
    for trial, e in epochs.sort_values("epoch").groupby("trial"):
        ax.plot(e["epoch"], e[metric], marker="o", ms=3, color=_colour(status.get(trial, "")),
                lw=2.5 if trial in baseline else 1, alpha=0.9 if trial in baseline else 0.6)
    for name, colour in STATUS_COLOURS.items():
        ax.plot([], [], color=colour, label=name)
    ax.plot([], [], color="black", lw=2.5, label="baseline (thick)")
    ax.set(xlabel="epoch", ylabel=axis_label(metric), title="Learning curves")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_importances(importances: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(importances) + 1.2))
    data = importances.sort_values("importance")
    ax.barh(data["parameter"], data["importance"], color="tab:blue")
    ax.set(xlabel="importance", title="Hyperparameter importance")
    return _save(fig, path)


def plot_per_class(per_class: pd.DataFrame, path: Path) -> Path:
    """Per-class IoU bars for the chosen trials (best first, baseline last)."""
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(1, per_class.shape[1])
    for i, col in enumerate(per_class.columns):
        ax.bar([x + i * width for x in range(len(per_class))], per_class[col], width, label=col)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(per_class))])
    ax.set_xticklabels(per_class.index, rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="IoU (%)", title="Per-class IoU")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_score_vs_params(summary: pd.DataFrame, trials: pd.DataFrame, searched: list[str], path: Path,
                         metric_name: str = METRICS[DEFAULT_METRIC].name) -> Path:
    """Each trial's score against each searched parameter; colour shows whether the trial completed."""
    data = summary.merge(trials[["trial", *searched]], on="trial").dropna(subset=["score"])
    cols = 3
    rows = max(1, -(-len(searched) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, key in zip(axes.flat, searched):
        ax.scatter(data[key].astype(str) if data[key].dtype == object else data[key], data["score"],
                   c=[_colour(s) for s in data["status"]], s=18)
        ax.set(xlabel=key, ylabel=metric_name)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(searched):]:
        ax.axis("off")
    return _save(fig, path)


def plot_schedules(schedules: dict[str, list[dict]], best: str, keys: list[str], epochs: int, path: Path) -> Path:
    """One panel per searched ``aug.*`` key: its value against epoch in every trial's schedule (grey),
    the best trial's lineage in colour, a marker where it took over another trial's weights."""
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)

    def steps(schedule: list[dict], name: str) -> tuple[list[int], list[float]]:
        ordered = sorted(schedule, key=lambda s: s["epoch"])
        xs = [s["epoch"] for s in ordered] + [epochs]
        ys = [float(s["aug"][name]) for s in ordered]
        return xs, [*ys, ys[-1]]

    for ax, key in zip(axes.flat, keys):
        name = key.split(".", 1)[1]
        for trial, schedule in schedules.items():
            if trial != best:
                ax.step(*steps(schedule, name), where="post", color="tab:gray", alpha=0.5, lw=1)
        xs, ys = steps(schedules[best], name)
        ax.step(xs, ys, where="post", color="tab:blue", lw=2.5, label=f"{best} (best)")
        exploits = [s for s in schedules[best] if s["from"]]
        ax.plot([s["epoch"] for s in exploits], [float(s["aug"][name]) for s in exploits], "o", color="tab:red",
                ms=5, label="exploit (weights copied)" if exploits else None)
        ax.set(xlabel="epoch", title=key, xlim=(0, epochs))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    return _save(fig, path)


def plot_best_so_far(curves: pd.DataFrame, path: Path, metric: str = DEFAULT_METRIC, staged: bool = False) -> Path:
    """Each experiment's best score so far (``compare.best_so_far``) against the trial-epochs spent, one
    line each (its own dash pattern, so that curves that coincide stay apart); for a staged search a
    dotted line marks where each stage began."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = ("-", "--", "-.", (0, (1, 1)))
    for i, (_, c) in enumerate(curves.groupby("experiment", sort=False)):
        line, = ax.step(c["trial_epochs"], c["best"], where="post", lw=2, ls=styles[i % len(styles)],
                        label=c["label"].iloc[0])
        ax.plot(c["trial_epochs"].iloc[-1], c["best"].iloc[-1], "o", ms=4, color=line.get_color())
    if staged:
        for j, start in enumerate(curves.loc[curves["start"] > 0, "start"].unique()):
            ax.axvline(start, color="tab:gray", ls=":", lw=1, label="stage boundary" if j == 0 else None)
    spent = "by the whole run" if staged else "(epochs reported by all trials)"
    ax.set(xlabel=f"trial-epochs spent {spent}", ylabel=axis_label(metric), title=f"Best {METRICS[metric].name} so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial-epochs are whole
    ax.legend(fontsize=8, title="stage" if staged else "experiment", title_fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)
