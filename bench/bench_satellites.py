"""No-op satellites for the benchmarks (registered through EXOSPHERE_SATELLITE_MODULES)."""

from __future__ import annotations

from pydantic import BaseModel

from satellite_ops import satellite


class GenerateConfig(BaseModel):
    count: int


@satellite("satellite/bench/generate", config=GenerateConfig)
def generate(config: GenerateConfig, input: dict) -> list[dict]:
    """Emit ``count`` small objects."""
    return [{"n": i} for i in range(config.count)]


class NoopConfig(BaseModel):
    pass


@satellite("satellite/bench/noop", config=NoopConfig)
async def noop(config: NoopConfig, input: dict) -> list[dict]:
    """Pass the item on unchanged."""
    return [input]
