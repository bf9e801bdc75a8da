"""A real cluster on a real Dagster instance with the OTLP, CloudWatch Logs and Kusto sinks in
``logs:``: every sink gets the run's records once, in order, redacted; then the same cluster
against peers that are slow (a server holding every request), down (a closed port) and failing
(500): the run succeeds, nothing waited for the slow peer, and each step's log counts the loss.

Peers: the recording HTTP server (OTLP, decoded with opentelemetry-proto), moto (CloudWatch,
read back with boto3), ``tests/kusto_fake.py`` (what ``azure-kusto-ingest`` talks to).
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from pathlib import Path

import boto3
import pytest

from clusters import cluster, satellite_entry, write_cluster
from exosphere_dagster.entry.launch import run_cluster_file
from exosphere_dagster.resolve.settings import reload_settings
from held_peer import HeldPeer
from http_servers import serve_http
from kusto_fake import serve_fake_kusto

pytestmark = pytest.mark.integration

GROUP = "/exosphere/e2e"


@pytest.fixture
def secrets(monkeypatch, tmp_path) -> dict[str, str]:
    values = {
        "TOKEN": f"tok-{uuid.uuid4().hex}",
        "OTLP_KEY": f"otlp-{uuid.uuid4().hex}",
        "KUSTO_KEY": f"kusto-{uuid.uuid4().hex}",
    }
    for name, value in values.items():
        monkeypatch.setenv(f"E2E_SINK_{name}", value)
    return values


def _cluster(tmp_path: Path, otlp_url: str, moto_url: str, kusto_url: str) -> Path:
    satellites = [
        satellite_entry(
            "satellite/e2e/secret-user",
            "use-token",
            {"token": "${{ secrets.TOKEN }}", "out_dir": str(tmp_path)},
        ),
        satellite_entry("satellite/e2e/chatty", "chatty", {"count": 2}),
    ]
    sinks = [
        satellite_entry(
            "satellite/exospherehost/send-logs-to-otlp",
            "otlp",
            {
                "endpoint": f"{otlp_url}/v1/logs",
                "headers": [{"x-api-key": "${{ secrets.OTLP_KEY }}"}],
            },
            retries=1,
            delay=0,
        ),
        satellite_entry(
            "satellite/exospherehost/send-logs-to-cloudwatch",
            "cloudwatch",
            {"log-group": GROUP, "endpoint-url": moto_url, "region": "us-east-1"},
            retries=1,
            delay=0,
        ),
        satellite_entry(
            "satellite/exospherehost/send-logs-to-kusto",
            "kusto",
            {
                "cluster-uri": kusto_url,
                "database": "Ops",
                "table": "Logs",
                "ingestion": "streaming",
                "tenant-id": "tenant-1",
                "client-id": "app-1",
                "client-secret": "${{ secrets.KUSTO_KEY }}",
                "authority-host": kusto_url,
            },
            retries=1,
            delay=0,
        ),
    ]
    body = cluster(
        "e2e/log-sinks",
        satellites,
        retries=0,
        secrets={name: f"env:E2E_SINK_{name}" for name in ("TOKEN", "OTLP_KEY", "KUSTO_KEY")},
        logs=sinks,
    )
    return write_cluster(tmp_path, "sinks.yml", body)


def _otlp_messages(recorder) -> list[tuple[str, str]]:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    out = []
    for request in recorder.requests:
        decoded = ExportLogsServiceRequest()
        decoded.ParseFromString(request.body)
        for resource_logs in decoded.resource_logs:
            for record in resource_logs.scope_logs[0].log_records:
                attrs = {kv.key: kv.value.string_value for kv in record.attributes}
                out.append((attrs["exosphere.satellite"], record.body.string_value))
    return out


def test_every_sink_gets_the_runs_records_once_in_order_redacted(
    tmp_path, http_recorder, moto_server, sqlite_instance, secrets, monkeypatch
):
    with serve_fake_kusto(tmp_path) as kusto:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", kusto.ca_file)
        path = _cluster(tmp_path, http_recorder.url, moto_server, kusto.url)
        result = run_cluster_file(path, [{"name": "a"}, {"name": "b"}], instance=sqlite_instance)
        assert result.success
        kusto_rows = [(r["Satellite"], r["Message"]) for r in kusto.rows]
        assert {r["RunId"] for r in kusto.rows} == {result.run_id}
    otlp = _otlp_messages(http_recorder)
    assert {r.header("x-api-key") for r in http_recorder.requests} == {secrets["OTLP_KEY"]}
    client = boto3.client("logs", endpoint_url=moto_server, region_name="us-east-1")
    events = client.get_log_events(
        logGroupName=GROUP, logStreamName=result.run_id, startFromHead=True
    )["events"]
    cloudwatch = [
        (json.loads(e["message"])["satellite"], json.loads(e["message"])["message"]) for e in events
    ]
    # the same records, once each; in the order each step logged them
    for satellite in ("use-token", "chatty"):
        ours = [m for s, m in otlp if s == satellite]
        assert ours == [m for s, m in cloudwatch if s == satellite]
        assert ours == [m for s, m in kusto_rows if s == satellite]
    counts = Counter(s for s, _ in otlp)
    assert counts == {"use-token": 2 * 2 + 1, "chatty": 4 + 1}  # 2 lines per item + summary
    text = json.dumps([otlp, cloudwatch, kusto_rows])
    assert secrets["TOKEN"] not in text
    assert "using token ***" in text and "token again via args: ***" in text
    for value in secrets.values():
        assert value not in text


def test_slow_down_and_failing_peers_cost_the_run_nothing(
    tmp_path, sqlite_instance, secrets, monkeypatch
):
    monkeypatch.setenv("EXOSPHERE_LOG_SINK_DRAIN_SECONDS", "1")
    reload_settings()
    peer = HeldPeer()
    try:
        with serve_http(peer.handler()) as slow, serve_fake_kusto(tmp_path) as kusto:
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", kusto.ca_file)
            kusto.answers = [500] * 100
            path = _cluster(tmp_path, slow, "http://127.0.0.1:9", kusto.url)
            result = run_cluster_file(
                path, [{"name": "a"}, {"name": "b"}], instance=sqlite_instance
            )
            assert not peer.release.is_set()  # the run ended while the slow peer held on
            peer.release.set()
    finally:
        monkeypatch.delenv("EXOSPHERE_LOG_SINK_DRAIN_SECONDS")
        reload_settings()
    assert result.success
    run = sqlite_instance.get_run_by_id(result.run_id)
    assert run.tags["exosphere/succeeded"] == run.tags["exosphere/items"] == "2"
    reports = [
        e.message
        for e in sqlite_instance.all_logs(result.run_id)
        if e.message.startswith("log sink ")
    ]
    pattern = re.compile(r"log sink (\w+): 0 record\(s\) sent, (\d+) dropped \((.*?)\)")
    dropped: dict[str, list[int]] = {}
    for message in reports:
        match = pattern.match(message)
        assert match, message
        dropped.setdefault(match[1], []).append(int(match[2]))
        assert all(value not in message for value in secrets.values())
    # each step's records (use-token: 5, chatty: 5), all lost and all counted, for every sink
    assert {sink: sorted(n) for sink, n in dropped.items()} == {
        "otlp": [5, 5],
        "cloudwatch": [5, 5],
        "kusto": [5, 5],
    }
