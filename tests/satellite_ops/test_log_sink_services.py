"""The CloudWatch Logs, Kusto and OTLP log sinks against real protocol peers on 127.0.0.1.

* OTLP: the recording HTTP server; bodies decoded with ``opentelemetry-proto``.
* CloudWatch Logs: moto's server; events read back with boto3. Throttling, which moto does not
  produce, comes from botocore's own ``Stubber``.
* Kusto: ``tests/kusto_fake.py``, which emulates Entra ID's token endpoint, a managed identity
  endpoint, streaming ingestion and the storage queue/blob of queued ingestion (its docstring
  says what is and is not emulated); the official ``azure-kusto-ingest`` client talks to it.
"""

from __future__ import annotations

import json
import time
import uuid

import boto3
import pytest
from botocore.stub import Stubber

from kusto_fake import TOKEN, serve_fake_kusto
from satellite_ops import FatalError, RetryableError
from satellite_ops.helpers.log_sinks import PartialDelivery
from satellite_ops.satellites import cloudwatch_logs, kusto, otlp

pytestmark = pytest.mark.integration


def _records(n: int, start: float = 1_700_000_000.0, **extra) -> list[dict]:
    return [
        {
            "timestamp": start + i,
            "level": ["info", "warning", "error"][i % 3],
            "cluster": "aikin/strucutred-pdfs",
            "run_id": "run-7",
            "satellite": "parse",
            "item_id": f"item-{i}" if i else None,
            "message": f"message {i}",
            **extra,
        }
        for i in range(n)
    ]


# -- OTLP ------------------------------------------------------------------------------------


def _decode(body: bytes):
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    request.ParseFromString(body)
    return request


def _attrs(key_values) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in key_values}


def test_otlp_records_are_log_records_with_ids_severity_and_resource(http_recorder):
    config = otlp.OtlpLogsConfig.model_validate(
        {
            "endpoint": f"{http_recorder.url}/v1/logs",
            "headers": [{"Authorization": "Bearer otlp-token-0123456789"}],
            "resource-attributes": {"deployment.environment": "test"},
            "batch-size": 2,
        }
    )
    otlp.send_log_records(config, _records(3))
    assert [r.path for r in http_recorder.requests] == ["/v1/logs", "/v1/logs"]
    first = http_recorder.requests[0]
    assert first.header("Content-Type") == "application/x-protobuf"
    assert first.header("Content-Encoding") == "gzip"
    assert first.header("Authorization") == "Bearer otlp-token-0123456789"
    logs = []
    for request in http_recorder.requests:
        (resource_logs,) = _decode(request.body).resource_logs
        assert _attrs(resource_logs.resource.attributes) == {
            "service.name": "aikin/strucutred-pdfs",
            "exosphere.cluster": "aikin/strucutred-pdfs",
            "deployment.environment": "test",
        }
        (scope_logs,) = resource_logs.scope_logs
        assert scope_logs.scope.name == "exosphere-dagster"
        logs += scope_logs.log_records
    assert [r.body.string_value for r in logs] == ["message 0", "message 1", "message 2"]
    assert [r.severity_text for r in logs] == ["INFO", "WARNING", "ERROR"]
    assert [r.severity_number for r in logs] == [9, 13, 17]
    assert logs[1].time_unix_nano == 1_700_000_001 * 10**9
    assert _attrs(logs[1].attributes) == {
        "exosphere.cluster": "aikin/strucutred-pdfs",
        "exosphere.run_id": "run-7",
        "exosphere.satellite": "parse",
        "exosphere.item_id": "item-1",
    }
    assert "exosphere.item_id" not in _attrs(logs[0].attributes)  # a step's own line


def test_otlp_statuses_and_levels(http_recorder):
    config = otlp.OtlpLogsConfig.model_validate(
        {"endpoint": f"{http_recorder.url}/v1/logs", "log-level": "error", "compression": "none"}
    )
    http_recorder.script([(429, {"Retry-After": "3"}, "busy")])
    with pytest.raises(RetryableError) as busy:
        otlp.send_log_records(config, _records(3))
    assert busy.value.retry_after == 3
    http_recorder.script([(400, {}, "bad")])
    with pytest.raises(FatalError, match="answered 400"):
        otlp.send_log_records(config, _records(3))
    otlp.send_log_records(config, _records(3))
    body = http_recorder.requests[-1].raw_body  # not compressed
    (resource_logs,) = _decode(body).resource_logs
    assert [r.body.string_value for r in resource_logs.scope_logs[0].log_records] == [
        "message 2"
    ]  # error and above


# -- CloudWatch Logs -----------------------------------------------------------------------------


def _cloudwatch(moto_server: str, **extra) -> cloudwatch_logs.CloudWatchLogsConfig:
    return cloudwatch_logs.CloudWatchLogsConfig.model_validate(
        {
            "log-group": "/exosphere/test",
            "endpoint-url": moto_server,
            "region": "us-east-1",
            **extra,
        }
    )


def _read_back(moto_server: str, group: str, stream: str) -> list[dict]:
    client = boto3.client("logs", endpoint_url=moto_server, region_name="us-east-1")
    events = client.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)
    return events["events"]


def test_cloudwatch_creates_group_and_stream_and_events_read_back_in_order(moto_server):
    group = f"/exosphere/{uuid.uuid4().hex[:8]}/created"
    config = _cloudwatch(moto_server, **{"log-group": group})
    now = int(time.time()) - 60  # CloudWatch refuses events older than 14 days
    records = _records(5, start=now)
    records[3]["timestamp"] = records[2]["timestamp"] - 5  # a clock that stepped back
    cloudwatch_logs.send_log_records(config, records)
    events = _read_back(moto_server, group, "run-7")  # the stream defaults to the run id
    assert [json.loads(e["message"])["message"] for e in events] == [
        f"message {i}" for i in range(5)
    ]
    assert json.loads(events[1]["message"]) == {
        "level": "warning",
        "message": "message 1",
        "cluster": "aikin/strucutred-pdfs",
        "run_id": "run-7",
        "satellite": "parse",
        "item_id": "item-1",
    }
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps) and stamps[0] == now * 1000
    assert stamps[3] == stamps[2]  # clamped, not reordered


def test_cloudwatch_without_create_missing_is_fatal(moto_server):
    config = _cloudwatch(moto_server, **{"log-group": "/nowhere", "create-missing": False})
    with pytest.raises(FatalError, match="ResourceNotFoundException"):
        cloudwatch_logs.send_log_records(config, _records(1))


def test_cloudwatch_batches_stay_within_the_service_limits():
    many = [{"timestamp": 1_700_000_000.0, "message": ""}] * 25_000  # ~56 bytes each
    sizes = [n for n, _ in cloudwatch_logs._payloads(many)]
    assert sizes == [10_000, 10_000, 5_000]
    big = _records(12, message="x" * 200_000)  # 12 x ~200 KB: 5 per MiB with the overhead
    chunks = [events for _, events in cloudwatch_logs._payloads(big)]
    assert [len(c) for c in chunks] == [5, 5, 2]
    for events in chunks:
        size = sum(len(e["message"].encode()) + 26 for e in events)
        assert size <= 1_048_576
    huge = cloudwatch_logs.to_events(_records(1, message="y" * 400_000))
    assert len(huge[0]["message"].encode()) <= 262_144 - 26
    spread = [r | {"timestamp": 1_700_000_000.0 + i * 10 * 3600} for i, r in enumerate(_records(6))]
    spans = [[e["timestamp"] for e in c] for _, c in cloudwatch_logs._payloads(spread)]
    assert [len(s) for s in spans] == [3, 3]  # 0h 10h 20h | 30h 40h 50h
    assert all(s[-1] - s[0] < 24 * 3600 * 1000 for s in spans)


def test_cloudwatch_throttling_is_retryable_and_a_later_batch_reports_what_went(moto_server):
    config = _cloudwatch(moto_server)
    client = cloudwatch_logs.client_for(config)
    with Stubber(client) as stub:
        stub.add_client_error(
            "put_log_events", "ThrottlingException", "Rate exceeded", http_status_code=400
        )
        with pytest.raises(RetryableError, match="ThrottlingException"):
            cloudwatch_logs.send_log_records(config, _records(2))
    records = _records(3) + _records(2, run_id="run-8")  # two streams: two puts
    with Stubber(client) as stub:
        stub.add_response("put_log_events", {})
        stub.add_client_error("put_log_events", "ServiceUnavailableException", http_status_code=503)
        with pytest.raises(PartialDelivery) as partial:
            cloudwatch_logs.send_log_records(config, records)
    assert partial.value.delivered == 3 and isinstance(partial.value.cause, RetryableError)


# -- Kusto -------------------------------------------------------------------------------------


@pytest.fixture
def fake_kusto(tmp_path, monkeypatch):
    with serve_fake_kusto(tmp_path) as fake:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", fake.ca_file)
        yield fake


def _kusto(fake, **extra) -> kusto.KustoLogsConfig:
    return kusto.KustoLogsConfig.model_validate(
        {
            "cluster-uri": fake.url,
            "database": "Ops",
            "table": "ExosphereLogs",
            "tenant-id": "tenant-1",
            "client-id": "app-1",
            "client-secret": "kusto-app-key-0123456789",
            "authority-host": fake.url,
            **extra,
        }
    )


@pytest.mark.parametrize("mode", ["streaming", "queued"])
def test_kusto_ingests_rows_in_order_with_an_app_key(fake_kusto, mode):
    kusto.send_log_records(_kusto(fake_kusto, ingestion=mode, mapping="logs_map"), _records(4))
    (ingestion,) = fake_kusto.ingestions
    assert (ingestion.kind, ingestion.database, ingestion.table) == (mode, "Ops", "ExosphereLogs")
    assert [r["Message"] for r in ingestion.rows] == [f"message {i}" for i in range(4)]
    assert ingestion.rows[1] == {
        "Timestamp": "2023-11-14T22:13:21+00:00",
        "Level": "warning",
        "Message": "message 1",
        "Cluster": "aikin/strucutred-pdfs",
        "RunId": "run-7",
        "Satellite": "parse",
        "ItemId": "item-1",
    }
    (token_request,) = fake_kusto.token_requests
    assert token_request["grant_type"] == ["client_credentials"]
    assert token_request["client_secret"] == ["kusto-app-key-0123456789"]
    if mode == "streaming":
        assert ingestion.token == TOKEN
        assert ingestion.properties["mappingName"] == ["logs_map"]
    else:  # the queue message carries the ingestion properties and the identity token
        assert ingestion.properties["format"] == "multijson"
        assert ingestion.properties["ingestionMappingReference"] == "logs_map"


def test_kusto_managed_identity(fake_kusto, monkeypatch):
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{fake_kusto.url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "identity-header-value")
    config = kusto.KustoLogsConfig.model_validate(
        {
            "cluster-uri": fake_kusto.url,
            "database": "Ops",
            "table": "ExosphereLogs",
            "ingestion": "streaming",
            "auth": "managed-identity",
            "client-id": "user-assigned-1",
        }
    )
    kusto.send_log_records(config, _records(2))
    (ingestion,) = fake_kusto.ingestions
    assert ingestion.token == TOKEN and len(ingestion.rows) == 2
    (token_request,) = fake_kusto.token_requests
    assert token_request["client_id"] == ["user-assigned-1"]


def test_kusto_statuses(fake_kusto):
    config = _kusto(fake_kusto, ingestion="streaming")
    fake_kusto.answers = [429, 503, 400]
    for expected in (RetryableError, RetryableError, FatalError):
        with pytest.raises(expected):
            kusto.send_log_records(config, _records(1))
    assert fake_kusto.ingestions == []
    kusto.send_log_records(config, _records(1))
    assert len(fake_kusto.rows) == 1


def test_kusto_app_key_needs_its_secrets():
    with pytest.raises(ValueError, match="auth: app-key needs client-secret"):
        kusto.KustoLogsConfig.model_validate(
            {
                "cluster-uri": "https://c.kusto.windows.net",
                "database": "d",
                "table": "t",
                "tenant-id": "x",
                "client-id": "y",
            }
        )
