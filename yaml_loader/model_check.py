"""A satellite's config, as written in the cluster file, checked against the satellite's own
model, except where a value is templated (checked once rendered, at run time)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from yaml_loader.errors import ConfigError, KeyPath
from yaml_loader.source import SourceMap
from yaml_loader.validation import NEVER_SKIPPED, translate


def validate_config(
    model: type[BaseModel], config: Any, templated: set[KeyPath], source: SourceMap, base: KeyPath
) -> list[ConfigError]:
    """The satellite model's errors on ``config``, except at templated values (checked once
    rendered, at run time). Every level is strict unless its model allows extra keys itself."""
    try:
        model.model_validate(config, extra="forbid")
    except ValidationError as exc:
        errors = [
            (tuple(p for p in e["loc"] if isinstance(p, str | int)), e["type"])
            for e in exc.errors(include_url=False)
        ]
        settled = _settled_at_templates(errors, templated, config)
        return translate(exc, model, source, base, skip=settled.__contains__)
    except Exception as exc:  # the model's own code raised: the satellite's bug, this file's error
        reason = textwrap.shorten(f"{type(exc).__name__}: {exc}", 300)
        return [
            source.error(
                base,
                f"the satellite's config model ({model.__name__}) raised {reason}",
                hint="a validator or default of that model raises instead of reporting a "
                "ValueError; fix the satellite, or give the value it needs here",
            )
        ]
    return []


@dataclass(frozen=True)
class _Placed:
    """An error's place in the config as written, and the unions on the way to it."""

    loc: KeyPath
    unions: tuple[tuple[KeyPath, str], ...]  # (where the union is, its member), outermost first
    at_template: bool  # at or inside a templated value


def _settled_at_templates(
    errors: list[tuple[KeyPath, str]], templated: set[KeyPath], config: Any
) -> set[KeyPath]:
    """The errors a rendered template may still clear: one at or inside a template, and every
    error of a union (``expected-status: int | list[int]``) one of whose members has no other
    errors (``[${{ x }}]`` may render to a list of integers). An error about a list or mapping
    that merely holds a template (``bucket: [${{ x }}]`` for a string, ``[[${{ x }}]]`` for
    ``int | list[int]``) stays."""
    placed = [_place(loc, kind, templated, config) for loc, kind in errors]

    def settled(error: _Placed, depth: int) -> bool:
        if error.at_template:
            return True
        for i in range(depth, len(error.unions)):
            members: dict[str, list[_Placed]] = {}
            for other in placed:  # the errors under the same union, by member
                same_union = other.unions[:i] == error.unions[:i] and len(other.unions) > i
                if same_union and other.unions[i][0] == error.unions[i][0]:
                    members.setdefault(other.unions[i][1], []).append(other)
            if any(all(settled(o, i + 1) for o in found) for found in members.values()):
                return True
        return False

    return {error.loc for error in placed if settled(error, 0)}


def _place(loc: KeyPath, kind: str, templated: set[KeyPath], config: Any) -> _Placed:
    """Where an error is in the config as written: a key pydantic reads from a single-key-map
    list (``secrets.X``) is the list entry holding it (``secrets[0].X``); a part that is not in
    the data is a union member's name (``expected-status.int``) or a validator's."""
    path: list[str | int] = []
    data, unions = config, []
    for part in loc:
        step = _written(data, part)
        if step is None:
            unions.append((tuple(path), str(part)))
            continue
        path += step
        for key in step:
            data = data[key]
    where = tuple(path)
    at_template = kind not in NEVER_SKIPPED and any(where[: len(t)] == t for t in templated)
    return _Placed(loc, tuple(unions), at_template)


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


def value_at(data: Any, path: KeyPath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data
