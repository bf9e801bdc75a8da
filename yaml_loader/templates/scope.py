"""The template scope: what a ``${{ }}`` expression may read, described once.

The planner checks references against these roots and fields at load time; the runtime builds
the values with the functions below (one item's scope, a log sink's scope, the failure
branch's ``failure.*``), so the names a file may use and the values a run provides cannot
drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from yaml_loader.ir import ClusterPlan

ROOTS = ("satellites", "secrets", "cluster", "run", "failure")
CLUSTER_FIELDS = ("identifier", "title", "description", "sla", "trigger")
RUN_FIELDS = ("id", "input", "started_at", "trigger_time", "deadline")
FAILURE_FIELDS = ("error", "satellite", "attempts", "item_id", "error_type")


def run_scope(
    plan: ClusterPlan,
    run_id: str,
    started: datetime,
    trigger_time: datetime,
    deadline: datetime,
    secrets: Mapping[str, str],
) -> dict[str, Any]:
    """What every item of a run shares: ``cluster.*``, ``run.*`` (but its input) and secrets.
    ``deadline`` is the run's, as the resolved plan decided it (never recomputed here)."""
    cluster = {
        "identifier": plan.identifier,
        "title": plan.title,
        "description": plan.description,
        "sla": plan.sla.name,
        "trigger": plan.trigger_text,
    }
    run = {
        "id": run_id,
        "started_at": started.isoformat(),
        "trigger_time": trigger_time.isoformat(),
        "deadline": deadline.isoformat(),
    }
    return {"cluster": cluster, "run": run, "secrets": dict(secrets)}


def item_scope(
    base: Mapping[str, Any],
    *,
    seed: Any,
    lineage: Mapping[str, Any],
    failure: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One item's scope: the run's, its ``run.input``, its ancestors' outputs, ``failure.*``."""
    return {
        "cluster": base.get("cluster", {}),
        "secrets": base.get("secrets", {}),
        "run": {**base.get("run", {}), "input": seed},
        "satellites": {sid: {"output": obj} for sid, obj in lineage.items()},
        "failure": dict(failure or {}),
    }


def log_scope(base: Mapping[str, Any], secrets: Mapping[str, str]) -> dict[str, Any]:
    """A log sink's scope: the run's values and its own secrets; log records carry no item."""
    return {**base, "secrets": dict(secrets), "satellites": {}, "failure": {}}


def failure_values(
    *, error: str, satellite: str, attempts: int, item_id: str, error_type: str
) -> dict[str, Any]:
    """``failure.*`` for an item routed to the failure branch."""
    return {
        "error": error,
        "satellite": satellite,
        "attempts": attempts,
        "item_id": item_id,
        "error_type": error_type,
    }
