"""Stage 2: a validated ClusterSpec becomes the frozen ClusterPlan.

Here the file is checked as a whole: satellites resolve through the registry and their config
validates against the satellite's own model, templates compile, every reference points at an
ancestor or a declared secret, and the graph has no cycle. All problems are reported together.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from yaml_loader.errors import ConfigError, ConfigErrors, KeyPath, did_you_mean
from yaml_loader.graph import find_cycle, topological_order
from yaml_loader.ir import (
    SLA_TIERS,
    ClusterPlan,
    RetrySettings,
    SatelliteNode,
    job_name_for,
    op_name_for,
)
from yaml_loader.load import LoadedCluster
from yaml_loader.models import SatelliteSpec
from yaml_loader.secret_refs import is_reference
from yaml_loader.source import SourceMap
from yaml_loader.templates import TemplateSyntaxError, compile_value, iter_templates
from yaml_loader.validation import translate

# where a template reference sits: the value's key path and the reference's (line, column)
_RefSite = tuple[KeyPath, tuple[int, int]]

CLUSTER_FIELDS = ("identifier", "title", "description", "sla", "trigger")
RUN_FIELDS = ("id", "input", "started_at", "trigger_time", "deadline")
FAILURE_FIELDS = ("error", "satellite", "attempts", "item_id", "error_type")


class SatelliteLookup(Protocol):
    """What the planner needs of ``satellite_ops``'s registry (kept abstract: no import)."""

    def get(self, identifier: str) -> Any: ...  # .config_model; raises KeyError when unknown

    def identifiers(self) -> Iterable[str]: ...


class _Planner:
    def __init__(self, loaded: LoadedCluster, registry: SatelliteLookup) -> None:
        self.loaded = loaded
        self.spec = loaded.spec
        self.source: SourceMap = loaded.source
        self.registry = registry
        self.errors: list[ConfigError] = []
        self.warnings: list[str] = []
        branches = [self.spec.satellites]
        branches += [b.satellites for b in (self.spec.failure, self.spec.logs) if b]
        self.all_ids = {s.id for sats in branches for s in sats}  # every branch's identifiers

    # -- entry ---------------------------------------------------------------------------
    def run(self) -> ClusterPlan:
        spec = self.spec
        branches: list[tuple[str, KeyPath, list[SatelliteSpec]]] = [
            ("main", ("cluster", "satellites"), spec.satellites)
        ]
        if spec.failure:
            branches.append(
                ("failure", ("cluster", "failure", "satellites"), spec.failure.satellites)
            )
        if spec.logs:
            branches.append(("logs", ("cluster", "logs", "satellites"), spec.logs.satellites))
        self._check_unique_ids(branches)
        self._check_secrets()
        main = self._branch_nodes("main", branches[0][1], spec.satellites, inherited=set())
        failure_from = None
        failure: tuple[SatelliteNode, ...] = ()
        logs: tuple[SatelliteNode, ...] = ()
        if spec.failure:
            failure_from, inherited = self._failure_scope(main)
            failure = self._branch_nodes(
                "failure", ("cluster", "failure", "satellites"), spec.failure.satellites, inherited
            )
        if spec.logs:
            logs = self._branch_nodes(
                "logs", ("cluster", "logs", "satellites"), spec.logs.satellites, None
            )
        if self.errors:
            raise ConfigErrors(self.errors)
        return ClusterPlan(
            identifier=spec.identifier,
            job_name=job_name_for(spec.identifier),
            file=self.source.file,
            title=spec.title,
            description=spec.description,
            sla=SLA_TIERS[spec.sla],
            trigger=spec.trigger,
            secrets=dict(spec.secrets),
            tags=dict(spec.tags),
            nodes=main,
            failure_from=failure_from,
            failure_nodes=failure,
            log_nodes=logs,
            warnings=tuple(self.warnings),
        )

    # -- whole-file checks ---------------------------------------------------------------
    def _check_unique_ids(self, branches: list[tuple[str, KeyPath, list[SatelliteSpec]]]) -> None:
        seen: dict[str, KeyPath] = {}
        ops: dict[str, str] = {}
        for _, base, sats in branches:
            for i, sat in enumerate(sats):
                path = (*base, i, "identifier") if sat.identifier else (*base, i, "uses")
                if sat.id in seen:
                    first = self.source.locate(seen[sat.id])
                    self.errors.append(
                        self.source.error(
                            path,
                            f"duplicate satellite identifier '{sat.id}'",
                            found=f"also used at line {first.line}",
                            hint="give each satellite a unique 'identifier'",
                        )
                    )
                    continue
                op = op_name_for(sat.id)
                if op in ops:
                    self.errors.append(
                        self.source.error(
                            path,
                            f"identifier '{sat.id}' clashes with '{ops[op]}' as Dagster op '{op}'",
                            hint="'-' and '_' are the same in op names: rename one of them",
                        )
                    )
                seen[sat.id] = path
                ops[op] = sat.id

    def _check_secrets(self) -> None:
        lines = {
            path[3]: pos.line
            for path, pos in self.source.keys.items()
            if len(path) == 4 and path[:2] == ("cluster", "secrets")
        }
        for name, value in self.spec.secrets.items():
            if not is_reference(value):
                line = lines.get(name) or self.source.locate(("cluster", "secrets", name)).line
                self.warnings.append(
                    f"{self.source.file}:{line}: "
                    f"secret '{name}' is a literal value in the file; use 'env:{name}', "
                    "'aws-secretsmanager:<id>' or a mounted file path instead"
                )

    def _failure_scope(self, main: tuple[SatelliteNode, ...]) -> tuple[str | None, set[str]]:
        assert self.spec.failure is not None
        ids = [n.id for n in main]
        origin = self.spec.failure.from_
        if origin is None:
            origin = ids[0] if ids else None
        elif origin not in ids:
            self.errors.append(
                self.source.error(
                    ("cluster", "failure", "from"),
                    f"'failure.from' names unknown satellite '{origin}'",
                    expected="one of: " + ", ".join(ids),
                    hint=did_you_mean(origin, ids),
                )
            )
            return None, set()
        parents = {n.id: n.parents for n in main}
        return origin, _ancestors(origin, parents)

    # -- per branch ----------------------------------------------------------------------
    def _branch_nodes(
        self, branch: str, base: KeyPath, sats: list[SatelliteSpec], inherited: set[str] | None
    ) -> tuple[SatelliteNode, ...]:
        """``inherited``: satellites outside the branch every item already has on its lineage
        (None for the logs branch, whose records carry no item)."""
        ids = [s.id for s in sats]
        parents: dict[str, list[str]] = {}
        compiled: dict[str, tuple[Any, Any, dict[str, _RefSite], set[str]]] = {}
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
                elif ref in ids and ref not in _ancestors(sat.id, parents):
                    if sat.id in _ancestors(ref, parents):
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
        _drop_transitive_parents(parents)
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
        refs: dict[str, _RefSite],
        parents: dict[str, list[str]],
        inherited: set[str] | None,
    ) -> None:
        reachable = _ancestors(sat_id, parents) | (inherited or set())
        for ref, site in refs.items():
            if (
                ref in reachable
                or ref == sat_id
                or (ref in parents and sat_id in _ancestors(ref, parents))
            ):
                continue  # the last two are reported while building the graph
            self._ref_error(
                site, *ancestry_problem(ref, sat_id, branch, self.all_ids, inherited is not None)
            )

    # -- one satellite -------------------------------------------------------------------
    def _compile(
        self, sat: SatelliteSpec, path: KeyPath, branch: str
    ) -> tuple[Any, Any, dict[str, _RefSite], set[str]]:
        refs: dict[str, _RefSite] = {}
        secrets: set[str] = set()
        compiled: dict[str, Any] = {}
        templated: set[KeyPath] = set()
        for key in ("config", "input"):
            raw = getattr(sat, key)
            if raw is None:
                compiled[key] = None
                continue
            try:
                compiled[key] = compile_value(raw)
            except TemplateSyntaxError as exc:
                inner = (*path, key, *getattr(exc, "path", ()))
                self.errors.append(self._template_error(inner, exc))
                compiled[key] = None
                continue
            for inner, template in iter_templates(compiled[key]):
                full = (*path, key, *inner)
                if key == "config":
                    templated.add(tuple(inner))
                for ref in template.references:
                    self._check_reference(ref, full, template, branch, refs, secrets)
        self._validate_config(sat, path, templated)
        return compiled["config"], compiled["input"], refs, secrets

    def _check_reference(
        self,
        ref: Any,
        path: KeyPath,
        template: Any,
        branch: str,
        refs: dict[str, _RefSite],
        secrets: set[str],
    ) -> None:
        first = ref.path[0] if ref.path else None
        where = self._template_position(path, ref.offset, template.source)
        declared = list(self.spec.secrets)
        if ref.root == "satellites" and isinstance(first, str):
            refs.setdefault(first, (path, where))
        elif ref.root == "secrets" and first in declared:
            secrets.add(str(first))
        problem = reference_problem(ref, branch, declared)
        if problem is not None:
            message, hint = problem
            self.errors.append(ConfigError(self.source.file, *where, path, message, hint=hint))

    def _validate_config(self, sat: SatelliteSpec, path: KeyPath, templated: set[KeyPath]) -> None:
        try:
            definition = self.registry.get(sat.uses)
        except KeyError:
            known = sorted(self.registry.identifiers())
            self.errors.append(
                self.source.error(
                    (*path, "uses"),
                    f"unknown satellite '{sat.uses}'",
                    hint=did_you_mean(sat.uses, known)
                    or "register it with @satellite and EXOSPHERE_SATELLITE_MODULES, or run "
                    "'exosphere schema' to list the built-in satellites",
                )
            )
            return
        self.errors.extend(
            validate_config(
                definition.config_model, sat.config, templated, self.source, (*path, "config")
            )
        )

    def _node(
        self,
        sat: SatelliteSpec,
        path: KeyPath,
        branch: str,
        parents: tuple[str, ...],
        config: Any,
        input_: Any,
        secrets: set[str],
    ) -> SatelliteNode:
        pos = self.source.locate(path)
        return SatelliteNode(
            id=sat.id,
            op_name=op_name_for(sat.id),
            name=sat.name or sat.id,
            uses=sat.uses,
            branch=branch,  # type: ignore[arg-type]
            parents=parents,
            config=config if config is not None else {},
            input=input_,
            retry=RetrySettings(
                retries=sat.retries if sat.retries is not None else self.spec.retries,
                delay=sat.delay if sat.delay is not None else self.spec.delay,
            ),
            timeout=sat.timeout,
            concurrency=sat.concurrency,
            resources=sat.resources,
            secrets=frozenset(secrets),
            line=pos.line,
            column=pos.column,
        )

    # -- positions -----------------------------------------------------------------------
    def _ref_error(self, site: _RefSite, message: str, hint: str | None) -> None:
        path, (line, column) = site
        self.errors.append(ConfigError(self.source.file, line, column, path, message, hint=hint))

    def _template_position(self, path: KeyPath, offset: int, text: str) -> tuple[int, int]:
        pos = self.source.locate(path)
        before = text[:offset]
        if pos.style in ("|", ">"):
            line = pos.line + 1 + before.count("\n")
            return line, pos.indent + len(before) - (before.rfind("\n") + 1)
        if "\n" in before:
            return pos.line + before.count("\n"), len(before) - before.rfind("\n")
        quote = 1 if pos.style in ("'", '"') else 0
        return pos.line, pos.column + quote + offset

    def _template_error(self, path: KeyPath, exc: TemplateSyntaxError) -> ConfigError:
        text = _value_at(self.spec_raw(), path)
        line, col = self._template_position(path, exc.offset, text if isinstance(text, str) else "")
        return ConfigError(
            self.source.file,
            line,
            col,
            path,
            f"template syntax error: {exc.message}",
            hint=exc.hint,
        )

    def spec_raw(self) -> Any:
        return {"cluster": self.spec.model_dump(by_alias=True)}


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
        return _ancestors(node.id, main)
    failure = {n.id: n.parents for n in cluster.failure_nodes}
    inherited = _ancestors(cluster.failure_from, main) if cluster.failure_from else set()
    return _ancestors(node.id, failure) | inherited


def validate_config(
    model: type[BaseModel], config: Any, templated: set[KeyPath], source: SourceMap, base: KeyPath
) -> list[ConfigError]:
    """The satellite model's errors on ``config``, except at templated values (checked once
    rendered, at run time). Every level is strict unless its model allows extra keys itself."""
    try:
        model.model_validate(config, extra="forbid")
    except ValidationError as exc:
        return translate(
            exc, model, source, base, skip=lambda loc: _inside_template(loc, templated, config)
        )
    return []


def _inside_template(loc: KeyPath, templated: set[KeyPath], config: Any) -> bool:
    """True when a config error is about a templated value: it is checked once rendered.

    The error's place is first found in the config as written: a key pydantic reads from a
    single-key-map list (``secrets.X``) is the list entry holding it (``secrets[0].X``), and a part
    that is not in the data is a union member's name (``expected-status.int``). An error at or
    inside a template is skipped; so is a union member's error around one (another member may
    match the rendered value). An error about a list or mapping that merely holds a template
    (``bucket: [${{ x }}]`` for a string) is kept.
    """
    path: list[str | int] = []
    data, union = config, False
    for part in loc:
        step = _written(data, part)
        if step is None:
            union = True  # a union member's name (or a model's own loc part): not in the data
            continue
        path += step
        for key in step:
            data = data[key]
    where = tuple(path)
    return any(where[: len(t)] == t or (union and t[: len(where)] == where) for t in templated)


def _written(data: Any, part: str | int) -> list[str | int] | None:
    """How one part of an error's loc is written in the data: as itself, or as a list entry of a
    single-key-map list and the key inside it; None when the data has no such part."""
    if isinstance(data, dict) and part in data:
        return [part]
    if isinstance(data, list):
        if isinstance(part, int) and 0 <= part < len(data):
            return [part]
        for index, entry in enumerate(data):
            if isinstance(entry, dict) and part in entry:
                return [index, part]
    return None


def _value_at(data: Any, path: KeyPath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _ancestors(node: str, parents: dict[str, list[str]] | dict[str, tuple[str, ...]]) -> set[str]:
    seen: set[str] = set()
    stack = list(parents.get(node, ()))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(parents.get(current, ()))
    return seen


def _drop_transitive_parents(parents: dict[str, list[str]]) -> None:
    """Keep only direct item sources: a parent that is already an ancestor of another parent
    adds no ordering and would make the satellite run twice for the same item path."""
    for node, direct in parents.items():
        redundant = {p for p in direct for q in direct if q != p and p in _ancestors(q, parents)}
        parents[node] = [p for p in direct if p not in redundant]


def plan(loaded: LoadedCluster, registry: SatelliteLookup) -> ClusterPlan:
    """Compile a loaded cluster into its plan; raise ConfigErrors with every problem found."""
    return _Planner(loaded, registry).run()
