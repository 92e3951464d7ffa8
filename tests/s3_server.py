"""A real S3 HTTP API on 127.0.0.1 for the tests: moto's ThreadedMotoServer, started and stopped by a fixture.

Everything samcache does on S3 goes through this server's HTTP interface exactly as it would to AWS
(s3fs -> aiobotocore -> HTTP); nothing in samcache is patched or mocked.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass


@dataclass
class S3Server:
    endpoint: str
    server: object

    @property
    def env(self) -> dict[str, str]:
        """How AWS tools (and samcache) are pointed at this server: the standard variables."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "samcache-test",
                "AWS_SECRET_ACCESS_KEY": "samcache-test-secret", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="samcache-test",
                            aws_secret_access_key="samcache-test-secret", region_name="us-east-1")

    def bucket(self) -> str:
        """A new empty bucket (each test its own)."""
        name = f"t-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def storage_options(self) -> dict:
        """What plain zarr/s3fs need to read the server without samcache."""
        return {"endpoint_url": self.endpoint, "key": "samcache-test", "secret": "samcache-test-secret"}

    def stop(self) -> None:
        self.server.stop()


def start() -> S3Server:
    from moto.server import ThreadedMotoServer

    quiet()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return S3Server(f"http://{host}:{port}", server)


def apply_env(server: S3Server) -> dict[str, str | None]:
    """Point this process (and the processes it starts) at ``server``; returns what to restore."""
    old = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    return old


def restore_env(old: dict[str, str | None]) -> None:
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def quiet() -> None:
    """The server's request log (werkzeug's, one line per request) stays out of test output."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
