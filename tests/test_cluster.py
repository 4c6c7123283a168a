"""A search on a two-node Ray cluster started on this machine: trials run on both nodes."""

from __future__ import annotations

import pytest
from ray.cluster_utils import Cluster

from tests.test_launch import TINY, TINY_SEARCH, launch, trial_results


@pytest.fixture
def two_nodes(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


@pytest.mark.slow  # 70 s; a search on one node runs in every run (tests/test_launch.py)
def test_search_places_trials_on_both_nodes(two_nodes, tiny_master, tmp_path):
    proc = launch("--space", "augmentation", "--data", str(tiny_master), "--storage-path", str(tmp_path),
                  "--name", "cluster", "--address", two_nodes.address, *TINY_SEARCH)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "note: 2 nodes in the cluster" in out  # a local storage path is flagged on a multi-node cluster
    nodes = {rows[-1]["node"] for rows in trial_results(tmp_path / "cluster").values() if rows}
    assert len(nodes) == 2


@pytest.mark.slow
def test_a_pbt_population_spreads_over_both_nodes_and_exploits_across_them(two_nodes, tiny_master, tmp_path):
    # an exploit restores the donor's checkpoint from the storage, wherever the donor trained
    proc = launch("search", "--space", "augmentation", "--data", str(tiny_master), "--storage-path", str(tmp_path),
                  "--name", "pbt", "--address", two_nodes.address, "--num-samples", "2", "--set", "train.epochs=3",
                  "--scheduler", "pbt", "--perturbation-interval", "1", *TINY)
    out = proc.communicate(timeout=900)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "2 ended: 2 completed" in out
    results = trial_results(tmp_path / "pbt")
    assert len({r["node"] for rows in results.values() for r in rows}) == 2
    assert all([r["epoch"] for r in rows] == [1, 2, 3] for rows in results.values())
    assert "[Exploit]" in out
