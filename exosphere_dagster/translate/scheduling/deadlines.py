"""Deadline-aware queueing on top of Dagster's static priority (docs/sla.md).

The QueuedRunCoordinator dequeues by ``dagster/priority`` (6h > 12h > 24h), FIFO within equal
values, within the tier limits. Left alone, a steady flow of 6h work would starve a queued 24h
run past its deadline. This sensor runs in the daemon and, every tick:

* stamps ``exosphere/trigger_time`` / ``exosphere/deadline`` (creation time + SLA) on runs that
  lack them: launchpad and API launches carry only the job's static tags;
* raises ``dagster/priority`` of a queued run into an urgent band once the time left before its
  deadline is within its urgency threshold plus its expected runtime. Inside the band
  an earlier deadline means a higher priority, so urgent runs go earliest-deadline-first and
  ahead of every non-urgent run. A boost is never taken back; the tier priority is kept in
  ``exosphere/base_priority``.

Both rules are the resolved plan's (``RunWindow``, resolve/execution_plan.py), read from the
run's own tags, where resolve wrote the SLA seconds and the urgency threshold: no tier is looked
up here.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from dagster import DagsterRunStatus, DefaultSensorStatus, RunsFilter, SensorDefinition, SkipReason
from dagster import sensor as sensor_decorator

from exosphere_dagster.resolve.execution_plan import RunWindow
from exosphere_dagster.resolve.tags import (
    BASE_PRIORITY_TAG,
    DEADLINE_TAG,
    PRIORITY_REASON_TAG,
    PRIORITY_TAG,
    SLA_TAG,
    TIER_NAMES,
    parse_time,
)

SENSOR_NAME = "exosphere__deadlines"
URGENT_BASE = 1000  # above every tier priority (30/20/10) and hand-set priorities below 1000
HORIZON_MINUTES = 48 * 60  # minutes-before-deadline the urgent band spans; later = lower
HISTORY = 5  # recent successful runs whose median duration is a job's expected runtime
UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


@dataclass(frozen=True)
class QueuedRun:
    run_id: str
    job_name: str
    tags: Mapping[str, str]


def urgent_priority(deadline: datetime, now: datetime) -> int:
    """Priority inside the urgent band: one step per minute, earlier deadlines higher."""
    minutes_left = int((deadline - now).total_seconds() // 60)
    return URGENT_BASE + max(0, HORIZON_MINUTES - minutes_left)


def is_urgent(run: QueuedRun, now: datetime, expected_runtime: float = 0.0) -> bool:
    """The run's own rule (``RunWindow.is_urgent``); never urgent without a rule or a deadline."""
    window, deadline = RunWindow.of_tags(run.tags), parse_time(run.tags.get(DEADLINE_TAG))
    if window is None or deadline is None:
        return False
    return window.is_urgent(deadline, now, expected_runtime)


def boosts(
    runs: Iterable[QueuedRun], now: datetime, expected: Mapping[str, float] | None = None
) -> dict[str, dict[str, str]]:
    """run id -> tags to write, for queued runs that became (more) urgent. Pure: tested alone."""
    changes: dict[str, dict[str, str]] = {}
    for run in runs:
        runtime = (expected or {}).get(run.job_name, 0.0)
        if not is_urgent(run, now, runtime):
            continue
        deadline = parse_time(run.tags[DEADLINE_TAG])
        assert deadline is not None
        wanted = urgent_priority(deadline, now)
        current = _int(run.tags.get(PRIORITY_TAG))
        if current is not None and current >= wanted:
            continue
        minutes = int((deadline - now).total_seconds() // 60)
        update = {
            PRIORITY_TAG: str(wanted),
            PRIORITY_REASON_TAG: f"deadline in {minutes} min: earliest-deadline-first",
        }
        if BASE_PRIORITY_TAG not in run.tags:
            update[BASE_PRIORITY_TAG] = run.tags.get(PRIORITY_TAG, "0")
        changes[run.run_id] = update
    return changes


def expected_runtimes(instance, job_names: Iterable[str]) -> dict[str, float]:
    """Median duration of each job's last successful runs (0 when it has none yet)."""
    result: dict[str, float] = {}
    for name in set(job_names):
        records = instance.get_run_records(
            RunsFilter(job_name=name, statuses=[DagsterRunStatus.SUCCESS]), limit=HISTORY
        )
        durations = [r.end_time - r.start_time for r in records if r.start_time and r.end_time]
        result[name] = statistics.median(durations) if durations else 0.0
    return result


def stamp_missing_deadlines(instance) -> int:
    """Give unfinished cluster runs without a deadline one: creation time + SLA."""
    records = instance.get_run_records(
        RunsFilter(statuses=UNFINISHED, tags={SLA_TAG: list(TIER_NAMES)})
    )
    stamped = 0
    for record in records:
        run = record.dagster_run
        window = RunWindow.of_tags(run.tags)
        if window is None or DEADLINE_TAG in run.tags:
            continue
        instance.add_run_tags(run.run_id, window.window_tags(record.create_timestamp))
        stamped += 1
    return stamped


def apply_deadline_policy(instance, now: datetime | None = None) -> tuple[int, int]:
    """One tick: stamp missing deadlines, then boost urgent queued runs. (stamped, boosted)."""
    now = now or datetime.now(UTC)
    stamped = stamp_missing_deadlines(instance)
    queued = [
        QueuedRun(r.dagster_run.run_id, r.dagster_run.job_name, r.dagster_run.tags)
        for r in instance.get_run_records(
            RunsFilter(statuses=[DagsterRunStatus.QUEUED], tags={SLA_TAG: list(TIER_NAMES)})
        )
    ]
    changes = boosts(queued, now, expected_runtimes(instance, {q.job_name for q in queued}))
    for run_id, tags in changes.items():
        instance.add_run_tags(run_id, tags)
    return stamped, len(changes)


def deadline_sensor(name: str = SENSOR_NAME, interval: int = 30) -> SensorDefinition:
    """The sensor that applies the policy every ``interval`` seconds (the deployment's
    ``deadline_interval``)."""

    @sensor_decorator(
        name=name,
        minimum_interval_seconds=interval,
        default_status=DefaultSensorStatus.RUNNING,
        description="Stamps deadlines on runs launched by hand and raises the priority of "
        "queued runs whose deadline approaches (earliest-deadline-first).",
    )
    def exosphere_deadlines(context):
        stamped, boosted = apply_deadline_policy(context.instance)
        return SkipReason(f"stamped {stamped} deadline(s), boosted {boosted} queued run(s)")

    return exosphere_deadlines


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
