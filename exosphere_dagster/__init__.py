"""exosphere-dagster: exosphere clusters as Dagster jobs.

Stages (DESIGN.md): ``yaml_loader`` reads and plans a cluster file; ``exosphere_dagster.build.job``
turns the plan into a job (``segments`` cuts where chunks are re-made, ``ops`` and ``summary``
are the steps, ``op_config`` their typed config, ``lineage`` the assets); ``runtime`` is the
Dagster-free step body (items, retries, checkpoints, secrets, log forwarding).

Entry points: the code location ``exosphere_dagster.definitions:defs``, the ``exosphere`` CLI,
and :func:`satellite_as_op` to use a satellite in a hand-written Dagster job.
"""

from typing import Any

__all__ = ["satellite_as_op"]


def __getattr__(name: str) -> Any:
    """Lazy: ``exosphere_dagster.runtime`` must stay importable without loading Dagster."""
    if name == "satellite_as_op":
        from exosphere_dagster.build.python_ops import satellite_as_op

        return satellite_as_op
    raise AttributeError(f"module 'exosphere_dagster' has no attribute {name!r}")
