"""``exosphere_dagster.ClusterComponent``: one cluster as a Dagster component.

In ``defs.yaml`` the cluster is either a file beside it (``attributes: {file: cluster.yaml}``,
a ``.py`` file that builds clusters too) or written inline (``attributes:`` holds ``version``
and ``cluster`` as a cluster file does). It builds what the code location builds for that
cluster (``definitions.clusters_definitions``): the job and its SLA alert job, its schedule or
sensor, the deadline and SLA-breach sensors, and the lineage assets. A cluster that does not
load stops the component with every error as ``file:line:col: key.path: message``, which is
what ``dg check defs`` prints."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import Definitions
from dagster._core.errors import DagsterError
from dagster.components import Component, ComponentLoadContext, scaffold_with

from exosphere_dagster.components.attributes import (
    ClusterAttributes,
    load_inline,
    under_attributes,
)
from exosphere_dagster.components.scaffold import ClusterScaffolder
from exosphere_dagster.definitions import clusters_definitions
from exosphere_dagster.resolve.catalog import load_catalog, usable_registry
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.translate.scheduling.breach_job import SENSOR_NAME as BREACH_SENSOR
from exosphere_dagster.translate.scheduling.deadlines import SENSOR_NAME as DEADLINE_SENSOR
from exosphere_dagster.translate.scheduling.deadlines import deadline_sensor
from satellite_ops.registry import SatelliteRegistry
from yaml_loader import ClusterPlan, ConfigError, ConfigErrors, plan


class ClusterLoadError(DagsterError):
    """A cluster of a component failed to load: the message lists every located error."""


def component_sensors(key: str) -> dict[str, Any]:
    """The component's own deadline and SLA-breach sensors, named after ``key``: Dagster copies
    each component's definitions (adding its code references), so components cannot share one
    sensor object; each breach sensor watches its own alert jobs, and the deadline sensors do the
    same idempotent work (stamp a deadline where none is, raise a queued run's priority)."""
    suffix = "__" + re.sub(r"[^A-Za-z0-9_]", "_", key)
    interval = Deployment.load().settings.deadline_interval
    deadlines = deadline_sensor(DEADLINE_SENSOR + suffix, interval)
    return {"deadlines": deadlines, "breach_sensor": BREACH_SENSOR + suffix}


def load_error(errors: list[ConfigError], what: str) -> ClusterLoadError:
    text = "\n".join(str(e) for e in errors)
    return ClusterLoadError(f"{what} does not load:\n{text}")


@scaffold_with(ClusterScaffolder)
@dataclass(frozen=True)
class ClusterComponent(Component):
    """One exosphere cluster: its job, triggers, SLA sensors and satellite assets.

    ``attributes``: ``file`` (a cluster file beside defs.yaml) or the cluster inline
    (``version`` and ``cluster``)."""

    file: Path | None = None
    defs_yaml: str | None = None  # where an inline cluster is written
    line: int = 0  # the line of its `attributes:` key in defs_yaml

    @classmethod
    def get_model_cls(cls) -> type[ClusterAttributes]:
        return ClusterAttributes

    @classmethod
    def load(cls, attributes: Any, context: ComponentLoadContext) -> ClusterComponent:
        if attributes is None or not isinstance(attributes, ClusterAttributes):
            raise ClusterLoadError(
                f"{context.path}: attributes: expected 'file' or an inline cluster "
                "('version' and 'cluster'); hint: see `dg scaffold defs exosphere_dagster."
                "ClusterComponent <path>`"
            )
        if attributes.file is not None:
            return cls(file=(context.path / attributes.file))
        tree = context.resolution_context.source_position_tree
        node = tree.children["attributes"] if tree is not None else None
        if node is None:  # built in Python: no defs.yaml to point at
            raise ClusterLoadError("an inline cluster needs its defs.yaml (use 'file' in Python)")
        return cls(defs_yaml=node.position.filename, line=node.position.start.line)

    def plans(self) -> list[ClusterPlan]:
        """The component's clusters, planned; ClusterLoadError lists every problem."""
        return self._planned()[0]

    def _planned(self) -> tuple[list[ClusterPlan], SatelliteRegistry]:
        registry, problem = usable_registry()  # a broken plugin is this cluster's problem only
        extra = [problem] if problem else []  # if it uses that plugin's satellites
        if self.file is not None:
            if self.file.is_dir():  # load_catalog would read every file in it, or none
                raise ClusterLoadError(
                    f"{self.file}: 'file' names a folder, expected one cluster file; hint: "
                    "for a folder of clusters use exosphere_dagster.ClusterFolderComponent"
                )
            catalog = load_catalog([self.file], registry, log=False)
            if catalog.broken:
                raise load_error(catalog.errors + extra, str(self.file))
            return catalog.plans, registry
        if self.defs_yaml is None:
            raise ClusterLoadError("ClusterComponent needs a 'file' or an inline cluster")
        what = f"the cluster in {self.defs_yaml}"
        try:
            loaded = load_inline(self.defs_yaml, self.line)
        except ConfigErrors as exc:
            raise load_error(exc.errors, what) from None
        try:
            return [plan(loaded, registry)], registry
        except ConfigErrors as exc:
            raise load_error([under_attributes(e) for e in exc.errors] + extra, what) from None

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        plans, registry = self._planned()
        return clusters_definitions(
            plans,
            {},
            registry,
            **component_sensors("__".join(p.job_name for p in plans)),
            places=False,
        )
