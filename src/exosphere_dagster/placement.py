"""Where each step runs on Kubernetes: ``dagster-k8s/config`` tags from the SLA tier and the
resources a satellite declares (overridable per satellite in the cluster YAML).

``k8s_job_executor`` reads op tags for step pods and ``K8sRunLauncher`` reads job tags for the run
pod; job-level tags never reach step pods, so every op carries its own placement tag.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from satellite_ops.registry import SatelliteDefinition
from yaml_loader.ir import ClusterPlan, SatelliteNode

K8S_CONFIG_TAG = "dagster-k8s/config"
GPU_RESOURCE = "nvidia.com/gpu"
PLACEMENT_FILE_ENV = "EXOSPHERE_PLACEMENT_FILE"
GPU_IMAGE_ENV = "EXOSPHERE_GPU_IMAGE"
EXECUTOR_ENV = "EXOSPHERE_EXECUTOR"  # "k8s": every step in its own pod (k8s_job_executor)
CAPACITY_LABEL = "exosphere.host/capacity"
SLA_LABEL = "exosphere.host/sla"
POOL_LABEL = "exosphere.host/pool"  # the pool's name: what the price table (cost.py) keys on


def _spot() -> dict[str, Any]:
    return {"key": CAPACITY_LABEL, "operator": "Equal", "value": "spot", "effect": "NoSchedule"}


@dataclass(frozen=True)
class Pool:
    """A node pool: its name (priced in the price table), the labels a pod selects and the
    taints it tolerates."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    name: str = ""

    @classmethod
    def parse(cls, raw: Mapping[str, Any], default_name: str = "") -> Pool:
        return cls(
            node_selector=dict(raw.get("node-selector", raw.get("node_selector", {})) or {}),
            tolerations=tuple(raw.get("tolerations", ()) or ()),
            name=str(raw.get("name") or default_name),
        )


@dataclass(frozen=True)
class PlacementPolicy:
    """Tier pools (on-demand for 6h, spot for 12h/24h), the GPU pool, and default requests."""

    tiers: Mapping[str, Pool] = field(
        default_factory=lambda: {
            "6h": Pool({CAPACITY_LABEL: "on-demand"}, name="on-demand"),
            "12h": Pool({CAPACITY_LABEL: "spot"}, (_spot(),), name="spot"),
            "24h": Pool({CAPACITY_LABEL: "spot"}, (_spot(),), name="spot"),
        }
    )
    gpu: Pool = field(  # a GPU step's pool is "<gpu name>-<tier pool name>": gpu-spot
        default_factory=lambda: Pool(
            {"nvidia.com/gpu.present": "true"},
            ({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},),
            name="gpu",
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

    @classmethod
    def load(cls, path: str | Path | None = None) -> PlacementPolicy:
        """Defaults, overridden by the YAML file at ``path`` or ``$EXOSPHERE_PLACEMENT_FILE``
        (keys ``tiers``, ``gpu``, ``gpu-image`` and ``step-``/``gpu-``/``light-requests``; a
        pool may set its ``name``, else it keeps the default's)."""
        path = path or os.environ.get(PLACEMENT_FILE_ENV)
        raw: Mapping[str, Any] = (yaml.safe_load(Path(path).read_text()) or {}) if path else {}
        base = cls()
        tiers = dict(base.tiers)
        tiers.update(
            {
                tier: Pool.parse(p, base.tiers[tier].name if tier in base.tiers else tier)
                for tier, p in (raw.get("tiers") or {}).items()
            }
        )
        return cls(
            tiers=tiers,
            gpu=Pool.parse(raw["gpu"], base.gpu.name) if raw.get("gpu") else base.gpu,
            gpu_image=raw.get("gpu-image") or os.environ.get(GPU_IMAGE_ENV) or None,
            step_requests=dict(raw.get("step-requests") or base.step_requests),
            gpu_requests=dict(raw.get("gpu-requests") or base.gpu_requests),
            light_requests=dict(raw.get("light-requests") or base.light_requests),
        )


@dataclass(frozen=True)
class StepResources:
    """What one satellite's steps ask for, after the YAML override is applied."""

    cpu: str | None = None
    memory: str | None = None
    gpu: int = 0
    image: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)


def pool_name(sla: str, gpu: int, policy: PlacementPolicy) -> str:
    """The name of the pool a step runs on: its tier's pool, or the GPU pool of that capacity
    (``gpu-spot``) for a step that asks for a GPU. The price table (cost.py) keys on it."""
    tier = policy.tiers.get(sla, Pool()).name or sla
    return f"{policy.gpu.name or 'gpu'}-{tier}" if gpu else tier


def step_resources(node: SatelliteNode, definition: SatelliteDefinition) -> StepResources:
    """The satellite's declared resources; each field the YAML ``resources:`` sets wins."""
    declared, override = definition.resources, node.resources
    if override is None:
        return StepResources(declared.cpu, declared.memory, declared.gpu)
    return StepResources(
        cpu=override.cpu or declared.cpu,
        memory=override.memory or declared.memory,
        gpu=override.gpu if override.gpu is not None else declared.gpu,
        image=override.image,
        node_selector=dict(override.node_selector or {}),
    )


def satellite_k8s_config(
    plan: ClusterPlan, resources: StepResources, policy: PlacementPolicy
) -> dict[str, Any]:
    """The ``dagster-k8s/config`` of a satellite's steps: requests/limits, pool, image."""
    defaults = policy.gpu_requests if resources.gpu else policy.step_requests
    requests = {
        "cpu": resources.cpu or defaults.get("cpu"),
        "memory": resources.memory or defaults.get("memory"),
    }
    requests = {k: v for k, v in requests.items() if v}
    limits: dict[str, Any] = {}
    if "memory" in requests:
        limits["memory"] = requests["memory"]  # memory is not compressible: request = limit
    pools = [policy.tiers.get(plan.sla.name, Pool())]
    if resources.gpu:
        limits[GPU_RESOURCE] = str(resources.gpu)  # extended resources go in limits
        pools.append(policy.gpu)
    container: dict[str, Any] = {"resources": {"requests": requests, "limits": limits}}
    image = resources.image or (policy.gpu_image if resources.gpu else None)
    if image:
        container["image"] = image
    labels = {
        SLA_LABEL: plan.sla.name,
        "exosphere.host/gpu": str(resources.gpu),
        POOL_LABEL: pool_name(plan.sla.name, resources.gpu, policy),
    }
    return _config(container, pools, resources.node_selector, labels)


def light_k8s_config(plan: ClusterPlan, policy: PlacementPolicy) -> dict[str, Any]:
    """Steps that only move items (start, chunking, summary) and the run pod: tier pool, small."""
    requests = dict(policy.light_requests)
    limits = {"memory": requests["memory"]} if "memory" in requests else {}
    container = {"resources": {"requests": requests, "limits": limits}}
    pools = [policy.tiers.get(plan.sla.name, Pool())]
    labels = {SLA_LABEL: plan.sla.name, POOL_LABEL: pool_name(plan.sla.name, 0, policy)}
    return _config(container, pools, {}, labels)


def _config(
    container: dict[str, Any],
    pools: list[Pool],
    extra_selector: Mapping[str, str],
    labels: Mapping[str, str],
) -> dict[str, Any]:
    selector: dict[str, str] = {}
    tolerations: list[dict[str, Any]] = []
    for pool in pools:
        selector.update(pool.node_selector)
        tolerations.extend(dict(t) for t in pool.tolerations if dict(t) not in tolerations)
    selector.update(extra_selector)
    pod_spec: dict[str, Any] = {}
    if selector:
        pod_spec["node_selector"] = selector
    if tolerations:
        pod_spec["tolerations"] = tolerations
    return {
        "container_config": container,
        "pod_spec_config": pod_spec,
        "pod_template_spec_metadata": {"labels": dict(labels)},
    }


# -- a step's placement read back from its tag (cost.py prices it) --------------------------
_QUANTITY = re.compile(r"^\s*([0-9.]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")
_FACTORS = {
    "": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def quantity(text: Any) -> float:
    """A Kubernetes quantity (``500m``, ``2``, ``1Gi``, ``1e3``) as a number."""
    match = _QUANTITY.match(str(text))
    if not match or match.group(2) not in _FACTORS:
        raise ValueError(f"not a Kubernetes quantity: {text!r} (expected e.g. 500m, 2, 1Gi)")
    return float(match.group(1)) * _FACTORS[match.group(2)]


@dataclass(frozen=True)
class Placement:
    """The pool a step runs on and what it requests there."""

    pool: str = ""
    cpu: float = 0.0
    gpu: float = 0.0
    memory_gib: float = 0.0


def placement_of(tags: Mapping[str, Any]) -> Placement:
    """From a step's ``dagster-k8s/config`` tag: requests, GPU limit and pool label."""
    raw = tags.get(K8S_CONFIG_TAG)
    if not raw:
        return Placement()
    config = json.loads(raw) if isinstance(raw, str) else raw
    resources = (config.get("container_config") or {}).get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    labels = (config.get("pod_template_spec_metadata") or {}).get("labels") or {}
    return Placement(
        pool=str(labels.get(POOL_LABEL, "")),
        cpu=quantity(requests.get("cpu", 0)),
        gpu=quantity(limits.get(GPU_RESOURCE, requests.get(GPU_RESOURCE, 0))),
        memory_gib=quantity(requests.get("memory", 0)) / 2**30,
    )


def executor_from_env() -> Any:
    """``k8s_job_executor`` when ``EXOSPHERE_EXECUTOR=k8s`` (set on the code location and, through
    the chart's includeConfigInLaunchedRuns, on run pods); else Dagster's multiprocess/in-process
    executor with steps forked from a preloaded forkserver by default (executor.py)."""
    if not on_kubernetes():
        from exosphere_dagster.executor import exosphere_executor

        return exosphere_executor
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor


def on_kubernetes() -> bool:
    return os.environ.get(EXECUTOR_ENV, "").strip().lower() in ("k8s", "kubernetes")


def k8s_tag(config: Mapping[str, Any]) -> dict[str, str]:
    """The op/job tag holding ``config`` (JSON, as Dagster stores non-string tag values)."""
    return {K8S_CONFIG_TAG: json.dumps(config, sort_keys=True)}
