"""exosphere-dagster: exosphere clusters (YAML) as Dagster jobs.

A cluster file goes through three stages, each a folder you can read on its own:

``yaml_loader`` (load and plan)
    The file becomes a frozen :class:`yaml_loader.ClusterPlan`: every value located, satellites
    resolved, templates compiled, the graph checked. No Dagster.
``exosphere_dagster.translate``
    The plan becomes Dagster definitions: ``job`` wires the steps that ``segments`` cuts,
    ``ops`` and ``summary`` are those steps, ``op_config`` their typed config, ``tags`` and
    ``placement`` the SLA tier's run priority and pods, ``triggers``/``deadlines``/``sla_breach``
    the schedules and sensors, ``lineage`` the assets. ``step_runner`` hands a step to the runtime.
``exosphere_dagster.runtime`` (run)
    The step body, which never imports Dagster: items, retries, timeouts, checkpoints,
    secrets and redaction, log forwarding.

Dagster components (``exosphere_dagster.components``, for ``dg``): :class:`ClusterComponent`
(one cluster) and :class:`ClusterFolderComponent` (a folder or S3 prefix of cluster files).

Entry points live in ``exosphere_dagster.entry``: the ``exosphere`` CLI (``entry.cli``), the
lazy code location (``entry.location``, published as ``exosphere_dagster.definitions:defs``),
the dev server and the demo. Satellites themselves are in ``satellite_ops``.

The public API, importable from here (loaded lazily, so that ``exosphere_dagster.runtime``
stays importable without Dagster):

- :func:`satellite_as_op`: a satellite as an op in a hand-written Dagster job;
- :func:`build_job`: one ClusterPlan as a Dagster job;
- :func:`build_definitions`: every cluster file of a folder as ``Definitions``;
- :func:`run_cluster_file`: run one cluster file now on the local Dagster instance, as
  ``exosphere run`` does (for a satellite's end-to-end tests);
- clusters in Python, from ``yaml_loader.python.api``: :class:`Cluster`, :class:`Satellite`,
  :class:`Trigger`, :class:`S3Trigger`, :class:`FolderTrigger`, :class:`Failure`,
  :class:`Logs`, :class:`Ref`, :func:`ref`, :func:`output`, :func:`secret` and
  :func:`load_python_clusters`; with :class:`Resources`, which is ``satellite_ops.Resources``:
  the one class a satellite declares its needs with and a cluster overrides them with.

These, and the code location ``exosphere_dagster.definitions:defs``, are the public surface:
the modules of ``entry``, ``translate``, ``runtime`` and ``resolve`` may change in any release
(the docs import nothing from them: ``tests/docs/test_public_imports.py``).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what editors and type checkers see; at run time __getattr__ imports lazily
    from exosphere_dagster.components import ClusterComponent as ClusterComponent
    from exosphere_dagster.components import ClusterFolderComponent as ClusterFolderComponent
    from exosphere_dagster.definitions import build_definitions as build_definitions
    from exosphere_dagster.entry.launch import run_cluster_file as run_cluster_file
    from exosphere_dagster.translate.job import build_job as build_job
    from exosphere_dagster.translate.standalone_op import satellite_as_op as satellite_as_op
    from satellite_ops import Resources as Resources
    from yaml_loader.python.api import Cluster as Cluster
    from yaml_loader.python.api import Failure as Failure
    from yaml_loader.python.api import FolderTrigger as FolderTrigger
    from yaml_loader.python.api import Logs as Logs
    from yaml_loader.python.api import Ref as Ref
    from yaml_loader.python.api import S3Trigger as S3Trigger
    from yaml_loader.python.api import Satellite as Satellite
    from yaml_loader.python.api import Trigger as Trigger
    from yaml_loader.python.api import load_python_clusters as load_python_clusters
    from yaml_loader.python.api import output as output
    from yaml_loader.python.api import ref as ref
    from yaml_loader.python.api import secret as secret

_EXPORTS = {
    "satellite_as_op": "exosphere_dagster.translate.standalone_op",
    "build_job": "exosphere_dagster.translate.job",
    "build_definitions": "exosphere_dagster.definitions",
    "run_cluster_file": "exosphere_dagster.entry.launch",
    "ClusterComponent": "exosphere_dagster.components",
    "ClusterFolderComponent": "exosphere_dagster.components",
    "Cluster": "yaml_loader.python.api",
    "Failure": "yaml_loader.python.api",
    "FolderTrigger": "yaml_loader.python.api",
    "Logs": "yaml_loader.python.api",
    "Ref": "yaml_loader.python.api",
    "Resources": "satellite_ops",
    "S3Trigger": "yaml_loader.python.api",
    "Satellite": "yaml_loader.python.api",
    "Trigger": "yaml_loader.python.api",
    "load_python_clusters": "yaml_loader.python.api",
    "output": "yaml_loader.python.api",
    "ref": "yaml_loader.python.api",
    "secret": "yaml_loader.python.api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'exosphere_dagster' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
