"""The strict base model for satellite configs, plus the normalisers the cluster format needs.

Cluster files write keys in kebab-case (``output-format``) and write ``secrets``/``headers`` as
lists of single-key maps; models see snake_case fields and plain dicts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr, ValidationError


def to_kebab(name: str) -> str:
    """``output_format`` -> ``output-format``: the spelling used in cluster files."""
    return name.replace("_", "-")


class SatelliteConfig(BaseModel):
    """Base of every satellite config: typos are errors, values are immutable once validated,
    numbers are finite (``"nan"`` and ``"inf"`` are refused, as JSON has neither)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_kebab,
        populate_by_name=True,
        coerce_numbers_to_str=True,
        allow_inf_nan=False,
    )

    @classmethod
    def coerce(cls, value: Self | Mapping[str, Any]) -> Self:
        """Accept an already validated instance or the raw (resolved) mapping."""
        if isinstance(value, cls):
            return value
        if isinstance(value, BaseModel):
            value = value.model_dump(by_alias=True)
        return cls.model_validate(value or {})


def normalise_single_key_maps(value: Any) -> Any:
    """Turn ``[{"A": 1}, {"B": 2}]`` (the cluster-file style) or ``{"A": 1, "B": 2}`` into a dict.

    Anything else is returned unchanged so the field's own type reports it.
    """
    if value is None or isinstance(value, Mapping):
        return dict(value) if value is not None else None
    if not isinstance(value, list | tuple):
        raise ValueError(
            f"expected a list of single-key maps (`- NAME: value`) or a mapping, "
            f"got {type(value).__name__}"
        )
    out: dict[Any, Any] = {}
    for index, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            raise ValueError(
                f"entry {index} must be a single-key map like `- NAME: value`, "
                f"got {type(entry).__name__}"
            )
        if len(entry) != 1:
            keys = ", ".join(str(k) for k in entry) or "none"
            raise ValueError(
                f"entry {index} has {len(entry)} keys ({keys}); a list entry must be a single-key "
                f"map: write one `- NAME: value` line per key"
            )
        ((key, item),) = entry.items()
        if key in out:
            raise ValueError(f"entry {index} repeats the key '{key}'")
        out[key] = item
    return out


SingleKeyMapList = Annotated[dict[str, str], BeforeValidator(normalise_single_key_maps)]
"""``dict[str, str]`` written either as a mapping or as a list of single-key maps."""

SecretKeyMapList = Annotated[dict[str, SecretStr], BeforeValidator(normalise_single_key_maps)]
"""Like :data:`SingleKeyMapList`, with values hidden from ``repr`` and logs."""


def iter_secret_values(value: Any) -> Iterator[str]:
    """Every non-empty ``SecretStr`` value inside a model (recursively): used to scrub messages."""
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        if secret:
            yield secret
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from iter_secret_values(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from iter_secret_values(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from iter_secret_values(item)


def secret_or_none(value: SecretStr | None) -> str | None:
    """The plain value of an optional secret (``None`` or empty -> ``None``)."""
    if value is None:
        return None
    return value.get_secret_value() or None


def describe_validation_error(exc: ValidationError) -> str:
    """``field.path: message`` for each problem, without echoing the (maybe secret) values."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "<root>"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
