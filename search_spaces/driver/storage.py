"""The experiment's storage as Ray writes to it, with every file replaced whole or not at all.

Ray copies what the driver writes (its experiment state, the searcher's state, each trial's
``result.json``) and what the trials write (checkpoints) into the storage folder file by file, in
place. A driver or worker killed during such a copy (a crash, ``kill -9``, a lost node) leaves a
truncated file there: a truncated experiment state makes ``resume`` fail outright, a truncated
``result.json`` loses a trial's history, a truncated checkpoint cannot be loaded. Through this file
system each file is written under a temporary name beside its target and renamed onto it once
complete, so a reader sees the previous version or the new one, never part of one.

Whole files are not enough for the driver's snapshot. Ray saves the experiment state (its trials)
and the search algorithm's state (the search generator's count of trials, the concurrency limit's
running trials, the searcher with its Optuna trials) as separate files of one session, and uploads
them one after another, in no fixed order. A driver killed between two of those uploads leaves a torn
snapshot: an experiment state beside no searcher state (the resumed driver fails to sample or to
record a trial, or ends without the trials not yet started) or beside an older one (trials the
searcher never hears of). So the files of a snapshot are held back, each at its temporary name, until
every one of them has been written, and then renamed together, the experiment state last: the
storage holds the previous snapshot or the new one. One more tear comes from Ray itself: the driver
rewrites its experiment state in place (the other two files it replaces whole) while the previous
upload may still be reading it, so an upload can carry a truncated copy. A snapshot whose experiment
state does not parse is dropped whole, and the next one is published. (Three renames in a row are not one atomic
step: a kill between them, a window of microseconds against the milliseconds of an upload, would
still tear a snapshot; no portable file system call renames several files at once.)
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow
import pyarrow.fs as pafs
from ray.tune.execution.experiment_state import _ExperimentCheckpointManager
from ray.tune.execution.tune_controller import TuneController

from trainable.layout import replacing

__all__ = ["AtomicLocalHandler", "snapshots_after_uploads", "storage_filesystem"]


def storage_filesystem(storage_path: str | Path, snapshot: tuple[str, ...] = ()) -> pafs.FileSystem | None:
    """The file system for Ray to write the experiment with: whole-file writes on a local (or
    NFS-mounted) folder, the experiment state published only together with the search algorithm's
    state files ``snapshot`` (Ray's name templates, e.g. ``SearchGenerator.CKPT_FILE_TMPL``); ``None``
    (Ray's own choice) for an object store such as ``s3://``."""
    if "://" in str(storage_path):
        return None
    return pafs.PyFileSystem(AtomicLocalHandler(snapshot))


class AtomicLocalHandler(pafs.FileSystemHandler):
    """The local file system, with each output file written under a temporary name and renamed, and
    the files of a driver's snapshot renamed together."""

    def __init__(self, snapshot: tuple[str, ...] = ()) -> None:
        self._fs = pafs.LocalFileSystem()
        self._snapshot = tuple(snapshot)

    def __eq__(self, other) -> bool:
        return isinstance(other, AtomicLocalHandler) and other._snapshot == self._snapshot

    def __ne__(self, other) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((type(self), self._snapshot))

    def __reduce__(self):  # pickled to the workers, which persist checkpoints through it
        return (AtomicLocalHandler, (self._snapshot,))

    def get_type_name(self) -> str:
        return "atomic-local"

    def normalize_path(self, path: str) -> str:
        return self._fs.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self._fs.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self._fs.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self._fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self._fs.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self._fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("refusing to delete the contents of the root folder")

    def delete_file(self, path: str) -> None:
        self._fs.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self._fs.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        with replacing(dest) as tmp:
            self._fs.copy_file(src, str(tmp))

    def open_input_stream(self, path: str) -> pyarrow.NativeFile:
        return self._fs.open_input_stream(path)

    def open_input_file(self, path: str) -> pyarrow.NativeFile:
        return self._fs.open_input_file(path)

    def open_output_stream(self, path: str, metadata) -> pyarrow.NativeFile:
        if _RAY_TEMPORARY.match(Path(path).name):
            # Ray's own staging file, about to be renamed: an upload that lists it mid-write would leave
            # it in the experiment for good
            return pyarrow.BufferOutputStream()
        publish = None
        if self._snapshot:
            templates = (TuneController.CKPT_FILE_TMPL, *self._snapshot)  # the experiment state first
            publish = _SNAPSHOTS.publisher(Path(path), templates)
        return pyarrow.PythonFile(_WholeFile(path, publish), mode="w")

    def open_append_stream(self, path: str, metadata) -> pyarrow.NativeFile:
        return self._fs.open_append_stream(path)


# the name Ray's private _atomic_save writes a search algorithm's state under before renaming it
# (tests/test_ray_optuna_internals.py)
_RAY_TEMPORARY = re.compile(r"\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-tmp-")

Finish = Callable[[bool], None]  # renames a held file (True) or drops it (False)
Publish = Callable[[Path, Finish], None]  # takes a written file's temporary path and its Finish


class _Snapshots:
    """The files of each driver snapshot (folder, session) written so far, held at their temporary
    names; all renamed once the last one is written. Kept per process, not per handler: Ray copies
    the file system it is given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[Path, str], dict[str, tuple[Finish, bool]]] = {}

    def publisher(self, path: Path, templates: tuple[str, ...]) -> Publish | None:
        """How a finished write of ``path`` (at a temporary path) is published, if it is one of a
        snapshot's files (Ray's name ``templates``, the experiment state's first): ``None`` for any
        other file."""
        for template in templates:
            prefix, suffix = template.split("{}")
            if path.name.startswith(prefix) and path.name.endswith(suffix):
                session = path.name[len(prefix):len(path.name) - len(suffix)]
                # only the experiment state is rewritten in place by Ray: the one file that can tear
                return lambda tmp, finish: self._hold((path.parent, session), template,
                                                      (finish, template != templates[0] or _parses(tmp)), templates)
        return None

    def _hold(self, key, template: str, held_file: tuple[Finish, bool], templates: tuple[str, ...]) -> None:
        with self._lock:
            held = self._held.setdefault(key, {})
            earlier = held.pop(template, None)
            held[template] = held_file
            complete = set(held) == set(templates)
            if complete:
                del self._held[key]
        if earlier:
            earlier[0](False)  # an upload that stopped half-way: its file is superseded
        if complete:
            publish = all(whole for _, whole in held.values())
            for t in reversed(templates):  # the experiment state last
                held[t][0](publish)


def _parses(path: Path) -> bool:
    try:
        json.loads(path.read_bytes())
    except ValueError:
        return False
    return True


_SNAPSHOTS = _Snapshots()


class _WholeFile:
    """A binary file written at a temporary name and renamed onto ``path`` when closed after
    successful writes (``layout.replacing``); a failed write (e.g. a full disk) removes it and leaves
    ``path`` as it was. With ``publish``, the rename is handed to it instead (a snapshot's file),
    with the temporary path: it calls back with True to rename, False to drop the file."""

    def __init__(self, path: str, publish: Publish | None = None):
        self.path = path
        self._publish = publish
        self._replacing = replacing(path)
        self._tmp = self._replacing.__enter__()
        self._f = open(self._tmp, "wb")  # closed in close()
        self._failed = False
        self.closed = False

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except BaseException:
            self._failed = True
            raise

    def flush(self) -> None:
        self._f.flush()

    def tell(self) -> int:
        return self._f.tell()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._f.close()
        except BaseException:
            self._failed = True
        if self._failed:
            error = OSError(f"{self.path}: write failed; the previous version, if any, is kept")
            try:
                self._replacing.__exit__(type(error), error, None)  # removes the temporary file
            finally:
                raise error
        if self._publish is None:
            self._replacing.__exit__(None, None, None)
        else:
            self._publish(self._tmp, self._finish)

    def _finish(self, rename: bool) -> None:
        if rename:
            self._replacing.__exit__(None, None, None)
        else:
            dropped = OSError(f"{self.path}: superseded before its snapshot was complete")
            try:
                self._replacing.__exit__(type(dropped), dropped, None)  # removes the temporary file
            except OSError:
                pass


@contextlib.contextmanager
def snapshots_after_uploads() -> Iterator[None]:
    """Tune writes each experiment snapshot into its staging folder while the upload of the previous one
    may still be reading that folder: Ray's ``_atomic_save`` then creates and renames a temporary file
    under the upload, which fails ("Failed to open local file .../.<uuid>-tmp-searcher-state-...pkl")
    with a warning that names Ray's staging folder, and the snapshot reaches the storage a step late.
    Here each snapshot first waits for the upload before it, which the next upload waits for anyway:
    no wait is added, and nothing changes under an upload."""
    # private to Ray: sync_up_experiment_state and the storage's syncer (tests/test_ray_optuna_internals.py)
    sync_up = _ExperimentCheckpointManager.sync_up_experiment_state

    def after_upload(self, save_fn: Callable[[], None], force: bool = False, wait: bool = False) -> None:
        def save() -> None:
            try:
                self._storage.syncer.wait()
            except Exception:  # as Ray reports a failed upload when it starts the next one
                logging.getLogger("ray.train._internal.syncer").warning(
                    "Last sync command failed with the following error:\n%s", traceback.format_exc())
            save_fn()

        sync_up(self, save, force=force, wait=wait)

    _ExperimentCheckpointManager.sync_up_experiment_state = after_upload
    try:
        yield
    finally:
        _ExperimentCheckpointManager.sync_up_experiment_state = sync_up
