"""The peers of bench/search_efficiency.py: each runs here, seeded, and is counted in trial-epochs
exactly as the Ray searches are (one TargetStopper for all)."""

from __future__ import annotations

import pytest

from bench.curve_table import CURVES, TableBench, load_curves
from bench.peers import PEERS, available_peers, run_peer
from bench.searches import CrossingBench, HartmannBench

BUDGET = 45  # trial-epochs: a few rungs of every peer, in about a second each


def _installed(peer: str):
    why = available_peers()[peer]
    if peer == "dehb" and why:  # DEHB pins numpy < 2 and is installed by hand (bench/README.md)
        pytest.skip(f"dehb: {why}")
    assert not why, f"{peer}: {why}; it is in the test extras"


@pytest.mark.parametrize("peer", list(PEERS))
def test_each_peer_searches_counted_in_trial_epochs_and_seeded(peer):
    _installed(peer)
    bench = CrossingBench(target_regret=0.0)  # a target no search reaches: each runs to its budget
    first = run_peer(peer, 3, bench, BUDGET, BUDGET)
    assert first["epochs"] == BUDGET and first["epochs_to_target"] is None
    assert 1 < first["trials"] <= BUDGET
    assert first["curve"] and first["curve"][-1][0] <= BUDGET and first["best"] == first["curve"][-1][1]
    again = run_peer(peer, 3, bench, BUDGET, BUDGET)
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in first.items() if k != "seconds"}


@pytest.mark.parametrize("peer", ["optuna tpe+hyperband", "smac hyperband"])
def test_a_peer_stops_at_the_first_trial_epoch_that_reaches_the_target(peer):
    _installed(peer)
    bench = HartmannBench("mfh6-good", target_regret=1e9)  # any full trial reaches it
    run = run_peer(peer, 0, bench, 0, 100)
    # Hartmann counts a trial's regret at its last epoch only; the first epoch 9 anyone trains ends the search
    assert run["epochs_to_target"] == run["epochs"] and run["epochs"] >= bench.max_t


@pytest.mark.parametrize("peer", ["optuna tpe+hyperband", "smac hyperband"])
def test_peers_search_the_learning_curve_table_by_its_grid_levels(peer):
    _installed(peer)
    curves = load_curves(CURVES)
    bench = TableBench(curves, target=max(max(c) for c in curves.values()) + 1)  # out of reach
    # more trials than the grid has configurations: SMAC, which never repeats one, ends its search
    run = run_peer(peer, 0, bench, 0, 200)
    assert run["epochs_to_target"] is None and run["trials"] > 0
    if peer == "smac hyperband":
        assert run["trials"] < 200  # its search ended once every configuration was tried, without an error
    else:
        assert run["best"] == max(max(c) for c in curves.values())  # it found the best of the grid
