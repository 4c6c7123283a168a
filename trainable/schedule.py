"""A trial's augmentation schedule: which ``aug`` settings trained its weights from which epoch on.

A schedule is a list of segments ``{"epoch": E, "aug": {...}, "trial": T, "from": DONOR or None}``:
from epoch E (0-based; the first epoch trained with them) trial T trained with the settings ``aug``,
until the next segment; ``from`` names the trial whose weights T took over at E (an exploit).
A trial starts with one segment, its own settings at epoch 0. A population search (PBT, PB2)
restarts a trial from another trial's checkpoint with new settings: the trial then inherits that
trial's schedule up to the checkpoint's epoch and adds a segment naming the trial it came from.
The schedule travels in every checkpoint and is written whole, as ``schedule.json``, into the
trial's folder at each epoch; ``retrain`` replays it, stretched to its own number of epochs.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from trainable.config import AugConfig, Config
from trainable.layout import SCHEDULE_FILE

__all__ = ["aug_at", "continue_schedule", "read_schedule", "schedule_text", "start_schedule", "stretch"]


def start_schedule(cfg: Config, trial: str) -> list[dict]:
    """The schedule of ``trial`` starting from scratch: its own settings from epoch 0."""
    return [{"epoch": 0, "aug": asdict(cfg.aug), "trial": trial, "from": None}]


def continue_schedule(saved: list[dict] | None, saved_by: str | None, trial: str, epoch: int,
                      cfg: Config) -> list[dict]:
    """The schedule of ``trial`` continuing at ``epoch`` from a checkpoint that trial ``saved_by``
    wrote with schedule ``saved``: its own, resumed as it was; another trial's (an exploit), that
    schedule with ``cfg``'s settings from ``epoch`` on."""
    if not saved:  # a checkpoint of a version that kept no schedule
        saved = start_schedule(cfg, saved_by or trial)
    if saved_by == trial:
        own = [dict(s) for s in saved]
        if own[-1]["aug"] == asdict(cfg.aug):
            return own
        # resumed with other settings than its checkpoint last trained with: a population search's
        # state saved before the exploit that its checkpoint already holds (a driver stopped between
        # the two). The trial trains with cfg's settings from here, so the schedule says so.
        kept = [s for s in own if s["epoch"] < epoch]
        return [*kept, {"epoch": epoch, "aug": asdict(cfg.aug), "trial": trial, "from": None}]
    kept = [dict(s) for s in saved if s["epoch"] < epoch]
    return [*kept, {"epoch": epoch, "aug": asdict(cfg.aug), "trial": trial, "from": saved_by}]


def aug_at(schedule: list[dict], epoch: int) -> AugConfig:
    """The settings that train epoch ``epoch`` (0-based)."""
    current = max((s for s in schedule if s["epoch"] <= epoch), key=lambda s: s["epoch"])
    return AugConfig(**current["aug"])


def stretch(schedule: list[dict], epochs: int, to_epochs: int) -> list[dict]:
    """``schedule`` of a trial of ``epochs`` epochs spread over ``to_epochs``: each change happens at
    the same share of training (rounded to an epoch; changes that land on one epoch keep the last)."""
    out: dict[int, dict] = {}
    for s in sorted(schedule, key=lambda s: s["epoch"]):
        at = round(s["epoch"] * to_epochs / epochs)
        out[at] = {**s, "epoch": at}
    return [out[e] for e in sorted(out)]


def schedule_text(trial: str, cfg: Config, schedule: list[dict]) -> str:
    """``schedule.json``: the trial, the config it trains now (its settings of the last segment) and
    its schedule."""
    return json.dumps({"trial": trial, "config": cfg.to_dict(), "schedule": schedule}, indent=1) + "\n"


def read_schedule(folder: str | Path) -> dict | None:
    """The ``schedule.json`` in ``folder`` (a checkpoint's or a trial's), or None where there is none."""
    path = Path(folder) / SCHEDULE_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
