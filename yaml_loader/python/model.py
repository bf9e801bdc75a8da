"""The typed Python spelling of a cluster file: one frozen dataclass per YAML mapping.

Field names are the YAML keys in snake_case (``api-call`` -> ``api_call``, ``from`` -> ``from_``);
``None`` means "not written" (the loader's default applies). Values are kept as given, only made
plain (a :class:`Ref` becomes its ``${{ }}`` text, tuples inside data become lists), so what
equals what is decided by the YAML the object writes. Checking is the loader's job: nothing here
validates, which is what makes a Python cluster fail exactly like the same YAML would.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol

from yaml_loader.python.sites import UNKNOWN, Site, capture

MAX_DEPTH = 64  # the loader's nesting limit
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*\Z")


def yaml_key(field_name: str) -> str:
    """``api_call`` -> ``api-call``, ``from_`` -> ``from``."""
    return field_name.rstrip("_").replace("_", "-")


@dataclass(frozen=True)
class Ref:
    """A ``${{ expression }}`` reference; put it in ``config``/``input`` or in an f-string.

    ``files.output["file-path"]`` is ``${{ satellites.files.output.file-path }}``.
    """

    expression: str

    def __str__(self) -> str:
        return "${{ " + self.expression + " }}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __add__(self, other: object) -> str:
        return str(self) + str(other)

    def __radd__(self, other: object) -> str:
        return str(other) + str(self)

    def __getitem__(self, key: str | int) -> Ref:
        if isinstance(key, int) and not isinstance(key, bool):
            return Ref(f"{self.expression}[{key}]")
        if _NAME.match(key):
            return Ref(f"{self.expression}.{key}")
        return Ref(f"{self.expression}['{key.replace(chr(39), chr(39) * 2)}']")


def secret(name: str) -> Ref:
    """``${{ secrets.NAME }}``: the secret, resolved only for satellites that name it."""
    return Ref(f"secrets.{name}")


def ref(expression: str) -> Ref:
    """Any expression, e.g. ``ref("cluster.identifier")`` or ``ref("failure.error")``."""
    return Ref(expression)


def output(satellite: Satellite | str, *fields: str | int) -> Ref:
    """``${{ satellites.ID.output[.field...] }}``: an ancestor's object on the item's lineage."""
    sid = satellite.id if isinstance(satellite, Satellite) else satellite
    result = Ref(f"satellites.{sid}.output")
    for part in fields:
        result = result[part]
    return result


def plain(value: Any, depth: int = 0) -> Any:
    """Data as YAML will hold it: refs as text, tuples as lists; unknown types (and data nested
    past the loader's limit, a cycle included) left for ``to_yaml`` to report where written."""
    if isinstance(value, Located) or depth > MAX_DEPTH:
        return value
    if isinstance(value, Ref | str):
        return str(value)
    if isinstance(value, Mapping):
        return {key: plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item, depth + 1) for item in value]
    return value


class Located:
    """Base of the typed classes: remembers the call site; makes field values plain."""

    # fields holding a list of typed objects or names: kept as tuples
    _SEQUENCES: ClassVar[frozenset[str]] = frozenset()
    _site: Site
    _key_order: tuple[str, ...] | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_site", capture())
        object.__setattr__(self, "_key_order", None)
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name in self._SEQUENCES and isinstance(value, list | tuple):
                value = tuple(_sequence_item(f.name, item) for item in value)
            elif f.name == "from_" and isinstance(value, Satellite):
                value = value.id
            elif f.name == "resources":
                value = resources_mapping(value)
            else:
                value = plain(value)
            object.__setattr__(self, f.name, value)

    @classmethod
    def keywords(cls) -> dict[str, str]:
        """YAML key -> Python keyword, for pointing errors at the keyword that wrote them."""
        return {yaml_key(f.name): f.name for f in fields(cls)}  # type: ignore[arg-type]

    @property
    def site(self) -> Site:
        """Where this object was made: a Python call, or a place in the YAML it was read from."""
        return getattr(self, "_site", UNKNOWN)


def _sequence_item(field_name: str, item: Any) -> Any:
    """A satellite named in ``parents``/``children`` is written as its identifier."""
    if field_name in ("parents", "children") and isinstance(item, Satellite):
        return item.id
    return plain(item)


class ResourceFields(Protocol):
    """``satellite_ops.Resources`` (exported as ``exosphere_dagster.Resources``) as the loader
    sees it: by its fields, since the loader may not import ``satellite_ops``."""

    @property
    def cpu(self) -> str | None: ...
    @property
    def memory(self) -> str | None: ...
    @property
    def gpu(self) -> int | None: ...
    @property
    def image(self) -> str | None: ...
    @property
    def node_selector(self) -> Mapping[str, str] | None: ...


RESOURCE_FIELDS = ("cpu", "memory", "gpu", "image", "node_selector")


def resources_mapping(value: Any) -> Any:
    """A ``resources=`` value as the file's ``resources:`` mapping: a :class:`ResourceFields`
    gives the keys it sets, in field order; a mapping, or anything else, is only made plain
    (the loader reports what it cannot read)."""
    if isinstance(value, Mapping) or not all(hasattr(value, name) for name in RESOURCE_FIELDS):
        return plain(value)
    given = {yaml_key(name): getattr(value, name) for name in RESOURCE_FIELDS}
    return {key: plain(item) for key, item in given.items() if item is not None}


@dataclass(frozen=True, kw_only=True)
class Satellite(Located):
    """One step: ``uses`` names the satellite; ``config``/``input`` may hold ``${{ }}`` refs."""

    _SEQUENCES = frozenset({"parents", "children"})

    name: str | None = None
    uses: str
    identifier: str | None = None
    description: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    input: Mapping[str, Any] | None = None
    retries: int | None = None
    delay: float | str | None = None  # seconds, or "10s", "5m"
    timeout: float | str | None = None
    concurrency: int | None = None
    min_success_ratio: float | None = None  # 0..1: the run fails only below this share
    parents: Sequence[str | Satellite] | None = None  # identifiers, or the satellites
    children: Sequence[str | Satellite] | None = None
    # exosphere_dagster.Resources(cpu=...), or its keys as a mapping; kept as the file's mapping
    resources: ResourceFields | Mapping[str, Any] | None = None
    launch_editable: Sequence[str] | None = None  # fixed config keys a launch may change

    @property
    def id(self) -> str:
        """The identifier the plan uses: ``identifier``, else the name part of ``uses``."""
        if isinstance(self.identifier, str):
            return self.identifier
        return str(self.uses).rsplit("/", 1)[-1]

    @property
    def output(self) -> Ref:
        """``${{ satellites.<id>.output }}``; index it for a field: ``sat.output["file-path"]``."""
        return Ref(f"satellites.{self.id}.output")


@dataclass(frozen=True, kw_only=True)
class S3Trigger(Located):
    """Run for new objects under ``s3://bucket/prefix``."""

    bucket: str
    prefix: str | None = None
    extension: str | None = None
    endpoint_url: str | None = None
    interval: float | str | None = None


@dataclass(frozen=True, kw_only=True)
class FolderTrigger(Located):
    """Run for new files in a local folder."""

    path: str
    pattern: str | None = None
    interval: float | str | None = None


@dataclass(frozen=True, kw_only=True)
class Trigger(Located):
    """Exactly one of ``cron`` (with an optional ``timezone``), ``api_call``, ``s3``, ``folder``."""

    cron: str | None = None
    timezone: str | None = None
    api_call: bool | None = None
    s3: S3Trigger | None = None
    folder: FolderTrigger | None = None


@dataclass(frozen=True, kw_only=True)
class Failure(Located):
    """Items failing at ``from_`` (or downstream of it) run these satellites."""

    _SEQUENCES = frozenset({"satellites"})

    from_: str | Satellite | None = None
    satellites: Sequence[Satellite]


@dataclass(frozen=True, kw_only=True)
class Logs(Located):
    """Satellites that receive the cluster's log records."""

    _SEQUENCES = frozenset({"satellites"})

    satellites: Sequence[Satellite]
