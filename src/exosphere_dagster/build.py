"""ClusterPlan -> Dagster JobDefinition: the only place that wires ops into a graph."""

from __future__ import annotations

from typing import Any

from dagster import GraphDefinition, JobDefinition, graph

from exosphere_dagster.ops import START_OP, SUMMARY_OP, satellite_op, split_op, start_op, summary_op
from exosphere_dagster.placement import (
    PlacementPolicy,
    executor_from_env,
    k8s_tag,
    light_k8s_config,
    satellite_k8s_config,
    step_resources,
)
from exosphere_dagster.resources import io_resources
from exosphere_dagster.tags import SATELLITE_TAG, sla_run_tags
from satellite_ops.registry import SatelliteRegistry
from yaml_loader.ir import ClusterPlan, SatelliteNode


def build_job(
    plan: ClusterPlan,
    registry: SatelliteRegistry,
    policy: PlacementPolicy | None = None,
    **job_kwargs: Any,
) -> JobDefinition:
    """One job per cluster: start -> (split -> mapped satellite -> collect)* -> summary."""
    if "executor_def" not in job_kwargs and (executor := executor_from_env()) is not None:
        job_kwargs["executor_def"] = executor
    return build_graph(plan, registry, policy).to_job(
        name=plan.job_name,
        resource_defs=io_resources(),
        description=_description(plan),
        tags=sla_run_tags(plan),
        metadata={"cluster file": plan.file, "trigger": plan.trigger_text, "sla": plan.sla.name},
        **job_kwargs,
    )


class Wiring:
    """Adds satellites (a chunking step and mapped steps each) to the graph being composed, with
    their placement tags. Shared by the cluster job and its SLA-breach alert job."""

    def __init__(
        self, plan: ClusterPlan, registry: SatelliteRegistry, policy: PlacementPolicy | None
    ) -> None:
        self.plan = plan
        self.registry = registry
        self.policy = policy or PlacementPolicy.load()
        self.light_tags = k8s_tag(light_k8s_config(plan, self.policy))
        self.log_sinks = [(n, registry.get(n.uses)) for n in plan.log_nodes]
        self.reports: dict[str, Any] = {}
        self.manifests: dict[str, Any] = {}

    def satellites(
        self, nodes: tuple[SatelliteNode, ...], root_sources: dict[str, Any], from_failures: bool
    ) -> None:
        plan, items = self.plan, {}
        for node in nodes:
            definition = self.registry.get(node.uses)
            if node.parents:
                sources = {f"from_{plan.node(p).op_name}": items[p] for p in node.parents}
                failures = False
            else:
                sources, failures = root_sources, from_failures
            splitter = split_op(node, plan, definition, sorted(sources), failures)
            chunks, self.manifests[node.id] = splitter.alias(f"{node.op_name}__chunks").tag(
                self.light_tags
            )(**sources)
            placement = satellite_k8s_config(plan, step_resources(node, definition), self.policy)
            tags = {SATELLITE_TAG: node.uses, **k8s_tag(placement)}
            step = satellite_op(node, plan, definition, tags, self.log_sinks).alias(node.op_name)
            out_items, out_report = chunks.map(lambda chunk, step=step: step(chunk=chunk))
            if plan.children(node.id):
                items[node.id] = out_items.collect()
            self.reports[node.id] = out_report.collect()

    def summary(self) -> None:
        """Add up every satellite's reports (and check every announced chunk reported)."""
        inputs, report_inputs = {}, {}
        for node_id, handle in self.reports.items():
            name = f"report_{self.plan.node(node_id).op_name}"
            inputs[name] = handle
            report_inputs[name] = node_id
        manifests = {f"manifest_{self.plan.node(n).op_name}": h for n, h in self.manifests.items()}
        summary = summary_op(self.plan, report_inputs, sorted(manifests))
        summary.alias(SUMMARY_OP).tag(self.light_tags)(**inputs, **manifests)


def build_graph(
    plan: ClusterPlan, registry: SatelliteRegistry, policy: PlacementPolicy | None = None
) -> GraphDefinition:
    routed = sorted(plan.routed_nodes(), key=lambda i: [n.id for n in plan.nodes].index(i))

    @graph(name=plan.job_name)
    def cluster_graph() -> None:
        wiring = Wiring(plan, registry, policy)
        start = start_op(plan).alias(START_OP).tag(wiring.light_tags)
        wiring.satellites(plan.nodes, {"from_start": start()}, False)
        if plan.failure_nodes and routed:
            failed = {f"failed_{plan.node(r).op_name}": wiring.reports[r] for r in routed}
            wiring.satellites(plan.failure_nodes, failed, True)
        wiring.summary()

    return cluster_graph


def _description(plan: ClusterPlan) -> str:
    lines = [plan.title or plan.identifier]
    if plan.description:
        lines.append(plan.description)
    lines.append(f"SLA {plan.sla.name}; trigger: {plan.trigger_text}; defined in {plan.file}")
    return "\n\n".join(lines)


__all__ = ["build_job", "build_graph", "Wiring", "SUMMARY_OP"]
