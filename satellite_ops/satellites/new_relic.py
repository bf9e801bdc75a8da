"""Forward a cluster's structured log records to the New Relic Log API.

Used as a log sink (:func:`send_log_records`, called with batches of records) or as an
ordinary satellite that sends its input as one record. Either way one request per attempt: the
runtime retries an item, and the log forwarder retries a sink's batch, both with the
satellite's ``retries`` and ``delay`` (a ``Retry-After`` is honoured). A batch still failing
after its retries is dropped, counted and reported; the run goes on.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal

import httpx
from pydantic import Field, SecretStr

from satellite_ops import (
    FIXED_AT_LAUNCH,
    Endpoint,
    SatelliteContext,
    SingleKeyMapList,
    StaticConfig,
    declares_endpoints,
    http_endpoint,
    satellite,
)
from satellite_ops.helpers import (
    LogSinkConfig,
    Record,
    build_request,
    forward,
    ids_of,
    level_name,
    record_from_item,
    send_sync,
)

IDENTIFIER = "satellite/exospherehost/send-logs-to-new-relic"
ENDPOINTS = {
    "us": "https://log-api.newrelic.com/log/v1",
    "eu": "https://log-api.eu.newrelic.com/log/v1",
}
WHAT = "New Relic Log API"
MAX_PAYLOAD_BYTES = 1_000_000  # the Log API's limit on one (compressed) payload

logger = logging.getLogger(__name__)


class NewRelicLogsConfig(LogSinkConfig):
    """Which New Relic account receives the logs, and what to forward."""

    account_id: Annotated[str, FIXED_AT_LAUNCH] = Field(
        description="New Relic account id (sent as the account.id attribute)."
    )
    api_key: SecretStr = Field(description="License or ingest key, sent as the Api-Key header.")
    application_id: str | None = Field(
        None, description="Application id (sent as the application.id attribute)."
    )
    region: Literal["us", "eu"] = Field("us", description="Data center of the account.")
    endpoint: str | None = Field(None, description="Log API URL; overrides region when set.")
    batch_size: int = Field(
        500, ge=1, le=10_000, description="Records per request (payloads are also kept < 1 MB)."
    )
    attributes: SingleKeyMapList = Field(
        default_factory=dict, description="Extra attributes added to every record."
    )

    @property
    def url(self) -> str:
        """The Log API URL for this account."""
        return self.endpoint or ENDPOINTS[self.region]


def _log_entry(record: Mapping[str, Any]) -> dict[str, Any]:
    timestamp = record.get("timestamp")
    millis = int(float(timestamp) * 1000) if timestamp is not None else int(time.time() * 1000)
    attributes: dict[str, Any] = ids_of(record)
    attributes["level"] = level_name(record.get("level"))
    return {
        "timestamp": millis,
        "message": str(record.get("message", "")),
        "attributes": attributes,
    }


def build_payload(cfg: NewRelicLogsConfig, records: Sequence[Record]) -> list[dict]:
    """The Log API's detailed JSON format: common attributes plus one entry per record."""
    common = {
        "account.id": cfg.account_id,
        "instrumentation.provider": "exosphere-dagster",
        **({"application.id": cfg.application_id} if cfg.application_id else {}),
        **cfg.attributes,
    }
    return [{"common": {"attributes": common}, "logs": [_log_entry(r) for r in records]}]


def _compressed_chunks(
    cfg: NewRelicLogsConfig, records: Sequence[Record]
) -> Iterator[tuple[int, bytes]]:
    """Gzip bodies of at most ``batch-size`` records, halved until each is under 1 MB."""
    pending = [records[i : i + cfg.batch_size] for i in range(0, len(records), cfg.batch_size)]
    while pending:
        chunk = pending.pop(0)
        body = gzip.compress(json.dumps(build_payload(cfg, chunk), default=str).encode())
        if len(body) > MAX_PAYLOAD_BYTES and len(chunk) > 1:
            half = len(chunk) // 2
            pending[:0] = [chunk[:half], chunk[half:]]
            continue
        yield len(chunk), body


def post_records(cfg: NewRelicLogsConfig, records: Sequence[Record]) -> int:
    """Post the records at or above ``log-level``, one request per payload; return how many
    were sent. Raises Retryable/FatalError, or PartialDelivery after a first payload went."""
    api_key = cfg.api_key.get_secret_value()
    headers = {
        "Api-Key": api_key,
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    with httpx.Client(timeout=cfg.timeout_seconds) as client:

        def send(body: bytes) -> None:
            request = build_request(client, WHAT, "POST", cfg.url, headers=headers, content=body)
            send_sync(client, request, what=WHAT, secrets=[api_key])

        sent = forward(records, cfg.log_level, lambda kept: _compressed_chunks(cfg, kept), send)
    logger.debug("sent %d log record(s) to New Relic", sent)
    return sent


def send_log_records(config: NewRelicLogsConfig, records: list[dict[str, Any]]) -> None:
    """The log sink: post a batch of records (timestamp, level, cluster, run_id, satellite,
    item_id, message). The runtime's log forwarder calls it (``runtime/logs.py``) and retries
    it with the satellite's ``retries`` and ``delay``."""
    post_records(config, records)


def _endpoints(cfg: StaticConfig) -> Iterator[Endpoint | None]:
    """The configured endpoint, or the region's default one."""
    region = cfg.get("region")
    default = ENDPOINTS.get(region) if isinstance(region, str) else None
    yield http_endpoint("sink", cfg.get("endpoint") or default, kind="newrelic")


@declares_endpoints(_endpoints)
@satellite(
    IDENTIFIER,
    config=NewRelicLogsConfig,
    log_sink=send_log_records,
)
def send_logs_to_new_relic(
    config: NewRelicLogsConfig, input: Mapping[str, Any], context: SatelliteContext
) -> list[dict[str, Any]]:
    """Send this item's input to New Relic as one log record.

    ``message`` and ``level`` come from the input when present; the rest from the context.
    One request per runtime attempt.
    """
    record = record_from_item(input, context)
    return [{"sent": post_records(config, [record])}]  # one request: the runtime retries the item
