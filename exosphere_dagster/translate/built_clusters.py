"""What one cluster adds to the code location (its jobs, schedule or sensor, and asset specs),
kept between rebuilds of the location in one process, so that a reload after one file changed
builds that file's cluster only.

A long-lived code server (entry/code_server.py) rebuilds the location in place. Building a
cluster's jobs is most of a rebuild (about 20 ms a cluster, then about as much again for Dagster
to snapshot each new job); a cluster whose resolved plan is equal to the last one, under the same
deployment and satellite registry, gets back the very objects it had, and Dagster's per-job
snapshot (cached on each ``JobDefinition``) comes with them. Anything else is built afresh;
a cluster whose build raises is its file's error (``unbuildable``), never the location's.
"""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from exosphere_dagster.resolve.content import file_hash
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import ExecutionPlan
from satellite_ops.registry import SatelliteRegistry
from yaml_loader import ConfigError


@dataclass(frozen=True)
class BuiltCluster:
    """A cluster's part of the location; ``jobs[0]`` is its job, then its SLA-breach job.
    ``file_digest``: the hash of the cluster file's bytes when it was built (the job carries it:
    an edit that plans the same, a comment, still makes a new job)."""

    execution: ExecutionPlan
    deployment: Deployment
    registry: SatelliteRegistry
    file_digest: str | None
    jobs: list[Any]  # JobDefinition
    triggers: list[Any]  # ScheduleDefinition | SensorDefinition
    assets: list[Any]  # AssetSpec

    def made_from(
        self,
        execution: ExecutionPlan,
        deployment: Deployment,
        registry: SatelliteRegistry,
        file_digest: str | None,
    ) -> bool:
        return (
            (self.registry is registry or self.registry.same_as(registry))
            and self.file_digest == file_digest
            and self.deployment == deployment
            and (self.execution is execution or self.execution == execution)
        )


class ClusterBuilds:
    """Built clusters by job name, for one process's rebuilds of one location. ``forget_others``
    after each rebuild drops the clusters it no longer has, so it holds what the location holds."""

    def __init__(self) -> None:
        self._built: dict[str, BuiltCluster] = {}
        self._lock = threading.Lock()
        self.reused = 0  # clusters given back by the last rebuild (what a reload saved)
        self.built = 0  # clusters built by it

    def get_or_build(
        self,
        execution: ExecutionPlan,
        deployment: Deployment,
        registry: SatelliteRegistry,
        build: Callable[[ExecutionPlan, Deployment, SatelliteRegistry, str | None], BuiltCluster],
    ) -> BuiltCluster:
        """The cluster as built last time if its file's bytes, plan, deployment and registry
        are the same; else ``build(execution, deployment, registry, digest)`` (the bytes'
        hash read here), kept for next time."""
        name = execution.plan.job_name
        with self._lock:
            found = self._built.get(name)
        digest = file_hash(execution.plan.file)
        if found is not None and found.made_from(execution, deployment, registry, digest):
            self.reused += 1
            return found
        built = build(execution, deployment, registry, digest)
        self.built += 1
        with self._lock:
            self._built[name] = built
        return built

    def start(self) -> None:
        """A rebuild begins: count afresh."""
        self.reused = self.built = 0

    def forget_others(self, names: Iterable[str]) -> None:
        keep = set(names)
        with self._lock:
            self._built = {n: b for n, b in self._built.items() if n in keep}


def unbuildable(file: str, exc: Exception, *, logged: bool) -> ConfigError:
    """A cluster whose Dagster definitions could not be built, as its file's error."""
    reason = f"{type(exc).__name__}: {exc}"
    where = "in the code location's log" if logged else "the code location logs it"
    return ConfigError(
        file,
        1,
        1,
        (),
        "its Dagster job could not be built: " + textwrap.shorten(reason, 400),
        hint="this is a bug in exosphere or in a satellite's config model, not in the file: "
        f"report it with the file and the traceback ({where}); the other clusters are not "
        "affected",
    )
