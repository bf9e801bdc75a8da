"""Turn pydantic validation errors into located ConfigErrors that say expected / found / fix."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from yaml_loader.errors import (
    ConfigError,
    KeyPath,
    describe_value,
    did_you_mean,
    format_key_path,
)
from yaml_loader.quantities import QuantityError
from yaml_loader.source import SourceMap

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "list_type": "a list",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "none_required": "nothing (null)",
}


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Optional/Annotated/Union."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that validates the value at ``loc`` (for listing its allowed keys)."""
    current: Any = model
    for part in loc:
        candidates = _unwrap(current)
        nxt = None
        for cand in candidates:
            if isinstance(part, str) and isinstance(cand, type) and issubclass(cand, BaseModel):
                for name, field in cand.model_fields.items():
                    if part in (field.alias, name):
                        nxt = field.annotation
                        break
            elif isinstance(part, int) and typing.get_origin(cand) is list:
                nxt = typing.get_args(cand)[0]
            elif isinstance(part, str) and typing.get_origin(cand) is dict:
                nxt = typing.get_args(cand)[1]
            if nxt is not None:
                break
        if nxt is None:
            return None
        current = nxt
    for cand in _unwrap(current):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return cand
    return None


def allows_extra_keys(model: type[BaseModel]) -> bool:
    """Whether the model's author chose to take unknown keys (``extra="allow"`` or ``"ignore"``
    set in its ``model_config``, or inherited from a base that sets it).

    Pydantic's default is to ignore unknown keys silently; a model that does not say anything is
    held to the format's rule instead: every level is strict, so a typo is an error.
    """
    return model.model_config.get("extra") in ("allow", "ignore")


def allowed_keys(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


NEVER_SKIPPED = ("extra_forbidden", "missing")  # a key's errors: templates fill values, not keys


def translate(
    exc: ValidationError,
    model: type[BaseModel],
    source: SourceMap,
    base: KeyPath = (),
    skip: typing.Callable[[KeyPath], bool] | None = None,
) -> list[ConfigError]:
    """One ConfigError per pydantic error; ``skip`` drops errors at paths checked later (never an
    unknown or a missing key: templates fill values, not keys). Validate with ``extra="forbid"``:
    unknown keys are then dropped only under a model that :func:`allows_extra_keys`."""
    out: list[ConfigError] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        kind = err["type"]
        if kind not in NEVER_SKIPPED and skip is not None and skip(loc):
            continue
        path = (*base, *loc)
        found = err.get("input")
        if kind == "extra_forbidden":
            parent = model_at(model, loc[:-1])
            if parent is not None and allows_extra_keys(parent):
                continue
            keys = allowed_keys(parent)
            hint = did_you_mean(str(loc[-1]), keys) or "remove it or check the spelling"
            out.append(
                source.error(
                    path,
                    f"unknown key '{loc[-1]}'",
                    at_key=True,
                    expected="one of: " + ", ".join(keys) if keys else None,
                    hint=hint,
                )
            )
        elif kind == "missing":
            out.append(
                source.error(
                    path[:-1],
                    f"missing required key '{loc[-1]}'",
                    at_key=True,
                    hint=f"add '{loc[-1]}: ...' under '{format_key_path(path[:-1])}'"
                    if path[:-1]
                    else f"add '{loc[-1]}: ...' at the top level of the file",
                )
            )
        elif kind in _TYPE_NAMES:
            out.append(
                source.error(
                    path,
                    f"wrong type for '{_last_name(path)}'",
                    expected=_TYPE_NAMES[kind],
                    found=describe_value(found),
                )
            )
        elif kind == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            out.append(
                source.error(
                    path,
                    f"invalid value for '{_last_name(path)}'",
                    expected=f"one of {expected}",
                    found=describe_value(found),
                    hint=did_you_mean(
                        str(found),
                        [e.strip(" '") for e in expected.replace(" or ", ",").split(",")],
                    ),
                )
            )
        elif kind == "too_short":
            minimum = err.get("ctx", {}).get("min_length", 1)
            out.append(
                source.error(
                    path,
                    f"'{_last_name(path)}' needs at least {minimum} entr{'y' if minimum == 1 else 'ies'}",
                    found=describe_value(found),
                )
            )
        elif isinstance(cause := err.get("ctx", {}).get("error"), QuantityError):
            out.append(
                source.error(
                    path,
                    f"invalid {cause.key} quantity: {cause.problem}",
                    expected=cause.expected,
                    hint=cause.hint,
                )
            )
        elif kind in ("value_error", "assertion_error"):
            message = str(err.get("ctx", {}).get("error", err["msg"]))
            out.append(source.error(path, message))
        else:
            out.append(
                source.error(
                    path, err["msg"][0].lower() + err["msg"][1:], found=describe_value(found)
                )
            )
    return sorted(out, key=lambda e: (e.line, e.column))


def _last_name(path: KeyPath) -> str:
    names = [p for p in path if isinstance(p, str)]
    return names[-1] if names else "<document>"
