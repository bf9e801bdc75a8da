"""A folder of cluster files -> plans, with each broken file reported and skipped."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
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
    paths: list[str | Path], registry: SatelliteRegistry | None = None, *, log: bool = True
) -> Catalog:
    """Load every cluster file under ``paths``; one bad file never stops the others."""
    catalog = Catalog()
    try:
        registry = registry or registry_with_plugins()
    except RegistryError as exc:
        catalog.broken["<satellite plugins>"] = [
            ConfigError("<satellite plugins>", 1, 1, (), str(exc))
        ]
        registry = default_registry()
    owners: dict[str, str] = {}
    for path in find_cluster_files(list(paths)):
        if not path.exists():
            catalog.broken[str(path)] = [missing_file_error(path)]
            continue
        try:
            cluster = plan(load(path), registry)
        except ConfigErrors as exc:
            catalog.broken[str(path)] = exc.errors
            continue
        if cluster.job_name in owners:
            catalog.broken[str(path)] = [
                ConfigError(
                    str(path),
                    1,
                    1,
                    ("cluster", "identifier"),
                    f"cluster '{cluster.identifier}' is already defined in {owners[cluster.job_name]}",
                    hint="cluster identifiers must be unique across the folder",
                )
            ]
            continue
        owners[cluster.job_name] = str(path)
        catalog.plans.append(cluster)
    for file, errors in catalog.broken.items() if log else ():
        logger.error("skipping %s:\n%s", file, "\n".join(str(e) for e in errors))
    return catalog
