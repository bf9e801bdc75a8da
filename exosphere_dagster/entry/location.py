"""The code location's repository, built lazily: a process that asks for one job builds only
that cluster; anything else (listing jobs, schedules, sensors, assets) builds the folder.

Run workers and step processes reconstruct their job by name through the code location
(``exosphere_dagster.definitions:defs``). Building every cluster of the folder there cost about
8 ms per cluster in every step; here a step reads the folder's files only to find the one that
names its job, then loads and builds that file alone. Which file owns a job name follows the
folder's own rule (the first file, in folder order, that loads and carries the identifier), so
the job a step builds is the one the UI listed. Anything the quick path cannot settle (a broken
file's placeholder job, a name no file carries) falls back to building the whole folder, where
one broken file still never hides the others.

Listing the job names alone does not build the folder either: ``job_names`` gives them from the
loaded and planned files (the identity rule names every job a plan makes). That is all
``dagster job execute -j NAME`` asks before it runs NAME (it checks the name against
``RepositoryDefinition.job_names``), so a run from the command line builds its own job only.

The folder may be given as a callable (the clusters store's ``local_folder``): it is asked for
on first need, so importing the code location reads nothing (an S3 store is mirrored then).

The pattern is the one Dagster documents for ``RepositoryData`` subclasses (jobs built from
YAML files on demand).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import Definitions, JobDefinition, RepositoryData, RepositoryDefinition, repository
from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME

from exosphere_dagster.resolve.catalog import usable_registry
from exosphere_dagster.translate.scheduling.breach_job import breach_job_name
from satellite_ops.registry import SatelliteRegistry
from yaml_loader import ClusterPlan, ConfigErrors, load, plan
from yaml_loader.load import find_cluster_files, utf8_name

BREACH_SUFFIX = breach_job_name("")  # "<job>__sla_breach"
ClusterJobs = Callable[[ClusterPlan, SatelliteRegistry], list[JobDefinition]]
JobNames = Callable[[Path], Sequence[str]]
logger = logging.getLogger("exosphere")


def _name_pattern(names: set[str]) -> re.Pattern[str]:
    """A job name inside a file's text once ``-`` -> ``_`` and ``/`` -> ``__`` (the job naming
    rule applied to the whole text), with or without the ``cluster/`` prefix."""
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9_])(?:cluster__)?(?:{alternatives})(?![A-Za-z0-9_])")


def candidate_files(folder: Path, names: set[str]) -> Iterator[Path]:
    """The folder's cluster files, in folder order, whose text may carry one of ``names`` as
    identifier. A file can only own a job if it does (identifiers are plain YAML scalars of
    letters, digits, ``-``, ``_`` and ``/``), so nothing is missed; a mention elsewhere in a
    file is sorted out by loading it."""
    pattern = _name_pattern(names)
    for path in find_cluster_files([folder]):
        if not utf8_name(path):  # refused by the location (resolve/catalog.py): never an owner
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        text = text.replace("-", "_").replace("/", "__")
        if any(name in text for name in names) and pattern.search(text):  # `in` is the fast test
            yield path


def find_job(folder: Path, name: str, cluster_jobs: ClusterJobs) -> JobDefinition | None:
    """The job called ``name``, built from the one file that owns it; None when only the
    whole folder can tell (then the caller builds it)."""
    owner = name.removesuffix(BREACH_SUFFIX)
    registry, _problem = usable_registry()  # a plugin's problem: the folder build shows it
    for path in candidate_files(folder, {name, owner}):
        try:
            cluster = plan(load(path), registry)
        except ConfigErrors:
            continue  # broken: not the owner (the folder build shows it as invalid__...)
        if cluster.job_name not in (name, owner):
            continue
        return next((j for j in cluster_jobs(cluster, registry) if j.name == name), None)
    return None


Folder = Path | Callable[[], Path]


class ClusterRepositoryData(RepositoryData):
    """Every cluster of ``folder``: ``build_all(folder)`` on first need, except for a job asked
    for by name before that, which ``find_job`` builds alone, and for the job names, which
    ``job_names`` (when given) reads from the plans without building a job (module docstring)."""

    def __init__(
        self,
        folder: Folder,
        build_all: Callable[[Path], Definitions],
        cluster_jobs: ClusterJobs,
        job_names: JobNames | None = None,
    ) -> None:
        self._folder = folder
        self._build_all = build_all
        self._cluster_jobs = cluster_jobs
        self._job_names = job_names
        self._names: Sequence[str] | None = None
        self._full: RepositoryData | None = None
        self._alone: dict[str, JobDefinition | None] = {}
        self._lock = threading.RLock()

    @property
    def folder(self) -> Path:
        return Path(self._folder() if callable(self._folder) else self._folder)

    @property
    def full(self) -> RepositoryData:
        with self._lock:
            if self._full is None:
                repo = self._build_all(self.folder).get_repository_def()
                self._full = repo._repository_data  # Definitions' own (caching) data
            return self._full

    def _job_alone(self, name: str) -> JobDefinition | None:
        with self._lock:
            if self._full is not None:
                return None
            if name not in self._alone:
                try:
                    self._alone[name] = find_job(self.folder, name, self._cluster_jobs)
                except Exception as exc:  # e.g. a plugin that fails to import: the folder
                    logger.debug("job %s not built alone (%s): building the folder", name, exc)
                    self._alone[name] = None
            return self._alone[name]

    def get_job(self, job_name: str) -> JobDefinition:
        return self._job_alone(job_name) or self.full.get_job(job_name)

    def has_job(self, job_name: str) -> bool:
        return self._job_alone(job_name) is not None or self.full.has_job(job_name)

    def get_all_jobs(self) -> Sequence[JobDefinition]:
        return self.full.get_all_jobs()

    def get_job_names(self) -> Sequence[str]:
        with self._lock:
            if self._full is not None or self._job_names is None:
                return self.full.get_job_names()
            if self._names is None:
                self._names = list(self._job_names(self.folder))
            return self._names

    def get_top_level_resources(self) -> Mapping[str, Any]:
        return self.full.get_top_level_resources()

    def get_env_vars_by_top_level_resource(self) -> Mapping[str, Any]:
        return self.full.get_env_vars_by_top_level_resource()

    def get_all_schedules(self) -> Sequence[Any]:
        return self.full.get_all_schedules()

    def get_schedule_names(self) -> Sequence[str]:
        return self.full.get_schedule_names()

    def get_schedule(self, schedule_name: str) -> Any:
        return self.full.get_schedule(schedule_name)

    def has_schedule(self, schedule_name: str) -> bool:
        return self.full.has_schedule(schedule_name)

    def get_all_sensors(self) -> Sequence[Any]:
        return self.full.get_all_sensors()

    def get_sensor_names(self) -> Sequence[str]:
        return self.full.get_sensor_names()

    def get_sensor(self, sensor_name: str) -> Any:
        return self.full.get_sensor(sensor_name)

    def has_sensor(self, sensor_name: str) -> bool:
        return self.full.has_sensor(sensor_name)

    def get_source_assets_by_key(self) -> Mapping[Any, Any]:
        return self.full.get_source_assets_by_key()

    def get_assets_defs_by_key(self) -> Mapping[Any, Any]:
        return self.full.get_assets_defs_by_key()

    def get_asset_checks_defs_by_key(self) -> Mapping[Any, Any]:
        return self.full.get_asset_checks_defs_by_key()

    def get_component_tree(self) -> Any:
        return self.full.get_component_tree()

    def get_asset_job_nodes(self) -> Sequence[Any]:
        return self.full.get_asset_job_nodes()


def lazy_repository(
    folder: Folder,
    build_all: Callable[[Path], Definitions],
    cluster_jobs: ClusterJobs,
    job_names: JobNames | None = None,
) -> RepositoryDefinition:
    """The code location's repository, under the name ``Definitions`` would give it (so run
    origins and UI addresses stay the same)."""

    @repository(name=SINGLETON_REPOSITORY_NAME)
    def clusters() -> RepositoryData:
        return ClusterRepositoryData(folder, build_all, cluster_jobs, job_names)

    return clusters
