"""Launching a cluster run on the local instance (``exosphere run``, tests, the demo)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, execute_job
from dagster._core.execution.job_execution_result import JobExecutionResult

from exosphere_dagster.entry.reconstruct import reconstructable_job
from exosphere_dagster.resolve.catalog import plan_file
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import ExecutionPlan, RunWindow
from exosphere_dagster.resolve.resolve import resolve
from exosphere_dagster.resolve.tags import CLUSTER_FILE_TAG, DEADLINE_TAG, TRIGGER_TIME_TAG
from exosphere_dagster.translate.scheduling.triggers import run_config_for

INIT_LOCK = ".exosphere-init.lock"


@contextlib.contextmanager
def _init_lock(home: str | os.PathLike[str]) -> Iterator[None]:
    """An exclusive lock on ``home`` across processes (flock: released if the holder dies)."""
    Path(home).mkdir(parents=True, exist_ok=True)
    with open(Path(home) / INIT_LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def local_instance() -> DagsterInstance:
    """``DagsterInstance.get()``, opened under a lock on ``$DAGSTER_HOME``. Opening a fresh
    SQLite instance creates and stamps its databases; processes doing it at once (eight
    ``exosphere run`` started together) race on that migration and can leave the databases
    unreadable. With the lock the first process creates them and the others find them made."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return DagsterInstance.get()  # raises Dagster's own message about DAGSTER_HOME
    with _init_lock(home):
        return DagsterInstance.get()


def init_instance() -> None:
    """Create the storage of the ``$DAGSTER_HOME`` instance once, before runs are launched
    (``exosphere dev`` starts a webserver, a daemon and run processes that all open it)."""
    local_instance().dispose()


def run_config(
    inputs: list[dict[str, Any]], multiprocess: bool = False, log_level: str = "INFO"
) -> dict[str, Any]:
    config = run_config_for(inputs)
    config["execution"] = {"config": {"multiprocess": {}} if multiprocess else {"in_process": {}}}
    config["loggers"] = {"console": {"config": {"log_level": log_level}}}
    return config


def run_cluster_file(
    path: str | Path,
    inputs: list[dict[str, Any]] | None = None,
    *,
    instance: DagsterInstance | None = None,
    multiprocess: bool = False,
    execution: ExecutionPlan | None = None,
    echo: Callable[[str], Any] | None = None,
    log_level: str = "INFO",
) -> JobExecutionResult:
    """Execute one cluster file now, as a manual launch: its trigger time is now and its
    deadline the resolved plan's (``execution``, else the file resolved under the process's
    deployment)."""
    instance = instance or local_instance()
    execution = execution or resolved(path)
    tags = execution.run.window_tags(datetime.now(UTC))
    with execute_job(
        reconstructable_job(path),
        instance=instance,
        run_config=run_config(inputs or [{}], multiprocess, log_level),
        tags=tags,
        raise_on_error=False,
    ) as result:
        if echo:
            run = instance.get_run_by_id(result.run_id)
            counts = {
                k.split("/")[1]: v
                for k, v in (run.tags if run else {}).items()
                if k
                in (
                    "exosphere/items",
                    "exosphere/succeeded",
                    "exosphere/routed",
                    "exosphere/failed",
                )
            }
            if counts:
                echo("items: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return result


def resolved(path: str | Path) -> ExecutionPlan:
    """The cluster file ``path`` resolved under the process's deployment."""
    cluster, registry = plan_file(path)
    return resolve(cluster, Deployment.load(), registry)


def rerun(
    run_id: str, *, instance: DagsterInstance | None = None, from_failure: bool = False
) -> JobExecutionResult:
    """Re-execute a run. By default every step runs again: checkpoints (keyed by the root run)
    hand back the items that already succeeded, so only unfinished items reach a satellite.
    ``from_failure`` uses Dagster's own selection (the UI's "From failure"): the red chunk steps
    and what lies downstream of them; mapped steps a killed run never started are run inline by
    the gathering and summary steps (translate/ops.py ``complete``), so no item is lost.

    The re-run keeps the parent's run config (its inputs and edited satellite config) and its
    SLA window: the parent's trigger time and deadline, not a fresh one from now."""
    from dagster import ReexecutionOptions

    instance = instance or local_instance()
    parent = instance.get_run_by_id(run_id)
    if parent is None:
        raise ValueError(f"no run {run_id} on this instance ({instance.root_directory})")
    if not parent.is_finished:
        instance.report_run_failed(parent)  # its process is gone: what run monitoring would do
    path = parent.tags.get(CLUSTER_FILE_TAG)
    if not path:
        raise ValueError(f"run {run_id} was not started from a cluster file")
    options = (
        ReexecutionOptions.from_failure(run_id, instance)
        if from_failure
        else ReexecutionOptions(parent_run_id=run_id)
    )
    with execute_job(
        reconstructable_job(path),
        instance=instance,
        run_config=parent.run_config,
        tags=sla_window(instance, parent),
        reexecution_options=options,
    ) as result:
        return result


def sla_window(instance: DagsterInstance, run: Any) -> dict[str, str]:
    """``run``'s trigger time and deadline tags; for a run launched without them (and not yet
    stamped by the deadlines sensor), what that sensor would stamp: creation time + SLA, by the
    rule the run's tags carry (``RunWindow.of_tags``)."""
    kept = {k: run.tags[k] for k in (TRIGGER_TIME_TAG, DEADLINE_TAG) if k in run.tags}
    window = RunWindow.of_tags(run.tags)
    if len(kept) == 2 or window is None:
        return kept
    record = instance.get_run_record_by_id(run.run_id)
    return window.window_tags(record.create_timestamp) if record else kept
