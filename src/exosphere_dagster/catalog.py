"""A folder of cluster files -> plans, with each broken file reported and skipped."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from satellite_ops.errors import RegistryError
from satellite_ops.registry import SatelliteRegistry, default_registry
from yaml_loader import ClusterPlan, ConfigError, ConfigErrors, load, plan
from yaml_loader.load import find_cluster_files, missing_file_error

logger = logging.getLogger("exosphere")


@dataclass
class Catalog:
    plans: list[ClusterPlan] = field(default_factory=list)
    broken: dict[str, list[ConfigError]] = field(default_factory=dict)  # file -> its errors

    @property
    def errors(self) -> list[ConfigError]:
        return [e for errs in self.broken.values() for e in errs]


def registry_with_plugins() -> SatelliteRegistry:
    """The default registry, with plugin modules (re)read from the environment."""
    registry = default_registry()
    registry.load_plugins()
    return registry


def load_catalog(
    paths: list[str | Path],
    registry: SatelliteRegistry | None = None,
    *,
    log: bool = True,
    display: Callable[[str], str] | None = None,
) -> Catalog:
    """Load every cluster file under ``paths``; one bad file never stops the others.

    ``display`` names a file as its user knows it (``s3://bucket/prefix/x.yml`` for a file of a
    mirrored S3 store, cluster_store.py): errors and the ``broken`` keys carry that name."""
    catalog = Catalog()
    shown = display or str
    try:
        registry = registry or registry_with_plugins()
    except RegistryError as exc:
        catalog.broken["<satellite plugins>"] = [
            ConfigError("<satellite plugins>", 1, 1, (), str(exc))
        ]
        registry = default_registry()
    owners: dict[str, str] = {}
    for path in find_cluster_files(list(paths)):
        name = shown(str(path))
        if not path.exists():
            catalog.broken[name] = [missing_file_error(path)]
            continue
        try:
            cluster = plan(load(path), registry)
        except ConfigErrors as exc:
            catalog.broken[name] = [
                replace(e, file=shown(e.file)) if display else e for e in exc.errors
            ]
            continue
        if cluster.job_name in owners:
            catalog.broken[name] = [
                ConfigError(
                    name,
                    1,
                    1,
                    ("cluster", "identifier"),
                    f"cluster '{cluster.identifier}' is already defined in {owners[cluster.job_name]}",
                    hint="cluster identifiers must be unique across the folder",
                )
            ]
            continue
        owners[cluster.job_name] = name
        catalog.plans.append(cluster)
    for file, errors in catalog.broken.items() if log else ():
        logger.error("skipping %s:\n%s", file, "\n".join(str(e) for e in errors))
    return catalog
