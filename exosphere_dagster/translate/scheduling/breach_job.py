"""A run past its SLA is failed by Dagster's run monitoring (``dagster/max_runtime``); this
module alerts through the cluster's own failure and log satellites (docs/sla.md).

A run-failure sensor recognises the breach and requests ``<job>__sla_breach``: a job that
rebuilds, from the failed run's inputs and its per-item checkpoints, the items that were still
in flight, and sends each through the cluster's failure branch with ``failure.error`` naming the
breach (at least once: items that had failed without a checkpoint are included). The breach is
also sent to the log satellites as an error record.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from dagster import Any as DagsterAny
from dagster import (
    DefaultSensorStatus,
    DynamicOut,
    JobDefinition,
    OpDefinition,
    Out,
    RunRequest,
    SensorDefinition,
    SkipReason,
    graph,
    run_failure_sensor,
)

from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import ChunkPolicy, ExecutionPlan
from exosphere_dagster.resolve.placement import K8S_CONFIG_TAG
from exosphere_dagster.resolve.segments import Segment
from exosphere_dagster.resolve.tags import (
    BREACH_OF_TAG,
    DEADLINE_TAG,
    MAX_RUNTIME_TAG,
    PRIORITY_TAG,
    ROLE_TAG,
    SLA_TAG,
)
from exosphere_dagster.runtime.checkpoint import CheckpointBackend, checkpoint_store_for
from exosphere_dagster.runtime.items import FailedItem, Item, seed_items
from exosphere_dagster.runtime.logs import LogForwarder
from exosphere_dagster.runtime.secrets import redaction_values
from exosphere_dagster.translate.deployment_resource import deployment_of
from exosphere_dagster.translate.executor import executor_for, segment_chunk_size
from exosphere_dagster.translate.job import Wiring, job_resources, run_tags, wire_segments
from exosphere_dagster.translate.ops import (
    START_OP,
    STEP_RESOURCES,
    chunk_outputs,
)
from satellite_ops.registry import SatelliteRegistry
from yaml_loader.ir import ClusterPlan

BREACH_OP = "exosphere__sla_breach"
SENSOR_NAME = "exosphere__sla_breach"
ALERT_PRIORITY = "5000"  # alerts jump every queue, urgent runs included
ALERT_MAX_RUNTIME = "3600"


def breach_job_name(plan_or_job: ClusterPlan | str) -> str:
    name = plan_or_job if isinstance(plan_or_job, str) else plan_or_job.job_name
    return f"{name}__sla_breach"


def in_flight_items(
    plan: ClusterPlan,
    seeds: list[Item],
    store: CheckpointBackend,
    root_run_id: str,
    secrets: tuple[str, ...] = (),
) -> list[tuple[str, Item]]:
    """(satellite id, item) for every item that had not finished the satellite it had reached,
    replaying the main branch from the seeds through the run's checkpoints in ``store`` (the
    store the satellite steps wrote: ``checkpoint_store_for(instance, deployment)``);
    ``secrets``: the run's secret values, which item ids never show (items.child_id)."""
    produced: dict[str, list[Item]] = {}
    pending: list[tuple[str, Item]] = []
    for node in plan.nodes:
        items = [i for p in node.parents for i in produced.get(p, [])] if node.parents else seeds
        done: dict[str, Any] = {}
        for log in store.logs(root_run_id, node.op_name):
            done.update(log.load())
        children: list[Item] = []
        for item in items:
            if item.id in done:
                children.extend(
                    item.child(node.id, i, obj, secrets) for i, obj in enumerate(done[item.id])
                )
            else:
                pending.append((node.id, item))
        produced[node.id] = children
    return pending


def breach_op(execution: ExecutionPlan, chunk: ChunkPolicy) -> OpDefinition:
    """Replays the failed run's items; the ones in flight leave in chunks of ``chunk`` (the
    failure segment's resolved policy, sized for this run's workers like any segment)."""
    plan = execution.plan
    sinks = [(p.node, p.definition) for p in execution.log_sinks]

    def compute(context, inputs: dict[str, Any]):
        run_id, error = context.op_config["run_id"], context.op_config["error"]
        failed_run = context.instance.get_run_by_id(run_id)
        if failed_run is None:
            raise ValueError(f"run {run_id} is not on this instance")
        start = (failed_run.run_config.get("ops") or {}).get(START_OP) or {}
        secrets = redaction_values(plan.secrets)
        seeds = seed_items(list((start.get("config") or {}).get("inputs") or [{}]), secrets)
        root = failed_run.root_run_id or failed_run.run_id
        deployment = deployment_of(context)
        store = checkpoint_store_for(context.instance, deployment)
        pending = in_flight_items(plan, seeds, store, root, secrets)
        forwarder = LogForwarder.for_step(plan, sinks, run_id, deployment)
        forwarder.emit("error", None, None, f"{error} ({len(pending)} item(s) in flight)")
        forwarder.flush()
        context.log.error(f"{error}; {len(pending)} item(s) in flight go to the failure branch")
        failed = [FailedItem(item, node, error, "SlaBreach", 0) for node, item in pending]
        items = [f.to_failure_item() for f in failed]
        yield from chunk_outputs(items, segment_chunk_size(context, chunk, items))

    return OpDefinition(
        compute_fn=compute,
        name=f"{breach_job_name(plan)}__{BREACH_OP}",
        outs={"chunks": DynamicOut(DagsterAny), "manifest": Out(DagsterAny)},
        config_schema={"run_id": str, "error": str},
        description=breach_op_description(plan),
        required_resource_keys=STEP_RESOURCES,
    )


def build_breach_job(
    execution: ExecutionPlan, registry: SatelliteRegistry, deployment: Deployment
) -> JobDefinition | None:
    """``<job>__sla_breach``, or None for a cluster with neither failure nor log satellites."""
    plan = execution.plan
    if not plan.failure_nodes and not plan.log_nodes:
        return None
    alert_plan = dataclasses.replace(plan, job_name=breach_job_name(plan))  # unique op names
    alert = dataclasses.replace(execution, plan=alert_plan)
    executor = executor_for(deployment)
    pods = deployment.placement.for_executor(executor).pods
    segments = [s for s in execution.segments if s.from_failures or _failure(s)]
    # the items in flight go to the first failure segment: they are chunked by its policy
    chunk = execution.chunks[segments[0].name] if segments else ChunkPolicy(1, 1, 1)

    @graph(name=alert_plan.job_name)
    def breach_graph() -> None:
        wiring = Wiring(alert, registry, pods)
        op = breach_op(alert, chunk).alias(BREACH_OP).tag(wiring.light_tags)
        if not segments:
            op()
            return
        first = dataclasses.replace(segments[0], sources=())  # fed by the breach op itself
        chunks, wiring.manifests[first.name] = op()
        wire_segments(wiring, [first, *segments[1:]], first_chunks=chunks)

    pod_tags = {k: v for k, v in run_tags(execution, pods).items() if k == K8S_CONFIG_TAG}
    return breach_graph.to_job(
        resource_defs=job_resources(deployment),
        executor_def=executor,
        description=breach_job_description(plan),
        tags={
            ROLE_TAG: "sla-breach",
            PRIORITY_TAG: ALERT_PRIORITY,
            MAX_RUNTIME_TAG: ALERT_MAX_RUNTIME,
            **pod_tags,  # where runs are pods
        },
    )


def breach_job_description(plan: ClusterPlan) -> str:
    """What the jobs list says of ``<job>__sla_breach``: what it is, when it runs, what it does."""
    job = plan.job_name.removesuffix("__sla_breach")
    does = []
    if plan.failure_nodes:
        names = ", ".join(f"`{n.id}`" for n in plan.failure_nodes)
        does.append(
            f"sends the items that run still had in flight through the failure branch ({names})"
        )
    if plan.log_nodes:
        names = ", ".join(f"`{n.id}`" for n in plan.log_nodes)
        does.append(f"reports the breach to the log satellites ({names})")
    return (
        f"SLA-breach alert of cluster {plan.identifier}. Started by the `{SENSOR_NAME}` sensor "
        f"when a run of `{job}` is failed for running past its {plan.sla.name} SLA (Dagster's "
        f"run monitoring, `dagster/max_runtime`); it {' and '.join(does)}. Not launched by "
        "hand: its run config names the failed run."
    )


def breach_op_description(plan: ClusterPlan) -> str:
    return (
        f"Reads the inputs and per-item checkpoints of the {plan.identifier} run that missed its "
        f"{plan.sla.name} SLA, logs the breach, and hands each item still in flight to the "
        "failure branch with `failure.error` naming the breach."
    )


def _failure(segment: Segment) -> bool:
    return bool(segment.nodes) and segment.nodes[0].branch == "failure"


def breach_message(run, record, failure_text: str = "") -> str | None:
    """Why ``run`` counts as an SLA breach, or None when it failed for another reason: run
    monitoring says so, or the run ran for at least its max runtime."""
    limit = run.tags.get(MAX_RUNTIME_TAG)
    if SLA_TAG not in run.tags or not limit:
        return None
    started = record.start_time if record else None
    ran = ((record.end_time or time.time()) - started) if started else 0.0
    if "maximum runtime" not in failure_text and ran < float(limit):
        return None
    return (
        f"SLA breach: run {run.run_id} of {run.job_name} ran {ran:.0f}s, past its "
        f"{run.tags[SLA_TAG]} SLA (max runtime {limit}s, deadline "
        f"{run.tags.get(DEADLINE_TAG, 'unknown')}); run monitoring failed it"
    )


def sla_breach_sensor(
    breach_jobs: list[JobDefinition], name: str = SENSOR_NAME, interval: int = 30
) -> SensorDefinition:
    """Requests ``<job>__sla_breach`` for a run failed past its SLA; ticks every ``interval``
    seconds (the deployment's ``sla_sensor_interval``)."""
    names = {job.name for job in breach_jobs}

    @run_failure_sensor(
        name=name,
        minimum_interval_seconds=interval,
        request_jobs=breach_jobs,
        default_status=DefaultSensorStatus.RUNNING,
        description="Sends runs that missed their SLA through their failure/log satellites.",
    )
    def exosphere_sla_breach(context):
        run = context.dagster_run
        job = breach_job_name(run.job_name)
        if run.tags.get(ROLE_TAG) == "sla-breach" or job not in names:
            return SkipReason(f"{run.run_id}: no SLA alert job for {run.job_name}")
        record = context.instance.get_run_record_by_id(run.run_id)
        message = breach_message(run, record, context.failure_event.message or "")
        if message is None:
            return SkipReason(f"{run.run_id} failed within its SLA")
        return RunRequest(
            run_key=run.run_id,
            job_name=job,
            run_config={"ops": {BREACH_OP: {"config": {"run_id": run.run_id, "error": message}}}},
            tags={BREACH_OF_TAG: run.run_id},
        )

    return exosphere_sla_breach
