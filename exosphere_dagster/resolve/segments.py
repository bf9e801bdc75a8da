"""Where a cluster's chunks are cut: the satellites split into *segments* that share one mapping.

Items travel as chunks (one Dagster mapped step per satellite per chunk). Inside a segment the
satellites are chained over the same mapping key, so chunk k reaches the segment's last
satellite without waiting for the other chunks. A new segment (one collect + split node) starts
only where it must:

* after a fan-out point: a main-branch source satellite (it turns the run's few inputs into the
  many objects the rest of the cluster works on) or a satellite declaring ``fans_out``;
* at a join whose parents sit in different segments (Dagster cannot zip two mappings);
* at the failure branch, which gathers the failed items of the routed satellites.

Dagster-free: the builder turns segments into ops, the summary uses them to find lost chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from yaml_loader.identity import FAILURES_NODE as FAILURES
from yaml_loader.identity import GATHER_SUFFIXES
from yaml_loader.identity import START_NODE as START
from yaml_loader.ir import ClusterPlan, SatelliteNode

REGATHER, JOIN = GATHER_SUFFIXES  # "<satellite>__rechunk", "<satellite>__join"


@dataclass
class Segment:
    name: str  # the node that cuts its chunks (the start op, a rechunk/join op, the failures op)
    sources: tuple[str, ...]  # satellites whose items it gathers; () = the run's inputs
    from_failures: bool = False  # gathers the failed items of ``sources`` (the failure branch)
    nodes: list[SatelliteNode] = field(default_factory=list)  # topological order

    def ids(self) -> set[str]:
        return {n.id for n in self.nodes}

    def upstream(self, node_id: str) -> list[SatelliteNode]:
        """``node_id`` and its ancestors inside this segment, in order: what must run to get its
        items for one chunk."""
        members = {n.id: n for n in self.nodes}
        wanted, stack = set(), [node_id]
        while stack:
            current = stack.pop()
            if current in wanted:
                continue
            wanted.add(current)
            stack.extend(p for p in members[current].parents if p in members)
        return [n for n in self.nodes if n.id in wanted]


def fans_out(node: SatelliteNode, plan: ClusterPlan, definition: Any) -> bool:
    """A node whose items are re-chunked before its children see them."""
    source = node.branch == "main" and not node.parents
    return source or bool(getattr(definition, "fans_out", False))


def cut_segments(plan: ClusterPlan, registry: Any) -> list[Segment]:
    """The segments of the main branch, then of the failure branch."""
    segments: list[Segment] = []
    by_key: dict[Any, Segment] = {}
    home: dict[str, Segment] = {}

    def place(nodes: tuple[SatelliteNode, ...], root: Segment) -> None:
        for node in nodes:
            segment = root if not node.parents else _segment_for(node)
            segment.nodes.append(node)
            home[node.id] = segment

    def _segment_for(node: SatelliteNode) -> Segment:
        parents = [plan.node(p) for p in node.parents]
        split = [p for p in parents if fans_out(p, plan, registry.get(p.uses))]
        same = {id(home[p.id]) for p in parents}
        if not split and len(same) == 1:
            return home[parents[0].id]
        if len(parents) == 1:
            key, name = ("after", parents[0].id), parents[0].op_name + REGATHER
        else:
            key, name = ("join", node.id), node.op_name + JOIN
        if key not in by_key:
            by_key[key] = Segment(name, tuple(node.parents))
            segments.append(by_key[key])
        return by_key[key]

    start = Segment(START, ())
    segments.append(start)
    place(plan.nodes, start)
    routed_ids = plan.routed_nodes()  # once: it walks the graph
    routed = [n.id for n in plan.nodes if n.id in routed_ids]
    if plan.failure_nodes and routed:
        failures = Segment(FAILURES, tuple(routed), from_failures=True)
        segments.append(failures)
        place(plan.failure_nodes, failures)
    return segments
