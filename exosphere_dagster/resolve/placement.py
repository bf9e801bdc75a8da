"""Where each step runs on Kubernetes: ``dagster-k8s/config`` tags from the SLA tier and the
resources a satellite declares (overridable per satellite in the cluster YAML).

``k8s_job_executor`` reads op tags for step pods and ``K8sRunLauncher`` reads job tags for the run
pod; job-level tags never reach step pods, so every op carries its own placement tag. Each pool
has a name (by default the tier's capacity, ``on-demand`` or ``spot``, from yaml_loader/tiers.py)
that pods carry as the ``exosphere.host/pool`` label and the price table (resolve/cost/prices.py)
keys on.

A pod's placement is a :class:`Placement` (structured: requests, GPUs, pools); the tag is its
JSON form, written only where a pod reads it (:class:`Pods`): op tags when steps run in pods
(``k8s_job_executor``), the job tag when runs do (that executor, or an instance whose run
launcher is a ``K8sRunLauncher``). A local run carries none; cost accounting reads the
:class:`Placement`, never the tag.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from exosphere_dagster.errors import DeploymentError
from exosphere_dagster.resolve.pools import (
    Pool,
    policy_fields,
    read_placement,
    tier_pool,
)
from satellite_ops.registry import SatelliteDefinition
from yaml_loader.errors import ConfigErrors
from yaml_loader.ir import ClusterPlan, SatelliteNode
from yaml_loader.tiers import TIERS, tier

K8S_CONFIG_TAG = "dagster-k8s/config"
K8S_EXECUTOR = "k8s"  # k8s_job_executor's name
K8S_LAUNCHER_MODULES = ("dagster_k8s", "dagster_celery_k8s")
GPU_RESOURCE = "nvidia.com/gpu"
SLA_LABEL = "exosphere.host/sla"
POOL_LABEL = "exosphere.host/pool"  # the pool's name: the price table's key (cost/prices.py)


class PlacementError(DeploymentError):
    """The placement file cannot be used: ``errors`` locates each problem (file:line:col)."""


@dataclass(frozen=True)
class Pods:
    """Which processes of a run are Kubernetes pods that read a ``dagster-k8s/config`` tag."""

    run: bool = False  # the run worker (K8sRunLauncher): the job's tag
    steps: bool = False  # each step (k8s_job_executor): each op's tag


@dataclass(frozen=True)
class PlacementPolicy:
    """Tier pools (on-demand for 6h, spot for 12h/24h), the GPU pool, default requests, and
    which pods read placement tags (none by default: a local run)."""

    tiers: Mapping[str, Pool] = field(
        default_factory=lambda: {name: tier_pool(name) for name in TIERS}
    )
    gpu: Pool = field(
        default_factory=lambda: Pool(
            {"nvidia.com/gpu.present": "true"},
            ({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},),
        )
    )
    gpu_image: str | None = None  # image for steps that ask for a GPU (e.g. one with vLLM)
    step_requests: Mapping[str, str] = field(
        default_factory=lambda: {"cpu": "500m", "memory": "1Gi"}
    )
    gpu_requests: Mapping[str, str] = field(  # a model server needs host memory for weights
        default_factory=lambda: {"cpu": "4", "memory": "32Gi"}
    )
    light_requests: Mapping[str, str] = field(  # start, chunking, summary and the run pod
        default_factory=lambda: {"cpu": "250m", "memory": "512Mi"}
    )
    pods: Pods = field(default_factory=Pods)  # which placement tags pods read

    @classmethod
    def load(
        cls, path: str | Path | None, gpu_image: str | None = None, pods: Pods | None = None
    ) -> PlacementPolicy:
        """Defaults, overridden by the YAML file at ``path`` (none: the defaults; keys
        ``tiers``, ``gpu``, ``gpu-image`` and ``step-``/``gpu-``/``light-requests``), for a
        deployment whose ``pods`` read placement tags (none: a local one). A tier's pool keeps
        the tier's capacity as its name unless it sets ``name:``. A bad file raises a
        PlacementError whose ``errors`` say file:line:col and the fix. ``Deployment.load`` calls
        it with the settings' ``EXOSPHERE_PLACEMENT_FILE`` and ``EXOSPHERE_GPU_IMAGE``."""
        try:
            raw, source = read_placement(path) if path else ({}, None)
            return cls._from(raw, source, gpu_image, pods)
        except ConfigErrors as exc:
            count = len(exc.errors)
            raise PlacementError(
                f"{count} error{'s' if count != 1 else ''} in the placement file {path} "
                "(EXOSPHERE_PLACEMENT_FILE, docs/sla.md):\n"
                + "\n".join(str(e) for e in exc.errors),
                exc.errors,
            ) from None

    @classmethod
    def _from(
        cls, raw: Mapping[str, Any], source: Any, gpu_image: str | None, pods: Pods | None
    ) -> PlacementPolicy:
        return cls(**policy_fields(raw, source, gpu_image, cls()), pods=pods or Pods())

    def pool(self, sla: str) -> Pool:
        """The pool of tier ``sla``'s pods (the tier's default when the policy has none); an
        unnamed pool takes the tier's capacity as its name."""
        found = self.tiers.get(sla)
        if found is None:
            return tier_pool(sla)
        return found if found.name else replace(found, name=tier(sla).capacity)

    def for_executor(self, executor_def: Any) -> PlacementPolicy:
        """This policy for a job run by ``executor_def``: its steps are pods exactly when it is
        ``k8s_job_executor``; a run pod stays a pod when the policy's deployment says so."""
        if executor_def is None:
            return self
        steps = getattr(executor_def, "name", None) == K8S_EXECUTOR
        return replace(self, pods=Pods(run=self.pods.run or steps, steps=steps))

    def step_tags(self, placement: Placement) -> dict[str, str]:
        """An op's ``dagster-k8s/config`` tag, when its steps run in pods; else none."""
        return k8s_tag(placement.k8s_config()) if self.pods.steps else {}

    def run_tags(self, placement: Placement) -> dict[str, str]:
        """The job's ``dagster-k8s/config`` tag, when its runs run in pods; else none."""
        return k8s_tag(placement.k8s_config()) if self.pods.run else {}


def instance_launches_pods(home: str | Path | None = None) -> bool:
    """Whether the instance in ``home`` (``$DAGSTER_HOME``) launches runs as Kubernetes Jobs:
    its ``dagster.yaml`` names a run launcher of ``dagster_k8s`` or ``dagster_celery_k8s``.
    Read as YAML, without starting the instance; an unreadable file counts as no."""
    home = home or os.environ.get("DAGSTER_HOME")
    if not home:
        return False
    try:
        raw = yaml.safe_load((Path(home) / "dagster.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    launcher = raw.get("run_launcher") if isinstance(raw, Mapping) else None
    if not isinstance(launcher, Mapping):
        return False
    return str(launcher.get("module", "")).split(".")[0] in K8S_LAUNCHER_MODULES


@dataclass(frozen=True)
class StepResources:
    """What one satellite's steps ask for, after the YAML override is applied."""

    cpu: str | None = None
    memory: str | None = None
    gpu: int = 0
    image: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)


def step_resources(node: SatelliteNode, definition: SatelliteDefinition) -> StepResources:
    """The satellite's declared resources; each field the YAML ``resources:`` sets wins."""
    declared, override = definition.resources, node.resources

    def pick(name: str) -> Any:
        value = getattr(override, name, None)
        return value if value is not None else getattr(declared, name, None)

    return StepResources(
        cpu=pick("cpu"),
        memory=pick("memory"),
        gpu=pick("gpu") or 0,
        image=pick("image"),
        node_selector=dict(pick("node_selector") or {}),
    )


@dataclass(frozen=True)
class Placement:
    """One pod's placement: what it reserves (requests; GPUs as a limit), the pools it may run
    in (the first names it), extra node labels, its image and its own labels."""

    requests: Mapping[str, str]
    pools: tuple[Pool, ...]
    gpu: int = 0
    node_selector: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def pool(self) -> str:
        return self.pools[0].name

    def k8s_config(self) -> dict[str, Any]:
        """The ``dagster-k8s/config`` value: requests, limits (memory = request; GPUs, an
        extended resource, only as limits), node selector, tolerations, labels, image."""
        limits: dict[str, Any] = {}
        if "memory" in self.requests:
            limits["memory"] = self.requests["memory"]  # not compressible: request = limit
        if self.gpu:
            limits[GPU_RESOURCE] = str(self.gpu)
        container: dict[str, Any] = {
            "resources": {"requests": dict(self.requests), "limits": limits}
        }
        if self.image:
            container["image"] = self.image
        selector: dict[str, str] = {}
        tolerations: list[dict[str, Any]] = []
        for pool in self.pools:
            selector.update(pool.node_selector)
            tolerations.extend(dict(t) for t in pool.tolerations if dict(t) not in tolerations)
        selector.update(self.node_selector)
        pod_spec: dict[str, Any] = {}
        if selector:
            pod_spec["node_selector"] = selector
        if tolerations:
            pod_spec["tolerations"] = tolerations
        return {
            "container_config": container,
            "pod_spec_config": pod_spec,
            "pod_template_spec_metadata": {"labels": dict(self.labels)},
        }


def satellite_placement(
    plan: ClusterPlan, resources: StepResources, policy: PlacementPolicy
) -> Placement:
    """Where a satellite's steps run: its requests (the policy's defaults for what it leaves
    out), the tier's pool (and the GPU pool for a GPU step), its image."""
    defaults = policy.gpu_requests if resources.gpu else policy.step_requests
    requests = {
        "cpu": resources.cpu or defaults.get("cpu"),
        "memory": resources.memory or defaults.get("memory"),
    }
    pools = (policy.pool(plan.sla.name), *((policy.gpu,) if resources.gpu else ()))
    return Placement(
        requests={k: v for k, v in requests.items() if v},
        pools=pools,
        gpu=resources.gpu,
        node_selector=dict(resources.node_selector),
        image=resources.image or (policy.gpu_image if resources.gpu else None),
        labels={
            SLA_LABEL: plan.sla.name,
            POOL_LABEL: pools[0].name,
            "exosphere.host/gpu": str(resources.gpu),
        },
    )


def light_placement(plan: ClusterPlan, policy: PlacementPolicy) -> Placement:
    """Steps that only move items (start, chunking, summary) and the run pod: tier pool, small."""
    pool = policy.pool(plan.sla.name)
    return Placement(
        requests=dict(policy.light_requests),
        pools=(pool,),
        labels={SLA_LABEL: plan.sla.name, POOL_LABEL: pool.name},
    )


def k8s_tag(config: Mapping[str, Any]) -> dict[str, str]:
    """The op/job tag holding ``config`` (JSON, as Dagster stores non-string tag values)."""
    return {K8S_CONFIG_TAG: json.dumps(config, sort_keys=True)}
