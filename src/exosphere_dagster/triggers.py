"""A cluster's trigger as a Dagster schedule or sensor. Every job also launches by hand or API.

Sensors keep a cursor (newest modification time seen, plus the names seen at that instant), so
each object or file starts exactly one run, even when many arrive within the same second.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
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

from exosphere_dagster.ops import START_OP
from exosphere_dagster.tags import DEADLINE_TAG, TRIGGER_TIME_TAG
from yaml_loader.ir import ClusterPlan

MAX_ITEMS_PER_RUN = 1000


def run_config_for(inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run config that starts a cluster with these input objects (the API-call shape too)."""
    return {"ops": {START_OP: {"config": {"inputs": inputs}}}}


def trigger_tags(plan: ClusterPlan, when: datetime) -> dict[str, str]:
    return {
        TRIGGER_TIME_TAG: when.isoformat(),
        DEADLINE_TAG: (when + timedelta(hours=plan.sla.hours)).isoformat(),
    }


def build_triggers(
    plan: ClusterPlan, job: JobDefinition
) -> list[ScheduleDefinition | SensorDefinition]:
    trigger = plan.trigger
    if trigger.cron:
        return [_cron_schedule(plan, job)]
    if trigger.s3:
        return [_new_objects_sensor(plan, job, _list_s3, int(trigger.s3.interval), "s3")]
    if trigger.folder:
        return [_new_objects_sensor(plan, job, _list_folder, int(trigger.folder.interval), "files")]
    return []  # api-call: launched through GraphQL / `exosphere run`


def _cron_schedule(plan: ClusterPlan, job: JobDefinition) -> ScheduleDefinition:
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
            tags=trigger_tags(plan, when),
        )

    return cron_schedule


def _new_objects_sensor(
    plan: ClusterPlan, job: JobDefinition, lister: Any, interval: int, suffix: str
) -> SensorDefinition:
    @sensor(
        name=f"{plan.job_name}__{suffix}",
        job=job,
        minimum_interval_seconds=max(interval, 5),
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Starts {plan.identifier} for {plan.trigger_text}.",
    )
    def new_objects_sensor(context):
        cursor = json.loads(context.cursor) if context.cursor else {}
        new, cursor = select_new(lister(plan), cursor)
        if not new:
            yield SkipReason(f"nothing new ({plan.trigger_text})")
            return
        now = datetime.now(UTC)
        for start in range(0, len(new), MAX_ITEMS_PER_RUN):
            batch = [obj for _, obj in new[start : start + MAX_ITEMS_PER_RUN]]
            key = hashlib.sha256(
                "\n".join(n for n, _ in new[start : start + MAX_ITEMS_PER_RUN]).encode()
            )
            yield RunRequest(
                run_key=key.hexdigest()[:32],
                run_config=run_config_for(batch),
                tags=trigger_tags(plan, now),
            )
        context.update_cursor(json.dumps(cursor))

    return new_objects_sensor


def select_new(
    listing: Iterable[tuple[str, float, dict[str, Any]]], cursor: dict[str, Any]
) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    """Objects newer than the cursor, and the cursor after them.

    ``listing`` yields (unique name, modification time, item object). The cursor keeps the
    newest time seen and the names seen at exactly that time.
    """
    since = float(cursor.get("since", float("-inf")))
    seen_at_since = set(cursor.get("names", []))
    new: list[tuple[float, str, dict[str, Any]]] = []
    for name, mtime, obj in listing:
        if mtime > since or (mtime == since and name not in seen_at_since):
            new.append((mtime, name, obj))
    if not new:
        return [], cursor
    new.sort(key=lambda t: (t[0], t[1]))
    newest = new[-1][0]
    names = sorted(
        {n for m, n, _ in new if m == newest} | (seen_at_since if newest == since else set())
    )
    return [(n, o) for _, n, o in new], {"since": newest, "names": names}


def _list_s3(plan: ClusterPlan) -> Iterator[tuple[str, float, dict[str, Any]]]:
    import boto3

    spec = plan.trigger.s3
    assert spec is not None
    client = boto3.client("s3", endpoint_url=spec.endpoint_url or None)
    extension = (spec.extension or "").lower().lstrip(".")
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=spec.bucket, Prefix=spec.prefix
    ):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith("/") or (extension and not key.lower().endswith("." + extension)):
                continue
            modified = obj["LastModified"]
            yield (
                key,
                modified.timestamp(),
                {
                    "bucket": spec.bucket,
                    "file-path": key,
                    "file-name": key.rsplit("/", 1)[-1],
                    "size": obj.get("Size", 0),
                    "etag": str(obj.get("ETag", "")).strip('"'),
                    "uri": f"s3://{spec.bucket}/{key}",
                    "last-modified": modified.isoformat(),
                },
            )


def _list_folder(plan: ClusterPlan) -> Iterator[tuple[str, float, dict[str, Any]]]:
    spec = plan.trigger.folder
    assert spec is not None
    root = Path(os.path.expanduser(spec.path))
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and fnmatch.fnmatch(path.name, spec.pattern):
            stat = path.stat()
            yield (
                str(path),
                stat.st_mtime,
                {
                    "file-path": str(path),
                    "file-name": path.name,
                    "size": stat.st_size,
                    "uri": path.resolve().as_uri(),
                    "last-modified": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
                },
            )
