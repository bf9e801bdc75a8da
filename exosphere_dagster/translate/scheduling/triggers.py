"""A cluster's trigger as a Dagster schedule or sensor. Every job also launches by hand or API.

Sensors start one run per batch of new arrivals (files or S3 objects, see ``arrivals``), keyed
on their identities; every run request carries the trigger time and the deadline by the resolved
plan's rule (``RunPolicy.window_tags``: in UTC, so an SLA stays the same number of real hours
across a daylight-saving change).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    ScheduleDefinition,
    SensorDefinition,
    SkipReason,
    schedule,
    sensor,
)

from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import ExecutionPlan
from exosphere_dagster.runtime.arrivals import Arrival, list_folder, list_s3, run_key, select_new
from exosphere_dagster.translate.ops import START_OP
from yaml_loader.ir import ClusterPlan

MAX_ITEMS_PER_RUN = 1000


def run_config_for(inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run config that starts a cluster with these input objects (the API-call shape too)."""
    return {"ops": {START_OP: {"config": {"inputs": inputs}}}}


def build_triggers(
    execution: ExecutionPlan, job: JobDefinition
) -> list[ScheduleDefinition | SensorDefinition]:
    """The schedule or sensor of a resolved cluster's trigger (none for ``api-call``)."""
    trigger = execution.plan.trigger
    if trigger.cron:
        return [_cron_schedule(execution, job)]
    if trigger.s3:
        return [_new_objects_sensor(execution, job, list_s3, int(trigger.s3.interval), "s3")]
    if trigger.folder:
        interval = int(trigger.folder.interval)
        return [_new_objects_sensor(execution, job, _list_folder, interval, "files")]
    return []  # api-call: launched through GraphQL / `exosphere run`


def _list_folder(plan: ClusterPlan) -> Iterable[Arrival]:
    """The folder's files, settled as the deployment says at this tick (cached per process)."""
    settle = Deployment.load().settings.folder_settle_seconds
    return list_folder(plan, settle_seconds=settle)


def _cron_schedule(execution: ExecutionPlan, job: JobDefinition) -> ScheduleDefinition:
    plan = execution.plan
    assert plan.trigger.cron is not None

    @schedule(
        name=f"{plan.job_name}__schedule",
        cron_schedule=plan.trigger.cron,
        execution_timezone=plan.trigger.timezone or "UTC",
        job=job,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Runs {plan.identifier} on cron '{plan.trigger.cron}'.",
    )
    def cron_schedule(context):
        when = context.scheduled_execution_time or datetime.now(UTC)
        return RunRequest(
            run_config=run_config_for([{"trigger": "cron", "scheduled-time": when.isoformat()}]),
            tags=execution.run.window_tags(when),
        )

    return cron_schedule


def _new_objects_sensor(
    execution: ExecutionPlan,
    job: JobDefinition,
    lister: Callable[[ClusterPlan], Iterable[Arrival]],
    interval: int,
    suffix: str,
) -> SensorDefinition:
    plan = execution.plan

    @sensor(
        name=f"{plan.job_name}__{suffix}",
        job=job,
        minimum_interval_seconds=max(interval, 5),  # the daemon evaluates sensors every 5 s
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Starts {plan.identifier} for {plan.trigger_text}.",
    )
    def new_objects_sensor(context):
        cursor = json.loads(context.cursor) if context.cursor else {}
        selection = select_new(lister(plan), cursor)
        if selection.cursor != cursor:
            context.update_cursor(json.dumps(selection.cursor, separators=(",", ":")))
        if not selection.ready:
            waiting = f"; {selection.waiting} waiting to settle" if selection.waiting else ""
            return SkipReason(f"nothing new ({plan.trigger_text}){waiting}")
        now = datetime.now(UTC)
        requests = []
        for start in range(0, len(selection.ready), MAX_ITEMS_PER_RUN):
            batch = selection.ready[start : start + MAX_ITEMS_PER_RUN]
            requests.append(
                RunRequest(
                    run_key=run_key(cursor, batch),
                    run_config=run_config_for([a.item for a in batch]),
                    tags=execution.run.window_tags(now),
                )
            )
        return requests

    return new_objects_sensor
