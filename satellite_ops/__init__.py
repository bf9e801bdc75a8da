"""Satellites: typed, idempotent step functions, and the registry that finds them."""

from satellite_ops.config import SatelliteConfig as SatelliteConfig
from satellite_ops.config import SecretKeyMapList as SecretKeyMapList
from satellite_ops.config import SingleKeyMapList as SingleKeyMapList
from satellite_ops.context import BatchItem as BatchItem
from satellite_ops.context import PayloadStore as PayloadStore
from satellite_ops.context import SatelliteContext as SatelliteContext
from satellite_ops.errors import DuplicateSatelliteError as DuplicateSatelliteError
from satellite_ops.errors import FatalError as FatalError
from satellite_ops.errors import RetryableError as RetryableError
from satellite_ops.errors import SatelliteDefinitionError as SatelliteDefinitionError
from satellite_ops.errors import SatelliteError as SatelliteError
from satellite_ops.errors import SatelliteImportError as SatelliteImportError
from satellite_ops.errors import UnknownSatelliteError as UnknownSatelliteError
from satellite_ops.registry import Resources as Resources
from satellite_ops.registry import SatelliteDefinition as SatelliteDefinition
from satellite_ops.registry import SatelliteRegistry as SatelliteRegistry
from satellite_ops.registry import default_registry as default_registry
from satellite_ops.registry import satellite as satellite
