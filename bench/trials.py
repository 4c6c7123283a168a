"""What a benchmark trial does inside Ray Tune: report one epoch, with a checkpoint for schedulers
that pause trials, and resume from that checkpoint. In a module of its own so that Ray's workers
import it (a function of a script run as ``__main__`` does not reach them)."""

from __future__ import annotations

import tempfile
from pathlib import Path

__all__ = ["report_epoch", "resumed_epochs"]


def resumed_epochs() -> int:
    """Inside a trial: the epochs its checkpoint says are done (0 for a new trial)."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        return int((Path(folder) / "epochs").read_text())


def report_epoch(report: dict, checkpoint: bool) -> None:
    """One epoch's report, with a checkpoint of the epochs done for a scheduler that pauses trials."""
    from ray import tune

    if not checkpoint:
        tune.report(report)
        return
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "epochs").write_text(str(report["epoch"]))
        tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))
