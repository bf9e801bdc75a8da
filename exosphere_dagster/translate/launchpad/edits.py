"""Satellites as ops with config schemas.

A satellite's pydantic model becomes its op's Dagster config schema, keyed as the cluster file
spells it, with the file's values as defaults: the Launchpad shows them, a run may edit them, and
an empty run config is valid. An edited op config becomes the node's config again
(:func:`configured_node`) once :func:`check_run_config` has judged it as the loader judges the
file. Fields holding a secret (``SecretStr`` anywhere inside) never enter the schema, so no
secret reaches run config or the UI: they keep the plan's values. In a model that holds a secret,
the fields naming what its credentials act on are fixed by the file (``satellite_ops.launch``):
a run that changes one is refused, unless the satellite opts in with ``launch-editable``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any

from dagster import Field, Shape
from pydantic import BaseModel

from exosphere_dagster.translate.launchpad.fields import (
    editable_keys,
    fixed_keys,
    model_schema,
    source_text,
    spellings,
)
from satellite_ops.launch import fixed_field_problem
from yaml_loader.errors import ConfigError, KeyPath, format_key_path
from yaml_loader.ir import ClusterPlan, SatelliteNode
from yaml_loader.model_check import validate_config
from yaml_loader.plan import SatelliteLookup
from yaml_loader.references import ancestry_problem, readable_satellites, reference_problem
from yaml_loader.source import SourceMap
from yaml_loader.templates import TemplateSyntaxError, compile_value, iter_templates

DEFAULT_FIX = "set a value the satellite accepts, or remove the key to use the cluster file's value"
_CACHE: OrderedDict[tuple[int, Hashable], tuple[SatelliteNode, SatelliteNode]] = OrderedDict()
_CACHE_SIZE = 512
_LOCK = threading.Lock()


class OpConfigError(ValueError):
    """An op config that cannot become a satellite config (e.g. a template syntax error)."""


# -- schema --------------------------------------------------------------------------------------
def config_schema(node: SatelliteNode, definition: Any) -> dict[str, Field]:
    """The op's Dagster config schema: ``definition.config_model``'s non-secret fields, with the
    cluster file's values (templates as their ``${{ ... }}`` text) or the model's as defaults."""
    return model_schema(definition.config_model, node.config or {}, node.launch_editable)


def defaults(schema: Mapping[str, Field]) -> dict[str, Any]:
    """The op config an empty run config gives (Dagster resolves each field's default)."""
    return {key: field.default_value for key, field in schema.items() if field.default_provided}


# -- run config -> node ----------------------------------------------------------------------------
def configured_node(
    node: SatelliteNode, definition: Any, op_config: Mapping[str, Any]
) -> SatelliteNode:
    """``node`` with its config replaced by the run's op config (templates compiled, secret
    fields kept from the plan); ``node`` itself when the run kept the defaults. Cached."""
    key = (id(node), _freeze(op_config))
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None and hit[0] is node:  # the entry holds node, so its id is not reused
        return hit[1]
    schema = config_schema(node, definition)
    result = node
    if not _same(op_config, defaults(schema)):
        try:
            compiled = compile_value(dict(op_config))
        except TemplateSyntaxError as exc:
            path = ("ops", node.op_name, "config", *getattr(exc, "path", ()))
            raise OpConfigError(_describe(_syntax_error(path, exc))) from None
        model = definition.config_model
        changed = _fixed_edits(node, model, schema, op_config)
        if changed:  # check_run_config refuses the run first; a step never acts on one
            raise OpConfigError("; ".join(_describe(e) for e in changed))
        config = _composed(node, model, schema, op_config, compiled)
        result = dataclasses.replace(node, config=config)
    with _LOCK:
        _CACHE[key] = (node, result)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return result


def _composed(
    node: SatelliteNode,
    model: type[BaseModel],
    schema: Mapping[str, Field],
    op_config: Mapping[str, Any],
    compiled: Mapping[str, Any],
) -> dict[str, Any]:
    """The plan's config with the edited fields replaced. A field the file left out stays out
    while the run leaves it at the model's default, so the model still decides it."""
    editable = editable_keys(model, node.launch_editable)
    spelled = {*editable, *editable.values()}
    kept = {k: v for k, v in (node.config or {}).items() if k not in spelled}  # secrets, extras
    every = {s for name, info in model.model_fields.items() for s in (name, info.alias) if s}
    secret = every - spelled  # and the fixed targets: the plan's values, never a run's
    in_file = {s for key, name in editable.items() for s in (key, name) if s in node.config}
    base = defaults(schema)
    edits = {
        key: value
        for key, value in compiled.items()
        if key not in kept
        and key not in secret  # never from a run (Dagster refuses it anyway)
        and (key in in_file or key not in base or not _same(op_config[key], base[key]))
    }
    return {**kept, **edits}


def _fixed_edits(
    node: SatelliteNode, model: type[BaseModel], schema: Mapping[str, Field], given: Mapping
) -> list[ConfigError]:
    """A refusal for each fixed target (``satellite_ops.launch``) whose value the run changed."""
    base = defaults(schema)
    errors = []
    for key in fixed_keys(model, node.launch_editable):
        for spelled in spellings(model, key):  # the schema keys it as the file spelled it
            if spelled in given and spelled in base and not _same(given[spelled], base[spelled]):
                message, fix = fixed_field_problem(key, f"'{node.id}' ({node.uses})")
                errors.append(_error(("ops", node.op_name, "config", spelled), message, hint=fix))
    return errors


def _freeze(value: Any) -> Hashable:
    """A hashable, type-exact image of config data (``1``, ``1.0`` and ``True`` stay apart)."""
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((str(k), _freeze(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("list", tuple(_freeze(v) for v in value))
    return (type(value).__name__, value if isinstance(value, Hashable) else repr(value))


def _same(a: Any, b: Any) -> bool:
    return _freeze(a) == _freeze(b)


# -- run config check ------------------------------------------------------------------------------
def check_run_config(
    plan: ClusterPlan, registry: SatelliteLookup, run_config: Mapping[str, Any] | None
) -> list[str]:
    """Every problem in the run's edited satellite configs, judged as ``exosphere validate``
    judges the file (templates, references, secrets, the model), one line each."""
    ops = (run_config or {}).get("ops") or {}
    problems: list[str] = []
    for node in (*plan.nodes, *plan.failure_nodes, *plan.log_nodes):
        entry = ops.get(node.op_name) if isinstance(ops, Mapping) else None
        given = entry.get("config") if isinstance(entry, Mapping) else None
        if not isinstance(given, Mapping):
            continue
        definition = registry.get(node.uses)
        schema = config_schema(node, definition)
        effective = _with_defaults(schema, given)
        if not _same(effective, defaults(schema)):
            problems.extend(
                _describe(e) for e in _node_errors(plan, node, definition, schema, effective)
            )
    return problems


def _with_defaults(schema: Mapping[str, Field], given: Mapping[str, Any]) -> dict[str, Any]:
    """What Dagster hands the op for ``given`` (a raw run config may hold only edited keys)."""
    out = dict(given)
    for key, field in schema.items():
        inner = getattr(field.config_type, "fields", None)
        if (
            key in given
            and isinstance(given[key], Mapping)
            and isinstance(field.config_type, Shape)
        ):
            out[key] = _with_defaults(inner or {}, given[key])
        elif key not in given and field.default_provided:
            out[key] = field.default_value
    return out


def _node_errors(
    plan: ClusterPlan,
    node: SatelliteNode,
    definition: Any,
    schema: Mapping[str, Field],
    effective: Mapping[str, Any],
) -> list[ConfigError]:
    base: KeyPath = ("ops", node.op_name, "config")
    try:
        compiled = compile_value(dict(effective))
    except TemplateSyntaxError as exc:
        return [_syntax_error((*base, *getattr(exc, "path", ())), exc)]
    model = definition.config_model
    fixed = _fixed_edits(node, model, schema, effective)
    if fixed:
        return fixed
    config = _composed(node, model, schema, effective, compiled)
    readable = readable_satellites(plan, node)
    errors: list[ConfigError] = []
    templated: set[KeyPath] = set()
    for inner, template in iter_templates(config):
        templated.add(inner)
        if inner[0] not in schema:
            continue  # a secret field: the plan's value, checked when the file loaded
        for ref in template.references:
            problem = reference_problem(ref, node.branch, list(plan.secrets))
            problem = problem or _scope_problem(plan, node, readable, ref)
            if problem is not None:
                errors.append(_error((*base, *inner), problem[0], hint=problem[1]))
    found = validate_config(model, source_text(config), templated, SourceMap("run config"), base)
    shown = {s for key in schema for s in spellings(model, key)}
    for error in found:  # never echo a secret field's value
        if error.key_path[len(base) : len(base) + 1] and error.key_path[len(base)] not in shown:
            error = dataclasses.replace(error, found=None)
        errors.append(error)
    return errors


def _scope_problem(
    plan: ClusterPlan, node: SatelliteNode, readable: set[str] | None, ref: Any
) -> tuple[str, str | None] | None:
    """A reference the graph fixed by the file cannot serve: a satellite that is not on this
    node's lineage, or a secret the node does not read (it is not resolved for it)."""
    first = ref.path[0] if ref.path else None
    if ref.root == "satellites" and (readable is None or first not in readable):
        every = (n.id for n in (*plan.nodes, *plan.failure_nodes, *plan.log_nodes))
        return ancestry_problem(str(first), node.id, node.branch, every, readable is not None)
    if ref.root == "secrets" and first not in node.secrets:
        return (
            f"secret '{first}' is not resolved for '{node.id}': only the secrets its templates "
            "read in the cluster file are",
            f"reference secrets.{first} in this satellite's config in the cluster file "
            "(declared under cluster.secrets), then launch again",
        )
    return None


def _syntax_error(path: KeyPath, exc: TemplateSyntaxError) -> ConfigError:
    return _error(path, f"template syntax error: {exc.message}", hint=exc.hint)


def _error(path: KeyPath, message: str, hint: str | None = None) -> ConfigError:
    return ConfigError("run config", 1, 1, path, message, hint=hint)


def _describe(error: ConfigError) -> str:
    """``key.path: message; expected ...; found ... (fix: ...)``: a line, as run events show."""
    text = f"{format_key_path(error.key_path)}: {error.message}"
    if error.expected is not None:
        text += f"; expected {error.expected}"
    if error.found is not None:
        text += f"; found {error.found}"
    return text + f" (fix: {error.hint or DEFAULT_FIX})"
