"""One visible retry policy: the runtime retries an item, a client call makes one attempt.

Real satellites against real servers on 127.0.0.1 that count the requests they get: the
recording HTTP server (webhook, PagerDuty, New Relic) and moto behind a small proxy that can
answer S3 throttling first. Items go through the runtime's ``run_chunk`` with its sleep injected,
so a Retry-After is asserted as the wait the runtime asked for, never measured; one test runs a
whole cluster on a real Dagster instance.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import pytest
from boto3.s3.transfer import TransferConfig
from dagster import instance_for_test

from exosphere_dagster.entry.launch import run_cluster_file
from exosphere_dagster.runtime.execute import ChunkJob, run_chunk
from exosphere_dagster.runtime.items import ChunkReport, seed_items
from exosphere_dagster.runtime.logs import LogForwarder
from http_servers import serve_http
from satellite_ops.errors import RetryableError
from satellite_ops.helpers.s3_client import TRANSFER_CONFIG, client_for, s3_errors, s3_uri
from satellite_ops.registry import default_registry
from yaml_loader import load_text, plan

pytestmark = pytest.mark.integration

WEBHOOK = "satellite/exospherehost/call-webhook"
PAGERDUTY = "satellite/exospherehost/send-pagerduty-alert"
NEW_RELIC = "satellite/exospherehost/send-logs-to-new-relic"
DELETE_S3 = "satellite/exospherehost/delete-file-from-s3"
LIST_S3 = "satellite/exospherehost/get-files-from-s3"
PD_KEY = "R0123456789abcdef0123456789abcdef"


def cluster_text(uses: str, config: dict[str, Any], retries: int, delay: float = 2) -> str:
    lines = "".join(f"        {key}: {value}\n" for key, value in config.items())
    return f"""\
version: 0.0.1b
cluster:
  identifier: test/one-policy
  sla: 6h
  trigger: api-call
  retries: {retries}
  delay: {delay}
  satellites:
    - uses: {uses}
      identifier: sat
      config:
{lines}"""


def run_one(
    uses: str, config: dict[str, Any], retries: int, input_: dict | None = None
) -> tuple[ChunkReport, list[float]]:
    """One item through the runtime's step body; returns its report and the waits it asked."""
    registry = default_registry()
    node = plan(load_text(cluster_text(uses, config, retries)), registry).nodes[0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    job = ChunkJob(node, registry.get(uses), {}, logging.getLogger("test.policy"), sleep=sleep)
    _, report = run_chunk(job, seed_items([input_ or {}]))
    return report, waits


# -- webhook ------------------------------------------------------------------------------------


def test_a_failing_webhook_is_called_retries_plus_one_times(http_recorder):
    http_recorder.reset(default=(503, {}, "down"))
    report, waits = run_one(WEBHOOK, {"url": f"{http_recorder.url}/hook"}, retries=2)
    assert len(report.failed) == 1 and report.failed[0].attempts == 3
    assert len(http_recorder.requests) == 3  # not 3 x an inner retry count
    assert waits == [2.0, 4.0]  # the runtime's backoff: delay 2s, x2
    keys = {r.header("Idempotency-Key") for r in http_recorder.requests}
    assert len(keys) == 1  # every attempt is the same request to the endpoint


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("17", 17.0), ("0.5", 2.0), ("3600", 600.0)],
    ids=["longer-than-backoff", "shorter-than-backoff", "above-max-delay"],
)
def test_retry_after_becomes_the_runtime_wait(http_recorder, retry_after, expected):
    """The runtime waits the backoff or the server's Retry-After, whichever is longer, up to
    its max delay (600 s)."""
    http_recorder.script([(429, {"Retry-After": retry_after}, "slow down")])
    report, waits = run_one(WEBHOOK, {"url": f"{http_recorder.url}/hook"}, retries=2)
    assert report.succeeded == 1 and len(http_recorder.requests) == 2
    assert waits == [expected]


def test_a_retry_after_date_becomes_the_runtime_wait(http_recorder):
    when = datetime.now(UTC) + timedelta(seconds=300)
    http_recorder.script([(503, {"Retry-After": format_datetime(when, usegmt=True)}, "")])
    report, waits = run_one(WEBHOOK, {"url": f"{http_recorder.url}/hook"}, retries=1)
    assert report.succeeded == 1 and len(http_recorder.requests) == 2
    (wait,) = waits
    assert 200 < wait <= 300  # the date's second resolution, less the time the call took


def test_a_4xx_is_one_request_and_no_retry(http_recorder):
    http_recorder.reset(default=(404, {}, "no such hook"))
    report, waits = run_one(WEBHOOK, {"url": f"{http_recorder.url}/hook"}, retries=4)
    (failed,) = report.failed
    assert failed.attempts == 1 and failed.error_type == "FatalError"
    assert len(http_recorder.requests) == 1 and waits == []


# -- PagerDuty ----------------------------------------------------------------------------------


def pd_config(url: str) -> dict[str, str]:
    return {"pagerduty-api-key": PD_KEY, "endpoint": f"{url}/v2/enqueue"}


def test_a_failing_pagerduty_is_called_retries_plus_one_times(http_recorder):
    http_recorder.reset(default=(500, {}, "oops"))
    report, waits = run_one(PAGERDUTY, pd_config(http_recorder.url), 2, {"message": "hi"})
    assert len(report.failed) == 1 and report.failed[0].attempts == 3
    assert len(http_recorder.requests) == 3 and waits == [2.0, 4.0]
    assert PD_KEY not in report.failed[0].error
    assert len({r.json["dedup_key"] for r in http_recorder.requests}) == 1  # one incident


def test_pagerduty_retry_after_becomes_the_runtime_wait(http_recorder):
    http_recorder.script([(429, {"Retry-After": "30"}, {"status": "throttled"})])
    report, waits = run_one(PAGERDUTY, pd_config(http_recorder.url), 2, {"message": "hi"})
    assert report.succeeded == 1 and len(http_recorder.requests) == 2
    assert waits == [30.0]


# -- S3 (moto behind a throttling proxy) ----------------------------------------------------------

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@dataclass
class S3Proxy:
    """Forwards to moto, except that it first answers ``throttle`` requests with 503 SlowDown
    (every request when ``throttle`` is None), or breaks the bodies it relays; records every
    request it gets."""

    upstream: str
    url: str = ""
    throttle: int | None = 0
    retry_after: str | None = None
    break_bodies: bool = False  # send half of each GET's body, then drop the connection
    hits: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def throttles(self, method: str, path: str) -> bool:
        with self._lock:
            self.hits.append((method, path))
            if self.throttle is None:
                return True
            if self.throttle > 0:
                self.throttle -= 1
                return True
            return False


def _proxy_handler(proxy: S3Proxy) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if proxy.throttles(self.command, self.path):
                headers = {"Content-Type": "application/xml"}
                if proxy.retry_after is not None:
                    headers["Retry-After"] = proxy.retry_after
                self._reply(503, list(headers.items()), SLOW_DOWN)
                return
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
            try:
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                answer = conn.getresponse()
                self._reply(answer.status, answer.getheaders(), answer.read())
            finally:
                conn.close()

        def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
            self.send_response(status)
            hop = {"connection", "transfer-encoding", "date", "server", "content-length"}
            for name, value in headers:
                if name.lower() not in hop:
                    self.send_header(name, value)
            if self.command == "HEAD":  # HEAD tells the object's length, and sends no body
                length = dict((k.lower(), v) for k, v in headers).get("content-length", "0")
                self.send_header("Content-Length", length)
                self.end_headers()
                return
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if proxy.break_bodies and self.command == "GET" and status == 200:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass

    return Handler


@pytest.fixture
def s3_proxy(moto_server: str) -> Iterator[S3Proxy]:
    proxy = S3Proxy(upstream=moto_server)
    with serve_http(_proxy_handler(proxy)) as url:
        proxy.url = url
        yield proxy


def test_s3_makes_one_request_per_attempt(s3, s3_bucket, s3_proxy):
    """botocore's own retries are off: two throttled HEADs are two runtime attempts, not a
    dozen requests inside the first one."""
    s3.put_object(Bucket=s3_bucket, Key="done/a.pdf", Body=b"pdf")
    s3_proxy.throttle = 2
    config = {"bucket": s3_bucket, "file-path": "done/a.pdf", "endpoint-url": s3_proxy.url}
    report, waits = run_one(DELETE_S3, config, retries=2)
    assert report.succeeded == 1 and waits == [2.0, 4.0]
    path = f"/{s3_bucket}/done/a.pdf"
    assert s3_proxy.hits == [("HEAD", path)] * 3 + [("DELETE", path)]
    assert s3.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0


def test_s3_throttling_with_retry_after_becomes_the_runtime_wait(s3, s3_bucket, s3_proxy):
    s3_proxy.throttle, s3_proxy.retry_after = None, "9"
    config = {"bucket": s3_bucket, "prefix": "sec/", "endpoint-url": s3_proxy.url}
    report, waits = run_one(LIST_S3, config, retries=1)
    (failed,) = report.failed
    assert failed.attempts == 2 and "SlowDown" in failed.error
    assert len(s3_proxy.hits) == 2 and waits == [9.0]


def test_a_broken_download_is_one_get_with_the_transfer_config(s3, s3_bucket, s3_proxy, tmp_path):
    """s3transfer re-reads a download whose stream breaks (5 GETs by default, even with
    botocore's retries off); with ``TRANSFER_CONFIG`` the call makes one GET and raises a
    RetryableError for the runtime."""
    s3.put_object(Bucket=s3_bucket, Key="a.pdf", Body=b"%PDF" + b"x" * 200_000)
    s3_proxy.break_bodies = True
    client = client_for(s3_proxy.url, "us-east-1", None)
    uri = s3_uri(s3_bucket, "a.pdf")
    gets = {}
    for name, config in {"default": TransferConfig(), "ours": TRANSFER_CONFIG}.items():
        s3_proxy.hits.clear()
        target = str(tmp_path / name)
        with pytest.raises(RetryableError, match="download s3://"), s3_errors("download", uri):
            client.download_file(s3_bucket, "a.pdf", target, Config=config)
        gets[name] = sum(method == "GET" for method, _ in s3_proxy.hits)
    assert gets == {"default": 5, "ours": 1}


# -- New Relic: a log sink is not an item -------------------------------------------------------


def test_a_failing_log_sink_is_retried_with_its_retries_and_never_fails_the_step(http_recorder):
    """A log sink's batch is retried by the log forwarder with the sink's ``retries`` (here the
    satellite's own 1, not the cluster's 3), one request per attempt, as an item would be."""
    http_recorder.reset(default=(503, {"Retry-After": "0"}, "down"))
    text = cluster_text(WEBHOOK, {"url": "http://127.0.0.1:9/unused"}, retries=3, delay=0) + (
        "  logs:\n"
        "    satellites:\n"
        f"      - uses: {NEW_RELIC}\n"
        "        retries: 1\n"
        "        config:\n"
        "          account-id: '42'\n"
        "          api-key: NRAK-TESTKEY-0123\n"
        f"          endpoint: {http_recorder.url}/log/v1\n"
    )
    registry = default_registry()
    cluster = plan(load_text(text), registry)
    sinks = [(node, registry.get(node.uses)) for node in cluster.log_nodes]
    forwarder = LogForwarder(cluster, sinks, "run-1", queue_size=20_000, drain_seconds=60)
    forwarder.emit("info", "sat", None, "hello")
    (stats,) = forwarder.flush()  # raises nothing
    assert (stats.sent, stats.gave_up, stats.retries) == (0, 1, 1)
    assert len(http_recorder.requests) == 2  # retries + 1


# -- a whole run on a real Dagster instance ---------------------------------------------------------


def test_a_real_run_calls_a_failing_webhook_retries_plus_one_times(tmp_path, http_recorder):
    """Nothing else retries behind the runtime: not the client, not Dagster's step retry (an
    item failure is not a lost step)."""
    http_recorder.reset(default=(503, {}, "down"))
    path = tmp_path / "policy.yml"
    path.write_text(cluster_text(WEBHOOK, {"url": f"{http_recorder.url}/hook"}, 2, delay=0))
    home = tmp_path / "dagster_home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        result = run_cluster_file(path, [{"n": 1}], instance=instance)
    assert not result.success  # the item failed without a failure branch
    assert [r.path for r in http_recorder.requests] == ["/hook"] * 3
    failures = [e for e in result.all_events if e.is_step_failure]
    (failure,) = [e for e in failures if e.step_key.startswith("sat[")]  # once: no step retry
    assert {e.step_key for e in failures} == {failure.step_key, "exosphere__summary"}
    description = failure.step_failure_data.user_failure_data.description
    assert "input.0" in description and "answered 503" in description


def test_a_satellite_that_takes_a_context_gets_one_as_a_log_sink(http_recorder):
    """A log sink is called outside the item runtime, but a satellite declaring ``context``
    still gets one: no item id (so no idempotency key), the run and the sink's own node."""
    text = cluster_text(WEBHOOK, {"url": "http://127.0.0.1:9/unused"}, retries=0) + (
        "  logs:\n"
        "    satellites:\n"
        f"      - uses: {WEBHOOK}\n"
        "        identifier: log-hook\n"
        "        config:\n"
        f"          url: {http_recorder.url}/logs\n"
    )
    registry = default_registry()
    cluster = plan(load_text(text), registry)
    sinks = [(node, registry.get(node.uses)) for node in cluster.log_nodes]
    forwarder = LogForwarder(cluster, sinks, "run-1", queue_size=20_000, drain_seconds=60)
    forwarder.emit("info", "sat", None, "hello")
    forwarder.flush()
    assert forwarder.failures == 0
    (request,) = http_recorder.requests
    assert request.path == "/logs" and request.header("Idempotency-Key") is None
