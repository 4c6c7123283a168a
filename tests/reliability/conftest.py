"""Fixtures of the reliability suite: a loadable model checkpoint without any training."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import tiny_config


@pytest.fixture(scope="session")
def model_checkpoint(tiny_master, tmp_path_factory) -> Path:
    """``model.pt`` as a retrain writes it (weights, config, normalisation), for an untrained tiny model."""
    import torch

    from trainable.config import Config
    from trainable.models import build_model

    cfg = Config.from_dict(tiny_config(tiny_master))
    model = build_model(cfg.model, aux_head=cfg.loss.aux_weight > 0)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    torch.save({"model": model.state_dict(), "config": cfg.to_dict(),
                "normalization": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}, path)
    return path
