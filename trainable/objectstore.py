"""Experiments on an object store (``s3://BUCKET/PREFIX/EXP``, or any URI pyarrow opens): Ray writes
them there directly, from every node; each command reads one through a local mirror pulled from it
and pushes what it writes back.

The endpoint and credentials are the store's standard variables, which pyarrow reads (for S3:
``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``). The
mirror of ``s3://b/p/exp`` is ``$FACESEARCH_CACHE/objectstore/s3/b/p/exp``: its URI follows from its
path, so a folder that code passes around as a ``Path`` still knows where it lives.

An object is written whole by one PUT (a reader never sees part of one), and nothing can be renamed:
the guarantees this gives are listed in the README's guarantee table.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from urllib.parse import urlsplit

from trainable.errors import UserError

__all__ = ["filesystem", "is_uri", "local", "mirror_of", "move", "pull", "push", "uri_of"]

MIRRORS = "objectstore"  # under the cache folder
CHECKPOINT_PREFIX = "checkpoint_"  # Ray's checkpoint folders: what pull() may leave out


def is_uri(path: str | Path) -> bool:
    """Whether ``path`` names an object store (``s3://...``) rather than a local or mounted folder."""
    return "://" in str(path)


def _cache() -> Path:
    from trainable.scan import cache_root

    return cache_root() / MIRRORS


def mirror_of(uri: str) -> Path:
    """The local mirror of ``uri``."""
    parts = urlsplit(uri.rstrip("/"))
    return _cache() / parts.scheme / parts.netloc / parts.path.lstrip("/")


def uri_of(path: str | Path) -> str | None:
    """The URI a mirror folder (or a file in it) stands for; ``None`` for any other path."""
    try:
        rel = Path(path).resolve().relative_to(_cache().resolve())
    except ValueError:
        return None
    scheme, *rest = rel.parts
    return f"{scheme}://{'/'.join(rest)}" if rest else None


def filesystem(uri: str):
    """pyarrow's file system for ``uri`` and the path in it; a store that cannot be reached is one
    ``UserError`` naming it and the variables that set it."""
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(uri.rstrip("/"))
        fs.get_file_info(path)  # reach it now: a wrong endpoint or key fails here, not mid-search
    except (OSError, ValueError) as e:  # pyarrow's errors of a store and of a URI
        raise UserError(f"{uri}: the object store cannot be reached ({str(e).splitlines()[0]}); check the URI and "
                        f"the store's variables (for S3: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, "
                        f"AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION)") from None
    return fs, path


def _files(fs, path: str, checkpoints: bool) -> dict[str, object]:
    """Every file under ``path`` by its path relative to it (checkpoint folders left out unless asked)."""
    import pyarrow.fs as pafs

    out = {}
    for info in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=True)):
        rel = posixpath.relpath(info.path, path)
        if info.type == pafs.FileType.File and (checkpoints or not any(
                part.startswith(CHECKPOINT_PREFIX) for part in rel.split("/")[:-1])):
            out[rel] = info
    return out


def pull(uri: str, checkpoints: bool = True) -> Path:
    """Bring the mirror of ``uri`` (a folder or one file) up to date with the store; returns it. A file
    whose size and time match the store's is not fetched again."""
    import pyarrow.fs as pafs

    fs, path = filesystem(uri)
    root = mirror_of(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        files = {"": info}
    elif info.type == pafs.FileType.Directory:
        files = _files(fs, path, checkpoints)
    else:
        raise UserError(f"{uri}: not found in the object store; pass the experiment's URI as the search printed it")
    for rel, remote in files.items():
        target = root / rel if rel else root
        mtime = remote.mtime.timestamp() if remote.mtime else None
        if target.is_file() and target.stat().st_size == remote.size and mtime and target.stat().st_mtime == mtime:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.pull")
        with fs.open_input_stream(remote.path) as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 22):
                dst.write(chunk)
        if mtime:
            os.utime(tmp, (mtime, mtime))
        tmp.replace(target)
    return root


def push(local_path: Path, uri: str | None = None) -> str:
    """Upload ``local_path`` (a file, or a folder's files) to ``uri`` (default: the URI its mirror stands
    for), each file as one whole object; returns the URI."""
    uri = uri or uri_of(local_path)
    if uri is None:
        raise ValueError(f"{local_path} is not in an object store's mirror; name the URI")
    fs, path = filesystem(uri)
    local_path = Path(local_path)
    files = {"": local_path} if local_path.is_file() else \
        {p.relative_to(local_path).as_posix(): p for p in sorted(local_path.rglob("*")) if p.is_file()}
    for rel, file in files.items():
        with fs.open_output_stream(posixpath.join(path, rel) if rel else path) as out:
            out.write(file.read_bytes())
    return uri


def move(src_uri: str, dst_uri: str) -> None:
    """Move a folder within the store: every object copied, then deleted (a store renames nothing)."""
    fs, src = filesystem(src_uri)
    _, dst = filesystem(dst_uri)
    for rel in _files(fs, src, checkpoints=True):
        fs.copy_file(posixpath.join(src, rel), posixpath.join(dst, rel))
    fs.delete_dir(src)


def local(target: str | Path, checkpoints: bool = True) -> Path:
    """``target`` as a local path: its mirror, pulled, when it names an object store."""
    return pull(str(target), checkpoints) if is_uri(target) else Path(target).expanduser()
