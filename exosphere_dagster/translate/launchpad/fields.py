"""A pydantic model as a Dagster config schema: typed, described fields keyed by alias.

Dagster's config types are narrower than pydantic's: what has no Dagster equivalent (unions,
tuples, ranges, validators) becomes ``Any`` or is left to the model, which still judges every
value before a satellite runs. Fields holding a secret are never part of the schema; what a
launch may change in a model that holds one is decided by ``satellite_ops.launch``.
"""

from __future__ import annotations

import enum
import hashlib
import re
import threading
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from dagster import Any as DagsterAny
from dagster import (
    Array,
    Bool,
    DagsterInvalidConfigError,
    Enum,
    EnumValue,
    Field,
    Float,
    Int,
    Map,
    Noneable,
    Permissive,
    Shape,
    String,
)
from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from satellite_ops.launch import launch_fields
from yaml_loader.templates import CompiledTemplate, iter_templates

TEMPLATED = (
    "Templated in the cluster file (`${{ ... }}`): any value is accepted here and checked when "
    "the run starts."
)
FIXED_NOTE = (
    "Fixed by the cluster file (what the satellite's credentials act on): a run that changes it "
    "is refused, unless the satellite lists it under `launch-editable: [{key}]`."
)
FREE_FORM = (
    "Free-form here (the cluster file's value fits no typed field); checked when the run starts."
)
_ENUMS: dict[str, Enum] = {}  # one object per name: a code location holds one type per name
_LOCK = threading.Lock()


def editable_keys(model: type[BaseModel], opted_in: Collection[str] = ()) -> dict[str, str]:
    """Schema key (the field's alias, as cluster files spell it) -> field name, secrets left out.
    A model that holds a secret also keeps its destinations (URLs, endpoints, hosts) out: whoever
    may launch a run must not be able to send the cluster's credentials somewhere else. Its
    targets (``FIXED_AT_LAUNCH`` fields) are in the schema but not editable, unless opted in."""
    return launch_fields(model, opted_in).editable


def fixed_keys(model: type[BaseModel], opted_in: Collection[str] = ()) -> dict[str, str]:
    """Schema key -> field name of the targets a launch may not change (see satellite_ops.launch)."""
    return launch_fields(model, opted_in).fixed


def model_schema(
    model: type[BaseModel],
    given: Mapping[str, Any],
    opted_in: Collection[str] = (),
    within: frozenset[type] = frozenset(),
) -> dict[str, Field]:
    """``model``'s non-secret fields as Dagster fields; defaults are the values in ``given`` (a
    compiled config: templates become their source text), else the model's own. Fixed targets
    are shown with the file's value and a description that says how to make them editable.
    Each field is keyed as the file spelled it (``fail_n`` where the file wrote ``fail_n``, a
    model that accepts both), else by its alias (``fail-n``): the Launchpad takes what the file
    took. ``within``: the models this one is nested in (a model that holds itself, a tree,
    is free-form below its first level: Dagster's config types cannot refer to themselves)."""
    fields = {}
    within = within | {model}
    shown = launch_fields(model, opted_in)
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key not in shown.editable and key not in shown.fixed:
            continue
        spelling = next((k for k in (key, name) if k in given), None)
        value = given[spelling] if spelling is not None else PydanticUndefined
        fields[spelling or key] = _field(
            model, key, info, value, fixed=key in shown.fixed, within=within
        )
    return fields


def spellings(model: type[BaseModel], key: str) -> tuple[str, ...]:
    """The ways a config may spell the field ``key`` names (alias or field name): both, when the
    model populates by name; else only ``key``."""
    by_name = bool(model.model_config.get("populate_by_name"))
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return tuple(dict.fromkeys((info.alias or name, name))) if by_name else (key,)
    return (key,)


def _field(
    model: type[BaseModel],
    key: str,
    info: FieldInfo,
    value: Any,
    *,
    fixed: bool = False,
    within: frozenset[type] = frozenset(),
) -> Field:
    given = value is not PydanticUndefined
    nested = value if given and isinstance(value, Mapping) else {}
    config_type = _config_type(info.annotation, f"{model.__name__}_{key}", nested, within)
    if given:
        default = _normalised(source_text(value), info, config_type)
    elif info.default_factory_takes_validated_data:  # made from the other fields: by the model
        default = PydanticUndefined
    else:
        default = _plain(info.get_default(call_default_factory=True))
    description = info.description or ""
    if fixed:
        description = f"{description} {FIXED_NOTE.format(key=key)}".strip()
    required = not given and info.is_required()
    if (
        default is PydanticUndefined
        and not required
        and Field(config_type, is_required=False).default_provided
    ):
        config_type = DagsterAny  # Dagster would fill in a value where the model has its own
    try:
        return _make(config_type, default, required, description)
    except DagsterInvalidConfigError:  # the file's value is a template, or fits no typed field
        templated = given and any(True for _ in iter_templates(value))
        note = TEMPLATED if templated else FREE_FORM
        return _make(DagsterAny, default, required, f"{description} {note}".strip())


def _make(config_type: Any, default: Any, required: bool, description: str) -> Field:
    if default is PydanticUndefined:
        return Field(config_type, is_required=required, description=description)
    return Field(config_type, default_value=default, is_required=False, description=description)


def _config_type(
    annotation: Any, owner: str, given: Mapping[str, Any], within: frozenset[type] = frozenset()
) -> Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _config_type(args[0], owner, given, within)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        inner = _config_type(rest[0], owner, given, within) if len(rest) == 1 else DagsterAny
        return Noneable(inner) if len(rest) < len(args) else inner
    if origin is typing.Literal:
        return _enum(owner, args) if all(isinstance(a, str) for a in args) else DagsterAny
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            values = tuple(member.value for member in annotation)
            return _enum(owner, values) if all(isinstance(v, str) for v in values) else DagsterAny
        scalar = {bool: Bool, int: Int, float: Float, str: String}.get(annotation)
        if scalar is not None:
            return scalar
        if issubclass(annotation, BaseModel) and annotation not in within:
            schema = model_schema(annotation, given, within=within)
            return Shape(schema, description=annotation.__doc__)
    if origin in (list, Sequence) or annotation is list:
        return Array(_config_type(args[0], owner, {}, within) if args else DagsterAny)
    if origin in (dict, Mapping) or annotation is dict:
        inner = _config_type(args[1], owner, {}, within) if len(args) == 2 else DagsterAny
        return Permissive() if inner is DagsterAny else Map(str, inner)
    return DagsterAny  # unions, tuples, Any and whatever else: checked by the model at run start


def _enum(owner: str, values: Sequence[str]) -> Enum:
    """A config enum named after its model and field plus a hash of its values: stable across
    processes, and two enums with different values never share a name in a code location."""
    digest = hashlib.sha256("\0".join(values).encode()).hexdigest()[:8]
    name = f"{re.sub(r'[^A-Za-z0-9_]', '_', owner)}_{digest}"
    with _LOCK:
        return _ENUMS.setdefault(name, Enum(name, [EnumValue(v) for v in values]))


def source_text(value: Any) -> Any:
    """A compiled config as the cluster file wrote it: templates back to their ``${{ }}`` text."""
    if isinstance(value, CompiledTemplate):
        return value.source
    if isinstance(value, Mapping):
        return {key: source_text(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [source_text(item) for item in value]
    return value


def _normalised(value: Any, info: FieldInfo, config_type: Any) -> Any:
    """A mapping field written as a list of single-key maps, as the mapping its model reads."""
    if not isinstance(value, list) or not isinstance(config_type, Map | Permissive):
        return value
    for meta in info.metadata:
        if isinstance(meta, BeforeValidator):
            try:
                value = meta.func(value)  # type: ignore[call-arg]
            except (TypeError, ValueError):
                return value
    return value


def _plain(value: Any) -> Any:
    """A model default as config data, or PydanticUndefined when it is not plain data."""
    if isinstance(value, enum.Enum):  # first: a StrEnum's member is a str too, not plain data
        return _plain(value.value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(mode="json", by_alias=True))
    if isinstance(value, list | tuple):
        items = [_plain(item) for item in value]
        return PydanticUndefined if PydanticUndefined in items else items
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        items = {k: _plain(v) for k, v in value.items()}
        return PydanticUndefined if PydanticUndefined in items.values() else items
    return PydanticUndefined
