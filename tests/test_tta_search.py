"""Scoring TTA combinations of a trained checkpoint, and refusing bad checkpoints."""

from __future__ import annotations

import pytest
import torch

from analysis.load import metric_of
from search_spaces.driver import new_record
from search_spaces.tta import combinations_to_score
from tests.conftest import tiny_config
from tests.test_launch import launch
from trainable.checkpoints import load_trained_model, save_checkpoint
from trainable.config import Config
from trainable.errors import UserError
from trainable.layout import CHECKPOINT_FILE
from trainable.run import build_run, run_epoch
from trainable.tta_search import score_tta


@pytest.fixture(scope="module")
def checkpoint(tiny_master, tmp_path_factory):
    run = build_run(Config.from_dict(tiny_config(tiny_master, train={"epochs": 1})))
    metrics = run_epoch(run, 0)
    directory = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(run, 1, directory, metrics)
    return directory


@pytest.mark.parametrize("metric", ["val_miou", "val_fscore"])
def test_every_combination_is_scored_by_the_metric_and_plain_reproduces_the_checkpoint(checkpoint, metric):
    combos = combinations_to_score()
    assert len(combos) == 62 and combos[0] == ((1.0,), False)
    rows = score_tta(checkpoint, combos, metric=metric)
    assert len(rows) == 62
    assert rows == sorted(rows, key=lambda r: -r[metric])  # an F-score experiment's TTA ranked by its F-score
    plain = next(r for r in rows if r["scales"] == [1.0] and not r["flip"])
    saved = torch.load(checkpoint / CHECKPOINT_FILE, weights_only=True)["metrics"]
    assert plain["val_miou"] == pytest.approx(saved["val_miou"], abs=1e-9)
    assert plain["val_fscore"] == pytest.approx(saved["val_fscore"], abs=1e-12)
    assert rows[0]["checkpoint"] == saved[metric]


def test_cli_prints_the_table(checkpoint):
    proc = launch("tta", str(checkpoint))
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    assert "62 combinations scored by val mIoU; plain inference (scale 1.0, no flip)" in out
    assert "best: --set train.tta_scales=" in out


def test_tta_ranks_by_the_metric_of_the_experiment_holding_the_checkpoint(tiny_master, tmp_path):
    record = new_record("augmentation", name="exp", data=str(tiny_master), challenge="ce7454-2025")
    (tmp_path / "exp").mkdir()
    record.write(tmp_path / "exp")
    checkpoint = tmp_path / "exp" / "trial_1a2b3c4d" / "checkpoint_000001"
    checkpoint.mkdir(parents=True)
    assert metric_of(checkpoint) == metric_of(tmp_path / "exp") == "val_fscore"  # the 2025 edition's
    assert metric_of(tmp_path) == "val_miou"  # outside any experiment: the course's


def test_tta_resolves_data_and_set_as_search_and_retrain_do(checkpoint, tiny_master, tmp_path):
    with pytest.raises(UserError, match=r"--data .* and --set data\.root=elsewhere set the same value differently"):
        score_tta(checkpoint, [((1.0,), False)], data=str(tiny_master), overrides={"data.root": "elsewhere"})
    (row,) = score_tta(checkpoint, [((1.0,), False)], data=str(tiny_master), overrides={"data.root": str(tiny_master)})
    assert row["val_miou"] > 0


def test_bad_checkpoints_are_refused(checkpoint, tmp_path):
    with pytest.raises(UserError, match="no checkpoint found"):
        load_trained_model(tmp_path / "missing")
    (tmp_path / "corrupt.pt").write_bytes(b"\x80\x02 definitely not a checkpoint")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_trained_model(tmp_path / "corrupt.pt")
    state = torch.load(checkpoint / CHECKPOINT_FILE, weights_only=True)
    state["config"]["model"]["decoder_width"] = 48  # weights saved from a different architecture
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(UserError, match="the weights do not fit model unet"):
        load_trained_model(tmp_path / "other.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="not a checkpoint written by this tool"):
        load_trained_model(tmp_path / "foreign.pt")
