"""What every log-sink satellite shares: the level filter, the record's attributes, splitting a
batch within a service's limits, and how a sink reports a batch it delivered only in part.

A log sink is called by the runtime's log forwarder (``exosphere_dagster/runtime/logs.py``)
with a batch of records (``timestamp``, ``level``, ``cluster``, ``run_id``, ``satellite``,
``item_id``, ``message``). It sends them with one attempt per request: the forwarder owns the
retries (the sink's ``retries``/``delay``). When a batch goes out as several requests and one
fails, the sink raises :class:`PartialDelivery` so that a retry sends only what did not arrive.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar

from pydantic import Field

from satellite_ops.config import SatelliteConfig
from satellite_ops.context import SatelliteContext

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_LEVEL_ALIASES = {"warn": "warning", "fatal": "critical", "trace": "debug", "notice": "info"}
ID_FIELDS = ("cluster", "run_id", "satellite", "item_id")
T = TypeVar("T")
P = TypeVar("P")

Record = Mapping[str, Any]


class PartialDelivery(Exception):  # noqa: N818 - a report, not only an error
    """The first ``delivered`` records of the batch arrived, then ``cause`` stopped the rest."""

    def __init__(self, delivered: int, cause: BaseException) -> None:
        super().__init__(f"{delivered} record(s) delivered, then: {cause}")
        self.delivered = delivered
        self.cause = cause


class LogSinkConfig(SatelliteConfig):
    """Fields every built-in log sink has."""

    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Minimum level of the records to forward."
    )
    timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one request, in seconds.")


def level_name(level: Any) -> str:
    """The canonical name of a level (``WARNING``, ``warn`` -> ``warning``); unknown -> info."""
    name = str(level or "info").strip().lower()
    name = _LEVEL_ALIASES.get(name, name)
    return name if name in LEVELS else "info"


def level_rank(level: Any) -> int:
    """Numeric rank of a level name (``WARNING``, ``warn``...); unknown names rank as info."""
    if isinstance(level, int):
        return level
    return LEVELS[level_name(level)]


def ids_of(record: Record) -> dict[str, str]:
    """The run, cluster, satellite and item ids a record carries (absent ones left out)."""
    return {key: str(record[key]) for key in ID_FIELDS if record.get(key) is not None}


def record_from_item(input: Mapping[str, Any], context: SatelliteContext) -> dict[str, Any]:
    """A sink used as an ordinary satellite sends its item as one record: ``message`` and
    ``level`` (and ``timestamp``) from the input when present, the ids from the context."""
    message = input.get("message")
    if message is None:
        message = json.dumps(dict(input), default=str, sort_keys=True)
    return {
        "timestamp": input.get("timestamp", time.time()),
        "level": input.get("level", "info"),
        "message": message,
        "cluster": context.cluster,
        "run_id": context.run_id,
        "satellite": context.satellite,
        "item_id": context.item_id,
    }


def bounded_chunks(
    items: Sequence[T],
    *,
    max_count: int,
    max_bytes: int,
    size: Callable[[T], int],
    fits: Callable[[T, T], bool] = lambda first, item: True,
) -> Iterator[list[T]]:
    """Consecutive chunks of at most ``max_count`` items and ``max_bytes`` (sum of ``size``);
    ``fits(first, item)`` may refuse an item that cannot share a chunk with its first one."""
    chunk: list[T] = []
    total = 0
    for item in items:
        cost = size(item)
        if chunk and (
            len(chunk) >= max_count or total + cost > max_bytes or not fits(chunk[0], item)
        ):
            yield chunk
            chunk, total = [], 0
        chunk.append(item)
        total += cost
    if chunk:
        yield chunk


def forward(
    records: Sequence[Record],
    level: str,
    payloads: Callable[[list[Record]], Iterable[tuple[int, P]]],
    send: Callable[[P], Any],
) -> int:
    """Send the records at or above ``level``: ``payloads`` cuts them into consecutive
    ``(record count, payload)`` pairs, in order, and ``send`` sends one payload; return how
    many records went. A failure after the first payload raises :class:`PartialDelivery`
    counting the batch's records up to the last one delivered (those below the level too), so
    that a retry sends only the rest."""
    threshold = LEVELS[level]
    positions = [i for i, r in enumerate(records) if level_rank(r.get("level")) >= threshold]
    delivered = 0
    for count, payload in payloads([records[i] for i in positions]):
        try:
            send(payload)
        except Exception as exc:
            if delivered:
                raise PartialDelivery(positions[delivered - 1] + 1, exc) from exc
            raise
        delivered += count
    return delivered
