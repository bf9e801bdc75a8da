"""A folder of cluster files -> plans, with each broken file reported and skipped.

Files named on a command line may also be Python files that build clusters
(``yaml_loader.load_python_clusters``): each of their clusters is planned like a YAML file, and
its YAML (``Cluster.to_yaml()``) kept, which is what ``exosphere clusters apply`` stores.

YAML files are planned through the plan cache (plan_cache.py) when the deployment's settings
keep it on: a file planned before, unchanged, under the same code and satellites, is read back
instead of planned again. Python files are code and always run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from exosphere_dagster.errors import DeploymentError
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import ExecutionPlan
from exosphere_dagster.resolve.plan_cache import PlanCache, open_plan_cache
from exosphere_dagster.resolve.resolve import resolve
from satellite_ops.errors import RegistryError, SatelliteImportError
from satellite_ops.registry import SatelliteRegistry, builtin_modules, default_registry
from yaml_loader import ClusterPlan, ConfigError, ConfigErrors, load, plan
from yaml_loader.identity import check_folder
from yaml_loader.load import find_cluster_files, missing_file_error, utf8_name

logger = logging.getLogger("exosphere")
PYTHON_SUFFIX = ".py"
PLUGINS = "<satellite plugins>"  # where a plugin module that cannot be imported is reported


@dataclass
class Catalog:
    plans: list[ClusterPlan] = field(default_factory=list)
    broken: dict[str, list[ConfigError]] = field(default_factory=dict)  # file -> its errors
    generated: dict[str, str] = field(default_factory=dict)  # job name -> YAML of a .py cluster
    executions: dict[str, ExecutionPlan] = field(default_factory=dict)  # job name -> resolved
    from_cache: int = 0  # YAML files whose plan (or errors) the plan cache gave back
    registry: SatelliteRegistry = field(default_factory=SatelliteRegistry)  # plans made with

    @property
    def errors(self) -> list[ConfigError]:
        return [e for errs in self.broken.values() for e in errs]


def builtin_registry() -> SatelliteRegistry:
    """Only the built-in satellites: what files are checked against when a plugin is broken."""
    registry = SatelliteRegistry()
    registry.load_modules(builtin_modules(), source="built-in satellites")
    return registry


def registry_with_plugins() -> SatelliteRegistry:
    """The default registry, with plugin modules (re)read from the environment."""
    registry = default_registry()
    registry.load_plugins()
    return registry


def usable_registry() -> tuple[SatelliteRegistry, ConfigError | None]:
    """The registry with plugins; when a plugin module cannot be imported, the built-in
    satellites and every plugin that can be, and the problem, located at ``<satellite
    plugins>``: one broken plugin never takes down the clusters that do not use it."""
    try:
        return registry_with_plugins(), None
    except RegistryError as exc:
        registry = builtin_registry()
        problems: list[SatelliteImportError] = []
        registry.load_plugins(problems=problems)
        text = "\n".join(str(problem) for problem in problems) or str(exc)
        return registry, ConfigError(PLUGINS, 1, 1, (), text)


def plan_file(path: str | Path) -> tuple[ClusterPlan, SatelliteRegistry]:
    """One cluster file planned (a process that runs or resolves one cluster), and the registry
    it was planned with. A plugin that cannot be imported is among the errors it raises."""
    registry, problem = usable_registry()
    try:
        return plan(load(path), registry), registry
    except ConfigErrors as exc:
        raise ConfigErrors([*exc.errors, problem] if problem else exc.errors) from None


def _python_plans(
    path: Path, registry: SatelliteRegistry, generated: dict[str, str]
) -> list[ClusterPlan]:
    """Every cluster a Python file defines, planned; all their errors together."""
    from yaml_loader import load_python_clusters

    clusters = load_python_clusters(path)
    if not clusters:
        raise ConfigErrors(
            [
                ConfigError(
                    str(path),
                    1,
                    1,
                    (),
                    "the file defines no cluster",
                    hint="assign a Cluster(...) (or a list of them) to a module-level name; "
                    "Dagster jobs and Definitions in the file are not read by exosphere",
                )
            ]
        )
    plans, errors = [], []
    for cluster in clusters:
        try:
            planned = cluster.plan(registry)
            generated[planned.job_name] = cluster.to_yaml()
            plans.append(planned)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise ConfigErrors(errors)
    return plans


def load_catalog(
    paths: list[str | Path],
    registry: SatelliteRegistry | None = None,
    *,
    log: bool = True,
    shown_as: Callable[[str], str] | None = None,
    deployment: Deployment | None = None,
) -> Catalog:
    """Load every cluster file under ``paths``; one bad file never stops the others. Each plan
    is resolved under ``deployment`` (default: ``Deployment.load()``); a plan that cannot be
    (a satellite's resources) is reported with its file and skipped.

    ``shown_as`` renames a loaded file in errors (a mirrored S3 object shows as its s3:// URL).
    """
    catalog = Catalog()
    if registry is None:
        registry, problem = usable_registry()
        if problem is not None:
            catalog.broken[PLUGINS] = [problem]
    catalog.registry = registry
    deployment = _deployment(deployment)
    cache = open_plan_cache(deployment, registry) if deployment else None
    files: list[tuple[str, list[ClusterPlan]]] = []
    for path in find_cluster_files(list(paths)):
        shown = shown_as(str(path)) if shown_as else str(path)
        if not utf8_name(path):  # Dagster keeps names as UTF-8 text: it would fail every run
            printable = os.fsencode(shown).decode("utf-8", "backslashreplace")
            catalog.broken[printable] = [
                ConfigError(
                    printable,
                    1,
                    1,
                    (),
                    "the file's name is not valid UTF-8",
                    hint="rename the file (names are kept as UTF-8 text)",
                )
            ]
            continue
        if not path.exists():
            catalog.broken[shown] = [missing_file_error(path)]
            continue
        try:
            if path.suffix == PYTHON_SUFFIX:
                planned = _python_plans(path, registry, catalog.generated)
            else:
                planned = [_planned(path, registry, cache)]
        except ConfigErrors as exc:
            catalog.broken[shown] = _renamed(exc.errors, str(path), shown)
            continue
        files.append((shown, planned))
    if cache is not None:
        catalog.from_cache = cache.hits
        cache.remember()
        cache.prune()
    identity = check_folder(files, catalog.broken)  # names Dagster would see twice: yaml_loader
    for file, errors in identity.errors.items():
        catalog.broken.setdefault(file, []).extend(errors)
    catalog.plans = _resolved(catalog, identity.plans, registry, deployment, shown_as)
    for file, errors in catalog.broken.items() if log else ():
        logger.error("skipping %s:\n%s", file, "\n".join(str(e) for e in errors))
    return catalog


def _deployment(given: Deployment | None) -> Deployment | None:
    """``given``, else the process's; ``None`` when it cannot be loaded: its own error is the
    deployment's (``exosphere validate`` reports it), not the clusters'."""
    if given is not None:
        return given
    try:
        return Deployment.load()
    except DeploymentError as exc:
        logger.error("the deployment cannot be loaded; clusters are not resolved:\n%s", exc)
        return None


def _planned(path: Path, registry: SatelliteRegistry, cache: PlanCache | None) -> ClusterPlan:
    return cache.planned(path) if cache is not None else plan(load(path), registry)


def _resolved(
    catalog: Catalog,
    plans: list[ClusterPlan],
    registry: SatelliteRegistry,
    deployment: Deployment | None,
    shown_as: Callable[[str], str] | None,
) -> list[ClusterPlan]:
    """The plans that resolve, their ExecutionPlans in ``catalog.executions``; the others'
    errors in ``catalog.broken``. Without a deployment (it cannot be loaded) nothing is
    resolved."""
    if deployment is None:
        return plans
    kept = []
    for planned in plans:
        try:
            catalog.executions[planned.job_name] = resolve(planned, deployment, registry)
        except ConfigErrors as exc:
            shown = shown_as(planned.file) if shown_as else planned.file
            catalog.broken.setdefault(shown, []).extend(_renamed(exc.errors, planned.file, shown))
            continue
        kept.append(planned)
    return kept


def _renamed(errors: list[ConfigError], file: str, shown: str) -> list[ConfigError]:
    if file == shown:
        return errors
    return [dataclasses.replace(e, file=shown) if e.file == file else e for e in errors]
