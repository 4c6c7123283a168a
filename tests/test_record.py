"""The experiment record: one typed record built from the flags, from which ASHA's rungs, the data
and the budget are derived; written, read back, and a record of the previous version."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from search_spaces import get_space
from search_spaces.driver import RECORD_VERSION, ExperimentRecord, build_tuner, new_record, read_record
from tests.test_launch import ROOT, launch, load_study
from trainable.config import Config
from trainable.errors import UserError
from trainable.layout import EXPERIMENT_FILE, trial_dirs
from trainable.sources import data_root


def test_the_synthetic_set_follows_the_image_size_the_user_set():
    # --set data.image_size=96 once trained 96 px trials on a set generated at the hardware's 64 px
    record = new_record("augmentation", overrides={"data.image_size": 96})
    assert record.config.data.image_size == 96 and record.synthetic
    trial_data = get_space("augmentation").param_space(record.config)["data"]  # what every trial is given
    assert trial_data == record.config.to_dict()["data"] and trial_data["root"] == ""
    root = data_root(record.config.data)  # the set a trial with that data config trains on
    with Image.open(next((root / "train" / "train_image").iterdir())) as im:
        assert im.size == (96, 96)
    with Image.open(next((root / "val" / "val_mask").iterdir())) as im:
        assert im.size == (96, 96)


def test_max_epochs_is_the_config_key_and_asha_follows_it(tmp_path):
    record = new_record("augmentation", overrides={"train.epochs": 2})
    assert record.max_t == 2 and record.grace_period == 2  # the hardware's grace period, within a full trial
    assert new_record("augmentation", max_epochs=5).config.train.epochs == 5
    (tmp_path / "exp").mkdir()
    tuner = build_tuner(tmp_path / "exp", new_record("augmentation", name="exp", max_epochs=3), restore=False)
    scheduler, searcher = tuner._local_tuner._tune_config.scheduler, tuner._local_tuner._tune_config.search_alg
    assert scheduler._max_t == 3 and searcher.searcher._max_t == 3  # ASHA's rungs and the PRUNED coupling: one value


@pytest.mark.parametrize("flags, message", [
    ({"max_epochs": 3, "overrides": {"train.epochs": 2}},
     "--max-epochs 3 and --set train.epochs=2 set the same value differently; give one of them"),
    ({"seed": 1, "overrides": {"train.seed": 2}}, "--seed 1 and --set train.seed=2"),
    ({"max_params": 5, "overrides": {"model.max_params": 6}}, "--max-params 5 and --set model.max_params=6"),
    ({"grace_period": 4, "overrides": {"train.epochs": 3}}, "--grace-period 4: more than the 3 epochs of a full trial"),
    ({"reduction_factor": 1.0}, "--reduction-factor 1: must be greater than 1"),
])
def test_flags_that_contradict_the_config_are_refused(flags, message):
    with pytest.raises(UserError) as e:
        new_record("augmentation", **flags)
    assert message in str(e.value)


def test_a_shorthand_flag_equal_to_its_set_is_accepted():
    assert new_record("augmentation", max_epochs=3, overrides={"train.epochs": 3}).max_t == 3


def test_the_record_is_written_and_read_back_whole(tmp_path):
    record = new_record("loss", name="exp", seed=3, num_samples=5, overrides={"optim.lr": 1e-3},
                        command="python launch.py ...")
    record.write(tmp_path)
    data = json.loads((tmp_path / EXPERIMENT_FILE).read_text())
    assert data["version"] == RECORD_VERSION and "settings" not in data  # nothing stored twice
    again = read_record(tmp_path)
    assert again == record and again.config.optim.lr == 1e-3 and again.seed == 3
    assert again.baseline["loss.lovasz"] == 2.0 and again.searched == list(get_space("loss").params)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(num_samples="many"), "num_samples='many' in the experiment record: expected int"),
    (lambda d: d.update(colour=1), "unknown key 'colour' in the experiment record"),
    (lambda d: d.pop("space"), "the experiment record has no space"),
    (lambda d: d["config"]["aug"].update(rotate_limit=-1), "aug.rotate_limit=-1.0: out of range"),
    (lambda d: d.update(version=9), "experiment record version 9, written by another version of facesearch"),
])
def test_a_damaged_record_is_refused_naming_the_file_and_key(tmp_path, change, message):
    new_record("augmentation", name="exp").write(tmp_path)
    data = json.loads((tmp_path / EXPERIMENT_FILE).read_text())
    change(data)
    (tmp_path / EXPERIMENT_FILE).write_text(json.dumps(data))
    with pytest.raises(UserError) as e:
        read_record(tmp_path)
    assert str(e.value).startswith(f"{tmp_path / EXPERIMENT_FILE}: ") and message in str(e.value)


def _version_1(data: Path, name: str, epochs: int) -> dict:
    """experiment.json as the previous version of launch.py wrote it (CPU defaults, --max-epochs)."""
    cfg = Config.from_dict({"data": {"root": str(data), "image_size": 64, "num_workers": 0, "max_train": 400,
                                     "max_val": 100}, "train": {"epochs": epochs, "batch_size": 4},
                            "model": {"decoder_width": 32}, "loss": {"lovasz": 0.5}})
    space = get_space("augmentation")
    settings = {"image_size": 64, "max_epochs": epochs, "num_samples": 1, "grace_period": 1, "reduction_factor": 3,
                "cpus_per_trial": 1, "gpus_per_trial": 0.0, "batch_size": 8, "max_train": 400, "max_val": 100,
                "num_workers": 0}
    return {"space": "augmentation", "name": name, "ablation": False, "seeds": 1, "seed": 0, "settings": settings,
            "max_concurrent": 0, "base_config": cfg.to_dict(), "searched": list(space.params), "levels": space.levels,
            "baseline": {"aug.rotate_limit": 25.0}, "data": str(data), "synthetic": False,
            "created": "2026-11-30 10:00:00", "command": "python launch.py --space augmentation"}


def test_a_record_of_the_previous_version_is_read(tmp_path, tiny_master):
    (tmp_path / EXPERIMENT_FILE).write_text(json.dumps(_version_1(tiny_master, "old", 2)))
    record = read_record(tmp_path)
    assert record.read_version == 1 and record.max_t == 2 and record.num_samples == 1
    assert record.config.data.root == str(tiny_master) and record.name == "old"


def test_a_previous_version_search_with_ray_state_is_refused_by_resume(tmp_path, tiny_master):
    exp = tmp_path / "old"
    exp.mkdir()
    (exp / EXPERIMENT_FILE).write_text(json.dumps(_version_1(tiny_master, "old", 2)))
    (exp / "experiment_state-2026-11-30_10-00-00.json").write_text("{}")
    proc = subprocess.run([sys.executable, "launch.py", "resume", str(exp)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("error: ") == 1
    assert f"{exp}: run by an earlier version of facesearch (experiment record version 1)" in proc.stderr
    assert f"python -m analysis {exp}" in proc.stderr


def test_a_previous_version_search_killed_before_ray_saved_resumes(tmp_path, tiny_master):
    exp = tmp_path / "old"
    exp.mkdir()
    (exp / EXPERIMENT_FILE).write_text(json.dumps(_version_1(tiny_master, "old", 1)))
    proc = launch("resume", str(exp))
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "best trial" in out
    assert len(trial_dirs(exp)) == 1 and len(load_study(exp).trials) == 1
    assert json.loads((exp / EXPERIMENT_FILE).read_text())["version"] == RECORD_VERSION  # upgraded in place
    assert read_record(exp).config.data.root == str(tiny_master)


def test_experiment_record_has_no_stored_copy_of_a_derived_value():
    stored = {f for f in ExperimentRecord.__dataclass_fields__}
    assert not stored & {"max_epochs", "max_t", "seed", "data", "synthetic", "searched", "levels", "baseline",
                         "max_params", "image_size"}


@pytest.mark.parametrize("name, metric, max_params", [
    ("ai6126-2022", "val_miou", 0), ("ce7454-2024", "val_miou", 1_999_999), ("ce7454-2025", "val_fscore", 1_821_084)])
def test_a_challenge_sets_the_metric_and_the_budget(tmp_path, name, metric, max_params):
    record = new_record("augmentation", name="exp", challenge=name)
    assert (record.challenge, record.metric, record.config.model.max_params) == (name, metric, max_params)
    record.write(tmp_path)
    assert read_record(tmp_path) == record


def test_explicit_flags_override_a_challenge_but_its_rules_hold():
    record = new_record("augmentation", challenge="ce7454-2025", max_params=5_000_000, metric="val_miou")
    assert record.config.model.max_params == 5_000_000 and record.metric == "val_miou"
    assert new_record("augmentation", challenge="ai6126-2022",
                      overrides={"model.pretrained": "imagenet"}).config.model.pretrained == "imagenet"
    with pytest.raises(UserError, match=r"model\.pretrained=imagenet: the ce7454-2024 rules allow no pretrained"):
        new_record("augmentation", challenge="ce7454-2024", overrides={"model.pretrained": "imagenet"})
    with pytest.raises(UserError, match="valid challenges are ai6126-2022, ce7454-2024, ce7454-2025"):
        new_record("augmentation", challenge="ce7454-2026")
    assert new_record("augmentation").metric == "val_miou"  # no challenge: the course mIoU, 2,000,000
    assert new_record("augmentation").config.model.max_params == 2_000_000


# an experiment written by an earlier version of this tool (commit 42ee819: a finished search of three
# trials on the built-in synthetic set), its checkpoints left out to keep the repository small
EARLIER = ROOT / "tests" / "data" / "search-42ee819"


@pytest.mark.slow  # 45 s
def test_an_experiment_of_an_earlier_version_analyses_resumes_and_retrains(tmp_path):
    exp = Path(shutil.copytree(EARLIER, tmp_path / EARLIER.name))
    analysis = subprocess.run([sys.executable, "-m", "analysis", str(exp)], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
    assert analysis.returncode == 0, analysis.stderr
    assert "trial_16bfa72c (baseline)" in (exp / "analysis" / "report.md").read_text()
    resumed = launch("resume", str(exp))
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out[-3000:]
    assert f"{exp}: finished, all 3 trials ended; nothing to resume" in out and len(load_study(exp).trials) == 3
    assert "--num-samples" not in out  # its saved Ray state cannot take more trials
    retrained = launch("retrain", str(exp), "--epochs", "1")
    out = retrained.communicate(timeout=300)[0]
    assert retrained.returncode == 0, out[-3000:]
    assert "trial_16bfa72c: val mIoU" in out and (exp / "retrain" / "trial_16bfa72c" / "model.pt").is_file()
