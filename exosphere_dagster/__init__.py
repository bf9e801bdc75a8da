"""exosphere-dagster: exosphere clusters (YAML) as Dagster jobs.

A cluster file goes through three stages, each a folder you can read on its own:

``yaml_loader`` (load and plan)
    The file becomes a frozen :class:`yaml_loader.ClusterPlan`: every value located, satellites
    resolved, templates compiled, the graph checked. No Dagster.
``exosphere_dagster.build``
    The plan becomes Dagster definitions: ``job`` wires the steps that ``segments`` cuts,
    ``ops`` and ``summary`` are those steps, ``op_config`` their typed config, ``tags`` and
    ``placement`` the SLA tier's run priority and pods, ``triggers``/``deadlines``/``sla_breach``
    the schedules and sensors, ``lineage`` the assets. ``step_runner`` hands a step to the runtime.
``exosphere_dagster.runtime`` (run)
    The step body, which never imports Dagster: items, retries, timeouts, checkpoints,
    secrets and redaction, log forwarding.

Entry points live in ``exosphere_dagster.entry``: the ``exosphere`` CLI (``entry.cli``), the
lazy code location (``entry.location``, published as ``exosphere_dagster.definitions:defs``),
the dev server and the demo. Satellites themselves are in ``satellite_ops``.

The public API, importable from here (loaded lazily, so that ``exosphere_dagster.runtime``
stays importable without Dagster):

- :func:`satellite_as_op`: a satellite as an op in a hand-written Dagster job;
- :func:`build_job`: one ClusterPlan as a Dagster job;
- :func:`build_definitions`: every cluster file of a folder as ``Definitions``.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "satellite_as_op": "exosphere_dagster.build.python_ops",
    "build_job": "exosphere_dagster.build.job",
    "build_definitions": "exosphere_dagster.definitions",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'exosphere_dagster' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
