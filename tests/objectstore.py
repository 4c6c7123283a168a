"""A local S3-compatible object store for tests: moto's server on 127.0.0.1 (a real HTTP S3 endpoint,
not a mocked call), a fresh bucket per test, and the standard AWS variables pointing at it for this
process and every subprocess it starts."""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass

import pytest

HOST = "127.0.0.1"
REGION = "us-east-1"


class MotoServer:
    """moto's S3 on 127.0.0.1 at a port the system picks, in a daemon thread of the test process."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
        self._server = make_server(HOST, 0, DomainDispatcherApplication(create_backend_app), threaded=True)
        self.endpoint = f"http://{HOST}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@dataclass
class ObjectStore:
    endpoint: str
    bucket: str

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    @property
    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    def keys(self, prefix: str = "") -> set[str]:
        """Every key under ``prefix`` (at most 100 pages of 1,000)."""
        out, token = set(), None
        for _ in range(100):
            page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix,
                                               **({"ContinuationToken": token} if token else {}))
            out.update(o["Key"] for o in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return out
            token = page["NextContinuationToken"]
        raise AssertionError("more than 100,000 keys")


@pytest.fixture(scope="session")
def s3_server():
    server = MotoServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def object_store(s3_server, monkeypatch, tmp_path) -> ObjectStore:
    """A fresh bucket, and the environment pointing there: the endpoint, fake credentials, a region, and
    none of this machine's own AWS profile, config or instance metadata."""
    env = {"AWS_ENDPOINT_URL": s3_server.endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
           "NO_PROXY": f"{HOST},localhost", "no_proxy": f"{HOST},localhost"}
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store = ObjectStore(s3_server.endpoint, f"test-{uuid.uuid4().hex[:12]}")
    store.client.create_bucket(Bucket=store.bucket)
    return store
