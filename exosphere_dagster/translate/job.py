"""ClusterPlan -> Dagster JobDefinition: the only place that wires ops into a graph.

The graph has one node per satellite, plus the start op, one gathering op per re-chunk point
(segments.py) and the summary. Inside a segment the satellites are chained over the same
mapping key, so a chunk flows to the segment's last satellite without waiting for the others.
"""

from __future__ import annotations

from typing import Any

from dagster import GraphDefinition, JobDefinition, graph

from exosphere_dagster.resolve.content import CONTENT_HASH_KEY, file_hash
from exosphere_dagster.resolve.cost.prices import reservation
from exosphere_dagster.resolve.placement import (
    PlacementPolicy,
    light_placement,
    satellite_placement,
    step_resources,
)
from exosphere_dagster.resolve.segments import START, Segment, cut_segments
from exosphere_dagster.resolve.tags import PRIORITY_TAG, SATELLITE_TAG, sla_run_tags
from exosphere_dagster.runtime.step_runner import StepRunner
from exosphere_dagster.translate.executor import executor_from_env
from exosphere_dagster.translate.io_manager import io_resources
from exosphere_dagster.translate.launchpad.edits import (
    check_run_config,
    config_schema,
    configured_node,
    defaults,
)
from exosphere_dagster.translate.ops import gather_op, satellite_op, start_op
from exosphere_dagster.translate.summary import SUMMARY_OP, summary_op
from satellite_ops.registry import SatelliteRegistry
from yaml_loader.ir import ClusterPlan, SatelliteNode


def build_job(
    plan: ClusterPlan,
    registry: SatelliteRegistry,
    policy: PlacementPolicy | None = None,
    **job_kwargs: Any,
) -> JobDefinition:
    """One job per cluster: start -> chained satellites per segment -> summary."""
    if "executor_def" not in job_kwargs and (executor := executor_from_env()) is not None:
        job_kwargs["executor_def"] = executor
    policy = (policy or PlacementPolicy.load()).for_executor(job_kwargs.get("executor_def"))
    return build_graph(plan, registry, policy).to_job(
        name=plan.job_name,
        resource_defs=io_resources(),
        description=_description(plan),
        tags=sla_run_tags(plan, policy),
        metadata={
            "cluster file": plan.file,
            "trigger": plan.trigger_text,
            "sla": plan.sla.name,
            **({CONTENT_HASH_KEY: digest} if (digest := file_hash(plan.file)) else {}),
        },
        **job_kwargs,
    )


class Wiring:
    """Adds segments of satellites to the graph being composed, with their placement tags.
    Shared by the cluster job and its SLA-breach alert job."""

    def __init__(
        self, plan: ClusterPlan, registry: SatelliteRegistry, policy: PlacementPolicy | None
    ) -> None:
        self.plan = plan
        self.registry = registry
        self.policy = policy or PlacementPolicy.load()
        self.light = light_placement(plan, self.policy)  # start, gathering, summary pods
        self.light_tags = self.policy.step_tags(self.light)
        nodes = (*plan.nodes, *plan.failure_nodes)
        self.definitions = {n.id: registry.get(n.uses) for n in nodes}
        self.log_sinks = [(n, registry.get(n.uses)) for n in plan.log_nodes]
        self.depth = {n.id: i + 1 for i, n in enumerate(nodes)}
        self.items: dict[str, Any] = {}  # node id -> its collected items
        self.reports: dict[str, Any] = {}  # node id -> its collected reports
        self.manifests: dict[str, Any] = {}  # segment name -> its manifest
        self.caught: dict[str, Any] = {}  # gathering op -> its caught-up reports

    def make_runner(self, context: Any) -> StepRunner:
        return StepRunner(
            context, self.plan, self.definitions, self.log_sinks, self.node_config(context)
        )

    def node_config(self, context: Any) -> Any:
        """node -> the node with this run's op config (its own step's, or the run config's for
        the nodes a gathering step runs inline)."""
        given = context.run_config.get("ops") or {}
        own = context.op_handle.name  # a satellite step: its own op config has the defaults

        def configured(node: SatelliteNode) -> SatelliteNode:
            definition = self.definitions[node.id]
            if node.op_name == own:
                return configured_node(node, definition, context.op_config)
            edited = (given.get(node.op_name) or {}).get("config")
            if not edited:
                return node
            schema = config_schema(node, definition)
            return configured_node(node, definition, {**defaults(schema), **edited})

        return configured

    def materializations(self, plan: ClusterPlan, totals: dict[str, Any]) -> list[Any]:
        """The run's counts on the cluster's assets (lineage.py), plotted by Dagster."""
        from exosphere_dagster.translate.lineage import run_materializations

        return run_materializations(plan, totals, self.registry)

    def batched(self, segment: Segment) -> bool:
        return any(self.definitions[n.id].batched for n in segment.nodes)

    def start(self, segment: Segment) -> Any:
        registry = self.registry
        op = start_op(
            self.plan,
            segment,
            self.batched(segment),
            lambda run_config: check_run_config(self.plan, registry, run_config),
        )
        chunks, self.manifests[segment.name] = op.alias(START).tag(self.light_tags)()
        return chunks

    def gather(self, segment: Segment, upstream: dict[str, Segment]) -> Any:
        """The collect + split node in front of ``segment``."""
        own = {s.name: s for s in upstream.values()}
        op = gather_op(self.plan, segment, upstream, self.batched(segment), self.make_runner)
        sources = {
            f"from_{self.plan.node(s).op_name}": (
                self.reports[s] if segment.from_failures else self.items[s]
            )
            for s in segment.sources
        }
        manifests = {f"manifest_{name}": self.manifests[name] for name in own}
        chunks, self.manifests[segment.name], self.caught[segment.name] = op.alias(
            segment.name
        ).tag(self.light_tags)(**sources, **manifests)
        return chunks

    def chain(self, segment: Segment, chunks: Any) -> None:
        """Map the segment's satellites over its chunks, each chunk straight through."""
        plan, members = self.plan, segment.ids()
        ops = {n.id: self._satellite(n, members) for n in segment.nodes}

        def one_chunk(chunk: Any) -> tuple[Any, ...]:
            outputs: dict[str, Any] = {}
            for node in segment.nodes:
                inside = [p for p in node.parents if p in members]
                ins = (
                    {f"from_{plan.node(p).op_name}": outputs[p][0] for p in inside}
                    if inside
                    else {"chunk": chunk}
                )
                outputs[node.id] = ops[node.id](**ins)
            return tuple(handle for node in segment.nodes for handle in outputs[node.id])

        handles = chunks.map(one_chunk)
        for i, node in enumerate(segment.nodes):
            self.items[node.id] = handles[2 * i].collect()
            self.reports[node.id] = handles[2 * i + 1].collect()

    def _satellite(self, node: SatelliteNode, members: set[str]) -> Any:
        definition = self.definitions[node.id]
        placement = satellite_placement(self.plan, step_resources(node, definition), self.policy)
        tags = {
            SATELLITE_TAG: node.uses,
            PRIORITY_TAG: str(self.depth[node.id]),  # deeper first: chunks flow through
            **self.policy.step_tags(placement),
        }
        inside = [p for p in node.parents if p in members]
        inputs = [f"from_{self.plan.node(p).op_name}" for p in inside] if inside else ["chunk"]
        schema = config_schema(node, definition)
        where = reservation(placement)
        op = satellite_op(self.plan, node, inputs, tags, where, schema, self.make_runner)
        return op.alias(node.op_name)

    def summary(self, segments: list[Segment]) -> None:
        inputs = {f"report_{n.op_name}": self.reports[n.id] for s in segments for n in s.nodes}
        inputs.update({f"manifest_{s.name}": self.manifests[s.name] for s in segments})
        inputs.update({f"caught_{s.name}": self.caught[s.name] for s in segments if s.sources})
        op = summary_op(
            self.plan, segments, self.make_runner, reservation(self.light), self.materializations
        )
        op.alias(SUMMARY_OP).tag(self.light_tags)(**inputs)


def wire_segments(wiring: Wiring, segments: list[Segment], first_chunks: Any = None) -> None:
    """Start (or gather) each segment, chain its satellites, then sum up. ``first_chunks``
    feeds the first segment from an op of the caller's (the SLA-breach job's)."""
    home: dict[str, Segment] = {}
    for segment in segments:
        if segment is segments[0] and first_chunks is not None:
            chunks = first_chunks
        elif segment.name == START:
            chunks = wiring.start(segment)
        else:
            chunks = wiring.gather(segment, {s: home[s] for s in segment.sources})
        wiring.chain(segment, chunks)
        home.update((n.id, segment) for n in segment.nodes)
    wiring.summary(segments)


def build_graph(
    plan: ClusterPlan, registry: SatelliteRegistry, policy: PlacementPolicy | None = None
) -> GraphDefinition:
    @graph(name=plan.job_name)
    def cluster_graph() -> None:
        wiring = Wiring(plan, registry, policy)
        wire_segments(wiring, cut_segments(plan, registry))

    return cluster_graph


def _description(plan: ClusterPlan) -> str:
    lines = [plan.title or plan.identifier]
    if plan.description:
        lines.append(plan.description)
    lines.append(f"SLA {plan.sla.name}; trigger: {plan.trigger_text}; defined in {plan.file}")
    return "\n\n".join(lines)


__all__ = ["build_job", "build_graph", "Wiring", "SUMMARY_OP"]
