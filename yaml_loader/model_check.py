"""A satellite's config, as written in the cluster file, checked against the satellite's own
model, except where a value is templated (checked once rendered, at run time)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from yaml_loader.errors import ConfigError, KeyPath
from yaml_loader.source import SourceMap
from yaml_loader.validation import translate


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


def value_at(data: Any, path: KeyPath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data
