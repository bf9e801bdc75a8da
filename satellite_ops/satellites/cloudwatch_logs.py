"""Forward a cluster's structured log records to Amazon CloudWatch Logs (``PutLogEvents``).

Each record becomes one event whose message is a JSON object (level, message, cluster, run,
satellite and item ids: CloudWatch Logs Insights finds the fields by itself). A batch is cut
within the service's limits: 10,000 events, 1,048,576 bytes counting 26 bytes per event, a
24-hour span, timestamps in order (a clock that stepped back is clamped, so records keep the
order they were logged in); an event over 256 KB is cut. The log group and stream are created
when missing (``create-missing``). One request per call, botocore's retries off: the log
forwarder retries a batch with the satellite's ``retries``/``delay``; throttling and 5xx are
retryable, access errors are not.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import BeforeValidator, Field

from satellite_ops import (
    FIXED_AT_LAUNCH,
    Endpoint,
    SatelliteContext,
    StaticConfig,
    declares_endpoints,
    literal,
    normalise_single_key_maps,
    satellite,
    secret_or_none,
)
from satellite_ops.helpers import (
    AwsSecrets,
    LogSinkConfig,
    PartialDelivery,
    Record,
    bounded_chunks,
    error_code,
    forward,
    ids_of,
    level_name,
    record_from_item,
    s3_errors,
)

IDENTIFIER = "satellite/exospherehost/send-logs-to-cloudwatch"
MAX_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD = 26
MAX_EVENT_BYTES = 262_144 - EVENT_OVERHEAD
MAX_SPAN_MS = 24 * 3600 * 1000

logger = logging.getLogger(__name__)


class CloudWatchLogsConfig(LogSinkConfig):
    """The log group and stream that receive the records, and how to reach CloudWatch Logs."""

    log_group: Annotated[str, FIXED_AT_LAUNCH] = Field(
        min_length=1, max_length=512, description="Log group name."
    )
    log_stream: Annotated[str | None, FIXED_AT_LAUNCH] = Field(
        None, max_length=512, description="Log stream name; default: the run id (one per run)."
    )
    create_missing: bool = Field(True, description="Create the group and stream when missing.")
    region: str | None = Field(None, description="AWS region; default: the boto3 default chain.")
    endpoint_url: str | None = Field(
        None, description="CloudWatch Logs endpoint (LocalStack, moto...); default: AWS."
    )
    secrets: Annotated[AwsSecrets | None, BeforeValidator(normalise_single_key_maps)] = Field(
        None, description="AWS_ACCESS_KEY / AWS_SECRET_KEY; omit to use the default chain."
    )


@functools.lru_cache(maxsize=16)
def _client(
    endpoint_url: str | None, region: str | None, keys: tuple[str | None, ...], timeout: float
) -> Any:
    access_key, secret_key, token = keys
    session = boto3.session.Session(
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=token,
        region_name=region,
    )
    config = Config(  # one request per call: the log forwarder retries
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=timeout,
        user_agent_extra="exosphere-dagster",
    )
    return session.client("logs", endpoint_url=endpoint_url, config=config)


def client_for(cfg: CloudWatchLogsConfig) -> Any:
    """A CloudWatch Logs client for the config (keys from secrets, else the default chain)."""
    secrets = cfg.secrets or AwsSecrets()
    keys = (secrets.aws_access_key, secrets.aws_secret_key, secrets.aws_session_token)
    keys_ = tuple(secret_or_none(k) for k in keys)
    return _client(cfg.endpoint_url, cfg.region, keys_, cfg.timeout_seconds)


def _message(record: Record) -> str:
    body = {"level": level_name(record.get("level")), "message": str(record.get("message", ""))}
    body.update(ids_of(record))
    text = json.dumps(body, default=str, ensure_ascii=False)
    data = text.encode()
    if len(data) > MAX_EVENT_BYTES:
        text = data[:MAX_EVENT_BYTES].decode(errors="ignore")
    return text


def to_events(records: Sequence[Record]) -> list[dict[str, Any]]:
    """``{timestamp (ms), message}`` per record, timestamps never going back."""
    events, last = [], 0
    for record in records:
        millis = max(int(float(record.get("timestamp") or 0) * 1000), last)
        events.append({"timestamp": millis, "message": _message(record)})
        last = millis
    return events


def _payloads(records: list[Record]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    for chunk in bounded_chunks(
        to_events(records),
        max_count=MAX_EVENTS,
        max_bytes=MAX_BATCH_BYTES,
        size=lambda e: len(e["message"].encode()) + EVENT_OVERHEAD,
        fits=lambda first, e: e["timestamp"] - first["timestamp"] < MAX_SPAN_MS,
    ):
        yield len(chunk), chunk


def _create_missing(client: Any, group: str, stream: str) -> None:
    for call, kwargs in (
        (client.create_log_group, {"logGroupName": group}),
        (client.create_log_stream, {"logGroupName": group, "logStreamName": stream}),
    ):
        try:
            call(**kwargs)
        except ClientError as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":
                raise
    logger.info("created CloudWatch log stream %s/%s", group, stream)


def _put(client: Any, cfg: CloudWatchLogsConfig, stream: str, events: list[dict]) -> None:
    where = f"cloudwatch-logs://{cfg.log_group}/{stream}"
    request = {"logGroupName": cfg.log_group, "logStreamName": stream, "logEvents": events}
    with s3_errors("put log events to", where):
        try:
            answer = client.put_log_events(**request)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException" or not cfg.create_missing:
                raise
            _create_missing(client, cfg.log_group, stream)
            answer = client.put_log_events(**request)
    rejected = answer.get("rejectedLogEventsInfo")
    if rejected:
        logger.warning("CloudWatch Logs rejected some events of %s: %s", where, rejected)


def put_records(cfg: CloudWatchLogsConfig, records: Sequence[Record]) -> int:
    """Put the records at or above ``log-level``, one request per batch within the service's
    limits; return how many went. A batch of several runs goes to each run's stream."""
    client = client_for(cfg)
    sent = offset = 0
    for stream, group in _by_stream(cfg, records):
        try:
            sent += forward(
                group, cfg.log_level, _payloads, lambda ev, s=stream: _put(client, cfg, s, ev)
            )
        except PartialDelivery as partial:
            raise PartialDelivery(offset + partial.delivered, partial.cause) from partial.cause
        except Exception as exc:
            if offset:
                raise PartialDelivery(offset, exc) from exc
            raise
        offset += len(group)
    return sent


def _by_stream(cfg: CloudWatchLogsConfig, records: Sequence[Record]) -> list[tuple[str, list]]:
    """Consecutive runs of records that share a stream (the configured one, else the run id)."""
    groups: list[tuple[str, list]] = []
    for record in records:
        stream = cfg.log_stream or str(record.get("run_id") or "exosphere")
        if not groups or groups[-1][0] != stream:
            groups.append((stream, []))
        groups[-1][1].append(record)
    return groups


def send_log_records(config: CloudWatchLogsConfig, records: list[dict[str, Any]]) -> None:
    """The log sink: the runtime's log forwarder calls it with a batch of records."""
    put_records(config, records)


def _endpoints(cfg: StaticConfig) -> Iterator[Endpoint | None]:
    """The group, and its stream when the file names one (else a stream per run)."""
    group, stream = literal(cfg.get("log_group")), literal(cfg.get("log_stream"))
    if group:
        where = (group, stream) if stream else (group,)
        yield Endpoint("sink", "cloudwatch-logs", where, "cloudwatch", delivers=False)


@declares_endpoints(_endpoints)
@satellite(IDENTIFIER, config=CloudWatchLogsConfig, log_sink=send_log_records)
def send_logs_to_cloudwatch(
    config: CloudWatchLogsConfig, input: Mapping[str, Any], context: SatelliteContext
) -> list[dict[str, Any]]:
    """Send this item's input as one log event (``message``/``level`` from the input when
    present). One request per runtime attempt."""
    return [{"sent": put_records(config, [record_from_item(input, context)])}]
