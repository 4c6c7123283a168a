"""Real Ray Tune runs of the trainable on the tiny synthetic set, on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray
from ray import tune

from tests.conftest import tiny_config
from trainable.layout import CHECKPOINT_FILE
from trainable.ray_trainable import train_segmentation


@pytest.fixture(scope="module")
def ray_session():
    # a new instance, never a cluster `ray start` or a cluster_utils.Cluster has running on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_tuner_runs_two_trials_with_checkpoints(ray_session, tiny_data, tmp_path):
    space = tiny_config(tiny_data)
    space["aug"] = {"rotate_limit": tune.grid_search([0.0, 30.0])}
    tuner = tune.Tuner(
        tune.with_resources(train_segmentation, {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(metric="val_miou", mode="max"),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="exp",
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
    )
    results = tuner.fit()
    assert len(results) == 2 and not results.errors
    for result in results:
        history = result.metrics_dataframe
        assert history["epoch"].tolist() == [1, 2]
        assert history["training_iteration"].tolist() == [1, 2]
        assert {"val_miou", "val_acc", "val_loss", "train_loss", "lr", "params", "iou/skin"} <= set(history.columns)
        with result.checkpoint.as_directory() as d:
            assert (Path(d) / CHECKPOINT_FILE).is_file()
    assert {r.config["aug"]["rotate_limit"] for r in results} == {0.0, 30.0}


def _fail_once_after_first_epoch(config: dict) -> None:
    """The real trainable, with a crash injected after the first epoch's report (once)."""
    import trainable.ray_trainable as rt

    config = dict(config)
    marker = Path(config.pop("test_marker"))
    real_run_epoch = rt.run_epoch

    def run_epoch(run, epoch):
        with open(marker.with_suffix(".log"), "a") as log:
            log.write(json.dumps(epoch) + "\n")
        if epoch == 1 and not marker.exists():
            marker.touch()
            raise RuntimeError("injected failure")
        return real_run_epoch(run, epoch)

    rt.run_epoch = run_epoch
    try:
        train_segmentation(config)
    finally:
        rt.run_epoch = real_run_epoch


def test_a_failed_trial_resumes_from_its_checkpoint_at_the_next_epoch(ray_session, tiny_data, tmp_path):
    space = tiny_config(tiny_data, train={"epochs": 3})
    space["test_marker"] = str(tmp_path / "crashed")
    tuner = tune.Tuner(
        _fail_once_after_first_epoch,
        param_space=space,
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="retry",
                                  failure_config=tune.FailureConfig(max_failures=1)),
    )
    result = tuner.fit()[0]
    assert result.error is None
    epochs_started = [json.loads(x) for x in (tmp_path / "crashed.log").read_text().split()]
    assert epochs_started == [0, 1, 1, 2]  # epoch 0 was not trained again after the crash
    assert result.metrics["epoch"] == 3 and result.metrics["training_iteration"] == 3
