"""Forward a cluster's structured log records to the New Relic Log API.

Used as a log sink (:func:`send_log_records`, called with batches of records) or as an
ordinary satellite that sends its input as one record.

Retries differ by role. A log sink runs outside the per-item runtime (it is called when a step
flushes its records), so nothing else would retry it: it gives each payload ``max-attempts``
tries, waiting Retry-After or a short backoff (at most ``max-retry-wait-seconds``), and then
raises; the log forwarder drops that batch with a warning and the run goes on. As an item
satellite it is like any other: one request per runtime attempt.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr

from satellite_ops.config import SatelliteConfig, SingleKeyMapList
from satellite_ops.context import SatelliteContext
from satellite_ops.endpoints import Endpoint, StaticConfig, declares_endpoints, http_endpoint
from satellite_ops.helpers.http_client import build_request, send_sync, with_retries
from satellite_ops.registry import satellite

IDENTIFIER = "satellite/exospherehost/send-logs-to-new-relic"
ENDPOINTS = {
    "us": "https://log-api.newrelic.com/log/v1",
    "eu": "https://log-api.eu.newrelic.com/log/v1",
}
WHAT = "New Relic Log API"
MAX_PAYLOAD_BYTES = 1_000_000  # the Log API's limit on one (compressed) payload
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_LEVEL_ALIASES = {"warn": "warning", "fatal": "critical", "trace": "debug", "notice": "info"}

logger = logging.getLogger(__name__)


class NewRelicLogsConfig(SatelliteConfig):
    """Which New Relic account receives the logs, and what to forward."""

    account_id: str = Field(description="New Relic account id (sent as the account.id attribute).")
    api_key: SecretStr = Field(description="License or ingest key, sent as the Api-Key header.")
    application_id: str | None = Field(
        None, description="Application id (sent as the application.id attribute)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Minimum level of the records to forward."
    )
    region: Literal["us", "eu"] = Field("us", description="Data center of the account.")
    endpoint: str | None = Field(None, description="Log API URL; overrides region when set.")
    batch_size: int = Field(
        500, ge=1, le=10_000, description="Records per request (payloads are also kept < 1 MB)."
    )
    attributes: SingleKeyMapList = Field(
        default_factory=dict, description="Extra attributes added to every record."
    )
    timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one request, in seconds.")
    max_attempts: int = Field(
        3,
        ge=1,
        le=10,
        description="As a log sink: tries per payload on 408/429/5xx or a lost connection "
        "(no runtime retries a sink; a payload still failing is dropped with a warning and "
        "never fails the run). As an item satellite: unused, one request per runtime attempt.",
    )
    max_retry_wait_seconds: float = Field(
        10.0,
        ge=0,
        description="As a log sink: upper bound on the wait between tries, Retry-After included "
        "(the step waits while its records are sent).",
    )

    @property
    def url(self) -> str:
        """The Log API URL for this account."""
        return self.endpoint or ENDPOINTS[self.region]


def level_rank(level: Any) -> int:
    """Numeric rank of a level name (``WARNING``, ``warn``...); unknown names rank as info."""
    if isinstance(level, int):
        return level
    name = str(level or "info").strip().lower()
    return LEVELS.get(_LEVEL_ALIASES.get(name, name), LEVELS["info"])


def _log_entry(record: Mapping[str, Any]) -> dict[str, Any]:
    timestamp = record.get("timestamp")
    millis = int(float(timestamp) * 1000) if timestamp is not None else int(time.time() * 1000)
    attributes = {
        key: record[key]
        for key in ("cluster", "run_id", "satellite", "item_id")
        if record.get(key) is not None
    }
    attributes["level"] = str(record.get("level") or "info").lower()
    return {
        "timestamp": millis,
        "message": str(record.get("message", "")),
        "attributes": attributes,
    }


def build_payload(cfg: NewRelicLogsConfig, records: Sequence[Mapping[str, Any]]) -> list[dict]:
    """The Log API's detailed JSON format: common attributes plus one entry per record."""
    common = {
        "account.id": cfg.account_id,
        "instrumentation.provider": "exosphere-dagster",
        **({"application.id": cfg.application_id} if cfg.application_id else {}),
        **cfg.attributes,
    }
    return [{"common": {"attributes": common}, "logs": [_log_entry(r) for r in records]}]


def _compressed_chunks(
    cfg: NewRelicLogsConfig, records: Sequence[Mapping[str, Any]]
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


def post_records(
    cfg: NewRelicLogsConfig,
    records: Sequence[Mapping[str, Any]],
    *,
    attempts: int = 1,
    sleep: Callable[[float], Any] = time.sleep,
) -> int:
    """Post the records at or above ``log-level``, each payload tried up to ``attempts``
    times; return how many were sent. Raises Retryable/FatalError when a payload fails."""
    threshold = LEVELS[cfg.log_level]
    kept = [r for r in records if level_rank(r.get("level")) >= threshold]
    if not kept:
        return 0
    api_key = cfg.api_key.get_secret_value()
    headers = {
        "Api-Key": api_key,
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    with httpx.Client(timeout=cfg.timeout_seconds) as client:
        for count, body in _compressed_chunks(cfg, kept):
            request = build_request(client, WHAT, "POST", cfg.url, headers=headers, content=body)
            with_retries(
                lambda request=request: send_sync(client, request, what=WHAT, secrets=[api_key]),
                what=WHAT,
                attempts=attempts,
                max_wait=cfg.max_retry_wait_seconds,
                sleep=sleep,
            )
            logger.debug("sent %d log record(s) to New Relic", count)
    return len(kept)


def send_log_records(config: NewRelicLogsConfig, records: list[dict[str, Any]]) -> None:
    """The log sink: post records (timestamp, level, cluster, run_id, satellite, item_id,
    message), each payload tried up to ``max-attempts`` times, as nothing else retries a sink.

    The runtime calls it with the validated config and a batch of records
    (``exosphere_dagster/runtime/logs.py``)."""
    post_records(config, records, attempts=config.max_attempts)


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
    One request per runtime attempt (``max-attempts`` is the log sink's).
    """
    message = input.get("message")
    if message is None:
        message = json.dumps(dict(input), default=str, sort_keys=True)
    record = {
        "timestamp": input.get("timestamp", time.time()),
        "level": input.get("level", "info"),
        "message": message,
        "cluster": context.cluster,
        "run_id": context.run_id,
        "satellite": context.satellite,
        "item_id": context.item_id,
    }
    return [{"sent": post_records(config, [record])}]  # one request: the runtime retries the item
