"""What the deployment decides, loaded and checked once: the ``EXOSPHERE_*`` settings, the
placement file, the prices file and the Batch API tiers.

:meth:`Deployment.load` is the one place that reads them; it is cached per process on what it
read (the relevant environment variables and the files' modification times), so the lazy code
location, which builds one cluster per step, pays for it once. Everything else gets a
``Deployment`` passed in (``resolve()``, the ``exosphere`` Dagster resource) and never calls
``settings()`` itself. Bad values raise a :class:`DeploymentError` naming the variable, or
``file:line:col`` of the file, and the fix. Dagster-free.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from exosphere_dagster.errors import DeploymentError
from exosphere_dagster.resolve.cost.prices import PriceTable, PriceTableError, load_prices
from exosphere_dagster.resolve.placement import (
    PlacementPolicy,
    Pods,
    instance_launches_pods,
)
from exosphere_dagster.resolve.settings import Settings, read_settings
from satellite_ops.context import BatchPolicy

ENV_PREFIXES = ("EXOSPHERE_", "AWS_ENDPOINT_URL", "DAGSTER_HOME")
__all__ = ["Deployment", "DeploymentError"]


@dataclass(frozen=True)
class Deployment:
    """The deployment's decisions, as one frozen value passed to resolve and to steps."""

    settings: Settings = field(default_factory=Settings)
    placement: PlacementPolicy = field(default_factory=PlacementPolicy)
    prices: PriceTable | None = None  # None: unusable file (``prices_problem`` says why)
    prices_problem: str | None = None
    batch_api: BatchPolicy = field(default_factory=BatchPolicy)
    s3_endpoint_url: str | None = None  # AWS_ENDPOINT_URL, read once

    @classmethod
    def load(cls) -> Deployment:
        """The process's deployment, read again only when a variable or a file it read changed."""
        key = _cache_key()
        with _LOCK:
            found = _CACHE.get(key)
            if found is None:
                found = cls.from_settings(read_settings(), home=os.environ.get("DAGSTER_HOME"))
                _CACHE.clear()
                _CACHE[key] = found
        return found

    @classmethod
    def from_settings(
        cls, settings: Settings, home: str | None = None, s3_endpoint_url: str | None = None
    ) -> Deployment:
        """Read the files ``settings`` names (placement, prices) and check them. A bad prices
        file does not stop runs (steps log ``prices_problem``); a bad placement file does.
        Pods read placement tags: every step's with ``EXOSPHERE_EXECUTOR=k8s`` (the run pod's
        too), the run pod's alone when the instance in ``home`` launches runs as Kubernetes
        Jobs."""
        steps = settings.runs_on_kubernetes
        pods = Pods(run=steps or instance_launches_pods(home), steps=steps)
        placement = PlacementPolicy.load(
            settings.placement_file, gpu_image=settings.gpu_image, pods=pods
        )
        try:
            prices, problem = load_prices(settings.prices_file), None
        except PriceTableError as exc:
            prices, problem = None, str(exc)
        return cls(
            settings=settings,
            placement=placement,
            prices=prices,
            prices_problem=problem,
            batch_api=BatchPolicy(
                tiers=settings.batch_tier_names,
                reserve_seconds=settings.batch_reserve_minutes * 60,
                poll_seconds=settings.batch_poll_seconds,
                poll_max_seconds=settings.batch_poll_max_seconds,
            ),
            s3_endpoint_url=s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
        )


_LOCK = threading.Lock()
_CACHE: dict[tuple, Deployment] = {}


def _mtime(path: str | Path | None) -> int:
    if not path:
        return 0
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:
        return -1


def _cache_key() -> tuple:
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)))
    home = os.environ.get("DAGSTER_HOME")
    files = (
        os.environ.get("EXOSPHERE_PLACEMENT_FILE"),
        os.environ.get("EXOSPHERE_PRICES_FILE"),
        home and Path(home) / "dagster.yaml",
    )
    return env, tuple(_mtime(f) for f in files)
