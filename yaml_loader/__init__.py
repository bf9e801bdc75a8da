"""Load and plan: cluster YAML -> ClusterSpec -> ClusterPlan. Imports neither Dagster nor
satellite_ops (the planner asks an abstract registry for satellites' config models).

- ``source`` and ``syntax`` read the file keeping every value's line and column; ``scalars``
  decides what each YAML scalar is; ``models`` is the file's pydantic model (ClusterSpec);
  ``load`` ties them together and reports every problem as a located ``ConfigError``.
- ``plan`` checks the file as a whole (satellites, graph, references) and freezes it into a
  ``ClusterPlan`` (``ir``); ``templates`` compiles ``${{ }}`` expressions and describes what
  they may read (the template scope).
- ``python_api`` builds the same file in Python (``Cluster``, ``Satellite``, ...): it writes
  the YAML and plans it through the same loader; ``load_python_clusters`` imports a Python
  file's clusters.
"""

from yaml_loader.errors import ConfigError, ConfigErrors
from yaml_loader.ir import ClusterPlan, SatelliteNode
from yaml_loader.load import LoadedCluster, load, load_text
from yaml_loader.plan import plan
from yaml_loader.python.api import (
    Cluster,
    Failure,
    FolderTrigger,
    Logs,
    Ref,
    S3Trigger,
    Satellite,
    Trigger,
    load_python_clusters,
    output,
    ref,
    secret,
)

__all__ = [
    "Cluster",
    "ClusterPlan",
    "ConfigError",
    "ConfigErrors",
    "Failure",
    "FolderTrigger",
    "LoadedCluster",
    "Logs",
    "Ref",
    "S3Trigger",
    "Satellite",
    "SatelliteNode",
    "Trigger",
    "load",
    "load_python_clusters",
    "load_text",
    "output",
    "plan",
    "ref",
    "secret",
]
