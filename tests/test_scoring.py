"""Scoring at the masks' own resolution: ``loop.evaluate`` gives exactly the figures of a
straightforward implementation (every class upsampled, softmax, log, argmax, one confusion matrix
per image), with and without TTA, at an integer and a fractional upsampling factor, and with logits
so confident that the NLL's floor is reached."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.conftest import tiny_config
from trainable.build import build_run, run_epoch
from trainable.classes import NUM_CLASSES
from trainable.config import Config
from trainable.loop import evaluate
from trainable.metrics import class_argmax, compute_metrics, image_fscores
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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    # 96 px masks: upsampled 3x from 32 px, and 1.5x from 64 px
    root = generate(tmp_path_factory.mktemp("scoring") / "data", n_train=8, n_val=6, n_test=0, size=96, seed=1)
    runs = {}
    for size in (32, 64):
        cfg = Config.from_dict(tiny_config(root, data={"image_size": size}, train={"epochs": 1}))
        run = build_run(cfg)
        run_epoch(run, 0)
        runs[size] = run
    return runs


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("factor", [1.0, 60.0])
@pytest.mark.parametrize("scales, flip", [((1.0,), False), ((0.75, 1.0), True)])
def test_evaluate_gives_the_reference_figures(trained, size, factor, scales, flip):
    run = trained[size]
    model = Sharpened(run.model, factor).eval()
    metrics, nll = evaluate(model, run.val_loader, run.device, scales=scales, flip=flip)
    miou, acc, fscore, ref_nll = reference(model, run.val_loader, scales, flip)
    assert next(iter(run.val_loader))[1].shape[-1] == 96  # scored at the masks' size, not the model's
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
