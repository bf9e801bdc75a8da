"""Where each step runs on Kubernetes: ``dagster-k8s/config`` tags from the SLA tier and the
resources a satellite declares (overridable per satellite in the cluster YAML).

``k8s_job_executor`` reads op tags for step pods and ``K8sRunLauncher`` reads job tags for the run
pod; job-level tags never reach step pods, so every op carries its own placement tag. Each pool
has a name (by default the tier's capacity, ``on-demand`` or ``spot``, from yaml_loader/tiers.py)
that pods carry as the ``exosphere.host/pool`` label and the price table (cost.py) keys on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from exosphere_dagster.settings import settings
from satellite_ops.registry import SatelliteDefinition
from yaml_loader.ir import ClusterPlan, SatelliteNode
from yaml_loader.quantities import QuantityError, normalised
from yaml_loader.tiers import TIERS, tier

K8S_CONFIG_TAG = "dagster-k8s/config"
GPU_RESOURCE = "nvidia.com/gpu"
CAPACITY_LABEL = "exosphere.host/capacity"
SLA_LABEL = "exosphere.host/sla"
POOL_LABEL = "exosphere.host/pool"  # the pool's name: the price table's key (cost.py)
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


class PlacementError(ValueError):
    """The placement file cannot be used: the text names the file, the key and the fix."""


def _requests(raw: Mapping[str, Any], key: str, default: Mapping[str, str], path: Any) -> dict:
    """``step-requests`` (and kin) of the placement file, each quantity checked by the one
    parser (yaml_loader/quantities.py)."""
    given = raw.get(key)
    if not given:
        return dict(default)
    if not isinstance(given, Mapping):
        raise PlacementError(f"{path}: {key}: expected a mapping like {{cpu: 500m, memory: 1Gi}}")
    out: dict[str, str] = {}
    for name, value in given.items():
        if name not in ("cpu", "memory"):
            raise PlacementError(f"{path}: {key}.{name}: unknown request (use cpu and memory)")
        try:
            out[name] = str(normalised(name, value))
        except QuantityError as exc:
            raise PlacementError(f"{path}: {key}.{exc}") from None
    return out


def _spot() -> dict[str, Any]:
    return {"key": CAPACITY_LABEL, "operator": "Equal", "value": "spot", "effect": "NoSchedule"}


@dataclass(frozen=True)
class Pool:
    """A node pool: the labels a pod selects, the taints it tolerates, and its name (a
    Kubernetes label value; the price table's key)."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        if self.name and not _LABEL_VALUE.match(self.name):
            raise ValueError(
                f"pool name {self.name!r} must be a Kubernetes label value (letters, digits, "
                "'-', '_' and '.', at most 63 characters), e.g. 'spot' or 'gpu-spot'"
            )

    @classmethod
    def parse(cls, raw: Mapping[str, Any], name: str = "") -> Pool:
        return cls(
            node_selector=dict(raw.get("node-selector", raw.get("node_selector", {})) or {}),
            tolerations=tuple(raw.get("tolerations", ()) or ()),
            name=str(raw.get("name") or name),
        )


def tier_pool(sla: str) -> Pool:
    """The default pool of a tier: nodes labelled with its capacity; spot nodes are tainted."""
    capacity = tier(sla).capacity
    tolerations = (_spot(),) if capacity == "spot" else ()
    return Pool({CAPACITY_LABEL: capacity}, tolerations, name=capacity)


@dataclass(frozen=True)
class PlacementPolicy:
    """Tier pools (on-demand for 6h, spot for 12h/24h), the GPU pool, and default requests."""

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

    @classmethod
    def load(cls, path: str | Path | None = None) -> PlacementPolicy:
        """Defaults, overridden by the YAML file at ``path`` or ``EXOSPHERE_PLACEMENT_FILE``
        (keys ``tiers``, ``gpu``, ``gpu-image`` and ``step-``/``gpu-``/``light-requests``). A
        tier's pool keeps the tier's capacity as its name unless it sets ``name:``."""
        path = path or settings().placement_file
        raw: Mapping[str, Any] = (yaml.safe_load(Path(path).read_text()) or {}) if path else {}
        base = cls()
        tiers = dict(base.tiers)
        for name, pool in (raw.get("tiers") or {}).items():
            try:
                default_name = tier(str(name)).capacity
            except KeyError as exc:
                raise PlacementError(f"{path}: tiers.{name}: {exc.args[0]}") from None
            tiers[str(name)] = Pool.parse(pool, default_name)
        return cls(
            tiers=tiers,
            gpu=Pool.parse(raw["gpu"]) if raw.get("gpu") else base.gpu,
            gpu_image=raw.get("gpu-image") or settings().gpu_image or None,
            step_requests=_requests(raw, "step-requests", base.step_requests, path),
            gpu_requests=_requests(raw, "gpu-requests", base.gpu_requests, path),
            light_requests=_requests(raw, "light-requests", base.light_requests, path),
        )

    def pool(self, sla: str) -> Pool:
        """The pool of tier ``sla``'s pods (the tier's default when the policy has none); an
        unnamed pool takes the tier's capacity as its name."""
        found = self.tiers.get(sla)
        if found is None:
            return tier_pool(sla)
        return found if found.name else replace(found, name=tier(sla).capacity)


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
    pools = [policy.pool(plan.sla.name)]
    if resources.gpu:
        limits[GPU_RESOURCE] = str(resources.gpu)  # extended resources go in limits
        pools.append(policy.gpu)
    container: dict[str, Any] = {"resources": {"requests": requests, "limits": limits}}
    image = resources.image or (policy.gpu_image if resources.gpu else None)
    if image:
        container["image"] = image
    labels = {
        SLA_LABEL: plan.sla.name,
        POOL_LABEL: pools[0].name,
        "exosphere.host/gpu": str(resources.gpu),
    }
    return _config(container, pools, resources.node_selector, labels)


def light_k8s_config(plan: ClusterPlan, policy: PlacementPolicy) -> dict[str, Any]:
    """Steps that only move items (start, chunking, summary) and the run pod: tier pool, small."""
    requests = dict(policy.light_requests)
    limits = {"memory": requests["memory"]} if "memory" in requests else {}
    container = {"resources": {"requests": requests, "limits": limits}}
    pools = [policy.pool(plan.sla.name)]
    labels = {SLA_LABEL: plan.sla.name, POOL_LABEL: pools[0].name}
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


def executor_from_env() -> Any:
    """``k8s_job_executor`` when ``EXOSPHERE_EXECUTOR=k8s`` (set on the code location and, through
    the chart's includeConfigInLaunchedRuns, on run pods); else Dagster's multiprocess/in-process
    executor with steps forked from a preloaded forkserver by default (executor.py)."""
    if not on_kubernetes():
        from exosphere_dagster.build.executor import exosphere_executor

        return exosphere_executor
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor


def on_kubernetes() -> bool:
    return settings().runs_on_kubernetes


def k8s_tag(config: Mapping[str, Any]) -> dict[str, str]:
    """The op/job tag holding ``config`` (JSON, as Dagster stores non-string tag values)."""
    return {K8S_CONFIG_TAG: json.dumps(config, sort_keys=True)}
