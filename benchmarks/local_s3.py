"""A local S3-compatible server for benchmarks: moto's server on 127.0.0.1, in a process of its own.

:func:`serving` starts it (``python local_s3.py``: it prints its port, serves until killed),
copies a local directory into a bucket and yields the environment that points S3 clients at
it (``AWS_ENDPOINT_URL`` and dummy credentials, as the tests' ``s3_server`` fixture sets
them); the server stops when the block ends. Its own process keeps its memory (the objects)
and CPU out of the measured processes. Nothing leaves the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["serving", "filesystem"]

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def filesystem(endpoint: str) -> Any:
    """pyarrow's S3 client of the server at ``endpoint`` (``http://127.0.0.1:PORT``)."""
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(
        endpoint_override=endpoint.split("://")[1],
        scheme="http",
        region="us-east-1",
        access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        allow_bucket_creation=True,
    )


@contextmanager
def serving(local: Path, bucket: str = "bench") -> Iterator[tuple[str, dict[str, str]]]:
    """Serve a copy of directory ``local`` as ``s3://bucket/<local.name>``: (its URI, the clients' environment)."""
    import pyarrow.fs as pafs

    server = subprocess.Popen(
        [sys.executable, __file__],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **CREDENTIALS},
    )
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError(f"the local S3 server did not start (it said {port!r}); is moto[server] installed?")
        endpoint = f"http://127.0.0.1:{port}"
        fs = filesystem(endpoint)
        fs.create_dir(bucket)
        pafs.copy_files(str(local), f"{bucket}/{local.name}", destination_filesystem=fs)
        yield f"s3://{bucket}/{local.name}", {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}
    finally:
        server.terminate()
        server.wait(10)


def _serve() -> None:
    """Run moto's server on 127.0.0.1 (a free port, printed first) until killed."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    server = make_server(
        "127.0.0.1",
        0,
        DomainDispatcherApplication(create_backend_app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    _serve()
