"""Shared fixtures: Dagster instances, test satellites, and real local services on 127.0.0.1.

* Modules with ``slow`` tests are collected first (see ``pytest_collection_modifyitems``).
* ``sqlite_instance`` / ``postgres_instance`` are real Dagster instances whose files live in
  the test's ``dagster_home``; ``instance`` runs a test on each of them.
* ``satellite_modules("byo_satellites", ...)`` registers satellite modules that sit beside the
  test file, for the test and the processes it starts.
* Hypothesis draws the same examples every run; ``HYPOTHESIS_PROFILE=explore`` draws new ones.
* ``moto_server`` yields the endpoint URL of one moto server per session (fake AWS credentials
  are put in the environment); ``http_recorder`` gives a per-test view of one session-wide
  HTTP server that records requests and answers from a script.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from http_servers import serve_http
from satellite_env import satellite_env

# Property tests draw the same examples on every run, so a red suite is the change's doing, not
# a draw's (CI and these machines are shared); HYPOTHESIS_PROFILE=explore draws new ones, more.
settings.register_profile("repeatable", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", derandomize=False, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

POSTGRES_URL = os.environ.get(
    "EXOSPHERE_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with a ``slow`` test run first, each kept whole and in its order: the xdist
    workers take files in this order, so the long ones start early and the two workers end
    together instead of one finishing a long file alone."""
    first: dict[Path, int] = {}
    slow: set[Path] = set()
    for index, item in enumerate(items):
        first.setdefault(item.path, index)
        if item.get_closest_marker("slow"):
            slow.add(item.path)
    items.sort(key=lambda item: (item.path not in slow, first[item.path]))


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Deployment settings are read once per process; a test that sets an ``EXOSPHERE_*``
    variable gets them read again."""
    from exosphere_dagster.resolve.settings import settings

    settings.cache_clear()
    yield
    settings.cache_clear()


@pytest.fixture(autouse=True, scope="session")
def session_plan_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Planned cluster files are cached in a folder of this test session (and of the processes
    its tests start), never in the user's ``~/.cache``; a test may set its own."""
    folder = tmp_path_factory.mktemp("plan-cache")
    previous = os.environ.get("EXOSPHERE_PLAN_CACHE_DIR")
    os.environ["EXOSPHERE_PLAN_CACHE_DIR"] = str(folder)
    yield
    if previous is None:
        os.environ.pop("EXOSPHERE_PLAN_CACHE_DIR", None)
    else:
        os.environ["EXOSPHERE_PLAN_CACHE_DIR"] = previous


@pytest.fixture
def satellite_modules(request: pytest.FixtureRequest, monkeypatch) -> Callable[..., None]:
    """``satellite_modules("byo_satellites", "probe_satellites")`` registers these modules, files
    beside the test, as the only test satellites: importable here and in the processes the test
    starts, and named in ``EXOSPHERE_SATELLITE_MODULES``."""
    folder = request.path.parent

    def register(*modules: str) -> None:
        monkeypatch.syspath_prepend(str(folder))
        for name, value in satellite_env(folder, *modules).items():
            monkeypatch.setenv(name, value)

    return register


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch) -> Path:
    """An empty ``DAGSTER_HOME`` for this test, set in the environment; checkpoints default to
    the instance's storage under it."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("EXOSPHERE_CHECKPOINT_DIR", raising=False)
    return home


def _instance(home: Path, storage: dict[str, Any] | None = None) -> Iterator[Any]:
    from dagster import instance_for_test

    overrides: dict[str, Any] = {
        "compute_logs": {
            "module": "dagster._core.storage.local_compute_log_manager",
            "class": "LocalComputeLogManager",
            "config": {"base_dir": str(home / "compute_logs")},
        }
    }
    if storage is not None:
        overrides["storage"] = storage
    with instance_for_test(temp_dir=str(home), overrides=overrides) as instance:
        yield instance


@pytest.fixture
def sqlite_instance(dagster_home: Path) -> Iterator[Any]:
    """A SQLite instance whose storage, compute logs (``compute_logs/``) and checkpoints all live
    in ``dagster_home``, where a test can search every file."""
    yield from _instance(dagster_home)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of the Postgres test database (``EXOSPHERE_TEST_POSTGRES``, by default the
    local server's ``test`` database); the test fails when the server does not answer. Under
    pytest-xdist each worker gets a database of its own beside it (``test_gw0``, ...), created
    when missing, so that two workers never migrate or count runs in the same storage."""
    import psycopg2

    try:
        admin = psycopg2.connect(POSTGRES_URL.replace("+psycopg2", ""), connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_URL} (EXOSPHERE_TEST_POSTGRES): {exc}"
        )
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        admin.close()
        return POSTGRES_URL
    server, _, name = POSTGRES_URL.rpartition("/")
    own = f"{name}_{worker}"
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (own,))
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{own}"')
    admin.close()
    return f"{server}/{own}"


@pytest.fixture
def postgres_instance(dagster_home: Path, postgres_url: str) -> Iterator[Any]:
    """An instance whose run, event and schedule storage is the Postgres test database; its
    local files (compute logs, checkpoints) live in ``dagster_home``."""
    yield from _instance(dagster_home, {"postgres": {"postgres_url": postgres_url}})


@pytest.fixture(params=["sqlite", "postgres"])
def instance(request: pytest.FixtureRequest) -> Any:
    """The test runs once on ``sqlite_instance`` and once on ``postgres_instance``."""
    return request.getfixturevalue(f"{request.param}_instance")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto S3 (and every other AWS service) server on loopback; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_AWS_ENV.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture
def s3(moto_server: str) -> Any:
    """A boto3 S3 client talking to ``moto_server``."""
    import boto3

    return boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")


@pytest.fixture
def s3_bucket(s3: Any) -> str:
    """A fresh, empty bucket on the moto server (unique name per test)."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    return name


@dataclass
class RecordedRequest:
    """One request as the server saw it; ``body`` is gunzipped when it was gzip-encoded."""

    method: str
    path: str
    headers: dict[str, str]
    raw_body: bytes
    body: bytes

    def header(self, name: str) -> str | None:
        """A header value, case-insensitively."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    @property
    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class HttpRecorder:
    """Records requests; answers from a script of (status, headers, body), then ``default``."""

    url: str = ""
    requests: list[RecordedRequest] = field(default_factory=list)
    default: tuple[int, dict[str, str], Any] = (200, {}, {"ok": True})
    _script: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, responses: list[tuple[int, dict[str, str], Any]]) -> None:
        """Answer the next requests with these responses, in order."""
        with self._lock:
            self._script = list(responses)

    def reset(self, default: tuple[int, dict[str, str], Any] = (200, {}, {"ok": True})) -> None:
        """Forget requests and script."""
        with self._lock:
            self.requests.clear()
            self._script.clear()
            self.default = default

    def _answer(self, request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            self.requests.append(request)
            return self._script.pop(0) if self._script else self.default


def _handler(recorder: HttpRecorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = raw
            if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                body = gzip.decompress(raw)
            status, headers, payload = recorder._answer(
                RecordedRequest(self.command, self.path, dict(self.headers.items()), raw, body)
            )
            if isinstance(payload, bytes):
                data, content_type = payload, "application/octet-stream"
            elif isinstance(payload, str):
                data, content_type = payload.encode(), "text/plain; charset=utf-8"
            else:
                data, content_type = json.dumps(payload).encode(), "application/json"
            self.send_response(status)
            headers = {"Content-Type": content_type, **headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass

    return Handler


@pytest.fixture(scope="session")
def _http_recorder_server() -> Iterator[HttpRecorder]:
    recorder = HttpRecorder()
    with serve_http(_handler(recorder)) as url:  # a backlog sized for the bursts tests send
        recorder.url = url
        yield recorder


@pytest.fixture
def http_recorder(_http_recorder_server: HttpRecorder) -> HttpRecorder:
    """The session's recording HTTP server, emptied for this test: ``.url``, ``.requests``,
    ``.script([(status, headers, body), ...])``; unscripted requests get 200 ``{"ok": true}``."""
    _http_recorder_server.reset()
    return _http_recorder_server
