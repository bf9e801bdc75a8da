"""Stage 2: a validated ClusterSpec becomes the frozen ClusterPlan.

Here the file is checked as a whole: satellites resolve through the registry and their config
validates against the satellite's own model, templates compile, every reference points at an
ancestor or a declared secret, and the graph has no cycle. All problems are reported together.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from yaml_loader.branches import BranchGraph, RefSite
from yaml_loader.errors import ConfigError, ConfigErrors, KeyPath, did_you_mean
from yaml_loader.graph import ancestors
from yaml_loader.identity import reserved_node_problem
from yaml_loader.ir import (
    ClusterPlan,
    RetrySettings,
    SatelliteNode,
    job_name_for,
    op_name_for,
)
from yaml_loader.launch_editable import launch_editable_errors
from yaml_loader.load import LoadedCluster
from yaml_loader.model_check import validate_config, value_at
from yaml_loader.models import SatelliteSpec
from yaml_loader.references import reference_problem
from yaml_loader.secret_refs import is_reference
from yaml_loader.source import SourceMap
from yaml_loader.templates import TemplateSyntaxError, compile_value, iter_templates
from yaml_loader.tiers import tier


class SatelliteLookup(Protocol):
    """What the planner needs of ``satellite_ops``'s registry (kept abstract: no import)."""

    def get(self, identifier: str) -> Any: ...  # .config_model; raises KeyError when unknown

    def identifiers(self) -> Iterable[str]: ...


class _Planner(BranchGraph):
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
        where = self.source.locate(("cluster", "identifier"))
        return ClusterPlan(
            identifier=spec.identifier,
            job_name=job_name_for(spec.identifier),
            file=self.source.file,
            title=spec.title,
            description=spec.description,
            sla=tier(spec.sla),
            trigger=spec.trigger,
            secrets=dict(spec.secrets),
            tags=dict(spec.tags),
            nodes=main,
            failure_from=failure_from,
            failure_nodes=failure,
            log_nodes=logs,
            warnings=tuple(self.warnings),
            identifier_line=where.line,
            identifier_column=where.column,
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
                reserved = reserved_node_problem(op)
                if reserved:
                    self.errors.append(
                        self.source.error(
                            path,
                            f"satellite identifier '{sat.id}' is reserved: {reserved}",
                            hint="give the satellite another 'identifier'",
                        )
                    )
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
        return origin, ancestors(origin, parents)

    # -- one satellite -------------------------------------------------------------------
    def _compile(
        self, sat: SatelliteSpec, path: KeyPath, branch: str
    ) -> tuple[Any, Any, dict[str, RefSite], set[str]]:
        refs: dict[str, RefSite] = {}
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
        refs: dict[str, RefSite],
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
        self.errors.extend(
            launch_editable_errors(
                definition.config_model,
                sat.launch_editable,
                self.source,
                (*path, "launch-editable"),
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
            min_success_ratio=sat.min_success_ratio,
            resources=sat.resources,
            secrets=frozenset(secrets),
            line=pos.line,
            column=pos.column,
            key_path=path,
            launch_editable=frozenset(sat.launch_editable or ()),
        )

    # -- positions -----------------------------------------------------------------------
    def _ref_error(self, site: RefSite, message: str, hint: str | None) -> None:
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
        text = value_at(self.spec_raw(), path)
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


def plan(loaded: LoadedCluster, registry: SatelliteLookup) -> ClusterPlan:
    """Compile a loaded cluster into its plan; raise ConfigErrors with every problem found."""
    return _Planner(loaded, registry).run()
