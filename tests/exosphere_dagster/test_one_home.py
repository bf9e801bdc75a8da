"""Every value a run derives from its cluster and the deployment has one home, the resolved
ExecutionPlan, and every other stage reads it there. Each test below builds a plan, replaces one
field with a value no rule would produce (``dataclasses.replace``), and checks that the stage
follows the replaced value: it fails if that stage recomputed the value from the tier, the file
or the settings.

Where each concept is checked (``HOMES``; the last test keeps the map whole):

* tier priority and max runtime: the job's tags (test_translate_reads_plan), ``exosphere plan``
  (test_cli_plan);
* deadline: the schedules and sensors, ``exosphere run``, the deadline sensor (here), the step
  and ``${{ run.deadline }}`` (test_runtime_reads_plan);
* urgency: the deadline sensor (here);
* resources as numbers and the pool: the op's pod and the step's cost
  (test_translate_reads_plan), the estimate (test_resolve);
* retries: the op's RetryPolicy (test_translate_reads_plan), the item retry loop
  (test_runtime_reads_plan);
* chunk bounds: the start step and the SLA-breach job (test_translate_reads_plan), the estimate
  (test_resolve);
* the batch-mode decision and the model a step prices: the estimate (here, test_resolve);
* identity (job and op names): the job, its ops, its schedule (here);
* a step's place (op priority, the segment that cuts its chunks): its op, ``exosphere plan``
  (here);
* the deployment's settings: ``Deployment.load`` is their one reader (here).
"""

from __future__ import annotations

import ast
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import pytest
from dagster import build_schedule_context
from dagster._core.test_utils import create_run_for_test

from clusters import cluster, record, satellite_entry, write_cluster
from exosphere_dagster.entry.launch import run_cluster_file
from exosphere_dagster.entry.plan_view import render_plan
from exosphere_dagster.resolve.catalog import registry_with_plugins
from exosphere_dagster.resolve.cost.estimate import estimate_lines
from exosphere_dagster.resolve.cost.prices import load_prices
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import (
    ExecutionPlan,
    NodePlan,
    RunPolicy,
    RunWindow,
)
from exosphere_dagster.resolve.resolve import resolve
from exosphere_dagster.resolve.tags import (
    DEADLINE_TAG,
    PRIORITY_TAG,
    SLA_TAG,
    TRIGGER_TIME_TAG,
    parse_time,
)
from exosphere_dagster.translate.job import job_for
from exosphere_dagster.translate.scheduling.deadlines import (
    QueuedRun,
    boosts,
    stamp_missing_deadlines,
)
from exosphere_dagster.translate.scheduling.triggers import build_triggers
from yaml_loader import load, plan

HERE = Path(__file__).resolve().parent
ODD = RunWindow(sla_seconds=4567, urgent_within_seconds=100.0)  # no tier lasts 4567 s
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LLM = "satellite/exospherehost/llm"
SETTINGS = "exosphere_dagster.resolve.settings"
LLM_CONFIG = {"model": "gpt-4o-mini", "engine": "openai", "base-url": "http://127.0.0.1:9/v1"}

# Each field of the resolved plan -> the tests (file::name) that show a later stage reads it.
HOMES = {
    "RunPolicy.tier": ["test_runtime_reads_plan.py::test_a_step_hands_satellites_the_plans_deadline_tier_and_batch_policy"],
    "RunPolicy.priority": ["test_cli_plan.py::test_plan_reads_every_number_from_the_execution_plan"],
    "RunPolicy.max_runtime_seconds": ["test_cli_plan.py::test_plan_reads_every_number_from_the_execution_plan"],
    "RunPolicy.tags": ["test_translate_reads_plan.py::test_job_tags_op_pods_and_retries_come_from_the_plan"],
    "RunPolicy.light": ["test_translate_reads_plan.py::test_start_chunks_and_step_cost_come_from_the_plan"],
    "RunPolicy.sla_seconds": [
        "test_one_home.py::test_schedules_stamp_the_plans_deadline",
        "test_one_home.py::test_exosphere_run_stamps_the_plans_deadline",
        "test_one_home.py::test_the_deadline_sensor_stamps_the_rule_the_run_carries",
        "test_runtime_reads_plan.py::test_a_step_hands_satellites_the_plans_deadline_tier_and_batch_policy",
    ],
    "RunPolicy.urgent_within_seconds": ["test_one_home.py::test_urgency_is_the_rule_the_run_carries"],
    "NodePlan.node": ["test_one_home.py::test_job_and_op_names_come_from_the_plan"],
    "NodePlan.definition": ["test_translate_reads_plan.py::test_job_tags_op_pods_and_retries_come_from_the_plan"],
    "NodePlan.retry": ["test_runtime_reads_plan.py::test_a_step_retries_as_the_plan_says_and_records_each_attempt"],
    "NodePlan.step_retries": ["test_translate_reads_plan.py::test_job_tags_op_pods_and_retries_come_from_the_plan"],
    "NodePlan.step_retry_delay": ["test_translate_reads_plan.py::test_job_tags_op_pods_and_retries_come_from_the_plan"],
    "NodePlan.timeout_seconds": ["test_runtime_reads_plan.py::test_a_step_times_out_as_the_plan_says"],
    "NodePlan.concurrency": ["test_cli_plan.py::test_plan_reads_every_number_from_the_execution_plan"],
    "NodePlan.segment": ["test_one_home.py::test_op_priority_and_segment_come_from_the_plan"],
    "NodePlan.chunk": [
        "test_translate_reads_plan.py::test_start_chunks_and_step_cost_come_from_the_plan",
        "test_translate_reads_plan.py::test_breach_job_chunks_with_the_plan",
        "test_resolve.py::test_the_estimate_reads_the_execution_plan",
    ],
    "NodePlan.batched": ["test_one_home.py::test_the_estimate_prices_the_plans_model_and_batch_decision"],
    "NodePlan.resources": [
        "test_translate_reads_plan.py::test_job_tags_op_pods_and_retries_come_from_the_plan",
        "test_resolve.py::test_the_estimate_reads_the_execution_plan",
    ],
    "NodePlan.model": ["test_one_home.py::test_the_estimate_prices_the_plans_model_and_batch_decision"],
    "NodePlan.batch_api": [
        "test_one_home.py::test_the_estimate_prices_the_plans_model_and_batch_decision",
        "test_resolve.py::test_the_estimate_reads_the_execution_plan",
    ],
    "NodePlan.op_priority": ["test_one_home.py::test_op_priority_and_segment_come_from_the_plan"],
    "ExecutionPlan.plan": ["test_one_home.py::test_job_and_op_names_come_from_the_plan"],
    "ExecutionPlan.run": ["test_one_home.py::test_exosphere_run_stamps_the_plans_deadline"],
    "ExecutionPlan.nodes": ["test_one_home.py::test_the_estimate_prices_the_plans_model_and_batch_decision"],
    "ExecutionPlan.segments": ["test_translate_reads_plan.py::test_start_chunks_and_step_cost_come_from_the_plan"],
    "ExecutionPlan.chunks": ["test_translate_reads_plan.py::test_start_chunks_and_step_cost_come_from_the_plan"],
    "ExecutionPlan.batch_api": ["test_runtime_reads_plan.py::test_a_step_hands_satellites_the_plans_deadline_tier_and_batch_policy"],
}  # fmt: skip


@pytest.fixture
def registry(satellite_modules):
    satellite_modules("byo_satellites")  # satellite/test/record
    return registry_with_plugins()


def _resolved(tmp_path: Path, registry, satellites, **fields) -> tuple[Path, ExecutionPlan]:
    path = write_cluster(tmp_path, "one-home.yml", cluster("test/one-home", satellites, **fields))
    return path, resolve(plan(load(path), registry), Deployment(), registry)


def _odd_window(execution: ExecutionPlan) -> ExecutionPlan:
    """``execution`` whose runs last 4567 s and are urgent 100 s before their deadline, run
    tags included (as resolve writes them)."""
    run = dataclasses.replace(
        execution.run,
        sla_seconds=ODD.sla_seconds,
        urgent_within_seconds=ODD.urgent_within_seconds,
        tags=MappingProxyType({**execution.run.tags, **ODD.as_tags()}),
    )
    return dataclasses.replace(execution, run=run)


def _span(tags) -> float:
    deadline, trigger = parse_time(tags[DEADLINE_TAG]), parse_time(tags[TRIGGER_TIME_TAG])
    assert deadline is not None and trigger is not None
    return (deadline - trigger).total_seconds()


def test_schedules_stamp_the_plans_deadline(tmp_path, registry, sqlite_instance):
    _, execution = _resolved(
        tmp_path, registry, [record("rec", "x", tmp_path)], trigger={"cron": "0 6 * * *"}
    )
    odd = _odd_window(execution)
    job = job_for(odd, registry, Deployment())
    (schedule,) = build_triggers(odd, job)
    context = build_schedule_context(instance=sqlite_instance, scheduled_execution_time=NOW)
    (request,) = schedule.evaluate_tick(context).run_requests
    assert parse_time(request.tags[TRIGGER_TIME_TAG]) == NOW
    assert _span(request.tags) == 4567  # the 6h tier would give 21600


@pytest.mark.integration
def test_exosphere_run_stamps_the_plans_deadline(tmp_path, registry, sqlite_instance):
    path, execution = _resolved(tmp_path, registry, [record("rec", "x", tmp_path)])
    result = run_cluster_file(path, instance=sqlite_instance, execution=_odd_window(execution))
    assert result.success
    run = sqlite_instance.get_run_by_id(result.run_id)
    assert run is not None and _span(run.tags) == 4567


def test_the_deadline_sensor_stamps_the_rule_the_run_carries(tmp_path, registry, sqlite_instance):
    """A run launched by hand carries only its job's tags: the sensor reads the rule there (the
    seconds resolve wrote), not the tier named by ``exosphere/sla``."""
    _, execution = _resolved(tmp_path, registry, [record("rec", "x", tmp_path)], sla="24h")
    odd = _odd_window(execution)
    job = job_for(odd, registry, Deployment())
    run = create_run_for_test(sqlite_instance, job_name=job.name, tags=dict(job.tags))
    assert stamp_missing_deadlines(sqlite_instance) == 1
    stamped = sqlite_instance.get_run_by_id(run.run_id)
    assert stamped is not None and _span(stamped.tags) == 4567


def test_urgency_is_the_rule_the_run_carries():
    """A 24h run is urgent 6 h before its deadline by the tier's rule; this one carries 100 s."""

    def queued(left: timedelta) -> QueuedRun:
        tags = {SLA_TAG: "24h", PRIORITY_TAG: "10", DEADLINE_TAG: (NOW + left).isoformat()}
        return QueuedRun(f"left-{left.total_seconds():g}", "job", {**tags, **ODD.as_tags()})

    hour, late = queued(timedelta(hours=1)), queued(timedelta(seconds=90))
    assert set(boosts([hour, late], NOW)) == {late.run_id}
    assert set(boosts([hour], NOW, {"job": 3600.0})) == {hour.run_id}  # + expected runtime
    assert not ODD.is_urgent(NOW + timedelta(hours=1), NOW)
    assert RunWindow.of_tags(hour.tags) == ODD


def test_the_run_tags_carry_the_policys_own_rule(tmp_path, registry):
    """What the sensor and the cluster API read back is what the RunPolicy holds."""
    _, execution = _resolved(tmp_path, registry, [record("rec", "x", tmp_path)], sla="12h")
    run: RunPolicy = execution.run
    assert RunWindow.of_tags(run.tags) == RunWindow(run.sla_seconds, run.urgent_within_seconds)
    assert run.window_tags(NOW)[DEADLINE_TAG] == run.deadline(NOW).isoformat()


def test_the_estimate_prices_the_plans_model_and_batch_decision(tmp_path, registry):
    _, execution = _resolved(tmp_path, registry, [satellite_entry(LLM, "extract", LLM_CONFIG)])
    node = execution.node("extract")
    assert node.model == ("openai", "gpt-4o-mini") and not node.batch_api  # 6h: synchronous
    table = load_prices(None)

    def line(planned: NodePlan) -> str:
        hand_made = dataclasses.replace(execution, nodes={"extract": planned})
        (found,) = [x for x in estimate_lines(hand_made, table) if x.startswith("    extract")]
        return found

    odd = dataclasses.replace(node, model=("vllm", "my/own-model"))
    assert "vllm/my/own-model is self-hosted" in line(odd)  # the config names gpt-4o-mini
    assert "batch price" in line(dataclasses.replace(node, batch_api=True))
    assert "sync price" in line(node)
    flipped = line(dataclasses.replace(node, batched=not node.batched))
    assert _seconds_each(flipped) != _seconds_each(line(node))  # one call per chunk, or not


def _seconds_each(line: str) -> str:
    return line.split("~", 1)[1].split(" s each", 1)[0]


def test_job_and_op_names_come_from_the_plan(tmp_path, registry):
    """Names are decided once (yaml_loader.identity, frozen in the plan); translate reads them."""
    path, _ = _resolved(
        tmp_path, registry, [record("rec", "x", tmp_path)], trigger={"cron": "0 6 * * *"}
    )
    planned = plan(load(path), registry)
    (node,) = planned.nodes
    renamed = dataclasses.replace(
        planned,
        job_name="zz_job",
        nodes=(dataclasses.replace(node, op_name="zz_op"),),
    )
    execution = resolve(renamed, Deployment(), registry)
    job = job_for(execution, registry, Deployment())
    assert job.name == "zz_job"
    assert "zz_op" in {n.name for n in job.graph.nodes}
    (schedule,) = build_triggers(execution, job)
    assert schedule.name == "zz_job__schedule"


def test_op_priority_and_segment_come_from_the_plan(tmp_path, registry):
    _, execution = _resolved(tmp_path, registry, [record("rec", "x", tmp_path)])
    node = dataclasses.replace(execution.node("rec"), op_priority=77, segment="zz_cut")
    odd = dataclasses.replace(execution, nodes=MappingProxyType({"rec": node}))
    op = job_for(odd, registry, Deployment()).graph.node_named("rec")
    assert op.tags[PRIORITY_TAG] == "77"  # depth 1 would give 1
    assert "(cut by zz_cut)" in render_plan(odd, Deployment())


def test_every_field_of_the_resolved_plan_has_its_reader_tested():
    """A new field of the ExecutionPlan needs a test that a later stage reads it (HOMES), and
    every test HOMES names exists."""
    fields = {
        f"{kind.__name__}.{f.name}"
        for kind in (RunPolicy, NodePlan, ExecutionPlan)
        for f in dataclasses.fields(kind)
    }
    assert fields == set(HOMES)
    for tests in HOMES.values():
        for test in tests:
            file, name = test.split("::")
            assert f"def {name}(" in (HERE / file).read_text(), test


def test_the_deployment_is_the_one_reader_of_settings():
    """Inside resolve too: only ``Deployment.load`` reads the settings; every other module gets
    the ``Deployment`` passed in (the import-linter contract covers the later stages)."""
    readers = set()
    for module in sorted((HERE.parents[1] / "exosphere_dagster").rglob("*.py")):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if SETTINGS in names:
                readers.add(module.relative_to(HERE.parents[1]).as_posix())
    assert readers == {"exosphere_dagster/resolve/deployment.py"}
