"""logs.satellites receive the run's structured records in batches; a broken sink never fails
the run. New Relic's Log API is the recording HTTP server."""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from pathlib import Path

import pytest

from clusters import cluster, satellite_entry, write_cluster
from exosphere_dagster.entry.launch import run_cluster_file
from exosphere_dagster.runtime.items import child_id

pytestmark = pytest.mark.integration


@pytest.fixture
def api_key(monkeypatch) -> tuple[str, str]:
    var, value = f"E2E_NR_{uuid.uuid4().hex[:6].upper()}", f"nr-key-{uuid.uuid4().hex}"
    monkeypatch.setenv(var, value)
    return var, value


def _cluster(tmp_path: Path, name: str, key_var: str, sinks: list[dict]) -> Path:
    """``chatty`` (3 objects per input) then ``chatty-more`` (2 per item), logging to ``sinks``;
    the secret ``NR_KEY`` comes from ``key_var``."""
    chatty = [
        satellite_entry("satellite/e2e/chatty", "chatty", {"count": 3}),
        satellite_entry("satellite/e2e/chatty", "chatty-more", {"count": 2}),
    ]
    forwarding = cluster(
        f"e2e/log-forwarding-{name}",
        chatty,
        retries=0,
        secrets={"NR_KEY": f"env:{key_var}"},
        logs=sinks,
    )
    return write_cluster(tmp_path, f"{name}.yml", forwarding)


def _new_relic(url: str) -> list[dict]:
    config = {
        "account-id": "4242",
        "api-key": "${{ secrets.NR_KEY }}",
        "endpoint": f"{url}/log/v1",
        "log-level": "info",
        "batch-size": 4,
    }
    nr = "satellite/exospherehost/send-logs-to-new-relic"
    return [satellite_entry(nr, "new-relic", config, retries=1, delay=0)]


def _byo_sinks(out_dir: Path) -> list[dict]:
    return [
        satellite_entry("satellite/e2e/broken-sink", "broken-sink", {"mode": "raise"}),
        satellite_entry(
            "satellite/e2e/broken-sink", "file-sink", {"mode": "write", "out_dir": out_dir}
        ),
    ]


def _expected_item_ids() -> tuple[set[str], set[str]]:
    seeds = {child_id("run", "input", i) for i in range(2)}
    children = {child_id(seed, "chatty", n) for seed in seeds for n in range(3)}
    return seeds, children


def test_records_reach_new_relic_in_batches(tmp_path, http_recorder, sqlite_instance, api_key):
    var, key = api_key
    path = _cluster(tmp_path, "nr", var, _new_relic(http_recorder.url))

    result = run_cluster_file(path, [{"n": 0}, {"n": 1}], instance=sqlite_instance)

    assert result.success
    requests = [r for r in http_recorder.requests if r.path == "/log/v1"]
    assert len(requests) == len(http_recorder.requests)
    batches = []
    for request in requests:
        assert request.method == "POST"
        assert request.header("Content-Encoding") == "gzip"
        assert request.header("Api-Key") == key
        (payload,) = request.json
        assert payload["common"]["attributes"]["account.id"] == "4242"
        batches.append(payload["logs"])
    # chatty: 6 lines + its summary = 7 records -> 4 + 3; chatty-more: 12 + 1 = 13 -> 4+4+4+1
    assert sorted(len(b) for b in batches) == sorted([4, 3, 4, 4, 4, 1])
    for batch in batches:  # a batch never mixes steps: each step flushes its own
        assert len({r["attributes"]["satellite"] for r in batch}) == 1
    records = [r for b in batches for r in b]
    attributes = [r["attributes"] for r in records]
    assert {a["run_id"] for a in attributes} == {result.run_id}
    assert {a["cluster"] for a in attributes} == {"e2e/log-forwarding-nr"}
    assert Counter(a["satellite"] for a in attributes) == {"chatty": 7, "chatty-more": 13}
    assert {a["level"] for a in attributes} == {"info"}
    seeds, children = _expected_item_ids()
    emits = [r for r in records if "chatty emits" in r["message"]]
    assert len(emits) == 18
    by_satellite: dict[str, set[str]] = {}
    for record in emits:
        attrs = record["attributes"]
        by_satellite.setdefault(attrs["satellite"], set()).add(attrs["item_id"])
        assert record["message"].startswith(f"[item {attrs['item_id']}] chatty emits ")
    assert by_satellite == {"chatty": seeds, "chatty-more": children}
    summaries = [r for r in records if "item_id" not in r["attributes"]]
    assert sorted(r["message"] for r in summaries) == [
        "chatty-more: 6 in, 6 succeeded, 0 failed, 12 out",
        "chatty: 2 in, 2 succeeded, 0 failed, 6 out",
    ]
    timestamps = [r["timestamp"] for r in records]
    assert all(isinstance(t, int) and t > 1_600_000_000_000 for t in timestamps)  # ms


def test_new_relic_down_does_not_fail_the_run(
    tmp_path, http_recorder, sqlite_instance, api_key, caplog
):
    var, key = api_key
    http_recorder.reset(default=(503, {}, "service unavailable"))
    path = _cluster(tmp_path, "down", var, _new_relic(http_recorder.url))
    caplog.set_level(logging.WARNING, logger="exosphere.logs")

    result = run_cluster_file(path, [{"n": 0}, {"n": 1}], instance=sqlite_instance)

    assert result.success
    run = sqlite_instance.get_run_by_id(result.run_id)
    assert (run.tags["exosphere/items"], run.tags["exosphere/succeeded"]) == ("6", "6")
    # each step's batch (7 and 13 records, sent as payloads of 4) is tried retries + 1 = 2
    # times: its first payload fails both times, and the batch is dropped
    assert len(http_recorder.requests) == 2 * 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "exosphere.logs"]
    assert sorted(int(w.split("(")[1].split()[0]) for w in warnings) == [7, 13]
    for message in warnings:
        assert message.startswith("log sink new-relic failed (")
        assert "answered 503" in message
        assert key not in message
    reports = [
        e.message
        for e in sqlite_instance.all_logs(result.run_id)
        if e.message.startswith("log sink new-relic: ")
    ]
    assert sorted(reports) == [
        "log sink new-relic: 0 record(s) sent, 13 dropped (13 failed after retries); last error: "
        f"RetryableError: New Relic Log API POST {http_recorder.url}/log/v1 answered 503: "
        "service unavailable",
        "log sink new-relic: 0 record(s) sent, 7 dropped (7 failed after retries); last error: "
        f"RetryableError: New Relic Log API POST {http_recorder.url}/log/v1 answered 503: "
        "service unavailable",
    ]


def test_raising_sink_does_not_stop_the_run_or_the_other_sinks(
    tmp_path, sqlite_instance, api_key, caplog
):
    var, _ = api_key
    out_dir = tmp_path / "sink"
    out_dir.mkdir()
    path = _cluster(tmp_path, "byo", var, _byo_sinks(out_dir))
    caplog.set_level(logging.WARNING, logger="exosphere.logs")

    result = run_cluster_file(path, [{"n": 0}, {"n": 1}], instance=sqlite_instance)

    assert result.success
    warnings = [r.getMessage() for r in caplog.records if r.name == "exosphere.logs"]
    assert sorted(warnings) == [  # the cluster's retries: 0
        "log sink broken-sink failed (13 records dropped): ConnectionError: log backend is down",
        "log sink broken-sink failed (7 records dropped): ConnectionError: log backend is down",
    ]
    written = [json.loads(line) for line in (out_dir / "sink.jsonl").read_text().splitlines()]
    assert len(written) == 20  # the working sink got every record, as plain dicts
    assert set(written[0]) == {
        "timestamp",
        "level",
        "cluster",
        "run_id",
        "satellite",
        "item_id",
        "message",
    }
    assert {r["run_id"] for r in written} == {result.run_id}


def test_a_full_batch_flushed_from_an_async_satellites_event_loop_is_delivered():
    """Regression: flushing inside a running loop must not call asyncio.run in that loop."""
    import asyncio
    import logging as stdlib_logging

    from pydantic import BaseModel, ConfigDict

    from exosphere_dagster.runtime.logs import LogForwarder, StepLog
    from yaml_loader import load_text, plan

    received: list[int] = []

    class AnyConfig(BaseModel):
        model_config = ConfigDict(extra="allow")

    class Sink:
        identifier = "satellite/test/sink"
        config_model = AnyConfig
        fn = None

        @staticmethod
        def log_sink(config, records):
            async def post():
                received.append(len(records))

            asyncio.run(post())  # a sink with its own event loop, like an async HTTP client

    cluster = plan(
        load_text(
            "version: 0.0.1b\ncluster:\n  identifier: t/logs\n  sla: 6h\n  trigger: api-call\n"
            "  satellites:\n    - uses: satellite/exospherehost/call-webhook\n      config: {url: 'http://x'}\n"
        ),
        __import__("satellite_ops").default_registry(),
    )
    node = cluster.nodes[0]
    forwarder = LogForwarder(
        cluster, [(node, Sink)], "run-1", queue_size=100, drain_seconds=10, records_per_send=3
    )
    log = StepLog(stdlib_logging.getLogger("t"), forwarder, "sat")

    async def satellite_body():
        for i in range(7):
            log.info(f"message {i}")

    asyncio.run(satellite_body())
    forwarder.flush()
    assert received == [3, 3, 1] and forwarder.failures == 0
