"""A search on a two-node Ray cluster started on this machine: trials run on both nodes."""

from __future__ import annotations

import pytest
from ray.cluster_utils import Cluster

from tests.test_launch import TINY_SEARCH, launch, trial_results


@pytest.fixture
def two_nodes(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def test_search_places_trials_on_both_nodes(two_nodes, tiny_master, tmp_path):
    proc = launch("--space", "augmentation", "--data", str(tiny_master), "--storage-path", str(tmp_path),
                  "--name", "cluster", "--address", two_nodes.address, *TINY_SEARCH)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "note: 2 nodes in the cluster" in out  # a local storage path is flagged on a multi-node cluster
    nodes = {rows[-1]["node"] for rows in trial_results(tmp_path / "cluster").values() if rows}
    assert len(nodes) == 2
