"""The code location: ``exosphere_dagster.definitions:defs`` loads every cluster file of the
clusters store ``EXOSPHERE_CLUSTERS_DIR`` (a folder, default ``./clusters``, or an
``s3://bucket/prefix``: entry/cluster_store.py). Broken files show up as placeholder jobs
whose description carries the errors, so they are visible in the UI; the rest load. The store's
URL is published as the top-level resource ``exosphere_clusters_store``, which is how
``exosphere clusters`` finds where to write behind a webserver URL.

``defs`` builds lazily (location.py): a run worker or step process that asks for its job builds
that one cluster, ``dagster job execute`` lists the job names from the plans (``job_names``)
and builds its job alone; listing the location builds the folder with ``build_definitions``. Importing
this module opens no store and reads no setting: the store is opened, and the ``Deployment``
loaded (once per process, cached), on first use. A deployment that cannot be loaded (a bad
``EXOSPHERE_*`` variable, placement or prices file) or a store that cannot be opened is shown
as an ``invalid__`` job carrying the located errors, like a broken cluster file, never as a
traceback; a cluster that cannot be resolved (a satellite's resources) is shown the same way."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import (
    ConfigurableResource,
    Definitions,
    Failure,
    GraphDefinition,
    JobDefinition,
    OpDefinition,
    Output,
    RepositoryDefinition,
    ScheduleDefinition,
    SensorDefinition,
)
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from pydantic import Field

from exosphere_dagster.entry.clusters.store import ClusterStore, StoreError, open_store
from exosphere_dagster.entry.location import lazy_repository
from exosphere_dagster.errors import DeploymentError
from exosphere_dagster.resolve.catalog import PLUGINS, Catalog, load_catalog
from exosphere_dagster.resolve.content import file_hash
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import ExecutionPlan
from exosphere_dagster.resolve.resolve import resolve
from exosphere_dagster.translate.built_clusters import BuiltCluster, ClusterBuilds, unbuildable
from exosphere_dagster.translate.job import job_for
from exosphere_dagster.translate.lineage import EXTERNAL, cluster_asset_specs, merge_asset_specs
from exosphere_dagster.translate.scheduling.breach_job import SENSOR_NAME as BREACH_SENSOR
from exosphere_dagster.translate.scheduling.breach_job import build_breach_job, sla_breach_sensor
from exosphere_dagster.translate.scheduling.deadlines import deadline_sensor
from exosphere_dagster.translate.scheduling.triggers import build_triggers
from satellite_ops.registry import SatelliteRegistry
from yaml_loader import ClusterPlan, ConfigError, ConfigErrors
from yaml_loader.identity import REPORT_NODE, definition_name, invalid_job_names, owners_of

CLUSTERS_DIR_ENV = "EXOSPHERE_CLUSTERS_DIR"
STORE_RESOURCE = "exosphere_clusters_store"
logger = logging.getLogger("exosphere")


class ClustersStore(ConfigurableResource):
    """Where this code location reads its cluster files. Nothing uses it at run time: it is
    published so that the UI (Resources) and ``exosphere clusters`` can see the store."""

    url: str = Field(description="The clusters store: a folder or an s3://bucket/prefix.")


def clusters_store() -> ClusterStore:
    """The store ``EXOSPHERE_CLUSTERS_DIR`` names (the Deployment's settings)."""
    return open_store(Deployment.load().settings.clusters_dir)


def build_definitions(
    folder: str | Path | ClusterStore | None = None, builds: ClusterBuilds | None = None
) -> Definitions:
    """Every cluster of a store (a folder path, an s3:// URL, a store; default the settings').
    A deployment or store that cannot be used is one ``invalid__`` job with its errors.
    ``builds``: clusters kept from an earlier build in this process (``clusters_definitions``)."""
    try:
        store = _opened(folder)
    except (DeploymentError, StoreError) as exc:
        return _unusable_deployment(exc)
    catalog = _catalog(store)
    return clusters_definitions(
        catalog.plans,
        catalog.broken,
        catalog.registry,
        resources={STORE_RESOURCE: ClustersStore(url=store.url)},
        executions=catalog.executions,
        builds=builds,
    )


def job_names(folder: str | Path | ClusterStore | None = None) -> list[str]:
    """The names of the jobs ``build_definitions(folder)`` makes, from the loaded and resolved
    plans alone: no job is built (location.py). The identity rule names every job of a plan
    (yaml_loader.identity.claims) and every broken file's stand-in."""
    try:
        store = _opened(folder)
    except (DeploymentError, StoreError) as exc:
        return list(_unusable_deployment(exc).get_repository_def().job_names)
    catalog = _catalog(store)
    owners = owners_of(catalog.plans)
    jobs = [name for namespace, name in owners if namespace == "job"]
    jobs += invalid_job_names(list(catalog.broken), owners).values()
    return jobs + ([IMPLICIT_ASSET_JOB_NAME] if catalog.plans else [])  # their satellites' assets


def _opened(folder: str | Path | ClusterStore | None) -> ClusterStore:
    store = (
        folder
        if isinstance(folder, ClusterStore)
        else open_store(folder or Deployment.load().settings.clusters_dir)
    )
    Deployment.load()  # its problems are the location's, shown before any cluster's
    return store


def _catalog(store: ClusterStore) -> Catalog:
    """The store's plans and broken files, as the location shows them."""
    local = store.local_folder()
    if not local.exists():
        logger.warning(
            "cluster folder %s does not exist: no clusters loaded (set %s)",
            local,
            CLUSTERS_DIR_ENV,
        )
    catalog = load_catalog([local] if local.exists() else [], shown_as=store.shown_as)
    if store.problem:  # an S3 store never mirrored and unreachable now
        catalog.broken[store.url] = [ConfigError(store.url, 1, 1, (), store.problem)]
    return catalog


def clusters_definitions(
    plans: list[ClusterPlan],
    broken: dict[str, list[ConfigError]],
    registry: SatelliteRegistry,
    *,
    resources: dict[str, Any] | None = None,
    deadlines: SensorDefinition | None = None,
    breach_sensor: str = BREACH_SENSOR,
    places: bool = True,
    executions: Mapping[str, ExecutionPlan] | None = None,
    builds: ClusterBuilds | None = None,
) -> Definitions:
    """Planned clusters and broken files as ``Definitions``: what the code location serves, and
    what a Dagster component builds (``exosphere_dagster.components``), which names its own
    ``deadlines`` and ``breach_sensor`` sensors so that components merge, and may leave out the
    specs of external places (``places=False``: two components naming one place would define
    it twice; the satellites still depend on the places they read). ``executions`` (by job name)
    are plans the caller already resolved (``Catalog.executions``): not resolved again.
    ``builds`` gives back clusters built before whose plan has not changed (a code server's
    rebuild in place: translate/built_clusters.py) and keeps the ones built now."""
    jobs: list[JobDefinition] = []
    triggers = []
    alerts: list[JobDefinition] = []  # SLA-breach alert jobs (docs/sla.md)
    assets = []  # satellites and the places they name, for the catalog (lineage.py)
    broken = dict(broken)
    deployment = Deployment.load()
    for cluster in plans:
        try:
            built = _build(cluster, deployment, registry, executions or {}, builds, log=True)
        except ConfigErrors as exc:  # this file only: the others still load
            broken[cluster.file] = exc.errors
            continue
        job, *alert = built.jobs
        jobs.append(job)
        assets.extend(built.assets)
        triggers.extend(built.triggers)
        alerts.extend(alert)
    if builds is not None:
        builds.forget_others(job.name for job in jobs)
    jobs.extend(alerts)
    stand_ins = invalid_job_names(list(broken), owners_of(plans))  # unique, never a cluster's
    jobs.extend(_broken_file_job(file, errs, stand_ins[file]) for file, errs in broken.items())
    schedules = [t for t in triggers if isinstance(t, ScheduleDefinition)]
    sensors = [t for t in triggers if not isinstance(t, ScheduleDefinition)]
    timing = deployment.settings
    sensors.append(deadlines or deadline_sensor(interval=timing.deadline_interval))
    if alerts:
        sensors.append(
            sla_breach_sensor(alerts, name=breach_sensor, interval=timing.sla_sensor_interval)
        )
    specs = merge_asset_specs(assets)
    return Definitions(
        assets=specs if places else [s for s in specs if s.key.path[0] != EXTERNAL],
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources=resources or {},
    )


def build_errors(catalog: Catalog) -> dict[str, list[ConfigError]]:
    """The catalog's files whose clusters the code location could not build, with why:
    ``exosphere validate`` refuses what the location would show as ``invalid__``."""
    deployment = Deployment.load()
    errors = {}
    for cluster in catalog.plans:
        try:
            _build(cluster, deployment, catalog.registry, catalog.executions, None, log=False)
        except ConfigErrors as exc:
            errors[cluster.file] = exc.errors
    return errors


def _build(
    cluster: ClusterPlan,
    deployment: Deployment,
    registry: SatelliteRegistry,
    executions: Mapping[str, ExecutionPlan],
    builds: ClusterBuilds | None,
    *,
    log: bool,
) -> BuiltCluster:
    """One cluster's jobs, triggers and assets. Whatever stops them is raised as the file's
    ``ConfigErrors``, an unexpected exception too (a bug, in exosphere or in a satellite's
    config model): one cluster never takes the location down. ``log``: its traceback, for the
    code location's log (``exosphere validate`` prints the error alone)."""
    try:
        execution = executions.get(cluster.job_name) or resolve(cluster, deployment, registry)
        if builds is not None:
            return builds.get_or_build(execution, deployment, registry, _built)
        return _built(execution, deployment, registry, file_hash(execution.plan.file))
    except ConfigErrors:
        raise
    except Exception as exc:
        if log:
            logger.exception("%s: the cluster's Dagster job could not be built", cluster.file)
        raise ConfigErrors([unbuildable(cluster.file, exc, logged=log)]) from None


def _built(
    execution: ExecutionPlan,
    deployment: Deployment,
    registry: SatelliteRegistry,
    digest: str | None,  # the file's, read before the build: a later edit makes it again
) -> BuiltCluster:
    jobs = execution_jobs(execution, registry, deployment)
    return BuiltCluster(
        execution=execution,
        deployment=deployment,
        registry=registry,
        file_digest=digest,
        jobs=jobs,
        triggers=build_triggers(execution, jobs[0]),
        assets=cluster_asset_specs(execution.plan, registry),
    )


def cluster_jobs(cluster: ClusterPlan, registry: SatelliteRegistry) -> list[JobDefinition]:
    """The cluster's job, then its SLA-breach alert job if it has one: what the folder holds for
    it, and what a step process builds alone (location.py), so the two never differ."""
    return execution_jobs(resolve(cluster, Deployment.load(), registry), registry)


def execution_jobs(
    execution: ExecutionPlan, registry: SatelliteRegistry, deployment: Deployment | None = None
) -> list[JobDefinition]:
    """The jobs of a resolved cluster (``cluster_jobs``), under ``deployment`` (default: the
    process's)."""
    deployment = deployment or Deployment.load()  # cached per process
    job = job_for(execution, registry, deployment)
    alert = build_breach_job(execution, registry, deployment)
    return [job, *([alert] if alert is not None else [])]


def _unusable_deployment(exc: DeploymentError | StoreError) -> Definitions:
    """The location when its deployment cannot be loaded: one job that shows why."""
    errors = getattr(exc, "errors", None) or [ConfigError("deployment", 1, 1, (), str(exc))]
    logger.error("the deployment cannot be used; no cluster is loaded:\n%s", exc)
    [name] = invalid_job_names(["deployment"], {}).values()
    what = "The deployment cannot be used (fix it and reload the location); no cluster is loaded"
    return Definitions(jobs=[_broken_file_job("the deployment", list(errors), name, what)])


def _broken_file_job(
    file: str, errors: list[ConfigError], name: str, what: str | None = None
) -> JobDefinition:
    """A visible stand-in for a file that failed to load, named ``name`` (yaml_loader.identity
    makes it unique): its description lists the errors."""
    text = "\n".join(str(e) for e in errors)
    what = what or (
        "A satellite plugin cannot be imported; clusters that use its satellites are skipped"
        if file == PLUGINS
        else "This cluster file failed to load and was skipped"
    )

    def compute(context, inputs):
        raise Failure(description=f"{file} failed to load:\n{text}")
        yield Output(None)  # pragma: no cover - makes this a generator

    op = OpDefinition(
        compute_fn=compute,
        name=definition_name(name, REPORT_NODE),
        description="Fails with the file's errors.",
    )
    return GraphDefinition(name=name, node_defs=[op]).to_job(
        description=f"{what}:\n\n```\n{text}\n```",
        tags={"exosphere/invalid": "true"},
        metadata={"cluster file": file, "errors": text},
    )


_OPENED: list[ClusterStore] = []  # the store, opened on first use (never at import)
_OPEN_LOCK = threading.Lock()


def _store() -> ClusterStore:
    with _OPEN_LOCK:
        if not _OPENED:
            _OPENED.append(clusters_store())
        return _OPENED[0]


def _local_folder() -> Path:
    """The store's local folder; an unusable deployment has none (a step then builds the
    location, which shows why)."""
    try:
        return _store().local_folder()
    except (DeploymentError, StoreError):
        return Path("<no clusters store: the deployment cannot be used>")


_BUILDS = ClusterBuilds()  # what this process built, for a rebuild in place (code_server.py)


def _build_location(_folder: Path) -> Definitions:
    try:
        store = _store()
    except (DeploymentError, StoreError) as exc:
        return _unusable_deployment(exc)
    _BUILDS.start()
    return build_definitions(store, builds=_BUILDS)


def _location_job_names(_folder: Path) -> list[str]:
    try:
        store = _store()
    except (DeploymentError, StoreError) as exc:
        return list(_unusable_deployment(exc).get_repository_def().job_names)
    return job_names(store)


def _location() -> RepositoryDefinition:
    return lazy_repository(_local_folder, _build_location, cluster_jobs, _location_job_names)


defs = _location()


def location_token() -> object:
    """What the location is built from, as a value that changes when it does: the store's
    listing (file times and sizes, or an S3 prefix's ETags) and the deployment (read again when a
    variable or a file it reads changed). Never raises: a failure is part of the value."""
    try:
        deployment = Deployment.load()
    except DeploymentError as exc:
        return str(exc), str(exc)
    try:
        listing = open_store(deployment.settings.clusters_dir).token()
    except StoreError as exc:
        listing = str(exc)
    return listing, deployment


def rebuilt_location() -> RepositoryDefinition:
    """The location built again in this process (a code server's reload in place): the store
    opened afresh (an S3 prefix mirrored again), unchanged clusters given back as they were."""
    with _OPEN_LOCK:
        _OPENED.clear()
    repository = _location()
    repository.load_all_definitions()
    return repository


def last_rebuild() -> str:
    return f"{_BUILDS.built} cluster(s) built, {_BUILDS.reused} unchanged"


__all__ = ["defs", "build_definitions", "clusters_definitions", "job_names"]
