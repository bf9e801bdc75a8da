"""Node pools, and the placement file that names them (``EXOSPHERE_PLACEMENT_FILE``,
docs/sla.md): each pool is checked as Kubernetes takes it (label values as text, tolerations
as mappings), and every problem of the file is reported with its place, not only the first."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from yaml_loader.errors import ConfigErrors, did_you_mean
from yaml_loader.quantities import QuantityError, normalised
from yaml_loader.source import read_yaml_file
from yaml_loader.tiers import tier
from yaml_loader.validation import translate

CAPACITY_LABEL = "exosphere.host/capacity"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


PLACEMENT_KEYS = ("tiers", "gpu", "gpu-image", "step-requests", "gpu-requests", "light-requests")


def read_requests(
    raw: Mapping[str, Any], key: str, default: Mapping[str, str], source: Any
) -> dict:
    """``step-requests`` (and kin) of the placement file, each quantity checked by the one
    parser (yaml_loader/quantities.py)."""
    given = raw.get(key)
    if not given:
        return dict(default)
    if not isinstance(given, Mapping):
        raise ConfigErrors(
            [source.error((key,), "expected a mapping like {cpu: 500m, memory: 1Gi}")]
        )
    out: dict[str, str] = {}
    errors = []
    for name, value in given.items():
        if name not in ("cpu", "memory"):
            errors.append(
                source.error((key, name), "unknown request: use cpu and memory", at_key=True)
            )
            continue
        try:
            out[name] = str(normalised(name, value))
        except QuantityError as exc:
            errors.append(source.error((key, name), str(exc)))
    if errors:
        raise ConfigErrors(errors)
    return out


class _Toleration(BaseModel):
    """A Kubernetes toleration, as a pod spec takes it."""

    model_config = ConfigDict(extra="forbid", strict=True)
    key: str | None = None
    operator: Literal["Equal", "Exists"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None  # noqa: N815 (Kubernetes' spelling)


class _PoolEntry(BaseModel):
    """A pool as the placement file writes it: label values are text, as Kubernetes wants."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
    node_selector: dict[str, str] = Field(default_factory=dict, alias="node-selector")
    tolerations: list[_Toleration] = []
    name: str | None = None

    @field_validator("node_selector", "tolerations", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any, info: ValidationInfo) -> Any:
        """``node-selector:`` left blank (YAML null) means none, as it always did."""
        if value is None:
            return cls.model_fields[info.field_name].get_default(call_default_factory=True)
        return value


def read_pool(raw: Any, name: str, where: tuple, source: Any) -> Pool:
    if not isinstance(raw, Mapping):
        raise ConfigErrors([source.error(where, "expected a mapping like {node-selector: {...}}")])
    try:
        entry = _PoolEntry.model_validate(raw)
    except ValidationError as exc:
        raise ConfigErrors(translate(exc, _PoolEntry, source, where)) from None
    try:
        return Pool(
            node_selector=entry.node_selector,
            tolerations=tuple(t.model_dump(exclude_none=True) for t in entry.tolerations),
            name=entry.name or name,
        )
    except ValueError as exc:
        raise ConfigErrors([source.error((*where, "name"), str(exc))]) from None


def read_placement(path: str | Path) -> tuple[Mapping[str, Any], Any]:
    data, source = read_yaml_file(path, f"a mapping of {', '.join(PLACEMENT_KEYS)}")
    if data is None:
        return {}, source
    if not isinstance(data, Mapping):
        raise ConfigErrors([source.error((), "a placement file must be a mapping")])
    for key in data:
        if key not in PLACEMENT_KEYS:
            hint = did_you_mean(str(key), PLACEMENT_KEYS) or f"use {', '.join(PLACEMENT_KEYS)}"
            raise ConfigErrors(
                [source.error((key,), f"unknown key {key!r}", at_key=True, hint=hint)]
            )
    return data, source


def _spot() -> dict[str, Any]:
    return {"key": CAPACITY_LABEL, "operator": "Equal", "value": "spot", "effect": "NoSchedule"}


@dataclass(frozen=True)
class Pool:
    """A node pool: the labels a pod selects, the taints it tolerates, and its name (a
    Kubernetes label value; the price table's key)."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        if self.name and not _LABEL_VALUE.match(self.name):
            raise ValueError(
                f"pool name {self.name!r} must be a Kubernetes label value (letters, digits, "
                "'-', '_' and '.', at most 63 characters), e.g. 'spot' or 'gpu-spot'"
            )


def tier_pool(sla: str) -> Pool:
    """The default pool of a tier: nodes labelled with its capacity; spot nodes are tainted."""
    capacity = tier(sla).capacity
    tolerations = (_spot(),) if capacity == "spot" else ()
    return Pool({CAPACITY_LABEL: capacity}, tolerations, name=capacity)


def policy_fields(
    raw: Mapping[str, Any], source: Any, gpu_image: str | None, base: Any
) -> dict[str, Any]:
    """The placement file's values for ``PlacementPolicy``, ``base``'s where it has none:
    ``tiers``, ``gpu``, ``gpu_image`` and the requests. Raises every problem at once."""
    errors: list = []

    def checked(part: Callable[..., Any], default: Any, *args: Any) -> Any:
        try:
            return part(*args)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
            return default

    tiers = dict(base.tiers)
    given = raw.get("tiers") or {}
    if not isinstance(given, Mapping):
        errors.append(source.error(("tiers",), "expected a mapping of tier -> pool"))
        given = {}
    for name, pool in given.items():
        try:
            default_name = tier(str(name)).capacity
        except KeyError as exc:
            errors.append(source.error(("tiers", name), exc.args[0], at_key=True))
            continue
        tiers[str(name)] = checked(read_pool, None, pool, default_name, ("tiers", name), source)
    image = raw.get("gpu-image") or gpu_image
    if image is not None and not isinstance(image, str):
        errors.append(source.error(("gpu-image",), "expected an image name like 'repo:tag'"))
    gpu = base.gpu
    if raw.get("gpu"):
        gpu = checked(read_pool, base.gpu, raw["gpu"], "", ("gpu",), source)
    fields = {
        "tiers": tiers,
        "gpu": gpu,
        "gpu_image": image if isinstance(image, str) and image else None,
        **{
            f"{kind}_requests": checked(
                read_requests,
                {},
                raw,
                f"{kind}-requests",
                getattr(base, f"{kind}_requests"),
                source,
            )
            for kind in ("step", "gpu", "light")
        },
    }
    if errors:
        raise ConfigErrors(errors)
    return fields
