"""exosphere-dagster: exosphere clusters as Dagster jobs.

Stages (DESIGN.md): ``yaml_loader`` reads and plans a cluster file; ``exosphere_dagster.build``
turns the plan into a job (``segments`` cuts where chunks are re-made, ``ops`` and ``summary``
are the steps, ``op_config`` their typed config, ``lineage`` the assets); ``runtime`` is the
Dagster-free step body (items, retries, checkpoints, secrets, log forwarding).

Entry points: the code location ``exosphere_dagster.definitions:defs``, the ``exosphere`` CLI,
:func:`satellite_as_op` to use a satellite in a hand-written Dagster job, and ``Cluster``,
``Satellite``, ... (from ``yaml_loader.python_api``) to write a cluster in Python.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what editors and type checkers see; at run time __getattr__ imports lazily
    from yaml_loader.python_api import Cluster as Cluster
    from yaml_loader.python_api import Failure as Failure
    from yaml_loader.python_api import FolderTrigger as FolderTrigger
    from yaml_loader.python_api import Logs as Logs
    from yaml_loader.python_api import Ref as Ref
    from yaml_loader.python_api import Resources as Resources
    from yaml_loader.python_api import S3Trigger as S3Trigger
    from yaml_loader.python_api import Satellite as Satellite
    from yaml_loader.python_api import Trigger as Trigger
    from yaml_loader.python_api import load_python_clusters as load_python_clusters
    from yaml_loader.python_api import output as output
    from yaml_loader.python_api import ref as ref
    from yaml_loader.python_api import secret as secret

# clusters in Python (yaml_loader.python_api), re-exported here for users of this package
_PYTHON_API = (
    "Cluster",
    "Failure",
    "FolderTrigger",
    "Logs",
    "Ref",
    "Resources",
    "S3Trigger",
    "Satellite",
    "Trigger",
    "load_python_clusters",
    "output",
    "ref",
    "secret",
)
__all__ = ["satellite_as_op", *_PYTHON_API]


def __getattr__(name: str) -> Any:
    """Lazy: ``exosphere_dagster.runtime`` must stay importable without loading Dagster."""
    if name == "satellite_as_op":
        from exosphere_dagster.python_ops import satellite_as_op

        return satellite_as_op
    if name in _PYTHON_API:
        from yaml_loader import python_api

        return getattr(python_api, name)
    raise AttributeError(f"module 'exosphere_dagster' has no attribute {name!r}")
