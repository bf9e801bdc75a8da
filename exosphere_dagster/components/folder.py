"""``exosphere_dagster.ClusterFolderComponent``: the watched folder as a Dagster component.

Every cluster file of a folder (beside defs.yaml, anywhere on disk, or an ``s3://bucket/prefix``
mirrored as the code location mirrors it) is its own cluster; a broken file is skipped and shown
as an ``invalid__<file>`` job carrying its errors, as in the code location."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dagster import Definitions
from dagster.components import Component, ComponentLoadContext

from exosphere_dagster.components.attributes import FolderAttributes
from exosphere_dagster.components.cluster import ClusterLoadError, component_sensors
from exosphere_dagster.definitions import clusters_definitions
from exosphere_dagster.entry.clusters.store import StoreError, open_store
from exosphere_dagster.resolve.catalog import Catalog, load_catalog
from yaml_loader import ConfigError


@dataclass(frozen=True)
class ClusterFolderComponent(Component):
    """A folder or S3 prefix of exosphere cluster files, each its own job.

    ``attributes``: ``path``. A broken file shows as an invalid__<file> job with its errors."""

    path: str

    @classmethod
    def get_model_cls(cls) -> type[FolderAttributes]:
        return FolderAttributes

    @classmethod
    def load(cls, attributes: Any, context: ComponentLoadContext) -> ClusterFolderComponent:
        if not isinstance(attributes, FolderAttributes):
            raise ClusterLoadError(f"{context.path}: attributes: expected 'path' (a folder)")
        where = attributes.path
        if "://" not in where:
            where = str((context.path / where).resolve())
        return cls(path=where)

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        try:
            store = open_store(self.path)
        except StoreError as exc:  # not a store at all ('s3://'): its own invalid__ job
            catalog = Catalog()
            catalog.broken[self.path] = [
                ConfigError(self.path, 1, 1, (), str(exc), hint="check 'path'")
            ]
            return self._definitions(catalog, context)
        local = store.local_folder()
        catalog = load_catalog([local] if local.exists() else [], shown_as=store.shown_as)
        if not local.exists():
            catalog.broken[store.url] = [
                ConfigError(store.url, 1, 1, (), "no such folder", hint="check 'path'")
            ]
        if store.problem:
            catalog.broken[store.url] = [ConfigError(store.url, 1, 1, (), store.problem)]
        return self._definitions(catalog, context)

    def _definitions(self, catalog: Catalog, context: ComponentLoadContext) -> Definitions:
        return clusters_definitions(
            catalog.plans,
            catalog.broken,
            catalog.registry,
            **component_sensors(str(context.path.relative_to(context.defs_module_path))),
            executions=catalog.executions,
        )
