"""A run's per-item records, read back from its Dagster event log (``exosphere clusters logs``).

Read from structured data the steps write, never from the text of our own log lines:

- the ``item_events`` JSON metadata of a step's ``report`` output: what happened to each item
  (a failed attempt that is retried, the last failed attempt, routed to the failure branch or
  failed with none), as ``runtime.items.ItemEvent`` dicts (shape: runtime/items.py);
- the counts of that output (``items_in``, ``succeeded``, ``failed``): one ``chunk`` record;
- the items a satellite emitted for a chunk: the ``item_ids`` metadata of its ``items`` output
  (up to 50 per chunk, then `` ...``) and its ``items_out`` count;
- every line logged for an item (``runtime.logs.item_prefix``, split again with
  ``split_item_prefix``): a ``log`` record, whatever its text says.

Each becomes a ``Record``; events that concern no item or chunk (Dagster's own) are dropped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from exosphere_dagster.runtime.items import ItemEvent, attempts_text
from exosphere_dagster.runtime.logs import split_item_prefix

REPORT_OUTPUT = "report"  # translate/ops.py: the step's ChunkReport output
ITEMS_OUTPUT = "items"
EVENTS_ENTRY = "item_events"


@dataclass(frozen=True)
class Record:
    """One thing that happened to an item (or, with no item, to a chunk) in a run.

    ``outcome``: ``out`` (the satellite emitted this item), ``log`` (a line logged for it),
    ``retry`` (an attempt failed, another follows), ``attempt-failed`` (its last attempt),
    ``routed`` (failed, taken by the failure branch), ``failed`` (failed, no branch to take it),
    ``chunk`` (a chunk's counts), ``more`` (emitted items beyond those listed)."""

    timestamp: float
    satellite: str
    chunk: str | None
    item: str | None
    outcome: str
    level: str
    message: str
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _step(step_key: str | None) -> tuple[str, str | None]:
    """``shout[c00001]`` -> (``shout``, ``c00001``)."""
    if not step_key:
        return "", None
    op, _, rest = step_key.partition("[")
    return op, rest.rstrip("]") or None


def records(event: dict[str, Any]) -> list[Record]:
    """The records one GraphQL event carries (none for most of Dagster's own events)."""
    kind = event.get("__typename")
    level = event.get("level") or "INFO"
    op, chunk = _step(event.get("stepKey"))
    when = int(event.get("timestamp") or 0) / 1000
    if kind == "ExecutionStepOutputEvent" and event.get("outputName") == ITEMS_OUTPUT:
        return _emitted(event, when, op, chunk, level)
    if kind == "ExecutionStepOutputEvent" and event.get("outputName") == REPORT_OUTPUT:
        return _reported(event, when, op, chunk, level)
    if kind != "LogMessageEvent":
        return []
    item, text = split_item_prefix(event.get("message") or "")
    return [Record(when, op, chunk, item, "log", level, text)] if item else []


def _entries(event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["label"]: m for m in event.get("metadataEntries") or []}


def _reported(
    event: dict[str, Any], when: float, op: str, chunk: str | None, level: str
) -> list[Record]:
    """A step's report: its item events, then its counts."""
    entries = _entries(event)
    out = []
    raw = (entries.get(EVENTS_ENTRY) or {}).get("jsonString")
    listed = json.loads(raw) if raw else {}
    for data in listed.get("events") or []:
        item = ItemEvent.from_dict(data)
        failing = "ERROR" if item.outcome in ("routed", "failed") else "WARNING"
        out.append(
            Record(
                item.timestamp or when,
                item.satellite,
                chunk,
                item.item,
                item.outcome,
                failing,
                _event_text(item),
                item.error,
            )
        )
    if listed.get("more"):
        more = f"{listed['more']} more item event(s), not listed"
        out.append(Record(when, op, chunk, None, "more", level, more))
    counts = {
        k: (entries.get(k) or {}).get("intValue") for k in ("items_in", "succeeded", "failed")
    }
    if all(isinstance(v, int) for v in counts.values()):
        text = f"{op}: {counts['items_in']} in, {counts['succeeded']} succeeded, {counts['failed']} failed"
        out.append(Record(when, op, chunk, None, "chunk", level, text))
    return out


def _event_text(event: ItemEvent) -> str:
    if event.outcome in ("retry", "attempt-failed"):
        after = " (will retry)" if event.outcome == "retry" else ""
        return f"{event.satellite}: attempt {event.attempt}/{event.attempts} failed{after}"
    where = "routed to the failure branch" if event.outcome == "routed" else "no failure branch"
    return f"{event.satellite}: item {event.item} failed {attempts_text(event.attempt)}, {where}"


def _emitted(
    event: dict[str, Any], when: float, op: str, chunk: str | None, level: str
) -> list[Record]:
    entries = _entries(event)
    listed = (entries.get("item_ids") or {}).get("text") or ""
    ids = [i.strip() for i in listed.removesuffix(" ...").split(",") if i.strip()]
    out = [Record(when, op, chunk, i, "out", level, f"{op} emitted {i}") for i in ids]
    total = (entries.get("items_out") or {}).get("intValue")
    if isinstance(total, int) and total > len(ids):
        more = total - len(ids)
        out.append(
            Record(when, op, chunk, None, "more", level, f"{more} more item(s) emitted, not listed")
        )
    return out
