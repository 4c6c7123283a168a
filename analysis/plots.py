"""Plots drawn from the frames the table builders computed; each function writes one PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters and CI
import matplotlib.pyplot as plt
import pandas as pd

__all__ = ["plot_importances", "plot_learning_curves", "plot_per_class", "plot_score_vs_params"]

STATUS_COLOURS = {"completed": "tab:blue", "stopped": "tab:orange", "errored": "tab:red", "running": "tab:green",
                  "diverged": "tab:purple"}


def _colour(status: str) -> str:
    return STATUS_COLOURS.get(status.split(" ")[0], "tab:gray")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_learning_curves(epochs: pd.DataFrame, summary: pd.DataFrame, path: Path, metric: str = "val_miou",
                         metric_name: str = "val mIoU") -> Path:
    """The metric per epoch for every trial; trials ASHA stopped end early and are drawn in orange."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    status = dict(zip(summary["trial"], summary["status"]))
    baseline = set(summary.loc[summary["is_baseline"], "trial"])
    for trial, e in epochs.sort_values("epoch").groupby("trial"):
        ax.plot(e["epoch"], e[metric], marker="o", ms=3, color=_colour(status.get(trial, "")),
                lw=2.5 if trial in baseline else 1, alpha=0.9 if trial in baseline else 0.6)
    for name, colour in STATUS_COLOURS.items():
        ax.plot([], [], color=colour, label=name)
    ax.plot([], [], color="black", lw=2.5, label="baseline (thick)")
    ax.set(xlabel="epoch", ylabel=metric_name, title="Learning curves")
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
                         metric_name: str = "val mIoU") -> Path:
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
