"""The per-epoch record after retries: a trial that fails after two epochs it reported without a
checkpoint is retried from the older checkpoint; its result.json and progress.csv end with epochs
1..n exactly once, in order, while the driver's background sync lags behind (made slow here, the
condition in which Ray's own loggers copied a stale storage file over the fresh one at the restart).
``bench/result_rows.py`` (whose trainable this is) runs this and the killed-worker and killed-driver
cases many times."""

from __future__ import annotations

import csv
import json
import time

import pytest

from bench.result_rows import make_trainable
from search_spaces.driver import new_record, run_search
from tests.reliability.harness import local_ray

EPOCHS, NO_CHECKPOINT, FAIL_AT = 5, (3, 4), 4


@pytest.fixture
def slow_sync(monkeypatch):
    """Every upload of the driver's background sync waits a second."""
    from ray.train._internal import storage

    copy = storage._pyarrow_fs_copy_files

    def slow(*args, **kwargs):
        time.sleep(1.0)
        return copy(*args, **kwargs)

    monkeypatch.setattr(storage, "_pyarrow_fs_copy_files", slow)


def test_a_retry_from_an_older_checkpoint_neither_loses_nor_repeats_a_row(tmp_path, tmp_path_factory, slow_sync):
    marks = tmp_path / "marks"
    marks.mkdir()
    record = new_record("augmentation", name="rows", num_samples=2, max_epochs=EPOCHS, grace_period=EPOCHS,
                        max_concurrent=2, cpus_per_trial=1, overrides={"data.image_size": 32})
    with local_ray(tmp_path_factory.getbasetemp() / "cache"):
        trainable = make_trainable("raise", str(marks), epochs=EPOCHS, no_checkpoint=NO_CHECKPOINT, fail_at=FAIL_AT,
                                   step_s=0.0)
        results = run_search(tmp_path / "rows", record, restore=False, trainable_fn=trainable).results
    assert len(results) == 2 and not [r for r in results if r.error]
    for trial in sorted((tmp_path / "rows").glob("trial_*")):
        rows = [json.loads(x) for x in (trial / "result.json").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1)), trial.name
        assert [r["training_iteration"] for r in rows] == list(range(1, EPOCHS + 1))
        with open(trial / "progress.csv") as f:
            table = list(csv.DictReader(f))
        assert [int(r["epoch"]) for r in table] == list(range(1, EPOCHS + 1))
        assert float(table[-1]["nested/loss"]) == pytest.approx(1 / EPOCHS) and "config/data/image_size" not in table[0]
        assert (trial / "params.json").is_file()
        # the retry really went back to the checkpoint of epoch 2: epochs 3, 4, 5 were reported again,
        # and the rows kept are the second attempt's
        assert [r["iterations_since_restore"] for r in rows[2:]] == [1, 2, 3]
