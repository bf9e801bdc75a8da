"""Deployment settings: every ``EXOSPHERE_*`` variable a deployment may set, read and checked
in one place (pydantic-settings), once per process.

A bad value is reported with the variable's name, what was expected and what was found,
instead of a ValueError deep inside a sensor. No Dagster here: the run stage reads it too.
Satellites' own variables (``EXOSPHERE_SATELLITE_MODULES``, ``OPENAI_BASE_URL``, ...) belong to
``satellite_ops`` and are not listed here.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from exosphere_dagster.errors import DeploymentError
from yaml_loader.tiers import TIER_NAMES


class Settings(BaseSettings):
    """What a deployment configures through the environment (docs/deployment.md)."""

    model_config = SettingsConfigDict(
        env_prefix="EXOSPHERE_", frozen=True, extra="ignore", allow_inf_nan=False
    )

    clusters_dir: str = Field(
        "clusters", description="The clusters store: a folder or s3:// prefix."
    )
    # where steps run and how many at once
    executor: Literal["", "multiprocess", "k8s", "kubernetes"] = Field(
        "", description="'k8s': every step in its own pod (k8s_job_executor)."
    )
    step_pods: int = Field(16, ge=1, description="Step pods a Kubernetes run may have at once.")
    placement_file: Path | None = Field(None, description="Node pools per tier (YAML).")
    gpu_image: str | None = Field(None, description="Image for steps that ask for a GPU.")
    prices_file: Path | None = Field(
        None, description="Prices per node pool and model (YAML, docs/cost.md)."
    )
    # where items and checkpoints live
    io_s3_bucket: str | None = Field(None, description="Items between steps go to this bucket.")
    io_s3_prefix: str = "exosphere-io"
    io_s3_endpoint_url: str | None = None
    checkpoint_s3_url: str | None = Field(None, description="s3://bucket/prefix of checkpoints.")
    checkpoint_s3_endpoint_url: str | None = None
    checkpoint_dir: Path | None = Field(None, description="A folder every pod mounts.")
    checkpoint_retention_days: float = Field(
        14.0,
        ge=0,
        description="Checkpoints of a run untouched this long are deleted (0: kept forever).",
    )
    checkpoint_prune_hours: float = Field(
        1.0, gt=0, description="A process looks for expired checkpoints at most this often."
    )
    # the code location's plan cache (docs/deployment.md "The plan cache")
    plan_cache: bool = Field(
        True, description="Keep planned YAML cluster files on disk; 0 turns the cache off."
    )
    plan_cache_dir: Path | None = Field(
        None, description="Its folder (default: $DAGSTER_HOME/exosphere/plans, else ~/.cache)."
    )
    plan_cache_max_mb: float = Field(
        256.0, gt=0, description="Least recently used plans beyond this size are deleted."
    )
    # sensors and triggers
    deadline_interval: int = Field(30, ge=1, description="Seconds between deadline sensor ticks.")
    sla_sensor_interval: int = Field(30, ge=1, description="Seconds between SLA-breach ticks.")
    folder_settle_seconds: float = Field(
        0.0, ge=0, description="A folder trigger's file must be unchanged this long."
    )
    # provider Batch APIs (LLM satellites, docs/sla.md "Batch mode")
    batch_tiers: str = Field(
        "24h", description="Comma-separated SLA tiers whose LLM calls may go through a Batch API."
    )
    batch_reserve_minutes: float = Field(
        60.0, ge=0, description="Stop waiting for a batch this long before the run's deadline."
    )
    batch_poll_seconds: float = Field(5.0, gt=0, description="First wait between batch polls.")
    batch_poll_max_seconds: float = Field(300.0, gt=0, description="Longest wait between polls.")
    # log sinks (docs/log-sinks.md)
    log_sink_queue: int = Field(
        20_000, ge=1, description="Records a step queues per log sink; more are dropped, counted."
    )
    log_sink_drain_seconds: float = Field(
        10.0, ge=0, description="Longest a step waits at its end for its log sinks."
    )

    @field_validator(
        "placement_file",
        "gpu_image",
        "prices_file",
        "io_s3_bucket",
        "io_s3_endpoint_url",
        "checkpoint_s3_url",
        "checkpoint_s3_endpoint_url",
        "checkpoint_dir",
        "plan_cache_dir",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``EXOSPHERE_CHECKPOINT_DIR=`` means unset, as a blank template value would: it was
        the current folder, where pickles and checkpoints then went."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("clusters_dir")
    @classmethod
    def _a_store(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("expected a folder or an s3://bucket/prefix, not an empty value")
        return value

    @field_validator("checkpoint_s3_url")
    @classmethod
    def _an_s3_url(cls, value: str | None) -> str | None:
        parsed = urlparse(value) if value is not None else None
        if parsed is not None and (parsed.scheme != "s3" or not parsed.netloc):
            raise ValueError("expected s3://bucket/prefix")
        return value

    @field_validator("checkpoint_dir")
    @classmethod
    def _a_folder(cls, value: Path | None) -> Path | None:
        if value is not None and value.exists() and not value.is_dir():
            raise ValueError("expected a folder (it is created if missing), not a file")
        return value

    @field_validator("batch_tiers")
    @classmethod
    def _known_tiers(cls, value: str) -> str:
        unknown = [t for t in _names(value) if t not in TIER_NAMES]
        if unknown:
            raise ValueError(
                f"unknown SLA tier(s) {', '.join(unknown)}: expected a comma-separated list of "
                f"{', '.join(TIER_NAMES)} (or empty: no tier uses batch mode)"
            )
        return value

    @property
    def batch_tier_names(self) -> frozenset[str]:
        return frozenset(_names(self.batch_tiers))

    @property
    def runs_on_kubernetes(self) -> bool:
        return self.executor in ("k8s", "kubernetes")


def _names(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class SettingsError(DeploymentError):
    """An ``EXOSPHERE_*`` variable holds a value that cannot be used."""


@functools.cache
def settings() -> Settings:
    """The process's settings, read from the environment on first use (prefer
    ``Deployment.load().settings``, which is read again when the environment changes)."""
    return read_settings()


def read_settings() -> Settings:
    """The settings the environment holds now; a SettingsError names each bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = [
            f"EXOSPHERE_{'_'.join(str(p) for p in e['loc']).upper()}: "
            f"{e['msg'].removeprefix('Value error, ')} "
            f"(found {_shown(e['input'])!r})"
            for e in exc.errors(include_url=False)
        ]
        raise SettingsError("bad deployment settings:\n  " + "\n  ".join(problems)) from None


def _shown(value: object) -> object:
    """A value as an error may show it: a URL's credentials (``s3://key:secret@...``) are not
    (the error is the location's ``invalid__deployment`` job, in the UI)."""
    if isinstance(value, str) and "@" in value and "://" in value:
        scheme, rest = value.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return value


def reload_settings() -> Settings:
    """Read the environment again (tests, and a process that changed its own environment)."""
    settings.cache_clear()
    return settings()
