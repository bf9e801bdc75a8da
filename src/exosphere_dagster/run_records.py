"""A run's per-item records, read back from its Dagster event log (``exosphere clusters logs``).

The steps already log what happened to each item (ops.py, runtime/execute.py, runtime/logs.py):
a satellite's own lines and every failed attempt as ``[item ID] ...``, each item that failed
for good as ``SATELLITE: item ID failed after N attempt(s), routed to the failure branch|with
no failure branch to take it: ERROR``, each chunk's ``SATELLITE: 3 in, 3 succeeded, 0 failed,
3 out``, and the ids of the items a satellite emitted in its ``items`` output's ``item_ids``
metadata (the first 50 of a chunk). These are turned into records of the same shape, in the
order they happened: item id, satellite, outcome, message or error.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

ITEM_LINE = re.compile(r"\[item (?P<item>[^\]\s]+)\] (?P<text>.*)", re.S)
ATTEMPT = re.compile(
    r"(?P<satellite>\S+): attempt (?P<attempt>\d+)/(?P<of>\d+) failed: (?P<error>.*?)"
    r"(?P<again> \(will retry\))?$",
    re.S,
)
FAILED = re.compile(
    r"(?P<satellite>\S+): item (?P<item>\S+) failed after (?P<attempts>\d+) attempt\(s\), "
    r"(?P<verdict>routed to the failure branch|with no failure branch to take it): "
    r"(?P<error>.*?)(?:\n  lineage: .*)?$",
    re.S,
)
CHUNK = re.compile(r"(?P<satellite>\S+): (?P<text>\d+ in, \d+ succeeded, \d+ failed, \d+ out.*)")
COUNT_TAGS = {  # the summary step's run tags (summary.py COUNT_TAGS)
    "items": "exosphere/items",
    "succeeded": "exosphere/succeeded",
    "routed": "exosphere/routed",
    "failed": "exosphere/failed",
}
COST_TAG = "exosphere/cost_usd"


@dataclass(frozen=True)
class Record:
    time: str  # ISO 8601, UTC
    step: str  # the Dagster step that logged it
    satellite: str
    item: str  # "" for a chunk's summary line
    outcome: str  # emitted | log | attempt | failed | routed | chunk
    message: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def step_op(step_key: str | None) -> str:
    """``shout[c00000]`` -> ``shout``: the op (one per satellite) the mapped step belongs to."""
    return (step_key or "").split("[", 1)[0]


def records_of(event: dict[str, Any]) -> list[Record]:
    """The item records one GraphQL event carries (most events carry none)."""
    step = event.get("stepKey") or ""
    when = _iso(event.get("timestamp"))
    kind = event.get("__typename")
    if kind == "ExecutionStepOutputEvent" and event.get("outputName") == "items":
        ids = {m["label"]: m.get("text", "") for m in event.get("metadataEntries", [])}
        listed = [i.strip() for i in ids.get("item_ids", "").split(",")]
        return [
            Record(when, step, step_op(step), item, "emitted")
            for item in listed
            if item and item != "..."
        ]
    if kind != "LogMessageEvent":
        return []
    text = event.get("message") or ""
    if found := FAILED.match(text):
        outcome = "routed" if found["verdict"].startswith("routed") else "failed"
        return [
            Record(when, step, found["satellite"], found["item"], outcome, error=found["error"])
        ]
    if found := ITEM_LINE.match(text):
        item, body = found["item"], found["text"]
        if attempt := ATTEMPT.match(body):
            then = "will retry" if attempt["again"] else "no retries left"
            message = f"attempt {attempt['attempt']}/{attempt['of']} failed, {then}"
            return [
                Record(when, step, attempt["satellite"], item, "attempt", message, attempt["error"])
            ]
        return [Record(when, step, step_op(step), item, "log", body)]
    if found := CHUNK.match(text):
        return [Record(when, step, found["satellite"], "", "chunk", found["text"])]
    return []


def counts(tags: dict[str, str]) -> dict[str, int | None]:
    """Items in, succeeded, routed, failed (None until the summary step has run)."""
    return {k: int(tags[t]) if tags.get(t, "").isdigit() else None for k, t in COUNT_TAGS.items()}


def cost(tags: dict[str, str]) -> float | None:
    try:
        return float(tags[COST_TAG])
    except (KeyError, ValueError):
        return None


def _iso(timestamp: Any) -> str:
    """GraphQL event timestamps are milliseconds since the epoch, as a string."""
    try:
        return datetime.fromtimestamp(float(timestamp) / 1000, UTC).isoformat(timespec="seconds")
    except (TypeError, ValueError):
        return ""
