"""The template scope is described once: the names the planner accepts are the values the
runtime provides."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from satellite_ops.registry import default_registry
from yaml_loader import load, plan
from yaml_loader.templates.scope import (
    CLUSTER_FIELDS,
    FAILURE_FIELDS,
    ROOTS,
    RUN_FIELDS,
    failure_values,
    item_scope,
    log_scope,
    run_scope,
)

REFERENCE = Path(__file__).resolve().parents[2] / "examples" / "structured-pdfs-fixed.yml"


def test_the_runtime_provides_exactly_the_names_the_planner_accepts() -> None:
    cluster = plan(load(REFERENCE), default_registry())
    when = datetime(2026, 3, 28, 9, tzinfo=UTC)
    due = datetime(2026, 3, 28, 11, 7, tzinfo=UTC)  # no tier's: the scope takes it as given
    base = run_scope(cluster, "run-1", when, when, due, {"TOKEN": "x"})
    failure = failure_values(error="e", satellite="s", attempts=2, item_id="i", error_type="E")
    scope = item_scope(base, seed={"n": 1}, lineage={"a": {"v": 1}}, failure=failure)

    assert set(scope) == set(ROOTS)
    assert set(scope["cluster"]) == set(CLUSTER_FIELDS)
    assert set(scope["run"]) == set(RUN_FIELDS)
    assert set(scope["failure"]) == set(FAILURE_FIELDS)
    assert scope["run"]["deadline"] == due.isoformat()
    assert scope["satellites"] == {"a": {"output": {"v": 1}}}
    assert set(log_scope(base, {})) == set(ROOTS)
