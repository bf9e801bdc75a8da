"""How ``exosphere clusters`` shows runs, clusters and item records to a person (tables,
times in UTC) and what it puts in its JSON: plain functions over what the API returned."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from exosphere_dagster.entry.clusters.graphql import RunInfo
from exosphere_dagster.entry.clusters.records import Record

COUNTS = (
    "items",
    "succeeded",
    "routed",
    "failed",
)  # exosphere/<name> run tags (translate/summary.py)
COST_TAG = "exosphere/cost_usd"
DEADLINE_TAG = "exosphere/deadline"


def when(stamp: float | str | None) -> str:
    if stamp in (None, ""):
        return "-"
    if isinstance(stamp, str):
        return stamp.replace("+00:00", "Z").replace("T", " ")[:20]
    return datetime.fromtimestamp(float(stamp), UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _number(value: str | None, kind: type) -> Any:
    try:
        return kind(value) if value not in (None, "") else None
    except ValueError:
        return None


def run_summary(run: RunInfo) -> dict[str, Any]:
    """A run as ``status`` and ``list`` show it: counts from the summary step's tags."""
    return {
        "run_id": run.run_id,
        "job": run.job,
        "status": run.status,
        "created": run.created,
        "started": run.started,
        "ended": run.ended,
        **{name: _number(run.tags.get(f"exosphere/{name}"), int) for name in COUNTS},
        "deadline": run.tags.get(DEADLINE_TAG),
        "cost_usd": _number(run.tags.get(COST_TAG), float),
    }


def dash(value: Any) -> str:
    return "-" if value is None else str(value)


def counts(run: RunInfo) -> list[Any]:
    summary = run_summary(run)
    return [summary[n] for n in COUNTS]


def record_line(record: Record) -> str:
    clock = datetime.fromtimestamp(record.timestamp, UTC).strftime("%H:%M:%S")
    where = f"{record.satellite}[{record.chunk}]" if record.chunk else record.satellite
    text = record.error if record.error and record.outcome != "log" else record.message
    return f"{clock}  {where:<24} {record.item or '-':<28} {record.outcome:<14} {text}"
