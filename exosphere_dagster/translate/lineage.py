"""Clusters in Dagster's asset catalog: each satellite is an external asset (key
``[job_name, op_name]``, one group per cluster) wired to its parents and to the places outside
the cluster it reads or writes, titled by service and place (``["external", "s3",
"s3 bucket › prefix"]``, ``["external", "pagerduty", "PagerDuty"]``: places.py). A run reports
its item counts as materializations of those assets, whose history Dagster plots.

The assets are external (no op computes them): the cluster's job stays the unit that runs, and
its summary step reports what happened through :func:`run_materializations`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from dagster import AssetKey, AssetMaterialization, AssetSpec, MetadataValue

from exosphere_dagster.resolve.places import place_folder, place_title
from satellite_ops.endpoints import Endpoint, StaticConfig, Templated, endpoints_of, file_endpoint
from satellite_ops.endpoints import s3_endpoint as s3_place
from yaml_loader.ir import ClusterPlan, SatelliteNode
from yaml_loader.secret_refs import parse_secret_ref
from yaml_loader.templates import CompiledTemplate

EXTERNAL = "external"  # first key part of every place outside a cluster (a job name has "__")
SATELLITE_TAG = "exosphere/satellite"
BRANCH_TAG = "exosphere/branch"
CLUSTER_TAG = "exosphere/cluster"
KIND = "exosphere"
logger = logging.getLogger("exosphere")


def satellite_key(plan: ClusterPlan, node: SatelliteNode) -> AssetKey:
    return AssetKey([plan.job_name, node.op_name])


def endpoint_key(endpoint: Endpoint) -> AssetKey:
    """``["external", service, title]``: the graph shows the title (places.py)."""
    return AssetKey([EXTERNAL, place_folder(endpoint), place_title(endpoint)])


def static_config(raw: Any) -> Any:
    """The node's config with each compiled template replaced by its text (:class:`Templated`)."""
    if isinstance(raw, CompiledTemplate):
        prefix = "".join(p for p in _leading_text(raw.parts))
        return Templated(raw.source, prefix)
    if isinstance(raw, Mapping):
        return {k: static_config(v) for k, v in raw.items()}
    if isinstance(raw, list | tuple):
        return [static_config(v) for v in raw]
    return raw


def _leading_text(parts: Iterable[Any]) -> Iterable[str]:
    for part in parts:
        if not isinstance(part, str):
            return
        yield part


def node_endpoints(plan: ClusterPlan, registry: Any) -> dict[str, list[Endpoint]]:
    """Each satellite's endpoints (the trigger's S3 prefix or folder feeds the main roots).

    A satellite whose declaration fails, or whose endpoint would show a literal secret, gets
    none (logged): lineage is a view and never stops a cluster from loading."""
    secrets = _literal_secrets(plan)
    found: dict[str, list[Endpoint]] = {}
    for node in _nodes(plan):
        try:
            definition = registry.get(node.uses)
            config = StaticConfig(static_config(node.config), definition.config_model)
            endpoints = endpoints_of(definition, config)
        except Exception as exc:  # a bring-your-own declaration is user code
            logger.warning(
                "%s: no lineage for satellite '%s': %s", plan.file, node.id, type(exc).__name__
            )
            endpoints = []
        if node.branch == "main" and not node.parents:
            endpoints = [*_trigger_sources(plan), *endpoints]
        safe = [e for e in endpoints if not _shows_secret(e, secrets)]
        if len(safe) < len(endpoints):
            logger.warning(
                "%s: satellite '%s' names a place holding a secret value: left out of the lineage",
                plan.file,
                node.id,
            )
        found[node.id] = safe
    return found


def _nodes(plan: ClusterPlan) -> tuple[SatelliteNode, ...]:
    return (*plan.nodes, *plan.failure_nodes, *plan.log_nodes)


def _trigger_sources(plan: ClusterPlan) -> list[Endpoint]:
    trigger = plan.trigger
    if trigger.s3:
        place = s3_place("source", trigger.s3.bucket, trigger.s3.prefix)
    elif trigger.folder:
        place = file_endpoint("source", trigger.folder.path)
    else:
        place = None
    return [place] if place else []


def _literal_secrets(plan: ClusterPlan) -> list[str]:
    refs = (parse_secret_ref(value) for value in plan.secrets.values())
    return [ref.target for ref in refs if ref.kind == "literal" and len(ref.target) >= 4]


def _shows_secret(endpoint: Endpoint, secrets: list[str]) -> bool:
    text = f"{endpoint.uri} {endpoint.detail}"
    return any(secret in text for secret in secrets)


def cluster_asset_specs(plan: ClusterPlan, registry: Any) -> list[AssetSpec]:
    """The cluster's satellites and the places they name, as external asset specs."""
    endpoints = node_endpoints(plan, registry)
    routed = [satellite_key(plan, plan.node(n)) for n in sorted(plan.routed_nodes())]
    specs: list[AssetSpec] = []
    writers: dict[AssetKey, list[AssetKey]] = defaultdict(list)
    for node in _nodes(plan):
        key = satellite_key(plan, node)
        mine = endpoints[node.id]
        deps = [satellite_key(plan, plan.node(p)) for p in node.parents]
        if node.branch == "failure" and not node.parents:
            deps.extend(routed)
        deps.extend(endpoint_key(e) for e in mine if e.role == "source")
        for endpoint in mine:
            if endpoint.role == "sink":
                writers[endpoint_key(endpoint)].append(key)
        specs.append(
            AssetSpec(
                key=key,
                deps=deps,
                description=_describe(plan, node, mine),
                group_name=plan.job_name,
                kinds={KIND, *(e.kind for e in mine)},
                tags={
                    SATELLITE_TAG: tag_value(node.uses.removeprefix("satellite/")),
                    BRANCH_TAG: node.branch,
                    CLUSTER_TAG: tag_value(plan.job_name),
                },
                metadata={
                    "cluster": plan.identifier,
                    "cluster file": MetadataValue.path(plan.file),
                    "line": node.line,
                    "sla": plan.sla.name,
                    "satellite": node.id,
                    "uses": node.uses,
                },
            )
        )
    places = {endpoint_key(e): e for mine in endpoints.values() for e in mine}
    specs.extend(_place_spec(e, writers.get(k, [])) for k, e in places.items())
    return merge_asset_specs(specs)


def _describe(plan: ClusterPlan, node: SatelliteNode, endpoints: list[Endpoint]) -> str:
    lines = [f"{node.name} (`{node.uses}`): satellite `{node.id}` of cluster `{plan.identifier}`."]
    if node.branch == "failure":
        lines.append(f"Runs for the items that failed at `{plan.failure_from}` or after it.")
    elif node.branch == "logs":
        lines.append("Receives the cluster's log records.")
    for endpoint in endpoints:
        verb = (
            "Reads"
            if endpoint.role == "source"
            else "Writes to"
            if endpoint.delivers
            else "Acts on"
        )
        per_item = f" (per item: `{endpoint.detail}`)" if endpoint.detail else ""
        lines.append(f"{verb} `{endpoint.uri}`{per_item}.")
    return "\n\n".join(lines)


def _place_spec(endpoint: Endpoint, writers: list[AssetKey]) -> AssetSpec:
    uri = endpoint.uri
    return AssetSpec(
        key=endpoint_key(endpoint),
        deps=writers,
        description=f"{place_title(endpoint)} (`{uri}`): a place outside the clusters, read or "
        "written by the satellites drawn beside it.",
        group_name=EXTERNAL,
        kinds={endpoint.kind},
        metadata={"uri": MetadataValue.url(uri) if uri.startswith("http") else uri},
    )


def merge_asset_specs(specs: Iterable[AssetSpec]) -> list[AssetSpec]:
    """One spec per key (places shared by clusters merge their writers and kinds), and no
    cycle: a write into a place the writer itself reads from (directly or through other
    clusters) is left out of the graph, with a warning, as Dagster requires a DAG."""
    groups: dict[AssetKey, list[AssetSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.key, []).append(spec)
    merged = {  # one merge per key: merging one spec at a time copied the deps each time
        key: first
        if not rest
        else first.merge_attributes(
            deps=[d for s in rest for d in s.deps], kinds=set().union(*(s.kinds for s in rest))
        )
        for key, (first, *rest) in groups.items()
    }
    graph: dict[AssetKey, set[AssetKey]] = {
        key: set() if key.path[0] == EXTERNAL else {d.asset_key for d in spec.deps}
        for key, spec in merged.items()
    }
    for key in sorted(k for k in merged if k.path[0] == EXTERNAL):
        for dep in sorted({d.asset_key for d in merged[key].deps}):
            if _reaches(graph, dep, key):
                logger.warning(
                    "lineage: %s writes to %s, which it reads from: edge left out (the asset "
                    "graph must stay acyclic)",
                    dep.to_user_string(),
                    key.to_user_string(),
                )
            else:
                graph[key].add(dep)
        if graph[key] != {d.asset_key for d in merged[key].deps}:
            merged[key] = merged[key].replace_attributes(deps=sorted(graph[key]))
    return list(merged.values())


def _reaches(graph: Mapping[AssetKey, set[AssetKey]], start: AssetKey, target: AssetKey) -> bool:
    """Whether ``target`` is ``start`` or one of its upstream assets."""
    stack, seen = [start], set()
    while stack:
        key = stack.pop()
        if key == target:
            return True
        if key not in seen:
            seen.add(key)
            stack.extend(graph.get(key, ()))
    return False


def run_materializations(
    plan: ClusterPlan, totals: Mapping[str, Any], registry: Any = None
) -> list[AssetMaterialization]:
    """One materialization per satellite asset with the run's counts (numbers, so Dagster
    plots their history), and one per place that received items with how many it got.

    ``totals`` is the summary's: ``per_satellite`` maps a satellite id to its ``in``,
    ``succeeded``, ``failed`` and ``resumed`` counts (absent satellites processed nothing)."""
    if registry is None:
        from satellite_ops.registry import default_registry

        registry = default_registry()
    per: Mapping[str, Mapping[str, int]] = totals.get("per_satellite") or {}
    routed_nodes = plan.routed_nodes()
    endpoints = node_endpoints(plan, registry)
    delivered: dict[AssetKey, int] = defaultdict(int)
    found: list[AssetMaterialization] = []
    for node in _nodes(plan):
        if node.branch == "logs" and node.id not in per:
            continue  # log sinks have no item counts
        row = per.get(node.id, {})
        failed = int(row.get("failed", 0))
        routed = int(row.get("routed", failed if node.id in routed_nodes else 0))
        counts = {
            "items_in": int(row.get("in", 0)),
            "succeeded": int(row.get("succeeded", 0)),
            "failed": failed,
            "routed": routed,
            "unhandled": failed - routed,
            "resumed": int(row.get("resumed", 0)),
        }
        found.append(
            AssetMaterialization(
                asset_key=satellite_key(plan, node),
                description=f"{counts['items_in']} in, {counts['succeeded']} succeeded, "
                f"{failed} failed ({routed} routed to the failure branch)",
                metadata={name: MetadataValue.int(value) for name, value in counts.items()},
            )
        )
        for endpoint in endpoints[node.id]:
            if endpoint.role == "sink" and endpoint.delivers:
                delivered[endpoint_key(endpoint)] += counts["succeeded"]
    for key, count in delivered.items():
        found.append(
            AssetMaterialization(
                asset_key=key,
                description=f"{count} item(s) delivered by cluster {plan.identifier}",
                metadata={
                    "items_delivered": MetadataValue.int(count),
                    "cluster": MetadataValue.text(plan.identifier),
                },
            )
        )
    return found


_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def tag_value(text: str) -> str:
    """``project/name`` as a Dagster tag value (letters, digits, ``_.-``, at most 63)."""
    value = _TAG_UNSAFE.sub(".", text)
    if len(value) <= 63:
        return value
    return value[:54] + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]


__all__ = [
    "cluster_asset_specs",
    "endpoint_key",
    "merge_asset_specs",
    "run_materializations",
    "satellite_key",
]
