"""Satellites: typed, idempotent step functions, and the registry that finds them.

- ``satellites/``: the built-in satellites, one file each (copy one to write your own); the
  registry imports every module of the folder.
- ``helpers/``: what satellites share (HTTP and S3 clients, the docling converter, LLM
  engines, output schemas).
- ``registry``: ``@satellite`` and the registry (built-ins, entry points,
  ``EXOSPHERE_SATELLITE_MODULES``); ``config``: the base config model and its field types;
  ``context``: what a satellite may know besides its config and input; ``errors``: what a
  satellite raises to retry or fail one item; ``endpoints``: the outside places it reads and
  writes, for lineage; ``testing``: call a satellite in a unit test.

No Dagster and no cluster file here: a satellite is a plain function with a config model.
"""

from satellite_ops.config import SatelliteConfig, SecretKeyMapList, SingleKeyMapList
from satellite_ops.context import BatchItem, SatelliteContext
from satellite_ops.endpoints import Endpoint, declares_endpoints
from satellite_ops.errors import (
    DuplicateSatelliteError,
    FatalError,
    RetryableError,
    SatelliteDefinitionError,
    SatelliteError,
    SatelliteImportError,
    UnknownSatelliteError,
)
from satellite_ops.registry import (
    Resources,
    SatelliteDefinition,
    SatelliteRegistry,
    default_registry,
    satellite,
)

__all__ = [
    "BatchItem",
    "DuplicateSatelliteError",
    "Endpoint",
    "FatalError",
    "Resources",
    "RetryableError",
    "SatelliteConfig",
    "SatelliteContext",
    "SatelliteDefinition",
    "SatelliteDefinitionError",
    "SatelliteError",
    "SatelliteImportError",
    "SatelliteRegistry",
    "SecretKeyMapList",
    "SingleKeyMapList",
    "UnknownSatelliteError",
    "declares_endpoints",
    "default_registry",
    "satellite",
]
