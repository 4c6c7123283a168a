"""Score every test-time-augmentation combination of a trained checkpoint without retraining.

The probabilities for each scale and flip are computed once per validation batch; every subset of
scales, with and without flip, is scored from them by adding confusion matrices. Scales ``[1.0]``
without flip reproduces the checkpoint's own validation figures. The combinations are ranked by the
metric the experiment maximised (``trainable.metrics``): mIoU, or the 2025 per-image F-score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from trainable.config import with_flags
from trainable.metrics import DEFAULT_METRIC, compute_metrics, image_confusion, image_fscores, scores, search_metric
from trainable.tta import scaled_probs
from trainable.val_predictions import Predictor

__all__ = ["print_tta_table", "score_tta"]


@torch.no_grad()
def score_tta(checkpoint: str | Path, combos: Sequence[tuple[Sequence[float], bool]], data: str | None = None,
              overrides: dict | None = None, metric: str = DEFAULT_METRIC) -> list[dict]:
    """One row per ``(scales, flip)`` combination with every validation metric, best ``metric`` first."""
    search_metric(metric)
    predictor = Predictor(checkpoint, with_flags(overrides, data=data))  # the flags as retrain resolves them
    model, device, loader, state = predictor.model, predictor.device, predictor.loader, predictor.state

    scales = sorted({s for subset, _ in combos for s in subset})
    confs = [0] * len(combos)
    fscores: list[list[np.ndarray]] = [[] for _ in combos]  # per image: the 2025 score is their mean
    for images, masks in loader:
        images, masks = images.to(device), masks.to(device)
        parts = {(s, f): p for s, f, p in scaled_probs(model, images, scales, True, masks.shape[-2:])}
        for i, (subset, flip) in enumerate(combos):
            probs = sum(parts[(s, f)] for s in subset for f in ((False, True) if flip else (False,)))
            per_image = image_confusion(probs.argmax(1), masks)
            confs[i] = confs[i] + per_image.sum(0)
            fscores[i].append(image_fscores(per_image))
    rows = []
    for (subset, flip), conf, per_image in zip(combos, confs, fscores):
        m = replace(compute_metrics(conf), fscore=float(np.concatenate(per_image).mean()))
        rows.append({"scales": list(subset), "flip": flip, **scores(m), "metric": metric,
                     "checkpoint": state.get("metrics", {}).get(metric)})
    rows.sort(key=lambda r: -r[metric])
    return rows


def print_tta_table(rows: list[dict], top: int = 10) -> None:
    key = rows[0]["metric"]
    name, fmt = search_metric(key).name, search_metric(key).fmt
    plain = next(r for r in rows if r["scales"] == [1.0] and not r["flip"])
    saved = rows[0]["checkpoint"]
    print(f"{len(rows)} combinations scored by {name}; plain inference (scale 1.0, no flip): {name} "
          f"{plain[key]:{fmt}}" + (f" (checkpoint reported {saved:{fmt}})" if saved is not None else ""))
    print(f"{'rank':<6}{'scales':<34}{'flip':<6}{name:>12}{'delta':>9}")
    for i, r in enumerate(rows[:top], 1):
        scales = ", ".join(f"{s:g}" for s in r["scales"])
        print(f"{i:<6}{scales:<34}{'yes' if r['flip'] else 'no':<6}{r[key]:>12{fmt}}"
              f"{r[key] - plain[key]:>+9{fmt}}")
    best = rows[0]
    print(f"best: --set train.tta_scales={','.join(f'{s:g}' for s in best['scales'])} "
          f"--set train.tta_flip={str(best['flip']).lower()}")
