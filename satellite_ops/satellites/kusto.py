"""Forward a cluster's structured log records to Azure Data Explorer (Kusto) through the official
``azure-kusto-ingest`` client: streaming ingestion (records queryable in seconds; the table must
allow it) or queued ingestion (the service batches; minutes).

Records go as MULTIJSON, one object per record with the columns ``Timestamp``, ``Level``,
``Message``, ``Cluster``, ``RunId``, ``Satellite`` and ``ItemId`` (with no ``mapping`` the table's
columns are matched by name). Authentication comes from the cluster's secrets: an Entra ID
application and key, or the pod's managed identity. One request per call: the log forwarder
retries a batch with the satellite's ``retries``/``delay``; throttling, 5xx and lost
connections are retryable, a refused login or a bad request is not. Needs the ``kusto`` extra.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, model_validator

from satellite_ops import (
    FIXED_AT_LAUNCH,
    Endpoint,
    FatalError,
    RetryableError,
    SatelliteContext,
    StaticConfig,
    declares_endpoints,
    http_endpoint,
    satellite,
    secret_or_none,
)
from satellite_ops.helpers import (
    LogSinkConfig,
    Record,
    bounded_chunks,
    forward,
    level_name,
    record_from_item,
)

IDENTIFIER = "satellite/exospherehost/send-logs-to-kusto"
MAX_STREAMING_BYTES = 4_000_000  # streaming ingestion takes up to 4 MB per request
MAX_QUEUED_BYTES = 100_000_000
COLUMNS = {"cluster": "Cluster", "run_id": "RunId", "satellite": "Satellite", "item_id": "ItemId"}

logger = logging.getLogger(__name__)


class KustoLogsConfig(LogSinkConfig):
    """Which cluster, database and table receive the records, and how to sign in."""

    cluster_uri: str = Field(
        description="Streaming: the cluster (https://<name>.<region>.kusto.windows.net); "
        "queued: its ingestion endpoint (https://ingest-<name>...)."
    )
    database: Annotated[str, FIXED_AT_LAUNCH] = Field(min_length=1, description="Database name.")
    table: Annotated[str, FIXED_AT_LAUNCH] = Field(min_length=1, description="Table name.")
    mapping: str | None = Field(
        None, description="Name of a JSON ingestion mapping on the table; default: by column."
    )
    ingestion: Literal["queued", "streaming"] = Field(
        "queued", description="queued (the service batches) or streaming (the table allows it)."
    )
    auth: Literal["app-key", "managed-identity"] = Field(
        "app-key", description="An Entra ID application and key, or the managed identity."
    )
    tenant_id: str | None = Field(None, description="Entra ID tenant (app-key).")
    client_id: str | None = Field(
        None, description="Application id (app-key), or a user-assigned identity's client id."
    )
    client_secret: SecretStr | None = Field(None, description="Application key (app-key).")
    authority_host: str | None = Field(
        None, description="Entra ID login host (sovereign clouds); default: the public cloud."
    )

    @model_validator(mode="after")
    def _app_key_fields(self) -> KustoLogsConfig:
        missing = [
            name.replace("_", "-")
            for name in ("tenant_id", "client_id", "client_secret")
            if self.auth == "app-key" and not getattr(self, name)
        ]
        if missing:
            raise ValueError(f"auth: app-key needs {', '.join(missing)} (from the secrets)")
        return self


def _kusto() -> Any:
    """The azure-kusto modules, imported on first use (the ``kusto`` extra)."""
    try:
        from azure.kusto.data import KustoConnectionStringBuilder, exceptions
        from azure.kusto.data.data_format import DataFormat, IngestionMappingKind
        from azure.kusto.ingest import (
            IngestionProperties,
            KustoStreamingIngestClient,
            QueuedIngestClient,
        )
    except ImportError as exc:
        raise FatalError(
            f"{IDENTIFIER} needs the Kusto client: pip install 'exosphere-dagster[kusto]' ({exc})"
        ) from None
    return (
        KustoConnectionStringBuilder,
        exceptions,
        DataFormat,
        IngestionMappingKind,
        IngestionProperties,
        KustoStreamingIngestClient,
        QueuedIngestClient,
    )


def _credential(cfg: KustoLogsConfig) -> Any:
    from azure.identity import ClientSecretCredential, ManagedIdentityCredential

    if cfg.auth == "managed-identity":
        return ManagedIdentityCredential(client_id=cfg.client_id)
    options: dict[str, Any] = {}
    if cfg.authority_host:
        options = {"authority": cfg.authority_host, "disable_instance_discovery": True}
    return ClientSecretCredential(
        cfg.tenant_id, cfg.client_id, secret_or_none(cfg.client_secret), **options
    )


_CLIENTS: dict[tuple[str, str], Any] = {}  # one ingest client per configuration
_CLIENTS_LOCK = threading.Lock()


def client_for(cfg: KustoLogsConfig) -> Any:
    """The ingest client for this configuration; it keeps its token (and, queued, the ingestion
    resources) between batches."""
    key = (cfg.model_dump_json(), secret_or_none(cfg.client_secret) or "")
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            kcsb_type, *_, streaming, queued = _kusto()
            kcsb = kcsb_type.with_azure_token_credential(cfg.cluster_uri, _credential(cfg))
            _CLIENTS[key] = (streaming if cfg.ingestion == "streaming" else queued)(kcsb)
        return _CLIENTS[key]


def _row(record: Record) -> dict[str, Any]:
    stamp = dt.datetime.fromtimestamp(float(record.get("timestamp") or 0), dt.UTC)
    row = {
        "Timestamp": stamp.isoformat(),
        "Level": level_name(record.get("level")),
        "Message": str(record.get("message", "")),
    }
    row.update({column: record.get(key) for key, column in COLUMNS.items()})
    return row


def _payloads(cfg: KustoLogsConfig, records: list[Record]) -> Iterator[tuple[int, bytes]]:
    lines = [json.dumps(_row(r), default=str, ensure_ascii=False).encode() + b"\n" for r in records]
    limit = MAX_STREAMING_BYTES if cfg.ingestion == "streaming" else MAX_QUEUED_BYTES
    for chunk in bounded_chunks(lines, max_count=len(lines), max_bytes=limit, size=len):
        yield len(chunk), b"".join(chunk)


def _ingest(cfg: KustoLogsConfig, body: bytes) -> None:
    _, errors, data_format, mapping_kind, properties_type, *_ = _kusto()
    properties = properties_type(
        database=cfg.database,
        table=cfg.table,
        data_format=data_format.MULTIJSON,
        ingestion_mapping_reference=cfg.mapping,
        ingestion_mapping_kind=mapping_kind.JSON if cfg.mapping else None,
    )
    where = f"Kusto {cfg.ingestion} ingestion into {cfg.database}.{cfg.table}"
    try:
        client_for(cfg).ingest_from_stream(io.BytesIO(body), ingestion_properties=properties)
    except (errors.KustoThrottlingError, errors.KustoNetworkError) as exc:
        raise RetryableError(f"{where} failed: {type(exc).__name__}: {exc}") from None
    except errors.KustoServiceError as exc:
        response = exc.get_raw_http_response()
        status = getattr(response, "status_code", None) or getattr(response, "status", 0) or 0
        text = f"{where} failed: {status or type(exc).__name__}: {str(exc)[:300]}"
        if status in (408, 429) or status >= 500:
            raise RetryableError(text) from None
        raise FatalError(text) from None
    except errors.KustoError as exc:  # authentication, a bad request built by the client
        raise FatalError(f"{where} failed: {type(exc).__name__}: {str(exc)[:300]}") from None


def ingest_records(cfg: KustoLogsConfig, records: Sequence[Record]) -> int:
    """Ingest the records at or above ``log-level``; return how many went."""
    sent = forward(
        records, cfg.log_level, lambda kept: _payloads(cfg, kept), lambda b: _ingest(cfg, b)
    )
    logger.debug("sent %d log record(s) to Kusto", sent)
    return sent


def send_log_records(config: KustoLogsConfig, records: list[dict[str, Any]]) -> None:
    """The log sink: the runtime's log forwarder calls it with a batch of records."""
    ingest_records(config, records)


def _endpoints(cfg: StaticConfig) -> Iterator[Endpoint | None]:
    yield http_endpoint("sink", cfg.get("cluster_uri"), kind="kusto")


@declares_endpoints(_endpoints)
@satellite(IDENTIFIER, config=KustoLogsConfig, log_sink=send_log_records)
def send_logs_to_kusto(
    config: KustoLogsConfig, input: Mapping[str, Any], context: SatelliteContext
) -> list[dict[str, Any]]:
    """Send this item's input as one log record (``message``/``level`` from the input when
    present). One request per runtime attempt."""
    return [{"sent": ingest_records(config, [record_from_item(input, context)])}]
