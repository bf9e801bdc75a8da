"""What ``exosphere plan`` prints: a cluster as it will run, read from its resolved
:class:`~exosphere_dagster.resolve.execution_plan.ExecutionPlan`.

Every number here (priority, maximum runtime, the deadline rule, chunk bounds, pools, requests,
Batch API) is a field of the resolved plan; nothing is looked up again from the tier or parsed
again from a quantity, so what is printed is what translate and the runtime read.
"""

from __future__ import annotations

from collections.abc import Iterable

from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import ExecutionPlan, NodePlan, ResourceRequest
from yaml_loader.ir import RetrySettings, SatelliteNode

SINK_DELIVERY = ", per batch of records; never fails or holds up the run"


def render_plan(execution: ExecutionPlan, deployment: Deployment) -> str:
    """The satellite graph, the run policy, each node's step policy and the run tags."""
    cluster, run = execution.plan, execution.run
    sinks = {n.id for n in cluster.log_nodes}
    lines = [
        f"cluster {cluster.identifier}  (job {cluster.job_name}, file {cluster.file})",
        f"  sla: {run.tier} (priority {run.priority}, max runtime {run.max_runtime_seconds}s)",
        f"  deadline: trigger time + {run.sla_seconds}s; priority raised when under "
        f"{run.urgent_within_seconds:g}s are left",
        f"  trigger: {cluster.trigger_text}",
        "  satellites:",
    ]
    lines += _nodes(cluster.nodes, "(run input)")
    if cluster.failure_nodes:
        routed = ", ".join(n.id for n in cluster.nodes if n.id in cluster.routed_nodes())
        lines.append(f"  failure branch (from {cluster.failure_from}; items failing at: {routed}):")
        lines += _nodes(cluster.failure_nodes, "(failed items)")
    if cluster.log_nodes:
        lines.append("  log sinks:")
        lines += _nodes(cluster.log_nodes, "(log records)", sink=True)
    lines.append("  steps (chunking, pods, Batch API):")
    for node_id, node in execution.nodes.items():
        lines.append(f"    {node_id}: {step_text(node, sink=node_id in sinks)}")
    lines.append(f"    start, gather and summary: {asks_text(run.light)}")
    tags = {**run.tags, **deployment.placement.run_tags(run.light.placement)}
    lines.append("  run tags: " + ", ".join(f"{k}={v}" for k, v in tags.items()))
    lines += [f"  warning: {warning}" for warning in cluster.warnings]
    return "\n".join(lines)


def _nodes(nodes: Iterable[SatelliteNode], root: str, sink: bool = False) -> list[str]:
    lines = []
    for node in nodes:
        parents = ", ".join(node.parents) or root
        lines.append(
            f"    {node.id}  [{node.uses}]  parents: {parents}  "
            + attempts_text(node.retry)
            + (SINK_DELIVERY if sink else "")
        )
    return lines


def step_text(node: NodePlan, sink: bool = False) -> str:
    """One node's resolved step policy: chunks, concurrency, timeout, pod, Batch API."""
    parts = []
    if not sink:
        chunk = node.chunk
        kind = "batches" if node.batched else "chunks"
        parts.append(f"{kind} of {chunk.low} to {chunk.high} items (cut by {node.segment})")
    parts.append(f"{node.concurrency} at once")
    if node.timeout_seconds is not None:
        parts.append(f"timeout {node.timeout_seconds:g}s")
    parts.append(asks_text(node.resources))
    if node.batch_api is not None and (node.batch_api or node.model is not None):
        parts.append("Batch API: " + ("yes" if node.batch_api else "no"))
    elif node.batch_api is None:
        parts.append("Batch API: decided per item (templated config)")
    return "; ".join(parts)


def asks_text(request: ResourceRequest) -> str:
    """``pool cpu-6h, 0.5 CPU, 1 GiB`` (+ GPUs, image)."""
    text = f"pool {request.pool}, {request.cpu:g} CPU, {request.memory_gib:g} GiB"
    if request.gpu:
        text += f", {request.gpu} GPU"
    if request.placement.image:
        text += f", image {request.placement.image}"
    return text


def attempts_text(retry: RetrySettings) -> str:
    """What the runtime does with a failing item: every attempt is one client call (satellites
    do not retry inside), so these are the calls a failing endpoint sees per item."""
    text = f"attempts: {retry.retries + 1} (retries: {retry.retries})"
    if retry.retries:
        text += (
            f", backoff {retry.delay:g}s x{retry.backoff:g} up to {retry.max_delay:g}s, "
            "honours Retry-After"
        )
    return text
