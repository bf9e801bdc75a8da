"""Satellites: typed, idempotent step functions, and the registry that finds them.

The public surface is what a satellite file imports, and nothing else: the names below (from
``satellite_ops``), the shared helpers of :mod:`satellite_ops.helpers` (HTTP and S3 clients,
log sinks, LLM engines, PDF conversion) and, in tests, :mod:`satellite_ops.testing`. Every
built-in satellite is written with these alone (``tests/satellite_ops/test_public_surface.py``
holds it), so any file of ``satellites/`` is one to copy; ``satellites/s3_delete_file.py`` is
the short one.

- declaring: :func:`satellite` (with :class:`Resources`), :class:`SatelliteConfig` and its
  field types (:data:`SingleKeyMapList`, :data:`SecretKeyMapList`, :data:`FIXED_AT_LAUNCH`),
  the normalisers :func:`normalise_single_key_maps`, :func:`secret_or_none`,
  :func:`describe_validation_error`;
- running: :class:`SatelliteContext` and :class:`BatchItem` (what a satellite may know
  besides its config and input), :class:`RetryableError` and :class:`FatalError` (retry or
  fail one item);
- lineage: :func:`declares_endpoints` with :class:`Endpoint`, :class:`StaticConfig`,
  :func:`s3_endpoint`, :func:`http_endpoint`, :func:`literal`;
- the registry: :func:`default_registry`, :class:`SatelliteRegistry`,
  :class:`SatelliteDefinition` and its errors.

Inside: ``satellites/`` (the built-ins, one file each; the registry imports every module of
the folder), ``helpers/``, ``registry``, ``resources``, ``config``, ``context``, ``errors``,
``endpoints``, ``launch`` (what a launch may change), ``testing``.

No Dagster and no cluster file here: a satellite is a plain function with a config model.
"""

from satellite_ops.config import (
    SatelliteConfig,
    SecretKeyMapList,
    SingleKeyMapList,
    describe_validation_error,
    normalise_single_key_maps,
    secret_or_none,
)
from satellite_ops.context import BatchItem, SatelliteContext
from satellite_ops.endpoints import (
    Endpoint,
    StaticConfig,
    declares_endpoints,
    http_endpoint,
    literal,
    s3_endpoint,
)
from satellite_ops.errors import (
    DuplicateSatelliteError,
    FatalError,
    RetryableError,
    SatelliteDefinitionError,
    SatelliteError,
    SatelliteImportError,
    UnknownSatelliteError,
)
from satellite_ops.launch import FIXED_AT_LAUNCH
from satellite_ops.registry import (
    SatelliteDefinition,
    SatelliteRegistry,
    default_registry,
    satellite,
)
from satellite_ops.resources import Resources

__all__ = [
    "BatchItem",
    "DuplicateSatelliteError",
    "Endpoint",
    "FIXED_AT_LAUNCH",
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
    "StaticConfig",
    "UnknownSatelliteError",
    "declares_endpoints",
    "default_registry",
    "describe_validation_error",
    "http_endpoint",
    "literal",
    "normalise_single_key_maps",
    "s3_endpoint",
    "satellite",
    "secret_or_none",
]
