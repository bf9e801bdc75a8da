"""``--input`` values (``exosphere run``, ``exosphere clusters run``): run input items."""

from __future__ import annotations

import json
from typing import Any

import click


def parse_inputs(values: tuple[str, ...]) -> list[dict[str, Any]]:
    """Each value a JSON object or a list of them; ``[{}]`` when none is given. Anything else
    (a number, ``null``, ``NaN``, which Python's JSON reader takes but JSON has not) is a usage
    error naming the value."""
    items: list[Any] = []
    for value in values:
        try:
            parsed = json.loads(value, parse_constant=_not_json)
        except ValueError as exc:  # JSONDecodeError is one
            raise click.BadParameter(f"not JSON ({exc}): {value!r}", param_hint="--input") from None
        items.extend(parsed if isinstance(parsed, list) else [parsed])
    if not all(isinstance(item, dict) for item in items):
        raise click.BadParameter(
            "each input must be a JSON object (or a list of them)", param_hint="--input"
        )
    return items or [{}]


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
