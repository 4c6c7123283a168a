"""An experiment snapshot is never written while the previous one is being uploaded."""

from __future__ import annotations

from types import SimpleNamespace

from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

from search_spaces.driver.storage import snapshots_after_uploads


class _Syncer:
    """Records what Tune asks of the storage's syncer, in order."""

    def __init__(self, calls: list[str]):
        self.calls = calls

    def wait(self) -> None:
        self.calls.append("wait for the upload")

    def sync_up(self, local: str, remote: str) -> bool:
        self.calls.append("upload")
        return True


def _snapshot_calls() -> list[str]:
    calls: list[str] = []
    storage = SimpleNamespace(syncer=_Syncer(calls), experiment_driver_staging_path="/staging",
                              experiment_fs_path="/experiment")
    manager = _ExperimentCheckpointManager(storage=storage, checkpoint_period=0)
    manager.sync_up_experiment_state(save_fn=lambda: calls.append("write the snapshot"))
    return calls


def test_the_snapshot_waits_for_the_upload_before_it():
    assert _snapshot_calls() == ["write the snapshot", "upload"]  # Ray's: the write may meet an upload
    with snapshots_after_uploads():
        assert _snapshot_calls() == ["wait for the upload", "write the snapshot", "upload"]
    assert _snapshot_calls() == ["write the snapshot", "upload"]  # as it was after the search
