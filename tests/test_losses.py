"""Each loss against values computed by hand on a two-pixel, three-class example.

Pixel A: logits (2, 0, 0), truth 0.  Pixel B: logits (0, 1, 0), truth 2.
softmax(A) = (e^2, 1, 1) / (e^2 + 2) = (0.78699, 0.10650, 0.10650)
softmax(B) = (1, e, 1) / (e + 2)     = (0.21194, 0.57612, 0.21194)
"""

import math

import pytest
import torch

from trainable.config import LossConfig
from trainable.losses import LOSSES, REPORT_CLASS_WEIGHTS, FocalLoss, build_loss, class_weights

LOGITS = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]]).reshape(1, 3, 1, 2)
TARGET = torch.tensor([[[0, 2]]])
PA0 = math.exp(2) / (math.exp(2) + 2)  # p(A = 0)
PA2 = 1 / (math.exp(2) + 2)  # p(A = 2)
PB0 = PB2 = 1 / (math.e + 2)  # p(B = 0), p(B = 2)

CASES = [
    # name, config, class weights, expected (formula), expected (rounded)
    ("ce", LossConfig(), None, -(math.log(PA0) + math.log(PB2)) / 2, 0.8955),
    ("ce", LossConfig(), [1.0, 1.0, 3.0], -(1 * math.log(PA0) + 3 * math.log(PB2)) / 4, 1.2234),
    ("focal", LossConfig(focal_gamma=0.0), None, -(math.log(PA0) + math.log(PB2)) / 2, 0.8955),
    ("focal", LossConfig(focal_gamma=2.0), None,
     -((1 - PA0) ** 2 * math.log(PA0) + (1 - PB2) ** 2 * math.log(PB2)) / 2, 0.4872),
    ("focal", LossConfig(focal_gamma=2.0), [1.0, 1.0, 3.0],
     -(1 * (1 - PA0) ** 2 * math.log(PA0) + 3 * (1 - PB2) ** 2 * math.log(PB2)) / 4, 0.7254),
    # dice per class over the batch; absent class 1 counts as 0 in smp's mean over classes
    ("dice", LossConfig(), None,
     ((1 - 2 * PA0 / (PA0 + PB0 + 1)) + 0 + (1 - 2 * PB2 / (PA2 + PB2 + 1))) / 3, 0.2970),
    # Lovasz over present classes 0 and 2: each has one pixel wrong-sided, gradient (1, 0)
    ("lovasz", LossConfig(), None, (max(1 - PA0, PB0) + max(1 - PB2, PA2)) / 2, 0.5005),
]


@pytest.mark.parametrize("name, cfg, weights, expected, rounded", CASES)
def test_loss_against_hand_computed_values(name, cfg, weights, expected, rounded):
    w = None if weights is None else torch.tensor(weights)
    loss = LOSSES[name](cfg, w)(LOGITS, TARGET)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert loss.item() == pytest.approx(rounded, abs=1e-4)


def test_mix_is_the_weighted_sum_and_skips_zero_weights():
    cfg = LossConfig(ce=1.0, focal=0.0, dice=0.5, lovasz=2.0, class_weights="none", aux_weight=0.0)
    mix, _ = build_loss(cfg)
    assert set(mix.terms) == {"ce", "dice", "lovasz"}
    expected = sum(w * LOSSES[n](cfg, None)(LOGITS, TARGET) for n, w in (("ce", 1.0), ("dice", 0.5), ("lovasz", 2.0)))
    assert mix(LOGITS, TARGET).item() == pytest.approx(expected.item(), rel=1e-6)


def test_total_rescales_the_mix_to_a_fixed_sum():
    mix, _ = build_loss(LossConfig(ce=1.0, focal=0.5, dice=0.0, lovasz=2.5, total=3.0))
    assert mix.weights == pytest.approx({"ce": 0.75, "focal": 0.375, "lovasz": 1.875})
    assert build_loss(LossConfig(total=3.0))[0].weights == pytest.approx({"ce": 1.0, "lovasz": 2.0})


def test_aux_loss_is_ce_with_the_same_class_weights():
    _, aux = build_loss(LossConfig(class_weights="report"))
    assert aux.weight.tolist() == pytest.approx(list(REPORT_CLASS_WEIGHTS))


def test_class_weight_schemes():
    assert class_weights("none") is None
    assert class_weights("report").tolist() == pytest.approx(list(REPORT_CLASS_WEIGHTS))
    w = class_weights("inverse_freq", [900, 100, 0], power=0.5)
    # freq (0.9, 0.1, 0.1 for the unseen class) ** -0.5, then scaled to mean 1
    raw = [0.9 ** -0.5, 0.1 ** -0.5, 0.1 ** -0.5]
    assert w.tolist() == pytest.approx([r / (sum(raw) / 3) for r in raw], rel=1e-6)
    assert class_weights("inverse_freq", [900, 100, 5], power=0.0).tolist() == pytest.approx([1, 1, 1])
    with pytest.raises(ValueError, match="valid schemes are none, report, inverse_freq"):
        class_weights("median")


def test_focal_is_finite_in_bf16():
    logits = (LOGITS * 40).to(torch.bfloat16)
    assert torch.isfinite(FocalLoss(2.0)(logits, TARGET))
