"""Cluster YAML -> ClusterSpec -> ClusterPlan. Imports neither dagster nor satellite_ops.

``load``/``load_text`` read and check a file (stage 1), ``plan`` compiles it (stage 2).
``Cluster``, ``Satellite`` and the other classes of ``yaml_loader.python_api`` build the same
file in Python; ``load_python_clusters`` imports a Python file's clusters.
"""

from yaml_loader.errors import ConfigError as ConfigError
from yaml_loader.errors import ConfigErrors as ConfigErrors
from yaml_loader.ir import ClusterPlan as ClusterPlan
from yaml_loader.ir import SatelliteNode as SatelliteNode
from yaml_loader.load import LoadedCluster as LoadedCluster
from yaml_loader.load import load as load
from yaml_loader.load import load_text as load_text
from yaml_loader.plan import plan as plan
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
