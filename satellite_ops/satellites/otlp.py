"""Forward a cluster's structured log records to any OpenTelemetry collector or vendor over
OTLP/HTTP with protobuf bodies (Datadog, Grafana, Honeycomb, Elastic, New Relic's OTLP...).

Each record becomes a ``LogRecord``: its time, severity (number and text), the message as the
body, and the run, cluster, satellite and item ids as ``exosphere.*`` attributes; records are
grouped under a ``Resource`` per cluster (``service.name`` and ``exosphere.cluster``, plus the
configured resource attributes). One request per payload: the log forwarder retries a batch with
the satellite's ``retries``/``delay``; 408/429/5xx and lost connections are retryable (with the
server's Retry-After), other statuses are not.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import httpx
from pydantic import Field

from satellite_ops import (
    Endpoint,
    FatalError,
    SatelliteContext,
    SecretKeyMapList,
    SingleKeyMapList,
    StaticConfig,
    declares_endpoints,
    http_endpoint,
    satellite,
)
from satellite_ops.helpers import (
    LogSinkConfig,
    Record,
    bounded_chunks,
    build_request,
    forward,
    header_values,
    ids_of,
    level_name,
    record_from_item,
    send_sync,
)

IDENTIFIER = "satellite/exospherehost/send-logs-to-otlp"
WHAT = "OTLP endpoint"
CONTENT_TYPE = "application/x-protobuf"
MAX_PAYLOAD_BYTES = 4_000_000  # below the 4 MiB most collectors accept per request
SEVERITY = {"debug": 5, "info": 9, "warning": 13, "error": 17, "critical": 21}

logger = logging.getLogger(__name__)


class OtlpLogsConfig(LogSinkConfig):
    """Where the OTLP/HTTP logs endpoint is, and what goes with every record."""

    endpoint: str = Field(
        description="The logs URL, path included (a collector: http://collector:4318/v1/logs)."
    )
    headers: SecretKeyMapList = Field(
        default_factory=dict,
        description="Request headers (API keys: write them from the cluster's secrets).",
    )
    service_name: str | None = Field(
        None, description="The service.name resource attribute; the cluster's identifier if unset."
    )
    resource_attributes: SingleKeyMapList = Field(
        default_factory=dict, description="More resource attributes (deployment.environment...)."
    )
    compression: Literal["gzip", "none"] = Field("gzip", description="Request body encoding.")
    batch_size: int = Field(
        1000, ge=1, le=50_000, description="Records per request (bodies also stay under 4 MB)."
    )


def _pb() -> Any:
    """The generated protobuf modules (opentelemetry-proto), imported on first use."""
    try:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
        from opentelemetry.proto.common.v1 import common_pb2
        from opentelemetry.proto.logs.v1 import logs_pb2
        from opentelemetry.proto.resource.v1 import resource_pb2
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise FatalError(f"{IDENTIFIER} needs opentelemetry-proto ({exc})") from None
    return logs_service_pb2, common_pb2, logs_pb2, resource_pb2


def _attributes(common_pb2: Any, values: Mapping[str, str]) -> list[Any]:
    return [
        common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=v))
        for k, v in values.items()
    ]


def _log_record(pb: Any, record: Record) -> Any:
    _, common_pb2, logs_pb2, _ = pb
    level = level_name(record.get("level"))
    nanos = int(float(record.get("timestamp") or 0) * 1_000_000_000)
    return logs_pb2.LogRecord(
        time_unix_nano=nanos,
        observed_time_unix_nano=nanos,
        severity_number=SEVERITY[level],
        severity_text=level.upper(),
        body=common_pb2.AnyValue(string_value=str(record.get("message", ""))),
        attributes=_attributes(
            common_pb2, {f"exosphere.{k}": v for k, v in ids_of(record).items()}
        ),
    )


def build_request_body(cfg: OtlpLogsConfig, records: Sequence[Record]) -> bytes:
    """An ``ExportLogsServiceRequest``: one ResourceLogs per cluster, records in order."""
    pb = _pb()
    logs_service_pb2, common_pb2, logs_pb2, resource_pb2 = pb
    by_cluster: dict[str, list[Any]] = {}
    for record in records:
        by_cluster.setdefault(str(record.get("cluster") or ""), []).append(_log_record(pb, record))
    scope = common_pb2.InstrumentationScope(name="exosphere-dagster")
    resource_logs = []
    for cluster, log_records in by_cluster.items():
        attributes = {"service.name": cfg.service_name or cluster or "exosphere"}
        attributes.update({"exosphere.cluster": cluster} if cluster else {})
        attributes.update(cfg.resource_attributes)
        resource = resource_pb2.Resource(attributes=_attributes(common_pb2, attributes))
        scope_logs = logs_pb2.ScopeLogs(scope=scope, log_records=log_records)
        resource_logs.append(logs_pb2.ResourceLogs(resource=resource, scope_logs=[scope_logs]))
    return logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=resource_logs
    ).SerializeToString()


def _payloads(cfg: OtlpLogsConfig, records: list[Record]) -> Iterator[tuple[int, bytes]]:
    size = lambda r: len(str(r.get("message", "")).encode()) + 200  # noqa: E731 - ids, framing
    for chunk in bounded_chunks(
        records, max_count=cfg.batch_size, max_bytes=MAX_PAYLOAD_BYTES, size=size
    ):
        body = build_request_body(cfg, chunk)
        yield len(chunk), gzip.compress(body) if cfg.compression == "gzip" else body


def export_records(cfg: OtlpLogsConfig, records: Sequence[Record]) -> int:
    """Export the records at or above ``log-level``; return how many went. Raises
    Retryable/FatalError, or PartialDelivery after a first request went through."""
    headers = {k: v.get_secret_value() for k, v in cfg.headers.items()}
    secrets = header_values(headers)
    headers["Content-Type"] = CONTENT_TYPE
    if cfg.compression == "gzip":
        headers["Content-Encoding"] = "gzip"
    with httpx.Client(timeout=cfg.timeout_seconds) as client:

        def send(body: bytes) -> None:
            request = build_request(
                client, WHAT, "POST", cfg.endpoint, headers=headers, content=body
            )
            response = send_sync(client, request, what=WHAT, secrets=secrets)
            _warn_partial_success(response)

        sent = forward(records, cfg.log_level, lambda kept: _payloads(cfg, kept), send)
    logger.debug("exported %d log record(s) over OTLP", sent)
    return sent


def _warn_partial_success(response: httpx.Response) -> None:
    """A collector that accepted the request but rejected some records says so in the body."""
    if not response.content or CONTENT_TYPE not in response.headers.get("content-type", ""):
        return
    logs_service_pb2 = _pb()[0]
    answer = logs_service_pb2.ExportLogsServiceResponse()
    try:
        answer.ParseFromString(response.content)
    except Exception:  # noqa: BLE001 - an unreadable answer to an accepted request
        return
    rejected = answer.partial_success.rejected_log_records
    if rejected:
        logger.warning(
            "OTLP endpoint rejected %d log record(s): %s",
            rejected,
            answer.partial_success.error_message,
        )


def send_log_records(config: OtlpLogsConfig, records: list[dict[str, Any]]) -> None:
    """The log sink: the runtime's log forwarder calls it with a batch of records."""
    export_records(config, records)


def _endpoints(cfg: StaticConfig) -> Iterator[Endpoint | None]:
    yield http_endpoint("sink", cfg.get("endpoint"), kind="otlp")


@declares_endpoints(_endpoints)
@satellite(IDENTIFIER, config=OtlpLogsConfig, log_sink=send_log_records)
def send_logs_to_otlp(
    config: OtlpLogsConfig, input: Mapping[str, Any], context: SatelliteContext
) -> list[dict[str, Any]]:
    """Send this item's input as one log record (``message``/``level`` from the input when
    present). One request per runtime attempt."""
    return [{"sent": export_records(config, [record_from_item(input, context)])}]
