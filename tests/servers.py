"""Real servers on 127.0.0.1 for remote-storage tests, started and stopped by the tests.

- :func:`s3_server`: moto's S3-compatible server (a real HTTP server speaking the S3 API);
  yields its endpoint URL with credentials set in the environment the standard way, a log of
  every request it answered (bytes sent per GET), and switches that make it refuse requests.
- :func:`http_server`: a static file server that honours ``Range`` requests and logs every
  request with the bytes it sent, so tests can count requests and bytes per selection; paths
  under ``/denied/`` are answered 403 Forbidden.

Registered as a pytest plugin by ``tests/conftest.py``; tests just name the fixtures.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class RequestLog:
    """Requests a server answered: (method, path, first byte, bytes sent)."""

    entries: list[tuple[str, str, int, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, path: str, start: int, sent: int) -> None:
        with self.lock:
            self.entries.append((method, path, start, sent))

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()

    def gets(self, suffix: str = "") -> list[tuple[str, str, int, int]]:
        """GET requests whose path ends with ``suffix``."""
        with self.lock:
            return [e for e in self.entries if e[0] == "GET" and e[1].endswith(suffix)]

    def requests(self, suffix: str = "") -> list[tuple[str, str, int, int]]:
        """Every request (any method) whose path ends with ``suffix``."""
        with self.lock:
            return [e for e in self.entries if e[1].endswith(suffix)]

    def bytes_sent(self, suffix: str = "") -> int:
        return sum(e[3] for e in self.gets(suffix))


class _RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single ``Range: bytes=a-b`` support (RFC 9110 206 / 416)."""

    log: RequestLog

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/denied/"):  # as a store answers a request its credentials may not make
            self.log.add("GET", self.path, 0, 0)
            self.send_error(403)
            return
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        header = self.headers.get("Range")
        start, stop = 0, size
        if header:
            m = _RANGE.match(header.strip())
            if not m or (not m.group(1) and not m.group(2)):
                self.send_error(416)
                return
            if m.group(1):
                start = int(m.group(1))
                stop = min(size, int(m.group(2)) + 1) if m.group(2) else size
            else:  # suffix range: the last N bytes
                start = max(0, size - int(m.group(2)))
            if start >= size or start >= stop:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
        with path.open("rb") as f:
            f.seek(start)
            body = f.read(stop - start)
        self.send_response(206 if header else 200)
        if header:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.log.add("GET", self.path, start, len(body))  # before the body: the client may return as soon as it has it
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.log.add("HEAD", self.path, 0, 0)
        if self.path.startswith("/denied/"):
            self.send_error(403)
            return
        super().do_HEAD()


@dataclass
class HTTPServer:
    """A running range-honouring server over ``root``."""

    root: Path
    url: str
    log: RequestLog


@contextmanager
def _serving(root: Path, handler: type[SimpleHTTPRequestHandler], log: RequestLog) -> Iterator[HTTPServer]:
    """``handler`` serving ``root`` on 127.0.0.1 (a random port) in a thread, until the block ends."""

    def make(*args: Any) -> SimpleHTTPRequestHandler:
        return handler(*args, directory=str(root))

    server = ThreadingHTTPServer(("127.0.0.1", 0), make)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HTTPServer(root, f"http://127.0.0.1:{server.server_port}", log)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[HTTPServer]:
    """Serve ``tmp_path / "www"`` on 127.0.0.1 (random port) for one test."""
    root = tmp_path / "www"
    root.mkdir()
    log = RequestLog()
    with _serving(root, type("Handler", (_RangeHandler,), {"log": log}), log) as served:
        yield served


class _Quiet(SimpleHTTPRequestHandler):
    """The standard library's handler, as ``python -m http.server`` runs it, without its log lines."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def plain_http_server(tmp_path: Path) -> Iterator[HTTPServer]:
    """``python -m http.server``'s own handler over ``tmp_path / "plain-www"`` on 127.0.0.1: it ignores ``Range``
    (a 200 with the whole file), as many static servers do. The log stays empty (the stdlib handler logs nothing
    of ours)."""
    root = tmp_path / "plain-www"
    root.mkdir()
    with _serving(root, _Quiet, RequestLog()) as served:
        yield served


class _Faults:
    """Requests the S3 server answers with an error instead of passing them to moto (fault injection)."""

    def __init__(self) -> None:
        self.rules: list[tuple[str, str, int]] = []  # (method, regular expression on the path, HTTP status)
        self.lock = threading.Lock()

    def take(self, method: str, path: str) -> int | None:
        with self.lock:
            for i, (m, pattern, status) in enumerate(self.rules):
                if m == method and re.search(pattern, path):
                    del self.rules[i]
                    return status
        return None


class _Recorder:
    """WSGI middleware in front of moto: logs each request's method, path, first byte and bytes sent."""

    def __init__(self, app: Any, log: RequestLog, faults: _Faults) -> None:
        self.app, self.log, self.faults = app, log, faults

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        m = _RANGE.match((environ.get("HTTP_RANGE") or "").strip())
        start = int(m.group(1)) if m and m.group(1) else 0
        status = self.faults.take(method, path)
        if status is not None:
            body = b"<Error><Code>AccessDenied</Code><Message>injected by the test</Message></Error>"
            start_response(
                f"{status} Injected", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
            )
            self.log.add(method, path, start, 0)
            return [body]
        chunks = list(self.app(environ, start_response))
        self.log.add(method, path, start, sum(len(c) for c in chunks) if method == "GET" else 0)
        return chunks


@dataclass
class S3Server:
    """A running S3-compatible server: ``endpoint`` URL; credentials are in the environment.

    ``log`` records every request (paths are ``/bucket/key``, with the query string if any);
    :meth:`fail` and :meth:`denying` make the server refuse requests, as a real store does.
    """

    endpoint: str
    log: RequestLog = field(default_factory=RequestLog)
    faults: _Faults = field(default_factory=_Faults)

    def bucket(self, name: str) -> str:
        """Create bucket ``name`` (idempotent) and return it."""
        import pyarrow.fs as pafs

        fs = pafs.S3FileSystem(
            endpoint_override=self.endpoint, scheme="http", region="us-east-1", allow_bucket_creation=True
        )
        if fs.get_file_info(name).type == pafs.FileType.NotFound:
            fs.create_dir(name)
        return name

    def filesystem(self) -> Any:
        """A pyarrow S3 client of this server (``pyarrow.fs.S3FileSystem``)."""
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(endpoint_override=self.endpoint.split("://")[1], scheme="http", region="us-east-1")

    def put(self, bucket: str, name: str, data: bytes) -> str:
        """Store ``data`` as object ``name`` of bucket ``bucket`` (created if needed); its ``s3://`` URI."""
        with self.filesystem().open_output_stream(f"{self.bucket(bucket)}/{name}") as out:
            out.write(data)
        return f"s3://{bucket}/{name}"

    def fail(self, method: str, path_pattern: str, status: int = 403) -> None:
        """Answer the next ``method`` request whose path (with query) matches ``path_pattern`` (``re.search``)
        with ``status``."""
        with self.faults.lock:
            self.faults.rules.append((method, path_pattern, status))

    def clear_faults(self) -> None:
        with self.faults.lock:
            self.faults.rules.clear()

    @contextmanager
    def denying(self) -> Iterator[None]:
        """Inside: moto checks credentials, and the test's dummy keys are refused (403 InvalidAccessKeyId)."""
        import urllib.request

        def auth(count: str) -> None:
            req = urllib.request.Request(
                f"{self.endpoint}/moto-api/reset-auth",
                data=count.encode(),
                method="POST",
                headers={"Content-Type": "text/plain"},
            )
            with urllib.request.urlopen(req) as r:
                r.read()

        auth("0")
        try:
            yield
        finally:
            auth("inf")


def serve(
    where: str,
    name: str,
    data: bytes,
    s3_server: S3Server,
    http_server: HTTPServer | None,
    monkeypatch: pytest.MonkeyPatch,
    bucket: str = "served",
) -> tuple[str, RequestLog]:
    """Put ``data`` on the S3 (``where="s3"``, in ``bucket``) or HTTP server: its URI and that server's log."""
    if where == "http":
        pytest.importorskip("fsspec")
        assert http_server is not None
        (http_server.root / name).write_bytes(data)
        return f"{http_server.url}/{name}", http_server.log
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    return s3_server.put(bucket, name, data), s3_server.log


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1 for the session; AWS_* variables set to dummy test credentials."""
    pytest.importorskip("moto", reason="moto[server] is part of the test setup (scripts/setup.sh)")
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    log, faults = RequestLog(), _Faults()
    app = _Recorder(DomainDispatcherApplication(create_backend_app), log, faults)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield S3Server(f"http://127.0.0.1:{server.server_port}", log, faults)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
