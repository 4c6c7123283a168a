"""Determinism on the CPU: the same ``--seed`` gives the same sampled configurations and the same
per-epoch metrics.

The default run checks the two halves in-process (the seeded sampler; a seeded training run,
epoch by epoch); the slow test runs the same tiny ``launch.py`` search twice and compares every
trial's configuration and per-epoch metrics from its ``result.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from search_spaces import get_space
from search_spaces.driver.searcher import TUNE_TRIAL_ATTR, journal_storage, make_searcher
from tests.conftest import tiny_config
from tests.reliability.clirun import ROOT
from trainable.config import Config
from trainable.layout import JOURNAL_FILE
from trainable.run import build_run, run_epoch

# what an epoch reports that must repeat exactly (the rest is wall time, host names and Ray's ids)
EPOCH_METRICS = ("epoch", "val_miou", "val_acc", "val_mean_f1", "val_loss", "train_loss", "lr")


def test_same_seed_samples_the_same_configurations(tmp_path):
    space = get_space("augmentation")
    base = space.base_config()

    def sample(seed: int, name: str) -> list[dict]:
        searcher = make_searcher(tmp_path / f"{name}.journal", name, seed, [space.baseline_point(base)], max_t=3,
                                 n_startup_trials=3)
        searcher.set_search_properties("val_miou", "max", space.param_space(base))
        out = []
        for i in range(6):  # past the random start-up trials: TPE's suggestions are compared too
            config = searcher.suggest(f"t{i}")
            searcher.on_trial_complete(f"t{i}", {"val_miou": float(i % 3), "training_iteration": 3})
            out.append(config)
        return out

    a, b, c = sample(7, "a"), sample(7, "b"), sample(8, "c")
    assert a == b
    assert a[0] == c[0]  # the baseline comes first whatever the seed
    assert a[1:] != c[1:]


@pytest.fixture
def one_thread():
    """Train on one thread, as a one-CPU trial does (Ray sets OMP_NUM_THREADS=1); on a busy machine
    two spinning threads per process also make each epoch many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _epochs(cfg: Config, n: int) -> list[dict]:
    run = build_run(cfg)
    return [{k: v for k, v in run_epoch(run, e).items() if k in (*EPOCH_METRICS, "iou")} for e in range(n)]


def test_same_seed_trains_the_same_epochs(tiny_master, one_thread):
    # augmentations that draw random numbers every step, so that a seed that is not honoured shows;
    # two steps of 4 images per epoch and 2 validation images keep it quick
    aug = {"rotate_p": 1.0, "cutout_p": 0.5, "jitter_p": 1.0, "flip_p": 0.5}
    data = {"max_train": 8, "max_val": 2}
    cfg = Config.from_dict(tiny_config(tiny_master, aug=aug, data=data, train={"seed": 5}))
    first, second = _epochs(cfg, 2), _epochs(cfg, 2)
    assert first == second  # exactly: the same numbers, not merely close ones
    other = _epochs(Config.from_dict(tiny_config(tiny_master, aug=aug, data=data, train={"seed": 6})), 1)
    assert other[0]["train_loss"] != first[0]["train_loss"]


TINY_SEARCH = ["--space", "augmentation", "--num-samples", "5", "--max-epochs", "2", "--grace-period", "1",
               "--reduction-factor", "2", "--seed", "3",
               # one trial at a time: TPE and ASHA then see results in an order that does not depend on timing
               "--max-concurrent", "1",
               "--set", "train.batch_size=4", "--set", "model.decoder_width=32", "--set", "loss.lovasz=0.5"]


def _search(data: Path, storage: Path, name: str) -> Path:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": "local", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "launch.py", *TINY_SEARCH, "--data", str(data), "--storage-path",
                           str(storage), "--name", name], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return storage / name


def _trials_in_study_order(exp: Path) -> list[dict]:
    """Each trial as the study numbered it: its state, sampled values, and its per-epoch results."""
    study = optuna.load_study(study_name=exp.name, storage=journal_storage(exp / JOURNAL_FILE))
    out = []
    for t in study.trials:
        rows = [json.loads(line) for line in
                (exp / f"trial_{t.user_attrs[TUNE_TRIAL_ATTR]}" / "result.json").read_text().splitlines()]
        out.append({"state": t.state.name, "params": t.params, "intermediate": t.intermediate_values,
                    "config": rows[0]["config"], "epochs": [{k: r[k] for k in EPOCH_METRICS} for r in rows]})
    return out


@pytest.mark.slow
def test_the_same_seed_gives_the_same_search(tiny_master, tmp_path):
    first = _trials_in_study_order(_search(tiny_master, tmp_path, "first"))
    second = _trials_in_study_order(_search(tiny_master, tmp_path, "second"))
    assert len(first) == 5
    assert {t["state"] for t in first} >= {"COMPLETE", "PRUNED"}  # ASHA's decisions are compared too
    for i, (a, b) in enumerate(zip(first, second, strict=True)):
        assert a["params"] == b["params"] and a["config"] == b["config"], f"trial {i} sampled differently"
        assert a["epochs"] == b["epochs"], f"trial {i}: per-epoch metrics differ"
        assert a["state"] == b["state"] and a["intermediate"] == b["intermediate"], f"trial {i}"
