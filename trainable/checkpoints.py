"""The three checkpoint formats, each built in one place, and reading a trained model back.

``checkpoint.pt`` (a trial's, every epoch): weights, optimiser, schedule, the next epoch, the config,
the normalisation and the epoch's scalar metrics, for a resume at the next epoch. ``model.pt`` (a
retrain's, with ``model.safetensors``): weights, config, normalisation and the final metrics.
``ckpt.pth`` (a 2025 submission's ``solution/``): what the standalone ``run.py`` needs, as tensors
and plain values. All load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from trainable.classes import CLASSES
from trainable.config import Config
from trainable.errors import UserError
from trainable.layout import CHECKPOINT_FILE, MODEL_FILE, RETRAIN_FILES, replacing
from trainable.models import SegmentationNet, build_model, smp_spec
from trainable.solution import FORMAT
from trainable.tta import FLIP_CHANNELS

if TYPE_CHECKING:
    from trainable.run import Run

__all__ = ["load_checkpoint", "load_trained_model", "normalization", "read_checkpoint", "save_checkpoint",
           "solution_checkpoint", "write_retrained"]


def normalization(run: Run) -> dict:
    """The training images' statistics the model was trained with: what predicting needs without the data."""
    return {"mean": run.train_info.mean, "std": run.train_info.std}


def save_checkpoint(run: Run, epoch: int, directory: str | Path, metrics: dict | None = None) -> Path:
    """Write weights, optimiser, schedule, the next epoch and the epoch's scalar metrics to
    ``directory/checkpoint.pt``."""
    path = Path(directory) / CHECKPOINT_FILE
    state = {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "epoch": epoch,
        "config": run.cfg.to_dict(),
        "normalization": normalization(run),
        "metrics": {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float, str))},
    }
    with replacing(path) as tmp:  # a reader never sees a half-written checkpoint, a full disk leaves none
        torch.save(state, tmp)
    return path


def load_checkpoint(run: Run, directory: str | Path) -> int:
    """Restore ``run`` from ``directory``; returns the epoch to continue with."""
    state = torch.load(Path(directory) / CHECKPOINT_FILE, map_location=run.device, weights_only=True)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    return int(state["epoch"])


def read_checkpoint(path: str | Path) -> dict:
    """The state saved by ``save_checkpoint`` (a checkpoint folder or its file); clear errors otherwise."""
    path = Path(path).expanduser()
    file = path / CHECKPOINT_FILE if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"{path}: no checkpoint found (expected a trial checkpoint folder or {CHECKPOINT_FILE})")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)  # never unpickle arbitrary objects
    except Exception as e:
        raise UserError(f"{file}: not a readable checkpoint ({type(e).__name__}); it may be corrupt or "
                        f"from another tool") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise UserError(f"{file}: not a checkpoint written by this tool (no model weights and config)")
    return state


def load_trained_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[SegmentationNet, Config, dict]:
    """The model of a checkpoint, in eval mode, with its config and the saved state."""
    state = read_checkpoint(path)
    cfg = Config.from_dict(state["config"])
    # the saved weights replace any the model starts from (none fetched), and the rules are checked by
    # whoever asks (predict --submission): loading only rebuilds the network
    model = build_model(replace(cfg.model, pretrained="none", max_params=0), aux_head=cfg.loss.aux_weight > 0)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise UserError(f"{path}: the weights do not fit model {cfg.model.arch} on {cfg.model.encoder} "
                        f"({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), cfg, state


def write_retrained(run: Run, cfg: Config, out: Path, metrics: dict) -> None:
    """``model.pt`` and ``model.safetensors`` of a finished retrain into ``out``; ``cfg``: the retrain's
    own (its test-time augmentation, which the run's per-epoch validation leaves out)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in run.model.state_dict().items()}
    payload = {"model": state, "config": cfg.to_dict(), "metrics": metrics, "normalization": normalization(run)}
    torch.save(payload, out / MODEL_FILE)
    save_file(state, str(out / RETRAIN_FILES["safetensors"]),
              metadata={"config": json.dumps(payload["config"]), "normalization": json.dumps(payload["normalization"])})


def solution_checkpoint(model: SegmentationNet, cfg: Config, norm: dict, scales: Sequence[float], flip: bool) -> dict:
    """What ``solution/ckpt.pth`` holds: everything the standalone ``run.py`` needs, as tensors and plain
    values (it loads with ``weights_only=True``). The auxiliary head trains only and is left out."""
    cls, kwargs = smp_spec(cfg.model)
    return {"format": FORMAT, "arch": cls.__name__, "arch_kwargs": kwargs, "state_dict": model.net.state_dict(),
            "image_size": cfg.data.image_size, "mean": list(norm["mean"]), "std": list(norm["std"]),
            "tta_scales": [float(s) for s in scales], "tta_flip": bool(flip),
            "flip_channels": FLIP_CHANNELS.tolist(), "classes": list(CLASSES)}
