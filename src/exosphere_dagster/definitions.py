"""The code location: ``exosphere_dagster.definitions:defs`` loads every cluster file of the
clusters store ``EXOSPHERE_CLUSTERS_DIR`` (default ``./clusters``; or ``s3://bucket/prefix``,
loaded from a local mirror, cluster_store.py). Broken files show up as placeholder jobs whose
description carries the errors, so they are visible in the UI; the rest load.

The ``exosphere__clusters_store`` sensor publishes the store (URL, the token of the files
loaded) in its metadata, which Dagster's GraphQL API serves: ``exosphere clusters`` needs only
the webserver's URL to find where to write, and ``exosphere dev`` to tell whether a change in
the store is already loaded.

``defs`` builds lazily (location.py): a run worker or step process that asks for its job builds
that one cluster; listing the location builds the folder with ``build_definitions``."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from dagster import (
    DefaultSensorStatus,
    Definitions,
    Failure,
    GraphDefinition,
    JobDefinition,
    OpDefinition,
    Output,
    ScheduleDefinition,
    SensorDefinition,
    SkipReason,
    sensor,
)

from exosphere_dagster.build import build_job
from exosphere_dagster.catalog import load_catalog, registry_with_plugins
from exosphere_dagster.cluster_store import (
    CLUSTERS_DIR_ENV,
    STORE_ROOT_KEY,
    STORE_SENSOR,
    STORE_TOKEN_KEY,
    STORE_URL_KEY,
    StoreError,
    StoreView,
    store_from_url,
    view_of,
)
from exosphere_dagster.deadlines import deadline_sensor
from exosphere_dagster.lineage import cluster_asset_specs, merge_asset_specs
from exosphere_dagster.location import lazy_repository
from exosphere_dagster.sla_breach import build_breach_job, sla_breach_sensor
from exosphere_dagster.triggers import build_triggers
from satellite_ops.registry import SatelliteRegistry
from yaml_loader import ClusterPlan, ConfigError

logger = logging.getLogger("exosphere")


def store_folder() -> Path:
    """The folder the location loads: the store's own folder, or its S3 prefix's mirror, synced
    now (in every process that builds: the code server, run workers, step processes)."""
    return store_from_url().local_folder()


def build_definitions(folder: str | Path | None = None) -> Definitions:
    folder = Path(folder) if folder is not None else store_folder()
    view = view_of(folder)
    if not folder.exists():
        logger.warning(
            "cluster folder %s does not exist: no clusters loaded (set %s)",
            folder,
            CLUSTERS_DIR_ENV,
        )
    mirrored = view.url.startswith("s3://")
    catalog = load_catalog(
        [folder] if folder.exists() else [], display=view.display if mirrored else None
    )
    if view.error:  # the store could not be read: the last copy loaded, and this says why
        catalog.broken[view.url] = [ConfigError(view.url, 1, 1, (), view.error)]
    registry = registry_with_plugins()
    jobs: list[JobDefinition] = []
    triggers = []
    alerts: list[JobDefinition] = []  # SLA-breach alert jobs (docs/sla.md)
    assets = []  # satellites and the places they name, for the catalog (lineage.py)
    for cluster in catalog.plans:
        job, *alert = cluster_jobs(cluster, registry)
        jobs.append(job)
        assets.extend(cluster_asset_specs(cluster, registry))
        triggers.extend(build_triggers(cluster, job))
        alerts.extend(alert)
    jobs.extend(alerts)
    jobs.extend(_broken_file_job(file, errors) for file, errors in catalog.broken.items())
    schedules = [t for t in triggers if isinstance(t, ScheduleDefinition)]
    sensors = [t for t in triggers if not isinstance(t, ScheduleDefinition)]
    sensors.append(deadline_sensor())
    sensors.append(store_sensor(view))
    if alerts:
        sensors.append(sla_breach_sensor(alerts))
    return Definitions(
        assets=merge_asset_specs(assets), jobs=jobs, schedules=schedules, sensors=sensors
    )


def cluster_jobs(cluster: ClusterPlan, registry: SatelliteRegistry) -> list[JobDefinition]:
    """The cluster's job, then its SLA-breach alert job if it has one: what the folder holds for
    it, and what a step process builds alone (location.py), so the two never differ."""
    job, alert = build_job(cluster, registry), build_breach_job(cluster, registry)
    return [job, *([alert] if alert is not None else [])]


def _broken_file_job(file: str, errors: list[ConfigError]) -> JobDefinition:
    """A visible stand-in for a file that failed to load: its description lists the errors."""
    text = "\n".join(str(e) for e in errors)
    name = "invalid__" + re.sub(r"[^A-Za-z0-9_]", "_", Path(file).stem)

    def compute(context, inputs):
        raise Failure(description=f"{file} failed to load:\n{text}")
        yield Output(None)  # pragma: no cover - makes this a generator

    op = OpDefinition(
        compute_fn=compute, name=f"{name}__report", description="Fails with the file's errors."
    )
    return GraphDefinition(name=name, node_defs=[op]).to_job(
        description=f"This cluster file failed to load and was skipped:\n\n```\n{text}\n```",
        tags={"exosphere/invalid": "true"},
        metadata={"cluster file": file, "errors": text},
    )


def store_sensor(view: StoreView) -> SensorDefinition:
    """Publishes the store in its metadata; each tick says whether the store still holds what
    this location loaded (a change appears once the location is reloaded)."""

    @sensor(
        name=STORE_SENSOR,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="The clusters store this code location loads, and whether it changed since.",
        metadata={
            STORE_URL_KEY: view.url,
            STORE_TOKEN_KEY: view.token,
            STORE_ROOT_KEY: str(view.root),  # the prefix of its jobs' "cluster file"
        },
    )
    def exosphere__clusters_store(context):
        try:
            now = store_from_url(view.url).change_token()
        except StoreError as exc:
            return SkipReason(f"cannot read the clusters store: {exc}")
        if now == view.token:
            return SkipReason(f"{view.url}: loaded and unchanged")
        return SkipReason(
            f"{view.url} changed since this code location loaded: reload the location "
            "(exosphere dev and exosphere clusters apply/delete do it themselves)"
        )

    return exosphere__clusters_store


defs = lazy_repository(store_folder, build_definitions, cluster_jobs)

__all__ = ["defs", "build_definitions"]
