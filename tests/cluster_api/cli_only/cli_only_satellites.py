"""A satellite only the ``exosphere clusters`` caller has, not the server: a file that
validates on the caller's machine and that the server refuses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from satellite_ops import SatelliteConfig, satellite


class EchoConfig(SatelliteConfig):
    pass


@satellite("satellite/test/cli-only", config=EchoConfig)
def cli_only(config: EchoConfig, input: Mapping[str, Any]) -> list[dict]:
    """Passes its input on."""
    return [dict(input)]
