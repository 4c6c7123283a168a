"""Score every test-time-augmentation combination of a trained checkpoint without retraining.

The probabilities for each scale and flip are computed once per validation batch; every subset of
scales, with and without flip, is scored from them by adding confusion matrices. Scales ``[1.0]``
without flip reproduces the checkpoint's own validation mIoU.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from trainable.build import load_trained_model, val_loader
from trainable.config import Config
from trainable.data import train_and_val
from trainable.loop import resolve_device
from trainable.metrics import compute_metrics, confusion_matrix
from trainable.sources import data_root
from trainable.tta import scaled_probs

__all__ = ["print_tta_table", "score_tta"]


@torch.no_grad()
def score_tta(checkpoint: str | Path, combos: Sequence[tuple[Sequence[float], bool]], data: str | None = None,
              overrides: dict | None = None) -> list[dict]:
    """One row per ``(scales, flip)`` combination: val mIoU and pixel accuracy, best first."""
    model, cfg, state = load_trained_model(checkpoint)
    flat = cfg.to_dict()
    if data:
        flat["data"]["root"] = data
    cfg = Config.from_dict({**flat, **(overrides or {})})
    device = resolve_device(cfg.train.device)
    model.to(device)
    train_info, val_info = train_and_val(data_root(cfg.data), cfg.data)
    # the checkpoint's own statistics; a checkpoint without them: those of the training images
    norm = state.get("normalization") or {"mean": train_info.mean, "std": train_info.std}
    loader = val_loader(cfg, val_info, norm["mean"], norm["std"], 0, device)

    scales = sorted({s for subset, _ in combos for s in subset})
    confs = [None] * len(combos)
    for images, masks in loader:
        images, masks = images.to(device), masks.to(device)
        parts = {(s, f): p for s, f, p in scaled_probs(model, images, scales, True, masks.shape[-2:])}
        for i, (subset, flip) in enumerate(combos):
            probs = sum(parts[(s, f)] for s in subset for f in ((False, True) if flip else (False,)))
            conf = confusion_matrix(probs.argmax(1), masks)
            confs[i] = conf if confs[i] is None else confs[i] + conf
    rows = []
    for (subset, flip), conf in zip(combos, confs):
        m = compute_metrics(conf)
        rows.append({"scales": list(subset), "flip": flip, "val_miou": m.miou, "val_acc": m.acc})
    rows.sort(key=lambda r: -r["val_miou"])
    saved = state.get("metrics", {}).get("val_miou")
    for r in rows:
        r["checkpoint_val_miou"] = saved
    return rows


def print_tta_table(rows: list[dict], top: int = 10) -> None:
    plain = next(r for r in rows if r["scales"] == [1.0] and not r["flip"])
    saved = rows[0].get("checkpoint_val_miou")
    print(f"{len(rows)} combinations scored; plain inference (scale 1.0, no flip): val mIoU {plain['val_miou']:.3f}"
          + (f" (checkpoint reported {saved:.3f})" if saved is not None else ""))
    print(f"{'rank':<6}{'scales':<34}{'flip':<6}{'val mIoU':>10}{'delta':>9}")
    for i, r in enumerate(rows[:top], 1):
        scales = ", ".join(f"{s:g}" for s in r["scales"])
        print(f"{i:<6}{scales:<34}{'yes' if r['flip'] else 'no':<6}{r['val_miou']:>10.3f}"
              f"{r['val_miou'] - plain['val_miou']:>+9.3f}")
    best = rows[0]
    print(f"best: --set train.tta_scales={','.join(f'{s:g}' for s in best['scales'])} "
          f"--set train.tta_flip={str(best['flip']).lower()}")
