"""Segmentation models: segmentation_models_pytorch architectures on timm encoders.

``build_model`` picks the architecture by name from ``ARCHS``, sizes its decoder from one width,
adds an optional FCN auxiliary head on the encoder's stride-16 features (as mmsegmentation's
auxiliary heads do), loads encoder weights when asked, and refuses a model over the parameter
budget before any training. The encoder's channels are read from the encoder, never hard-coded.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from trainable.classes import NUM_CLASSES
from trainable.config import ModelConfig
from trainable.errors import UserError

__all__ = ["ARCHS", "ModelError", "SegmentationNet", "build_model", "count_parameters", "load_weights", "smp_spec"]


class ModelError(UserError):
    """A model that cannot be built, loaded or used under the given rules."""


def _unet_channels(w: int) -> dict:
    # (64, 48, 32, 24, 16) for w=64: the small from-scratch default, about 1.4M parameters
    return {"decoder_channels": (w, w * 3 // 4, w // 2, w * 3 // 8, w // 4)}


# name -> (smp class, decoder keyword arguments from one width)
ARCHS: dict[str, tuple[type[nn.Module], Callable[[int], dict]]] = {
    "unet": (smp.Unet, _unet_channels),
    "unetplusplus": (smp.UnetPlusPlus, _unet_channels),
    # FPN's segmentation blocks use GroupNorm(32): their width must be a multiple of 32
    "fpn": (smp.FPN, lambda w: {"decoder_pyramid_channels": w, "decoder_segmentation_channels": max(32, w // 64 * 32)}),
    "deeplabv3plus": (smp.DeepLabV3Plus, lambda w: {"decoder_channels": w}),
    "upernet": (smp.UPerNet, lambda w: {"decoder_channels": w}),
    "segformer": (smp.Segformer, lambda w: {"decoder_segmentation_channels": w}),
}


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, counted as the challenge rules count them."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class SegmentationNet(nn.Module):
    """An smp model plus an optional auxiliary FCN head; returns (main, aux) logits in training."""

    def __init__(self, net: nn.Module, aux_head: bool, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.net = net
        self.aux = None
        if aux_head:
            c = net.encoder.out_channels[-2]
            hidden = max(16, c // 2)
            self.aux = nn.Sequential(
                nn.Conv2d(c, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
                nn.Dropout2d(0.1), nn.Conv2d(hidden, num_classes, 1))

    def forward(self, x: torch.Tensor):
        features = self.net.encoder(x)
        logits = self.net.segmentation_head(self.net.decoder(features))
        if self.training and self.aux is not None:
            aux = F.interpolate(self.aux(features[-2]), size=x.shape[-2:], mode="bilinear", align_corners=False)
            return logits, aux
        return logits


def smp_spec(cfg: ModelConfig, num_classes: int = NUM_CLASSES) -> tuple[type[nn.Module], dict]:
    """The segmentation_models_pytorch class of ``cfg`` and the arguments that build it (no weights)."""
    if cfg.arch not in ARCHS:
        raise ModelError(f"model.arch={cfg.arch!r}: valid architectures are {', '.join(ARCHS)}")
    cls, decoder_kwargs = ARCHS[cfg.arch]
    return cls, {"encoder_name": cfg.encoder, "encoder_weights": None, "classes": num_classes,
                 **decoder_kwargs(cfg.decoder_width)}


def build_model(cfg: ModelConfig, aux_head: bool = False, num_classes: int = NUM_CLASSES) -> SegmentationNet:
    """Build the configured model; raises ``ModelError`` for unknown names, missing weights or budget."""
    cls, kwargs = smp_spec(cfg, num_classes)

    def make(weights: str | None) -> nn.Module:
        return cls(**{**kwargs, "encoder_weights": weights})

    try:
        net = make(None)
    except (KeyError, RuntimeError, ValueError, TypeError, AssertionError) as e:
        reason = str(e).split(",")[0].strip("\"'") or type(e).__name__
        raise ModelError(f"model.arch={cfg.arch!r} with model.encoder={cfg.encoder!r} and model.decoder_width="
                         f"{cfg.decoder_width} cannot be built ({reason}); encoders are smp names (e.g. resnet34, "
                         f"mit_b0) or tu-<timm model name> (e.g. tu-mobilenetv3_small_100)") from None
    model = SegmentationNet(net, aux_head, num_classes)
    n = count_parameters(model)  # before any download: an over-budget model is refused at once
    if cfg.max_params and n > cfg.max_params:
        raise ModelError(
            f"model {cfg.arch} on {cfg.encoder} (decoder width {cfg.decoder_width}"
            f"{', auxiliary head' if aux_head else ''}) has {n:,} trainable parameters, over the budget "
            f"of {cfg.max_params:,} (model.max_params); choose a smaller encoder or model.decoder_width, "
            f"or set model.max_params=0 when the rules allow")
    if cfg.pretrained == "imagenet":
        try:
            net.encoder.load_state_dict(make("imagenet").encoder.state_dict())
        except Exception as e:
            raise ModelError(
                f"could not fetch ImageNet weights for encoder {cfg.encoder!r} ({type(e).__name__}); "
                f"download them where there is network and pass model.pretrained=/path/to/weights.pth "
                f"(or .safetensors), or train from scratch with model.pretrained=none") from None
    elif cfg.pretrained != "none":
        load_weights(net.encoder, cfg.pretrained, what=f"encoder {cfg.encoder}")
    return model


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle user files
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError("the file does not hold a state dict")
    return state


def load_weights(module: nn.Module, path: str | Path, what: str = "model") -> None:
    """Load a state dict file (torch or safetensors) into ``module``, matching key prefixes.

    Timm checkpoints, smp encoder state dicts and full-model state dicts are all accepted; the
    variant whose keys match the module best is used. Shapes must match.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: weights file not found; pass an existing .pth/.safetensors file")
    try:
        state = _read_state_dict(path)
    except pickle.UnpicklingError as e:
        if "unsupported global" not in str(e).lower():  # not a pickle of objects: junk or truncated
            raise ModelError(f"{path}: not a readable weights file ({type(e).__name__}: {e})") from None
        raise ModelError(f"{path}: holds Python objects besides tensors, which are never unpickled; save a plain "
                         f"state dict (torch.save(model.state_dict(), ...)) or a .safetensors file") from None
    except Exception as e:
        raise ModelError(f"{path}: not a readable weights file ({type(e).__name__}: {e})") from None
    own = module.state_dict()
    variants = [state, {"model." + k: v for k, v in state.items()},
                {k.split(".", 1)[1]: v for k, v in state.items() if "." in k}]
    best = max(variants, key=lambda s: len(own.keys() & s.keys()))
    matched = own.keys() & best.keys()
    if not matched:
        raise ModelError(f"{path}: no weights match {what}; was it saved from a different architecture?")
    wrong = [k for k in matched if own[k].shape != best[k].shape]
    if wrong:
        raise ModelError(f"{path}: {len(wrong)} tensors have the wrong shape for {what} (e.g. {wrong[0]}: "
                         f"{tuple(best[wrong[0]].shape)} vs {tuple(own[wrong[0]].shape)}); "
                         f"it was saved from a different architecture")
    module.load_state_dict({k: best[k] for k in matched}, strict=False)
