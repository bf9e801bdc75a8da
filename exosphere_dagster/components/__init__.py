"""Clusters as Dagster components, for projects driven by ``dg``.

``ClusterComponent`` is one cluster (a file beside ``defs.yaml`` or inline under
``attributes:``); ``ClusterFolderComponent`` is a folder or S3 prefix of cluster files. Both are
registered for ``dg`` through the ``dagster_dg_cli.registry_modules`` entry point (the
``exosphere_dagster`` package, which re-exports them) and build what the code location builds
(``exosphere_dagster.definitions.clusters_definitions``)."""

from exosphere_dagster.components.cluster import ClusterComponent as ClusterComponent
from exosphere_dagster.components.cluster import ClusterLoadError as ClusterLoadError
from exosphere_dagster.components.folder import ClusterFolderComponent as ClusterFolderComponent

__all__ = ["ClusterComponent", "ClusterFolderComponent", "ClusterLoadError"]
