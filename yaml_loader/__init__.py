"""Cluster YAML -> ClusterSpec -> ClusterPlan. Imports neither dagster nor satellite_ops."""

from yaml_loader.errors import ConfigError as ConfigError
from yaml_loader.errors import ConfigErrors as ConfigErrors
from yaml_loader.ir import ClusterPlan as ClusterPlan
from yaml_loader.ir import SatelliteNode as SatelliteNode
from yaml_loader.load import LoadedCluster as LoadedCluster
from yaml_loader.load import load as load
from yaml_loader.load import load_text as load_text
from yaml_loader.plan import plan as plan
