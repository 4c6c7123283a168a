"""The experiment's storage as Ray writes to it, with every file replaced whole or not at all.

Ray copies what the driver writes (its experiment state, the searcher's state, each trial's
``result.json``) and what the trials write (checkpoints) into the storage folder file by file, in
place. A driver or worker killed during such a copy (a crash, ``kill -9``, a lost node) leaves a
truncated file there: a truncated experiment state makes ``resume`` fail outright, a truncated
``result.json`` loses a trial's history, a truncated checkpoint cannot be loaded. Through this file
system each file is written under a temporary name beside its target and renamed onto it once
complete, so a reader sees the previous version or the new one, never part of one.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow
import pyarrow.fs as pafs

from trainable.layout import replacing

__all__ = ["AtomicLocalHandler", "storage_filesystem"]


def storage_filesystem(storage_path: str | Path) -> pafs.FileSystem | None:
    """The file system for Ray to write the experiment with: whole-file writes on a local (or
    NFS-mounted) folder; ``None`` (Ray's own choice) for an object store such as ``s3://``."""
    if "://" in str(storage_path):
        return None
    return pafs.PyFileSystem(AtomicLocalHandler())


class AtomicLocalHandler(pafs.FileSystemHandler):
    """The local file system, with each output file written under a temporary name and renamed."""

    def __init__(self) -> None:
        self._fs = pafs.LocalFileSystem()

    def __eq__(self, other) -> bool:
        return isinstance(other, AtomicLocalHandler)

    def __ne__(self, other) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(type(self))

    def __reduce__(self):  # pickled to the workers, which persist checkpoints through it
        return (AtomicLocalHandler, ())

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
        return pyarrow.PythonFile(_WholeFile(path), mode="w")

    def open_append_stream(self, path: str, metadata) -> pyarrow.NativeFile:
        return self._fs.open_append_stream(path)


class _WholeFile:
    """A binary file written at a temporary name and renamed onto ``path`` when closed after
    successful writes (``layout.replacing``); a failed write (e.g. a full disk) removes it and leaves
    ``path`` as it was."""

    def __init__(self, path: str):
        self.path = path
        self._replacing = replacing(path)
        self._f = open(self._replacing.__enter__(), "wb")  # closed in close()
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
        self._replacing.__exit__(None, None, None)
