"""Where a search runs: the Ray instance it starts or joins, and the storage folder it writes to."""

from __future__ import annotations

import os
from pathlib import Path

from trainable.errors import UserError
from trainable.objectstore import uri_of

__all__ = ["check_storage", "check_storage_early", "start_ray"]

LOCALHOST = ("127.0.0.1", "localhost", "::1")


def check_storage_early(storage: Path) -> None:
    """Refuse a storage folder that could not be created or written to, before any work and without
    creating anything (``check_storage``, which writes a probe file, runs once the data passed)."""
    probe = storage
    try:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
    except OSError as e:  # e.g. a name longer than the file system allows
        raise UserError(f"{storage}: storage path is not usable ({e.strerror}); pass a writable --storage-path") \
            from None
    if not probe.is_dir():
        raise UserError(f"{storage}: storage path is not writable ({probe} is not a folder); "
                        f"pass a writable --storage-path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{storage}: storage path is not writable ({probe} is read-only); "
                        f"pass a writable --storage-path")


def check_storage(path: Path, address: str | None) -> None:
    """Create ``path`` and write a probe file there; on a cluster, warn when it is not shared."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"{path}: storage path is not writable ({e.strerror}); "
                        f"pass a writable --storage-path") from None
    if address:
        import ray

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        if len(nodes) > 1 and not uri_of(path):  # (an object store's mirror is the driver's alone)
            print(f"note: {len(nodes)} nodes in the cluster: {path} must be the same shared folder (NFS) on every "
                  f"node, or pass --storage-path s3://... / gs://...; a node-local path loses trials' results")


def start_ray(address: str | None, dashboard_host: str = "127.0.0.1") -> None:
    """Join the cluster at ``address``, or start a private local one whose dashboard listens on
    ``dashboard_host`` only (localhost unless the user asks otherwise)."""
    import ray

    if address:
        try:
            ctx = ray.init(address=address, log_to_driver=False)
        except (ConnectionError, ray.exceptions.AuthenticationError) as e:
            token = "" if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else (
                "; a cluster started with `ray start` asks for its token: set the variable RAY_AUTH_MODE to token, "
                "with the token that `ray get-auth-token` prints on the head in RAY_AUTH_TOKEN (or ~/.ray/auth_token)")
            raise UserError(f"--address {address}: cannot join the Ray cluster there ({str(e).splitlines()[0]}); "
                            f"check the address (`ray status` on the head node prints it){token}") from None
    else:
        # "local": a private instance even when `ray start` left one running on this machine (joining
        # it would ignore dashboard_host); Ray's token authentication stays on unless the user opts out
        ctx = ray.init(address="local", include_dashboard=True, dashboard_host=dashboard_host, log_to_driver=False)
        if dashboard_host not in LOCALHOST:
            print(f"note: the dashboard listens on {dashboard_host}: anyone who can reach this machine can open it "
                  f"(it still asks for the token)")
    if ctx.dashboard_url:
        print(f"Ray dashboard:  http://{ctx.dashboard_url}")
        if os.environ.get("RAY_AUTH_MODE", "").lower() != "disabled":
            print("                if it asks for a token: `ray get-auth-token` prints it")
