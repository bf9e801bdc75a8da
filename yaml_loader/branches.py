"""One branch of a cluster (main, failure, logs) as a graph: parents from ``parents``,
``children``, the file's order and template references; cycles and unreadable references
reported with their place. A part of the planner (``plan._Planner``), kept apart for size."""

from __future__ import annotations

from typing import Any

from yaml_loader.errors import ConfigError, KeyPath, did_you_mean
from yaml_loader.graph import ancestors, drop_transitive_parents, find_cycle, topological_order
from yaml_loader.ir import SatelliteNode
from yaml_loader.models import SatelliteSpec
from yaml_loader.references import ancestry_problem
from yaml_loader.source import SourceMap

# where a template reference sits: the value's key path and the reference's (line, column)
RefSite = tuple[KeyPath, tuple[int, int]]


class BranchGraph:
    """Builds a branch's nodes; the planner supplies ``_compile``, ``_node`` and ``_ref_error``."""

    source: SourceMap
    errors: list[ConfigError]
    all_ids: set[str]

    def _branch_nodes(
        self, branch: str, base: KeyPath, sats: list[SatelliteSpec], inherited: set[str] | None
    ) -> tuple[SatelliteNode, ...]:
        """``inherited``: satellites outside the branch every item already has on its lineage
        (None for the logs branch, whose records carry no item)."""
        ids = [s.id for s in sats]
        parents: dict[str, list[str]] = {}
        compiled: dict[str, tuple[Any, Any, dict[str, RefSite], set[str]]] = {}
        for i, sat in enumerate(sats):
            path = (*base, i)
            explicit = sat.parents
            if explicit is None:
                parents[sat.id] = [ids[i - 1]] if i > 0 and branch != "logs" else []
            else:
                parents[sat.id] = self._known(explicit, ids, (*path, "parents"))
            compiled[sat.id] = self._compile(sat, path, branch)
        if len(set(ids)) != len(ids):  # already reported; a graph keyed by id would be wrong
            return ()
        for i, sat in enumerate(sats):
            for child in self._known(sat.children or [], ids, (*base, i, "children")):
                if sat.id not in parents[child]:
                    parents[child].append(sat.id)
        # template references to satellites of this branch are dependencies too
        for sat in sats:
            for ref, site in compiled[sat.id][2].items():
                if ref == sat.id:
                    self._ref_error(
                        site,
                        f"satellite '{ref}' references its own output",
                        "a satellite can only read the outputs of its ancestors",
                    )
                elif ref in ids and ref not in ancestors(sat.id, parents):
                    if sat.id in ancestors(ref, parents):
                        self._ref_error(
                            site,
                            f"'satellites.{ref}' is not an ancestor of '{sat.id}': it runs after it",
                            "only satellites that run before this one on the same item path can "
                            "be read; move the reference or reorder the satellites",
                        )
                    else:
                        parents[sat.id].append(ref)
        cycle = find_cycle(ids, parents)
        if cycle:
            i = ids.index(cycle[0])
            self.errors.append(
                self.source.error(
                    (*base, i),
                    "satellites form a cycle: " + " -> ".join([*cycle, cycle[0]]),
                    hint="remove one 'parents'/'children' entry or template reference in this loop",
                )
            )
            return ()
        drop_transitive_parents(parents)
        order = topological_order(ids, parents)
        nodes = []
        for sat_id in order:
            i = ids.index(sat_id)
            sat = sats[i]
            config, input_, refs, secrets = compiled[sat_id]
            self._check_ancestry(branch, base, i, sat_id, refs, parents, inherited)
            nodes.append(
                self._node(sat, (*base, i), branch, tuple(parents[sat_id]), config, input_, secrets)
            )
        return tuple(nodes)

    def _known(self, names: list[str], ids: list[str], path: KeyPath) -> list[str]:
        known = []
        for j, name in enumerate(names):
            if name in ids:
                known.append(name)
            else:
                self.errors.append(
                    self.source.error(
                        (*path, j),
                        f"unknown satellite '{name}'",
                        expected="an identifier of this branch: " + ", ".join(ids),
                        hint=did_you_mean(name, ids),
                    )
                )
        return known

    def _check_ancestry(
        self,
        branch: str,
        base: KeyPath,
        i: int,
        sat_id: str,
        refs: dict[str, RefSite],
        parents: dict[str, list[str]],
        inherited: set[str] | None,
    ) -> None:
        reachable = ancestors(sat_id, parents) | (inherited or set())
        for ref, site in refs.items():
            if (
                ref in reachable
                or ref == sat_id
                or (ref in parents and sat_id in ancestors(ref, parents))
            ):
                continue  # the last two are reported while building the graph
            self._ref_error(
                site, *ancestry_problem(ref, sat_id, branch, self.all_ids, inherited is not None)
            )
