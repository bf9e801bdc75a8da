"""A satellite that refuses some items: the failure branch and its records in the cluster API
tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from satellite_ops import SatelliteConfig, satellite


class RefuseConfig(SatelliteConfig):
    text: str = Field(description="The item's text.")
    refuse: list[str] = Field(default_factory=list, description="Texts to fail on.")


@satellite("satellite/test/refuse", config=RefuseConfig)
def refuse(config: RefuseConfig, input: Mapping[str, Any]) -> list[dict]:
    """Fails for the texts it is told to refuse; passes the others on."""
    if config.text in config.refuse:
        raise ValueError(f"refused {config.text}")
    return [{"kept": config.text}]
