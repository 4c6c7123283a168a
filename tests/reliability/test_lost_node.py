"""A worker node lost mid-search on a Ray cluster on this machine (GPU nodes whose GPUs are declared to
Ray): its trials continue on another node from their checkpoints, and the search completes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from optuna.trial import TrialState
from ray.cluster_utils import Cluster

from analysis.load import failures
from tests.reliability.harness import load_study, result_rows
from tests.reliability.test_killed_driver import Driver

EPOCHS = 4
SEARCH = ["--num-samples", "2", "--max-epochs", str(EPOCHS), "--grace-period", str(EPOCHS),
          "--reduction-factor", "2", "--max-concurrent", "2", "--set", "train.batch_size=4",
          "--set", "model.decoder_width=32", "--set", "loss.lovasz=0.5"]


# the worker nodes' resources, and the flags that fit both trials on one: GPU nodes (their GPU declared to
# Ray, which schedules it as on a real one) with half a GPU per trial. (CPU nodes take the same path with
# fewer resources; the two-node CPU cluster of tests/test_cluster.py runs every CI run too.)
WORKERS = {"gpu": ({"num_cpus": 2, "num_gpus": 1}, ["--gpus-per-trial", "0.5", "--cpus-per-trial", "1"])}


@pytest.fixture(params=list(WORKERS))
def cluster(request, monkeypatch):
    """A head without CPUs or GPUs (it runs the search's driver side, no trials) and one worker node
    with room for both trials; a lost node is noticed within a few seconds."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "num_gpus": 0, "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}})
    resources, flags = WORKERS[request.param]
    cluster.add_node(**resources)
    cluster.wait_for_nodes()
    yield cluster, resources, flags
    cluster.shutdown()


def _rows(exp: Path) -> dict[str, list[dict]]:
    out = {}
    for d in exp.glob("trial_*"):
        try:
            out[d.name] = result_rows(d)
        except ValueError:  # a line being written
            out[d.name] = []
    return out


@pytest.mark.slow
def test_trials_of_a_lost_node_resume_on_another_node(cluster, tiny_master, tmp_path):
    cluster, resources, flags = cluster
    exp, tmp = tmp_path / "lost", tmp_path / "tmp"
    tmp.mkdir()
    (lost,) = cluster.worker_nodes
    driver = Driver(["--space", "augmentation", "--data", str(tiny_master), "--storage-path", str(tmp_path),
                     "--name", "lost", "--address", cluster.address, *SEARCH, *flags], tmp, tmp_path / "run.log")
    try:
        # both waits end within pytest's 600 s limit, so a slow run fails with the driver's output
        deadline = time.time() + 240
        while time.time() < deadline:  # both trials running on the worker, each with a checkpoint
            rows = _rows(exp) if exp.is_dir() else {}
            if len(rows) == 2 and all(rows.values()) and all(r[-1]["epoch"] < EPOCHS for r in rows.values()):
                break
            assert driver.proc.poll() is None, driver.output()[-3000:]
            time.sleep(0.2)
        else:
            raise AssertionError("the trials did not report in time")
        cluster.remove_node(lost, allow_graceful=False)
        replacement = cluster.add_node(**resources)
        assert driver.wait(timeout=330) == 0, driver.output()[-4000:]
    finally:
        if driver.proc.poll() is None:
            driver.kill()

    after = _rows(exp)
    assert set(after) == set(rows)
    for name, trial_rows in after.items():
        nodes = [r["node"] for r in trial_rows]
        assert [r["epoch"] for r in trial_rows] == list(range(1, EPOCHS + 1)), name  # no epoch lost or repeated
        assert nodes[0] == lost.node_id and nodes[-1] == replacement.node_id, name
        first_on_replacement = trial_rows[nodes.index(replacement.node_id)]["epoch"]
        # continued after the checkpoints it had when the node was lost, not from epoch 1
        assert first_on_replacement > len(rows[name]) >= 1, name
        assert failures(exp / name) >= 1, name  # the loss was recorded as a failure, and retried
        assert all(r["gpus"] for r in trial_rows) == ("num_gpus" in resources), name  # given a GPU where there are
    study = load_study(exp)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert "best trial" in driver.output()
