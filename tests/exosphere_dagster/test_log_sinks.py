"""The log forwarder's side of every sink: a bounded queue per sink, batches retried with the
sink's ``retries`` and ``delay`` (and Retry-After), a partial delivery never sent twice, and a
peer that is slow or down never holding up the step; what is lost is counted.

The peers are real HTTP servers on 127.0.0.1: the session's recording server, and a server
that holds every request until the test releases it (a slow peer). Waits are asserted as lower
bounds of the gaps the server saw, never as budgets.
"""

from __future__ import annotations

import time

import pytest

from exosphere_dagster.runtime.logs import LogForwarder, StepLog
from held_peer import HeldPeer
from http_servers import serve_http
from satellite_ops.registry import default_registry
from yaml_loader import load_text, plan

pytestmark = pytest.mark.integration

NEW_RELIC = "satellite/exospherehost/send-logs-to-new-relic"
OTLP = "satellite/exospherehost/send-logs-to-otlp"


def _forwarder(sink_yaml: str, **options) -> LogForwarder:
    text = (
        "version: 0.0.1b\ncluster:\n  identifier: t/sinks\n  sla: 6h\n  trigger: api-call\n"
        "  retries: 4\n  delay: 30\n  satellites:\n"
        "    - uses: satellite/exospherehost/call-webhook\n      config: {url: 'http://x'}\n"
        "  logs:\n    satellites:\n" + sink_yaml
    )
    registry = default_registry()
    cluster = plan(load_text(text), registry)
    sinks = [(node, registry.get(node.uses)) for node in cluster.log_nodes]
    return LogForwarder(cluster, sinks, "run-1", **{"queue_size": 20_000, **options})


def _new_relic(url: str, retries: int, delay: float, batch: int = 500) -> str:
    return (
        f"      - uses: {NEW_RELIC}\n        identifier: nr\n"
        f"        retries: {retries}\n        delay: {delay}\n        config:\n"
        f"          account-id: '42'\n          api-key: NRAK-TESTKEY-0123\n"
        f"          endpoint: {url}/log/v1\n          batch-size: {batch}\n"
    )


def _messages(recorder) -> list[str]:
    return [log["message"] for r in recorder.requests for log in r.json[0]["logs"]]


def _arrivals(recorder) -> list[float]:
    return [r.arrived for r in recorder.requests]


@pytest.fixture
def timed_recorder(http_recorder, monkeypatch):
    """The recording server, with the time each request arrived (``request.arrived``)."""
    original = type(http_recorder)._answer

    def answer(self, request):
        request.arrived = time.monotonic()
        return original(self, request)

    monkeypatch.setattr(type(http_recorder), "_answer", answer)
    return http_recorder


def test_a_batch_is_retried_with_the_sinks_retries_and_delay(timed_recorder):
    """The sink's own ``retries: 2`` and ``delay: 0.3`` (not the cluster's 4 and 30 s): three
    tries, 0.3 s then 0.6 s apart at least; the records arrive once."""
    timed_recorder.script([(503, {}, "down"), (500, {}, "boom")])
    forwarder = _forwarder(_new_relic(timed_recorder.url, retries=2, delay=0.3), drain_seconds=60)
    for i in range(3):
        forwarder.emit("info", "sat", None, f"m{i}")
    (stats,) = forwarder.flush()
    assert (stats.sent, stats.dropped, stats.retries) == (3, 0, 2)
    first, second, third = _arrivals(timed_recorder)
    assert second - first >= 0.3 and third - second >= 0.6
    assert _messages(timed_recorder)[-3:] == ["m0", "m1", "m2"]


def test_retry_after_is_honoured_and_retries_run_out(timed_recorder):
    timed_recorder.reset(default=(429, {"Retry-After": "1"}, "slow down"))
    forwarder = _forwarder(_new_relic(timed_recorder.url, retries=1, delay=0), drain_seconds=60)
    forwarder.emit("warning", "sat", None, "lost")
    (stats,) = forwarder.flush()
    first, second = _arrivals(timed_recorder)
    assert second - first >= 1.0  # Retry-After, above the sink's delay of 0
    assert (stats.sent, stats.gave_up, stats.retries) == (0, 1, 1)
    assert "answered 429" in stats.last_error and "NRAK-TESTKEY-0123" not in stats.summary()


def test_a_partly_delivered_batch_is_not_sent_twice(http_recorder):
    """Payloads of 2: the second payload fails once; the retry starts there."""
    http_recorder.script([(202, {}, {}), (500, {}, "boom")])
    forwarder = _forwarder(_new_relic(http_recorder.url, 3, 0, batch=2), drain_seconds=60)
    for i in range(5):
        forwarder.emit("info", "sat", None, f"m{i}")
    (stats,) = forwarder.flush()
    assert (stats.sent, stats.dropped, stats.retries) == (5, 0, 1)
    sizes = [len(r.json[0]["logs"]) for r in http_recorder.requests]
    assert sizes == [2, 2, 2, 1]  # m0 m1 | m2 m3 (500) | m2 m3 | m4
    assert _messages(http_recorder) == ["m0", "m1", "m2", "m3", "m2", "m3", "m4"]  # m2, m3
    # once accepted: the 500 took them not


def test_a_slow_peer_never_blocks_the_step_and_the_loss_is_counted():
    """The peer holds the first batch; meanwhile the step keeps logging (the queue of 5 fills,
    the rest is dropped at once), and the step's flush gives up at its drain deadline. The
    peer is released only after all that: nothing waited for it."""
    peer = HeldPeer()
    with serve_http(peer.handler()) as url:
        sink = (
            f"      - uses: {OTLP}\n        identifier: otlp\n        retries: 0\n"
            f"        config:\n          endpoint: {url}/v1/logs\n"
            "          timeout-seconds: 60\n"
        )
        forwarder = _forwarder(sink, records_per_send=2, queue_size=5, drain_seconds=0.2)
        log = StepLog(_NullLog(), forwarder, "sat")
        log.info("first")
        log.info("second")  # a full batch: the sender thread takes it to the held peer
        assert peer.arrived.wait(30)
        for i in range(20):
            log.info(f"more {i}")
        (stats,) = forwarder.flush()
        assert not peer.release.is_set() and peer.count == 1
        peer.release.set()
    assert stats.sent == 0
    assert stats.queue_full == 15 and stats.unsent == 2 + 5  # in flight + queued
    assert stats.dropped == 22
    assert log._log.warnings == [stats.summary()]
    assert stats.summary().startswith("log sink otlp: 0 record(s) sent, 22 dropped (15 queue full")


def test_a_sink_down_from_the_start_costs_nothing_when_nothing_is_logged():
    forwarder = _forwarder(_new_relic("http://127.0.0.1:9", 5, 30), drain_seconds=60)
    assert forwarder.flush()[0].dropped == 0  # no records: no thread, no request


class _NullLog:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def info(self, text: str) -> None:
        pass

    def warning(self, text: str) -> None:
        self.warnings.append(text)
