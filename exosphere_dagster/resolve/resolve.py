"""``resolve(plan, deployment, registry) -> ExecutionPlan``: every value a cluster's run derives
from its tier, its satellites and the deployment, computed here once.

The tier is read here (``plan.sla``) and nowhere after: its priority, the maximum runtime (the
tighter of the SLA and the cluster's own ``dagster/max_runtime`` tag), the deadline rule, the
urgency threshold, the node pool, the chunk or batch bounds. Resources become numbers here (the
one quantity parser); a satellite whose declared resources are not quantities is a located
error at its ``uses:``. The static Batch API decision the estimator prices is taken here by
the rule the satellite applies at run time (``batch_api_mode.batch_applies``). Dagster-free.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

from exosphere_dagster.resolve.cost.prices import model_of
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import (
    STEP_RETRIES,
    STEP_RETRY_DELAY,
    URGENT_FRACTION,
    ChunkPolicy,
    ExecutionPlan,
    NodePlan,
    ResourceRequest,
    RunPolicy,
    RunWindow,
)
from exosphere_dagster.resolve.placement import (
    light_placement,
    satellite_placement,
    step_resources,
)
from exosphere_dagster.resolve.segments import cut_segments
from exosphere_dagster.resolve.tags import (
    CLUSTER_FILE_TAG,
    CLUSTER_TAG,
    MAX_RUNTIME_TAG,
    PRIORITY_TAG,
    SLA_TAG,
)
from satellite_ops.context import BatchPolicy
from yaml_loader.errors import ConfigError, ConfigErrors
from yaml_loader.ir import ClusterPlan, SatelliteNode
from yaml_loader.quantities import QuantityError


def resolve(plan: ClusterPlan, deployment: Deployment, registry: Any) -> ExecutionPlan:
    """The cluster as it runs under ``deployment``; ConfigErrors (located in the cluster's
    file) when a satellite's declared resources cannot be used."""
    policy, tier = deployment.placement, plan.sla
    run = run_policy(plan, deployment)
    segments = tuple(cut_segments(plan, registry))
    by_id = {n.id: n for n in (*plan.nodes, *plan.failure_nodes, *plan.log_nodes)}
    definitions = {node_id: registry.get(n.uses) for node_id, n in by_id.items()}
    chunks: dict[str, ChunkPolicy] = {}
    home: dict[str, str] = {}
    for segment in segments:
        batched = any(definitions[n.id].batched for n in segment.nodes)
        chunks[segment.name] = ChunkPolicy.of_tier(tier, batched)
        home.update((n.id, segment.name) for n in segment.nodes)
    depth = {n.id: i + 1 for i, n in enumerate((*plan.nodes, *plan.failure_nodes))}
    nodes: dict[str, NodePlan] = {}
    errors: list[ConfigError] = []
    no_chunks = ChunkPolicy(1, 1, 1)  # a log sink takes records, not chunks
    for node_id, definition in definitions.items():
        node = by_id[node_id]
        try:
            request = ResourceRequest.of(
                satellite_placement(plan, step_resources(node, definition), policy)
            )
        except QuantityError as exc:
            where = getattr(definition, "source", None) or f"the declaration of '{node.uses}'"
            errors.append(_at_uses(plan, node, f"satellite '{node.uses}' declares {exc}", where))
            continue
        nodes[node_id] = NodePlan(
            node=node,
            definition=definition,
            retry=node.retry,
            step_retries=STEP_RETRIES,
            step_retry_delay=STEP_RETRY_DELAY,
            timeout_seconds=node.timeout,
            concurrency=node.concurrency or definition.max_concurrency,
            segment=home.get(node_id, ""),
            chunk=chunks.get(home.get(node_id, ""), no_chunks),
            batched=bool(definition.batched),
            resources=request,
            model=model_of(node.config, definition.config_model),
            batch_api=batch_api_decision(node, definition, tier.name, deployment.batch_api),
            op_priority=depth.get(node_id, 0),
        )
    if errors:
        raise ConfigErrors(errors)
    return ExecutionPlan(
        plan=plan,
        run=run,
        nodes=MappingProxyType(nodes),
        segments=segments,
        chunks=MappingProxyType(chunks),
        batch_api=deployment.batch_api,
    )


def run_policy(plan: ClusterPlan, deployment: Deployment) -> RunPolicy:
    """What every run gets: the tier's priority, the tighter maximum runtime, the deadline rule
    (its numbers also written into the run tags, for code that holds only a run's tags), the
    run tags (no ``dagster-k8s/config``: translate writes it where pods read it) and the light
    pods' request."""
    tier = plan.sla
    max_runtime = tier.seconds
    asked = plan.tags.get(MAX_RUNTIME_TAG)
    if asked and asked.replace(".", "", 1).isdigit():
        max_runtime = min(max_runtime, max(1, int(float(asked))))
    window = RunWindow(tier.seconds, URGENT_FRACTION * tier.seconds)
    tags = {
        **plan.tags,
        PRIORITY_TAG: str(tier.priority),
        MAX_RUNTIME_TAG: str(max_runtime),
        SLA_TAG: tier.name,
        **window.as_tags(),
        CLUSTER_TAG: plan.identifier,
        CLUSTER_FILE_TAG: str(Path(plan.file).resolve()),
    }
    return RunPolicy(
        sla_seconds=window.sla_seconds,
        urgent_within_seconds=window.urgent_within_seconds,
        tier=tier.name,
        priority=tier.priority,
        max_runtime_seconds=max_runtime,
        tags=MappingProxyType(tags),
        light=ResourceRequest.of(light_placement(plan, deployment.placement)),
    )


def batch_api_decision(
    node: SatelliteNode, definition: Any, tier: str, policy: BatchPolicy
) -> bool | None:
    """Whether the node's static config sends its prompts through a provider Batch API, by the
    rule the satellite applies at run time; None when ``batch``/``engine`` are templated (the
    rendered config decides per item). False for a satellite without a ``batch`` setting."""
    from satellite_ops.helpers.batch_api_mode import batch_applies

    fields = getattr(definition.config_model, "model_fields", {}) or {}
    if "batch" not in fields or "engine" not in fields:
        return False
    config = node.config if isinstance(node.config, dict) else {}
    mode = config.get("batch", fields["batch"].default)
    engine = config.get("engine", fields["engine"].default)
    if not isinstance(mode, str) or not isinstance(engine, str):
        return None
    return batch_applies(mode, engine, tier, policy.tiers)


def _at_uses(plan: ClusterPlan, node: SatelliteNode, message: str, where: str) -> ConfigError:
    return ConfigError(
        plan.file,
        node.line,
        node.column,
        (*node.key_path, "uses"),
        message,
        hint=f"fix resources= at {where} (Kubernetes quantities: 500m, 2Gi), "
        "or override it with 'resources:' under this satellite",
    )
