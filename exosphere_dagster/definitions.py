"""The code location: ``exosphere_dagster.definitions:defs`` loads every cluster file under
``EXOSPHERE_CLUSTERS_DIR`` (default ``./clusters``). Broken files show up as placeholder jobs
whose description carries the errors, so they are visible in the UI; the rest load.

``defs`` builds lazily (location.py): a run worker or step process that asks for its job builds
that one cluster; listing the location builds the folder with ``build_definitions``."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from dagster import (
    Definitions,
    Failure,
    GraphDefinition,
    JobDefinition,
    OpDefinition,
    Output,
    ScheduleDefinition,
)

from exosphere_dagster.build.catalog import load_catalog, registry_with_plugins
from exosphere_dagster.build.deadlines import deadline_sensor
from exosphere_dagster.build.job import build_job
from exosphere_dagster.build.lineage import cluster_asset_specs, merge_asset_specs
from exosphere_dagster.build.sla_breach import build_breach_job, sla_breach_sensor
from exosphere_dagster.build.triggers import build_triggers
from exosphere_dagster.entry.location import lazy_repository
from satellite_ops.registry import SatelliteRegistry
from yaml_loader import ClusterPlan, ConfigError

CLUSTERS_DIR_ENV = "EXOSPHERE_CLUSTERS_DIR"
logger = logging.getLogger("exosphere")


def clusters_dir() -> Path:
    return Path(os.environ.get(CLUSTERS_DIR_ENV, "clusters"))


def build_definitions(folder: str | Path | None = None) -> Definitions:
    folder = Path(folder or clusters_dir())
    if not folder.exists():
        logger.warning(
            "cluster folder %s does not exist: no clusters loaded (set %s)",
            folder,
            CLUSTERS_DIR_ENV,
        )
    catalog = load_catalog([folder] if folder.exists() else [])
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


defs = lazy_repository(clusters_dir(), build_definitions, cluster_jobs)

__all__ = ["defs", "build_definitions"]
