"""Scoring at the masks' own resolution: ``loop.evaluate`` gives exactly the figures of a
straightforward implementation (every class upsampled, softmax, log, argmax, one confusion matrix
per image), with and without TTA, at power-of-two, other integer and fractional upsampling factors,
and with logits so confident that the NLL's floor is reached; ``score_logits`` band by band gives
the very argmax and NLL of the whole upsampled image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.conftest import tiny_config
from trainable import scoring
from trainable.classes import NUM_CLASSES
from trainable.config import Config
from trainable.loop import evaluate
from trainable.metrics import NLL_FLOOR, class_argmax, compute_metrics, image_fscores
from trainable.run import build_run, run_epoch
from trainable.scoring import score_logits
from trainable.synthetic import generate
from trainable.tta import tta_probs


def reference(model: nn.Module, loader, scales, flip) -> tuple[float, float, float, float]:
    """(mIoU, accuracy, F-score, NLL) the plain way."""
    confs, nll, pixels = [], 0.0, 0
    with torch.no_grad():
        for images, masks in loader:
            probs = tta_probs(model, images, scales, flip, out_size=masks.shape[-2:])
            nll += F.nll_loss(probs.clamp_min(1e-8).log(), masks.long(), reduction="sum").double().item()
            pixels += masks.numel()
            for pred, truth in zip(probs.argmax(dim=1), masks):
                idx = truth.long().flatten().numpy() * NUM_CLASSES + pred.flatten().numpy()
                confs.append(np.bincount(idx, minlength=NUM_CLASSES ** 2).reshape(NUM_CLASSES, NUM_CLASSES))
    m = compute_metrics(torch.as_tensor(sum(confs)))
    return m.miou, m.acc, float(image_fscores(np.stack(confs)).mean()), nll / pixels


class Sharpened(nn.Module):
    """The model with its logits multiplied: probabilities far below the NLL's floor."""

    def __init__(self, model: nn.Module, factor: float):
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, x):
        return self.model(x) * self.factor


SETS = {(96, 32): 3, (96, 64): 1.5, (128, 32): 4}  # (mask px, model px): upsampling factor


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    runs, base = {}, tmp_path_factory.mktemp("scoring")
    for mask_px, size in SETS:
        root = base / f"data{mask_px}"
        if not root.exists():
            generate(root, n_train=8, n_val=6, n_test=0, size=mask_px, seed=1)
        cfg = Config.from_dict(tiny_config(root, data={"image_size": size}, train={"epochs": 1}))
        run = build_run(cfg)
        run_epoch(run, 0)
        runs[mask_px, size] = run
    return runs


@pytest.mark.parametrize("sizes", list(SETS))
@pytest.mark.parametrize("factor", [1.0, 60.0])
@pytest.mark.parametrize("scales, flip", [((1.0,), False), ((0.75, 1.0), True)])
def test_evaluate_gives_the_reference_figures(trained, sizes, factor, scales, flip, monkeypatch):
    monkeypatch.setattr(scoring, "BAND_VALUES", 20_000)  # bands of 2 rows at 128 px: the banded path
    run = trained[sizes]
    model = Sharpened(run.model, factor).eval()
    metrics, nll = evaluate(model, run.val_loader, run.device, scales=scales, flip=flip)
    miou, acc, fscore, ref_nll = reference(model, run.val_loader, scales, flip)
    assert next(iter(run.val_loader))[1].shape[-1] == sizes[0]  # scored at the masks' size, not the model's
    assert metrics.miou == pytest.approx(miou, abs=1e-9)
    assert metrics.acc == pytest.approx(acc, abs=1e-9)
    assert metrics.fscore == pytest.approx(fscore, abs=1e-9)
    assert nll == pytest.approx(ref_nll, rel=1e-6, abs=1e-6)
    if factor > 1:
        assert ref_nll > 1.0  # the confident misses reach the floor


@pytest.mark.parametrize("scores", [
    [[1.0, 1.0, 0.0]],  # a tie: the first class, as argmax
    [[0.0, 2.0, 2.0]],
    [[-1.0, -3.0, -0.5]],
    [[0.0, 0.0, 0.0]],
])
def test_class_argmax_is_argmax_ties_included(scores):
    x = torch.tensor(scores).T.reshape(1, 3, 1, 1).repeat(2, 1, 2, 2)
    best, index = class_argmax(x)
    assert torch.equal(index.long(), x.argmax(dim=1)) and torch.equal(best, x.max(dim=1).values)


def reference_scores(logits: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Argmax and summed NLL of the whole image upsampled at once, the plain way."""
    scores = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    log_probs = scores.log_softmax(dim=1).clamp_min(np.log(NLL_FLOOR))
    return scores.argmax(dim=1), F.nll_loss(log_probs, masks.long(), reduction="sum").double().item()


@pytest.mark.parametrize("kind", ["smooth", "integer", "sharp"])  # integer logits: many exact ties
@pytest.mark.parametrize("logit_hw, mask_hw", [
    ((16, 20), (64, 136)), ((16, 20), (32, 136)), ((16, 20), (64, 72)),  # power-of-two factors in height
    ((12, 20), (36, 136)), ((16, 20), (24, 136)), ((16, 20), (16, 136)), ((24, 20), (16, 136)),  # 3, 1.5, 1, 2/3
    ((64, 64), (512, 512)),  # the CPU defaults on CelebAMask-HQ masks
    ((16, 20), (16, 20)),  # the logits' own size: nothing to upsample
])
@pytest.mark.parametrize("band_rows", [1, 3, None])
def test_score_logits_band_by_band_is_the_whole_image(kind, logit_hw, mask_hw, band_rows):
    gen = torch.Generator().manual_seed(sum(logit_hw) * 1000 + sum(mask_hw))
    logits = F.interpolate(torch.randn(2, NUM_CLASSES, 5, 5, generator=gen), size=logit_hw,
                           mode="bicubic") * 4  # spatially smooth, as a network's
    logits = {"smooth": logits, "integer": logits.round(), "sharp": logits * 60}[kind]
    masks = torch.randint(0, NUM_CLASSES, (2, *mask_hw), generator=gen, dtype=torch.uint8)
    given = logits.clone()
    pred, nll = score_logits(logits, masks, band_rows=band_rows)
    assert torch.equal(logits, given)  # the logits are the caller's
    ref_pred, ref_nll = reference_scores(logits, masks)
    assert pred.dtype == torch.uint8 and torch.equal(pred.long(), ref_pred)
    assert nll.item() == pytest.approx(ref_nll, rel=1e-6)


def test_the_cpu_defaults_take_the_banded_path():
    # 64 px logits, 512 px masks: a band of any number of candidate classes is upsampled exactly
    # on its own (padded with a class or so where the kernel needs it), so no band falls back to
    # upsampling the whole image, the slow path
    rows = scoring.BAND_VALUES // (NUM_CLASSES * 512 * 8)
    counts = [scoring._exact_count(NUM_CLASSES, k, 64, 64, 8, 512, rows) for k in range(1, NUM_CLASSES + 1)]
    assert all(n is not None and n <= k + 1 for k, n in enumerate(counts, start=1)), counts
