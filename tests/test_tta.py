import pytest
import torch
from torch import nn

from trainable.config import ModelConfig
from trainable.models import build_model
from trainable.tta import FLIP_CHANNELS, scaled_probs, tta_probs


class SideOracle(nn.Module):
    """Labels the image's left half 'right eye' (5) and right half 'left eye' (4), as a face-aware
    model would: the subject's left is on the image's right. Input content is ignored."""

    def forward(self, x):
        n, _, h, w = x.shape
        logits = torch.full((n, 19, h, w), -10.0)
        logits[:, 5, :, : w // 2] = 10.0
        logits[:, 4, :, w // 2:] = 10.0
        return logits


def test_swap_table():
    assert FLIP_CHANNELS[[4, 5, 6, 7, 8, 9, 11, 12]].tolist() == [5, 4, 7, 6, 9, 8, 11, 12]


def test_flip_tta_swaps_channels_before_averaging():
    x = torch.randn(1, 3, 64, 64)
    plain = tta_probs(SideOracle(), x).argmax(1)
    flipped = tta_probs(SideOracle(), x, flip=True).argmax(1)
    assert torch.equal(plain, flipped)  # without the swap, left and right would tie everywhere
    assert (plain[0, :, :32] == 5).all() and (plain[0, :, 32:] == 4).all()


def test_single_scale_without_flip_is_plain_inference():
    torch.manual_seed(0)
    model = build_model(ModelConfig()).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(tta_probs(model, x), model(x).softmax(1), atol=1e-6)


def test_multi_scale_is_the_mean_of_each_scale_and_flip():
    torch.manual_seed(0)
    model = build_model(ModelConfig()).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        parts = list(scaled_probs(model, x, (0.5, 1.0, 1.5), True, (64, 64)))
        assert [(s, f) for s, f, _ in parts] == [(0.5, False), (0.5, True), (1.0, False), (1.0, True),
                                                 (1.5, False), (1.5, True)]
        manual = torch.flip(model(torch.flip(x, dims=[3])), dims=[3])[:, FLIP_CHANNELS].softmax(1)
        assert torch.allclose(parts[3][2], manual, atol=1e-6)
        mean = torch.stack([p for _, _, p in parts]).mean(0)
        assert torch.allclose(tta_probs(model, x, (0.5, 1.0, 1.5), True), mean, atol=1e-6)
        assert tta_probs(model, x, (0.75,), out_size=(128, 96)).shape == (1, 19, 128, 96)
        assert torch.allclose(tta_probs(model, x, (0.5,)).sum(1), torch.ones(1, 64, 64), atol=1e-5)


@pytest.mark.parametrize("scale, size", [(0.5, 32), (0.75, 64), (1.25, 96), (1.5, 96)])
def test_scaled_inputs_are_padded_to_the_encoder_stride(scale, size):
    seen = []

    class Spy(SideOracle):
        def forward(self, x):
            seen.append(x.shape[-1])
            return super().forward(x)

    probs = tta_probs(Spy(), torch.randn(1, 3, 64, 64), (scale,))
    assert seen == [size]
    # the oracle's right half of the padded input is class 4; after cropping the padding off, class 4
    # covers (scaled width - padded width / 2) / scaled width of the output
    scaled = round(64 * scale)
    share = (scaled - size / 2) / scaled
    assert (probs.argmax(1)[0, 0] == 4).sum().item() == pytest.approx(share * 64, abs=1)
