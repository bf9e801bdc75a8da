"""The deployment as a Dagster resource: steps take the :class:`Deployment` (settings, placement
file, prices file, Batch API tiers) from ``context.resources.exosphere``, never from the
environment themselves.

The dagster-aws idiom: a ``ConfigurableResource`` whose fields all have a default and a
description. A field left unset is the ``EXOSPHERE_*`` variable's value, so a job needs no
resource config; a value set in the run config (Launchpad ``resources: exosphere: config:``)
wins for that run. The resource reads no file in a step: :meth:`ExosphereDeployment.deployment`
hands back the process's cached ``Deployment.load()`` (or, with fields set, a copy made once
per process and setting).
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from exosphere_dagster.resolve.deployment import Deployment

RESOURCE_KEY = "exosphere"
_LOCK = threading.Lock()
_MADE: dict[tuple[int, tuple[tuple[str, Any], ...]], tuple[Deployment, Deployment]] = {}


def _unset(variable: str, about: str) -> Any:
    """A field left unset by default (the environment's value applies), described as such."""
    return Field(default=None, description=f"{about}; unset: {variable}.")


class ExosphereDeployment(ConfigurableResource):
    """What this deployment decides for every step: where prices and node pools are read from,
    how many step pods a run may have, which SLA tiers use provider Batch APIs and how log
    sinks drain. Unset fields come from the ``EXOSPHERE_*`` environment (docs/deployment.md)."""

    prices_file: str | None = _unset(
        "EXOSPHERE_PRICES_FILE", "Prices per node pool and model (YAML, docs/cost.md)"
    )
    placement_file: str | None = _unset(
        "EXOSPHERE_PLACEMENT_FILE", "Node pools per SLA tier (YAML)"
    )
    step_pods: int | None = _unset(
        "EXOSPHERE_STEP_PODS, else 16",
        "Step pods a Kubernetes run may have at once (chunk counts follow it)",
    )
    batch_tiers: str | None = _unset(
        "EXOSPHERE_BATCH_TIERS, else 24h",
        "Comma-separated SLA tiers whose LLM calls may go through a Batch API",
    )
    log_sink_queue: int | None = _unset(
        "EXOSPHERE_LOG_SINK_QUEUE", "Records a step queues per log sink"
    )
    log_sink_drain_seconds: float | None = _unset(
        "EXOSPHERE_LOG_SINK_DRAIN_SECONDS", "Longest a step waits at its end for its log sinks"
    )

    @classmethod
    def matching(cls, deployment: Deployment) -> ExosphereDeployment:
        """The resource whose steps see ``deployment``'s settings (a job built for a
        deployment other than the environment's)."""
        given = deployment.settings
        fields = {
            name: _plain(getattr(given, name)) for name in cls.model_fields if hasattr(given, name)
        }
        base = Deployment.load().settings
        return cls(**{k: v for k, v in fields.items() if v != _plain(getattr(base, k))})

    def overrides(self) -> dict[str, Any]:
        """The fields set (not None): these win over the environment's settings."""
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        return {k: v for k, v in fields.items() if v is not None}

    def deployment(self) -> Deployment:
        """The cached deployment this step runs under (no file is read when nothing changed)."""
        base = Deployment.load()
        wanted = self.overrides()
        if not wanted:
            return base
        key = (id(base), tuple(sorted(wanted.items())))
        with _LOCK:
            found = _MADE.get(key)
            if found is None:
                settings = type(base.settings).model_validate(
                    {**base.settings.model_dump(), **wanted}
                )
                made = Deployment.from_settings(settings, s3_endpoint_url=base.s3_endpoint_url)
                made = replace(made, placement=replace(made.placement, pods=base.placement.pods))
                _MADE.clear()
                found = _MADE[key] = (base, made)
        return found[1]


def deployment_of(context: Any) -> Deployment:
    """The step's deployment, from its ``exosphere`` resource."""
    return getattr(context.resources, RESOURCE_KEY).deployment()


def _plain(value: Any) -> Any:
    return None if value is None else value if isinstance(value, int | float) else str(value)


__all__ = ["ExosphereDeployment", "RESOURCE_KEY", "deployment_of"]
