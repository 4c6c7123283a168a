"""Shared fixtures: a tiny synthetic data set and an isolated cache folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from trainable.synthetic import generate

pytest_plugins = ["tests.objectstore"]  # object_store: a local S3 endpoint

# in-process trainings run beside Ray trials on small CI machines: one thread each avoids oversubscription
torch.set_num_threads(1)

TINY = {"n_train": 10, "n_val": 5, "n_test": 3, "size": 64, "seed": 0}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # never touch the user's ~/.cache from a test
    monkeypatch.setenv("FACESEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_master(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("tiny") / "data", **TINY)


@pytest.fixture
def tiny_data(tiny_master, tmp_path) -> Path:
    """A private copy of the tiny synthetic set (without its stats cache) that a test may damage."""
    return Path(shutil.copytree(tiny_master, tmp_path / "data", ignore=shutil.ignore_patterns(".facesearch-*")))


def tiny_config(root: Path, **groups) -> dict:
    """A config dict that trains in seconds on the tiny set."""
    cfg = {
        "data": {"root": str(root), "image_size": 64, "num_workers": 0},
        "train": {"epochs": 2, "batch_size": 4},
        "loss": {"lovasz": 0.5},
        "model": {"decoder_width": 32},
    }
    for group, values in groups.items():
        cfg.setdefault(group, {}).update(values)
    return cfg
