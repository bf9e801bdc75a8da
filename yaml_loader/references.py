"""What a template reference may name: the template scope's roots and fields, and the
satellites on an item's lineage. Used by the planner at load time and by the Launchpad's run
config check (``exosphere_dagster.translate.launchpad.edits``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from yaml_loader.errors import did_you_mean
from yaml_loader.graph import ancestors
from yaml_loader.ir import ClusterPlan, SatelliteNode
from yaml_loader.templates.scope import CLUSTER_FIELDS, FAILURE_FIELDS, RUN_FIELDS


def reference_problem(
    ref: Any, branch: str, declared_secrets: list[str]
) -> tuple[str, str | None] | None:
    """What is wrong with one template reference judged on its own (root, field, declared
    secret), as (message, hint); None when it is fine. Ancestry needs the graph: see below."""
    first = ref.path[0] if ref.path else None
    if ref.root == "satellites":
        if first is None or not isinstance(first, str):
            return (
                "'satellites' must be followed by a satellite identifier",
                "write satellites.<identifier>.output",
            )
        if len(ref.path) > 1 and ref.path[1] != "output":
            return (
                f"'satellites.{first}.{ref.path[1]}' is not available",
                f"write satellites.{first}.output",
            )
    elif ref.root == "secrets":
        if first is None:
            return "'secrets' must be followed by a secret name", "write secrets.<NAME>"
        if first not in declared_secrets:
            return (
                f"secret '{first}' is not declared in cluster.secrets",
                did_you_mean(str(first), declared_secrets)
                or f"add '- {first}: env:{first}' under cluster.secrets",
            )
    elif ref.root == "cluster" and first not in CLUSTER_FIELDS:
        return (
            f"'cluster.{first}' is not available",
            did_you_mean(str(first), CLUSTER_FIELDS) or "available: " + ", ".join(CLUSTER_FIELDS),
        )
    elif ref.root == "run" and first not in RUN_FIELDS:
        return (
            f"'run.{first}' is not available",
            did_you_mean(str(first), RUN_FIELDS) or "available: " + ", ".join(RUN_FIELDS),
        )
    elif ref.root == "failure":
        if branch != "failure":
            return (
                "'failure' values exist only in the failure branch",
                "move this satellite under failure.satellites",
            )
        if first not in FAILURE_FIELDS:
            return (
                f"'failure.{first}' is not available",
                did_you_mean(str(first), FAILURE_FIELDS)
                or "available: " + ", ".join(FAILURE_FIELDS),
            )
    return None


def ancestry_problem(
    ref: str, sat_id: str, branch: str, all_ids: Iterable[str], has_items: bool
) -> tuple[str, str]:
    """(message, hint) for a ``satellites.<ref>`` that ``sat_id`` cannot read."""
    known = sorted(all_ids)
    if not has_items:
        return (
            f"log satellites have no items: 'satellites.{ref}' cannot be read here",
            "log satellites may use secrets, cluster and run values",
        )
    if ref not in known:
        return (
            f"'satellites.{ref}' names an unknown satellite",
            did_you_mean(ref, known) or "check the identifier",
        )
    hint = "only satellites that run before this one on the same item path can be read"
    if branch == "failure":
        hint = "the failure branch can read satellites that ran before 'failure.from' and earlier failure satellites"
    return f"'satellites.{ref}' is not an ancestor of '{sat_id}'", hint


def readable_satellites(cluster: ClusterPlan, node: SatelliteNode) -> set[str] | None:
    """The satellites whose outputs are on ``node``'s items' lineage: what its templates may
    read (None for log satellites, whose records carry no item)."""
    if node.branch == "logs":
        return None
    main = {n.id: n.parents for n in cluster.nodes}
    if node.branch == "main":
        return ancestors(node.id, main)
    failure = {n.id: n.parents for n in cluster.failure_nodes}
    inherited = ancestors(cluster.failure_from, main) if cluster.failure_from else set()
    return ancestors(node.id, failure) | inherited
