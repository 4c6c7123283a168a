"""Every trial's per-epoch record in storage (``result.json``, ``progress.csv``): one row per epoch
the trial completed, in order, after any sequence of failures, retries and resumes.

Ray's own JSON and CSV loggers write these files into the driver's staging folder and leave them
to the experiment's background sync. When a trial restarts (a retry after an exception or a killed
worker, or every unfinished trial after a resumed driver), they first copy the storage copy over
the local file (``LoggerCallback._restore_from_remote`` in Ray 2.60). That copy is only as fresh as
the last sync that finished, and a sync is skipped while the previous one still runs: the rows
reported since were lost. Nor is the record rewound to the checkpoint the trial resumes from, so a
retry from an older checkpoint reported its epochs twice.

These loggers own the files in storage instead. Each report rewrites the trial's file whole, through
the storage file system, before the driver goes on (the rows are small: a few kB per epoch), so
storage always holds every row the driver has seen. Nothing is written to the staging folder, so the
background sync never carries an older copy over a newer one. After every (re)start the record is
rewound, at the trial's first report, to the rows up to the checkpoint it resumes from (none without
a checkpoint): the epochs it trains again are reported again, once; a trial that reports nothing
again keeps its rows. And a report replaces any rows at or past its own iteration, for the restarts
that come without a start (PBT exploiting a running trial onto an older checkpoint).

They subclass Ray's loggers so that Tune, which adds its own where none is given, adds none.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.utils import flatten_dict
from ray.tune.utils.util import SafeFallbackEncoder

from trainable.layout import PROGRESS_FILE, RESULT_FILE

__all__ = ["ProgressRecord", "ResultRecord", "resumed_iteration"]

ITERATION = "training_iteration"  # Ray's count of a trial's reports: one per epoch here


def resumed_iteration(trial) -> int:
    """The report the trial resumes after: its checkpoint's ``training_iteration`` (0 without one)."""
    result = trial.latest_checkpoint_result if trial.checkpoint else None
    return int(result.metrics.get(ITERATION, 0)) if result else 0


class _StorageRecord:
    """Rows of each trial, kept in memory and written whole to ``FILE`` in the trial's storage folder."""

    FILE = ""

    def _setup(self) -> None:
        self._rows: dict = {}  # trial -> its rows, as _row() returns them
        self._keep: dict = {}  # trial -> the last report its rows keep once it reports again

    def log_trial_start(self, trial) -> None:
        self._start(trial)

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        self._append(trial, result)

    def log_trial_end(self, trial, failed: bool = False) -> None:
        self._rows.pop(trial, None)
        self._keep.pop(trial, None)

    def _start(self, trial) -> None:
        # rewound at the trial's next report, not now: a trial that reports nothing again (the study had
        # already ended it when a killed driver's search resumed: searcher.skip_finished_trials) keeps
        # every row it reported, as the study keeps every value
        self._rows[trial] = self._read(trial)
        self._keep[trial] = resumed_iteration(trial)
        if not self._rows[trial]:
            self._write(trial)

    def _append(self, trial, result: dict) -> None:
        if trial not in self._rows:
            self._start(trial)
        if trial in self._keep:
            keep = self._keep.pop(trial)
            self._rows[trial] = [r for r in self._rows[trial] if int(float(r[ITERATION])) <= keep]
        if ITERATION in result:
            # a report is the newest of its trial: rows at or past its iteration are of a run the trial
            # left, even where Tune restarted it without a start (PBT exploiting it onto an older checkpoint)
            self._rows[trial] = [r for r in self._rows[trial] if int(float(r[ITERATION])) < int(result[ITERATION])]
        self._rows[trial].append(self._row(result))
        self._write(trial)

    def _path(self, trial) -> str:
        return posixpath.join(trial.storage.trial_fs_path, self.FILE)

    def _read(self, trial) -> list[dict]:
        fs = trial.storage.storage_filesystem
        try:
            with fs.open_input_stream(self._path(trial)) as f:
                return self._parse(f.read().decode())
        except FileNotFoundError:
            return []

    def _write(self, trial) -> None:
        fs = trial.storage.storage_filesystem
        fs.create_dir(trial.storage.trial_fs_path, recursive=True)
        with fs.open_output_stream(self._path(trial)) as f:  # the storage file system replaces it whole
            f.write(self._render(self._rows[trial]).encode())

    def _row(self, result: dict) -> dict:
        raise NotImplementedError

    def _parse(self, text: str) -> list[dict]:
        raise NotImplementedError

    def _render(self, rows: list[dict]) -> str:
        raise NotImplementedError


class ResultRecord(_StorageRecord, JsonLoggerCallback):
    """``result.json``: one JSON object per line, each report as Tune completed it."""

    FILE = RESULT_FILE

    def __init__(self) -> None:
        JsonLoggerCallback.__init__(self)
        self._setup()

    def log_trial_start(self, trial) -> None:
        self.update_config(trial, trial.config)  # params.json, as Ray's logger writes it
        super().log_trial_start(trial)

    def _row(self, result: dict) -> dict:
        return json.loads(json.dumps(result, cls=SafeFallbackEncoder))

    def _parse(self, text: str) -> list[dict]:
        rows = []
        for line in text.splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                break  # a line cut short (never by this logger: its files are replaced whole)
        return rows

    def _render(self, rows: list[dict]) -> str:
        return "".join(json.dumps(r, cls=SafeFallbackEncoder) + "\n" for r in rows)


class ProgressRecord(_StorageRecord, CSVLoggerCallback):
    """``progress.csv``: the reports flattened (``a/b``), without the config, under the first one's header."""

    FILE = PROGRESS_FILE

    def __init__(self) -> None:
        CSVLoggerCallback.__init__(self)
        self._setup()

    def _row(self, result: dict) -> dict:
        flat = flatten_dict({k: v for k, v in result.items() if k != "config"}, delimiter="/")
        return {k: "" if v is None else str(v) for k, v in flat.items()}

    def _parse(self, text: str) -> list[dict]:
        return list(csv.DictReader(io.StringIO(text)))

    def _render(self, rows: list[dict]) -> str:
        if not rows:
            return ""
        out = io.StringIO()
        writer = csv.DictWriter(out, list(rows[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
