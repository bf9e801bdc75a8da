"""Strict pydantic models of the cluster file format, version 0.0.1b.

Keys are kebab-case in YAML (``api-call``, ``node-selector``); typos are errors (``extra="forbid"``)
and types are strict, so ``retries: "3"`` is reported rather than silently converted.
Satellite ``config``/``input`` stay raw mappings here: they are validated against the satellite's
own model once its ``uses`` is resolved (see ``yaml_loader.plan``). Where a validator accepts more
than the field's type (durations as text, ``trigger: api-call``, secrets as a list), the JSON
Schema of what it accepts sits beside it, so ``exosphere schema`` agrees with the loader.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import CoreSchema

from yaml_loader.quantities import MAX_GPUS, QUANTITY_SCHEMA, normalised
from yaml_loader.text_forms import (
    CLUSTER_ID_RE,
    CRON_PATTERN,
    DURATION_RE,
    IDENTIFIER_RE,
    SECRET_NAME_RE,
    USES_RE,
    check_name_lengths,
    checked_cron,
    json_pattern,
)
from yaml_loader.tiers import TIER_NAMES

SUPPORTED_VERSIONS = ("0.0.1b",)
DEFAULT_RETRIES = 5

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class StrictModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, alias_generator=_kebab, populate_by_name=False
    )


def parse_duration(value: Any) -> float:
    """``30``, ``1.5``, ``"500ms"``, ``"10s"``, ``"5m"``, ``"2h"`` -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10, '10s', '5m' or '1h', found a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := DURATION_RE.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"expected a duration such as 10, '10s', '5m' or '1h', found {value!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": json_pattern(DURATION_RE)},
    ]
}
Duration = Annotated[float, Field(ge=0, strict=False), WithJsonSchema(DURATION_SCHEMA)]
Retries = Annotated[int, Field(ge=0, le=100)]


def _text_like(pattern: re.Pattern[str]) -> WithJsonSchema:
    """JSON Schema of a string that a validator checks against ``pattern``."""
    return WithJsonSchema({"type": "string", "pattern": json_pattern(pattern)})


UsesText = Annotated[str, _text_like(USES_RE)]
IdentifierText = Annotated[str, _text_like(IDENTIFIER_RE)]
ClusterIdentifierText = Annotated[str, _text_like(CLUSTER_ID_RE)]


def _single_key_maps(value: Any, what: str) -> Any:
    """Accept ``- NAME: value`` lists (the reference spelling) as well as plain mappings."""
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for i, entry in enumerate(value):
            if not isinstance(entry, dict) or len(entry) != 1:
                raise ValueError(
                    f"{what} entry {i} must be a single 'NAME: value' pair, "
                    f"found {'a mapping with ' + str(len(entry)) + ' keys' if isinstance(entry, dict) else type(entry).__name__}"
                )
            name, item = next(iter(entry.items()))
            if name in merged:
                raise ValueError(f"{what} '{name}' is defined twice")
            merged[name] = item
        return merged
    return value


class Resources(StrictModel):
    """What a satellite's step asks of its machine (Kubernetes requests/limits), checked by the
    one quantity parser placement and cost read numbers from (yaml_loader/quantities.py)."""

    cpu: Annotated[str, WithJsonSchema(QUANTITY_SCHEMA)] | None = Field(
        None, description="CPU request, e.g. '500m' or '2'."
    )
    memory: Annotated[str, WithJsonSchema(QUANTITY_SCHEMA)] | None = Field(
        None, description="Memory request, e.g. '2Gi', '512Mi', '1G'."
    )
    gpu: Annotated[int, Field(ge=0, le=MAX_GPUS)] | None = Field(
        None, description="NVIDIA GPUs (a whole number)."
    )
    image: str | None = Field(
        None, description="Container image for this step (e.g. a vLLM image)."
    )
    node_selector: dict[str, str] | None = Field(
        None, description="Extra Kubernetes node selector."
    )

    @field_validator("cpu", "memory", "gpu", mode="before")
    @classmethod
    def _quantity(cls, value: Any, info: ValidationInfo) -> Any:
        return normalised(str(info.field_name), value)


class SatelliteSpec(StrictModel):
    name: str | None = Field(None, description="Human-readable name shown in the UI.")
    uses: UsesText = Field(description="The satellite to run: satellite/<project>/<name>.")
    identifier: IdentifierText | None = Field(
        None,
        description="Unique id of this step in the cluster; defaults to the name part of `uses`.",
    )
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict, description="Satellite configuration.")
    input: dict[str, Any] | None = Field(
        None, description="The satellite's input; defaults to the parent's output object."
    )
    retries: Retries | None = Field(None, description="Attempts after the first; cluster default.")
    delay: Duration | None = Field(
        None, description="Retry delay (seconds or '10s', '5m'); doubles per attempt."
    )
    timeout: Duration | None = Field(None, description="Per-item time limit.")
    concurrency: Annotated[int, Field(ge=1, le=1024)] | None = Field(
        None, description="Items processed at once inside a step (I/O-bound satellites)."
    )
    min_success_ratio: Annotated[float, Field(ge=0, le=1)] | None = Field(
        None,
        description="Share of its items (0 to 1) that must succeed here; fewer fails the run. "
        "Its failed items are still counted, named and retryable. Default: any failed item "
        "without a failure branch fails the run.",
    )
    parents: list[str] | None = None
    children: list[str] | None = None
    resources: Resources | None = None
    launch_editable: list[str] | None = Field(
        None,
        description="Config keys naming what the satellite's credentials act on (bucket, "
        "file-path...) that a launch may change; without it the cluster file fixes them.",
    )

    @field_validator("uses")
    @classmethod
    def _uses_form(cls, value: str) -> str:
        check_name_lengths(value.split("/")[1:])
        if not USES_RE.match(value):
            raise ValueError(f"expected 'satellite/<project>/<name>' in lowercase, found {value!r}")
        return value

    @field_validator("identifier")
    @classmethod
    def _identifier_form(cls, value: str | None) -> str | None:
        if value is not None:
            check_name_lengths([value])
        if value is not None and not IDENTIFIER_RE.match(value):
            raise ValueError(
                "expected lowercase letters, digits, '-' or '_' (starting with a letter or digit), "
                f"found {value!r}"
            )
        return value

    @field_validator("delay", "timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @property
    def id(self) -> str:
        return self.identifier or self.uses.rsplit("/", 1)[-1]


class CronTrigger(StrictModel):
    cron: str
    timezone: str | None = None

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        return checked_cron(value)

    @field_validator("timezone")
    @classmethod
    def _valid_tz(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder
                raise ValueError(
                    f"unknown IANA timezone {value!r} (e.g. 'UTC', 'Europe/Berlin')"
                ) from None
        return value


class S3Trigger(StrictModel):
    bucket: str
    prefix: str = ""
    extension: str | None = None
    endpoint_url: str | None = None
    interval: Duration = Field(30.0, description="Seconds between checks.")

    _duration = field_validator("interval", mode="before")(lambda cls, v: parse_duration(v))


class FolderTrigger(StrictModel):
    path: str
    pattern: str = "*"
    interval: Duration = Field(30.0, description="Seconds between checks.")

    _duration = field_validator("interval", mode="before")(lambda cls, v: parse_duration(v))


class TriggerSpec(StrictModel):
    """Exactly one of: cron, api-call, s3 (new objects), folder (new local files)."""

    cron: str | None = None
    timezone: str | None = None
    api_call: bool | None = None
    s3: S3Trigger | None = None
    folder: FolderTrigger | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        if value == "api-call":
            return {"api-call": True}
        if isinstance(value, dict) and value.get("api-call", False) in ({}, None):
            return {**value, "api-call": True}
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> TriggerSpec:
        kinds = [k for k in ("cron", "api_call", "s3", "folder") if getattr(self, k)]
        if len(kinds) != 1:
            found = ", ".join(_kebab(k) for k in kinds) or "none"
            raise ValueError(
                f"expected exactly one trigger of cron, api-call, s3, folder; found {found}"
            )
        if self.cron is not None:
            CronTrigger(cron=self.cron, timezone=self.timezone)
        elif self.timezone is not None:
            raise ValueError("'timezone' only applies to a cron trigger")
        return self

    @property
    def kind(self) -> str:
        return next(_kebab(k) for k in ("cron", "api_call", "s3", "folder") if getattr(self, k))

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        """What ``_normalise`` and ``_exactly_one`` accept: ``api-call``, or a mapping with
        exactly one active trigger (``api-call`` is active unless false; null keys are absent)."""
        reference = handler(core_schema)
        schema = handler.resolve_ref_schema(reference)
        props = schema["properties"]
        props["cron"] = nullable({"type": "string", "pattern": CRON_PATTERN})
        zones = {"enum": sorted(zoneinfo.available_timezones())}  # under allOf: no docs table
        props["timezone"] = nullable({"type": "string", "allOf": [zones]})
        props["api-call"] = {
            "anyOf": [{"type": ["boolean", "null"]}, {"type": "object", "maxProperties": 0}]
        }
        active = {
            "cron": {"type": "string"},
            "api-call": {"not": {"const": False}},
            "s3": {"type": "object"},
            "folder": {"type": "object"},
        }
        mapping = {  # keys and types stay at the top (they only bind mappings), for the docs
            "type": "object",
            "oneOf": [{"required": [k], "properties": {k: v}} for k, v in active.items()],
            "if": {"required": ["timezone"], "properties": {"timezone": {"type": "string"}}},
            "then": {"required": ["cron"], "properties": {"cron": {"type": "string"}}},
        }
        del schema["type"]
        schema["anyOf"] = [{"const": "api-call"}, mapping]
        return reference


class BranchSpec(StrictModel):
    satellites: list[SatelliteSpec] = Field(min_length=1)


class FailureSpec(BranchSpec):
    from_: str | None = Field(
        None,
        alias="from",
        description="Items failing at this satellite or downstream run the branch.",
    )


_SECRET_MAP = {
    "type": "object",
    "propertyNames": {"pattern": json_pattern(SECRET_NAME_RE)},
    "additionalProperties": {"type": "string"},
}
SECRETS_SCHEMA = {  # a mapping, or the reference's list of single-key maps
    "anyOf": [
        _SECRET_MAP,
        {"type": "array", "items": {**_SECRET_MAP, "minProperties": 1, "maxProperties": 1}},
    ]
}


class ClusterSpec(StrictModel):
    identifier: ClusterIdentifierText
    sla: Literal[TIER_NAMES]
    trigger: TriggerSpec
    title: str | None = None
    description: str | None = None
    retries: Retries = DEFAULT_RETRIES
    delay: Duration = Field(1.0, description="Default retry delay for every satellite.")
    secrets: Annotated[dict[str, str], WithJsonSchema(SECRETS_SCHEMA)] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict, description="Extra Dagster run tags.")
    satellites: list[SatelliteSpec] = Field(min_length=1)
    logs: BranchSpec | None = None
    failure: FailureSpec | None = None

    @field_validator("secrets", mode="before")
    @classmethod
    def _secrets_list(cls, value: Any) -> Any:
        value = _single_key_maps(value, "secret")
        if isinstance(value, dict):
            for name in value:
                if not SECRET_NAME_RE.match(str(name)):
                    raise ValueError(f"secret name {name!r} must be letters, digits, '_' or '-'")
        return value

    @field_validator("delay", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("identifier")
    @classmethod
    def _identifier(cls, value: str) -> str:
        parts = value.removeprefix("cluster/").split("/")
        check_name_lengths(parts)
        if len(parts) != 2 or not all(IDENTIFIER_RE.match(p) for p in parts):
            raise ValueError(
                "expected 'project/name' or 'cluster/project/name' in lowercase letters, digits, "
                f"'-' or '_', found {value!r}"
            )
        return "/".join(parts)


class ClusterFile(StrictModel):
    version: Annotated[str, WithJsonSchema({"enum": list(SUPPORTED_VERSIONS)})]
    cluster: ClusterSpec

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if value not in SUPPORTED_VERSIONS:
            raise ValueError(
                f"unsupported version {value!r}; supported: {', '.join(SUPPORTED_VERSIONS)}"
            )
        return value
