"""Predict the parsing mask of one face image: the standalone ``run.py`` of a submission.

    pip install -r requirements.txt
    python3 run.py --input IMG.jpg --output MASK.png --weights ckpt.pth [--device cpu|cuda]

This file needs only the packages it imports, never the package it was shipped from: a
submission copies it as ``solution/run.py`` beside ``ckpt.pth``, which holds the weights, the
network's construction (a segmentation_models_pytorch class and its arguments), the input size,
the normalisation and the test-time augmentation. The package's own prediction and validation run
these very functions (``trainable.tta`` and ``trainable.augment`` take them from here), so a mask
written by ``run.py`` is the mask the package predicts, bit for bit on the same device.

Test-time augmentation: for each scale the image is resized, padded at the bottom and right to a
multiple of the network's stride, predicted, cropped back and its class probabilities resized to
the output size; with flip the mirrored image is predicted too and its left/right channels are
exchanged before it is mirrored back. All predictions are averaged as probabilities.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import albumentations as A
import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from albumentations.pytorch import ToTensorV2
from PIL import Image
from torch import nn

__all__ = ["FORMAT", "STRIDE", "eval_transform", "load_solution", "model_logits", "normalize", "predict_image",
           "scaled_probs", "tta_probs", "upsample", "write_mask"]

FORMAT = "facesearch-solution-1"  # what ckpt.pth holds (its "format" entry)
STRIDE = 32  # smp encoders need inputs divisible by their output stride


def _predict_padded(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = -h % STRIDE, -w % STRIDE
    if not (ph or pw):
        return model(x)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return model(F.pad(x, (0, pw, 0, ph), mode=mode))[..., :h, :w]


def model_logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Plain inference: the logits (float32) at the images' size, before any upsampling."""
    return _predict_padded(model, images).float()


def upsample(logits: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """Scores resized bilinearly to ``out_size`` (unchanged if they have that size)."""
    if logits.shape[-2:] != tuple(out_size):
        logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
    return logits


def scaled_probs(model: nn.Module, images: torch.Tensor, scales: Sequence[float], flip: bool,
                 out_size: tuple[int, int], flip_channels: torch.Tensor | None = None
                 ) -> Iterator[tuple[float, bool, torch.Tensor]]:
    """Yield ``(scale, flipped, probabilities at out_size)`` for every scale and flip once;
    ``flip_channels`` is the class permutation a mirror applies (left and right exchanged)."""
    h, w = images.shape[-2:]
    for scale in scales:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        x = images if size == (h, w) else F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        for flipped in (False, True) if flip else (False,):
            inp = torch.flip(x, dims=[3]) if flipped else x
            logits = model_logits(model, inp)
            if flipped:
                logits = torch.flip(logits, dims=[3])[:, flip_channels.to(logits.device)]
            yield scale, flipped, upsample(logits, out_size).softmax(dim=1)


def tta_probs(model: nn.Module, images: torch.Tensor, scales: Sequence[float] = (1.0,), flip: bool = False,
              out_size: tuple[int, int] | None = None, flip_channels: torch.Tensor | None = None) -> torch.Tensor:
    """Mean class probabilities ``[N, C, H, W]`` over scales (and flip), at ``out_size``."""
    out_size = tuple(out_size or images.shape[-2:])
    total, n = None, 0
    for _, _, p in scaled_probs(model, images, scales, flip, out_size, flip_channels):
        total = p if total is None else total + p
        n += 1
    return total / n


def normalize(mean: Sequence[float], std: Sequence[float]) -> list:
    """The last steps of every pipeline: normalise with the training set's statistics, to a CHW tensor."""
    return [A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0), ToTensorV2()]


def eval_transform(size: int, mean: Sequence[float], std: Sequence[float]) -> A.Compose:
    """Validation/prediction pipeline: resize the image to the model's size and normalise."""
    return A.Compose([A.Resize(size, size), *normalize(mean, std)])


def load_solution(weights: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """The network of ``ckpt.pth`` in eval mode on ``device``, and the checkpoint's other entries."""
    spec = torch.load(weights, map_location="cpu", weights_only=True)  # tensors and plain values only
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise SystemExit(f"error: {weights}: not a checkpoint written for this run.py (format {FORMAT})")
    model = getattr(smp, spec["arch"])(**spec["arch_kwargs"])
    model.load_state_dict(spec["state_dict"])
    return model.to(device).eval(), spec


@torch.no_grad()
def predict_image(model: nn.Module, spec: dict, image: np.ndarray, device: torch.device | str = "cpu",
                  out_size: tuple[int, int] | None = None) -> np.ndarray:
    """Class indices (uint8, the image's size or ``out_size``) of an RGB uint8 image."""
    x = eval_transform(spec["image_size"], spec["mean"], spec["std"])(image=image)["image"].unsqueeze(0).to(device)
    probs = tta_probs(model, x, spec["tta_scales"], spec["tta_flip"], out_size=out_size or image.shape[:2],
                      flip_channels=torch.as_tensor(spec["flip_channels"]))
    return np.ascontiguousarray(probs.argmax(1)[0].to(torch.uint8).cpu().numpy())


def write_mask(mask: np.ndarray, path: str | Path) -> None:
    """A single-channel 8-bit PNG of class indices."""
    Image.fromarray(mask, mode="L").save(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", required=True, help="face image (jpg/png)")
    p.add_argument("--output", required=True, help="mask to write (png of class indices)")
    p.add_argument("--weights", default="ckpt.pth", help="the submission's checkpoint")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    model, spec = load_solution(args.weights, args.device)
    with Image.open(args.input) as im:
        image = np.asarray(im.convert("RGB"))
    write_mask(predict_image(model, spec, image, args.device), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
