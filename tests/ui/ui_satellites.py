"""Bring-your-own satellites for the browser test: a cluster made of them can complete here,
unlike the reference cluster (no S3 bucket, no docling). Registered in the ``exosphere dev``
process through ``EXOSPHERE_SATELLITE_MODULES=ui_satellites``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from satellite_ops import satellite
from satellite_ops.config import SatelliteConfig


class SplitConfig(BaseModel):
    count: int = Field(3, ge=1, description="Objects emitted per input item.")


@satellite("satellite/uitest/split", config=SplitConfig)
def split(config: SplitConfig, input: dict) -> list[dict]:
    """Emit ``count`` objects per item, carrying the run input's ``who``."""
    return [{"n": i, "who": input.get("who", "nobody")} for i in range(config.count)]


class ShoutConfig(BaseModel):
    text: str = Field(description="What to shout.")


@satellite("satellite/uitest/shout", config=ShoutConfig)
def shout(config: ShoutConfig, input: dict, context) -> list[dict]:
    """Upper-case a text and log it (the log line shows in the run's event log)."""
    text = config.text.upper()
    context.log.info(f"shouted {text}")
    return [{"text": text}]


class PickyConfig(SatelliteConfig):
    """Which item the satellite refuses (kebab-case keys, or the field names: both load)."""

    refuse_n: int = Field(1, description="The `n` this satellite refuses.")


@satellite("satellite/uitest/picky", config=PickyConfig)
def picky(config: PickyConfig, input: dict) -> list[dict]:
    """Fail the item whose ``n`` is ``refuse_n`` (a red chunk step in the UI)."""
    if input.get("n") == config.refuse_n:
        raise ValueError(f"item {config.refuse_n} is not acceptable")
    return [input]


class FlakyConfig(BaseModel):
    refuse: int = Field(1, description="The `n` this satellite refuses while `while_file` exists.")
    while_file: str = Field(description="Refuse only while this file exists (a test mends it).")


@satellite("satellite/uitest/flaky", config=FlakyConfig)
def flaky(config: FlakyConfig, input: dict) -> list[dict]:
    """Fail the item whose ``n`` is ``refuse`` until the file ``while_file`` is removed."""
    if input.get("n") == config.refuse and Path(config.while_file).exists():
        raise ValueError(f"item {config.refuse} is not acceptable yet")
    return [input]
