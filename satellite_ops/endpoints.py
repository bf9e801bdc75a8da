"""What a satellite reads from and writes to outside its cluster (an S3 prefix, a webhook URL),
declared from its configuration so the asset catalog can draw the cluster's lineage.

A satellite declares them with a function ``(config: StaticConfig) -> Iterable[Endpoint | None]``
attached by :func:`declares_endpoints`, beside its ``@satellite`` in the satellite's own file.
The configuration is the one written in the cluster file, as known at load time: templated
values (``${{ }}``, known only per item) arrive as :class:`Templated`. No Dagster here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from satellite_ops.helpers.http_client import safe_url

ENDPOINTS_ATTR = "__exosphere_endpoints__"
Role = Literal["source", "sink"]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Templated:
    """A config value written with ``${{ }}``: its text, and the literal text before the first
    expression (``failed/reports/`` of ``failed/reports/${{ ... }}``)."""

    source: str
    prefix: str


@dataclass(frozen=True)
class Endpoint:
    """One place outside the cluster: ``system`` and ``path`` identify it (two clusters naming
    the same place share it), ``uri`` is how people write it."""

    role: Role
    system: str  # "s3", "https", "http", "file"
    path: tuple[str, ...]  # (bucket, *key parts) or (host[:port], *path parts)
    kind: str  # what the catalog shows it as: "s3", "webhook", "pagerduty", "newrelic"...
    delivers: bool = True  # a sink that receives the satellite's items (counted per run)
    detail: str = ""  # the full value when part of it varies per item

    @property
    def uri(self) -> str:
        return f"{self.system}://{'/'.join(self.path)}"


class StaticConfig:
    """A satellite's configuration as written in the cluster file, looked up by field name
    (``file_path`` or ``file-path``) and falling back to the config model's defaults."""

    def __init__(self, raw: Mapping[str, Any], model: type[BaseModel] | None = None) -> None:
        self.raw = dict(raw or {})
        self.model = model

    def get(self, name: str, default: Any = None) -> Any:
        for key in (name.replace("_", "-"), name, name.replace("-", "_")):
            if key in self.raw:
                return self.raw[key]
        field = (self.model.model_fields if self.model else {}).get(name.replace("-", "_"))
        if field is not None:
            value = field.get_default(call_default_factory=True)
            if value is not PydanticUndefined:
                return value
        return default


def literal(value: Any) -> str | None:
    """The value when it is a non-empty, non-templated string, else None."""
    return value if isinstance(value, str) and value else None


def _parts(text: str) -> tuple[str, ...]:
    return tuple(p for p in text.split("/") if p)


def _folder(value: Any) -> tuple[tuple[str, ...], str]:
    """Key parts known at load time, and the full text when part of it varies per item."""
    if isinstance(value, Templated):
        return _parts(value.prefix.rpartition("/")[0]), value.source
    return _parts(literal(value) or ""), ""


def s3_endpoint(
    role: Role, bucket: Any, key: Any = "", *, kind: str = "s3", delivers: bool = True
) -> Endpoint | None:
    """``s3://bucket/key``; a templated key stands for the folder before its first ``${{``; a
    templated bucket is not a known place (None)."""
    name = literal(bucket)
    if name is None:
        return None
    parts, varying = _folder(key)
    detail = f"s3://{name}/{varying}" if varying else ""
    return Endpoint(role, "s3", (name, *parts), kind, delivers, detail)


def http_endpoint(role: Role, url: Any, *, kind: str = "webhook") -> Endpoint | None:
    """The URL's scheme, host and path only: query strings and credentials may hold tokens. A
    templated URL counts by its literal start when that names a host."""
    text = url.prefix.rpartition("/")[0] if isinstance(url, Templated) else literal(url)
    if not text or "://" not in text:
        return None
    system, _, rest = safe_url(text).partition("://")
    parts = _parts(rest)
    if system not in ("http", "https") or not parts:
        return None
    return Endpoint(role, system, parts, kind)


def file_endpoint(role: Role, path: Any) -> Endpoint | None:
    """A local folder or file (``file:///data/in``)."""
    parts, _ = _folder(path)
    return Endpoint(role, "file", parts, "folder") if parts else None


def declares_endpoints(
    endpoints: Callable[[StaticConfig], Iterable[Endpoint | None]],
) -> Callable[[F], F]:
    """Attach ``endpoints(config)`` to a satellite function (above or below ``@satellite``)."""

    def decorate(fn: F) -> F:
        setattr(fn, ENDPOINTS_ATTR, endpoints)
        return fn

    return decorate


def endpoints_of(definition: Any, config: StaticConfig) -> list[Endpoint]:
    """The endpoints a satellite definition declares for this configuration: its own
    ``endpoints`` (a registry field, when present), or the function's attribute."""
    declared = getattr(definition, "endpoints", None) or getattr(
        getattr(definition, "fn", None), ENDPOINTS_ATTR, None
    )
    return [e for e in (declared(config) if declared else ()) if e is not None]
