"""A run's per-item records, read back from its Dagster event log (``exosphere clusters logs``).

What the steps write there per item (build/ops.py, build/step_runner.py, runtime/logs.py):

- every line a satellite or the runtime logs for an item, as ``[item <id>] <text>`` (StepLog);
  a failed attempt is one of them: ``<satellite>: attempt 2/3 failed: <error>``;
- an item that failed for good: ``<satellite>: item <id> failed after N attempt(s), routed to
  the failure branch: <error>`` (or ``with no failure branch to take it``), at level ERROR;
- the items a satellite emitted for a chunk: the ``item_ids`` metadata of its ``items`` output
  (up to 50 per chunk, then `` ...``);
- a line per chunk with its counts (``<satellite>: 3 in, 3 succeeded, 0 failed, 3 out``).

Each becomes a ``Record``; events that concern no item or chunk (Dagster's own) are dropped.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

ITEM_LINE = re.compile(r"^\[item (?P<item>[^\]\s]+)\] (?P<text>.*)$", re.S)
ATTEMPT = re.compile(
    r"^(?P<satellite>\S+): attempt (?P<n>\d+)/(?P<of>\d+) failed: (?P<error>.*)$", re.S
)
FAILED = re.compile(
    r"^(?P<satellite>\S+): item (?P<item>\S+) failed after (?P<n>\d+) attempt\(s\), "
    r"(?P<verdict>routed to the failure branch|with no failure branch to take it): "
    r"(?P<error>.*?)(?:\n  lineage: .*)?$",
    re.S,
)
CHUNK = re.compile(r"^(?P<satellite>\S+): \d+ in, \d+ succeeded, \d+ failed, \d+ out")
RETRY_SUFFIX = " (will retry)"


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
    message = event.get("message") or ""
    level = event.get("level") or "INFO"
    op, chunk = _step(event.get("stepKey"))
    when = int(event.get("timestamp") or 0) / 1000
    if kind == "ExecutionStepOutputEvent" and event.get("outputName") == "items":
        return _emitted(event, when, op, chunk, level)
    if kind != "LogMessageEvent":
        return []
    if line := ITEM_LINE.match(message):
        item, text = line["item"], line["text"]
        if attempt := ATTEMPT.match(text):
            retrying = text.endswith(RETRY_SUFFIX)
            error = attempt["error"].removesuffix(RETRY_SUFFIX)
            outcome = "retry" if retrying else "attempt-failed"
            return [Record(when, attempt["satellite"], chunk, item, outcome, level, text, error)]
        return [Record(when, op, chunk, item, "log", level, text)]
    if failed := FAILED.match(message):
        outcome = "routed" if failed["verdict"].startswith("routed") else "failed"
        return [
            Record(
                when,
                failed["satellite"],
                chunk,
                failed["item"],
                outcome,
                level,
                message.split("\n")[0],
                failed["error"],
            )
        ]
    if counted := CHUNK.match(message):
        return [Record(when, counted["satellite"], chunk, None, "chunk", level, message)]
    return []


def _emitted(
    event: dict[str, Any], when: float, op: str, chunk: str | None, level: str
) -> list[Record]:
    entries = {m["label"]: m for m in event.get("metadataEntries", [])}
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
