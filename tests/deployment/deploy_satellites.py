"""Satellites for the deployment tests (registered via EXOSPHERE_SATELLITE_MODULES in the daemon,
its code server and every run process)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from satellite_ops import satellite


class EmptyConfig(BaseModel):
    pass


@satellite("satellite/deploytest/noop", config=EmptyConfig)
def noop(config: EmptyConfig, input: dict) -> list[dict]:
    """Pass the item on."""
    return [input]


class GateConfig(BaseModel):
    path: str
    timeout: float = 120.0


@satellite("satellite/deploytest/wait-for-file", config=GateConfig)
def wait_for_file(config: GateConfig, input: dict) -> list[dict]:
    """Hold a run slot until the test opens the gate (a file appears)."""
    deadline = time.monotonic() + config.timeout
    while not Path(config.path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {config.path} never opened")
        time.sleep(0.2)
    return [input]


class EmitConfig(BaseModel):
    count: int = 3


@satellite("satellite/deploytest/emit", config=EmitConfig)
def emit(config: EmitConfig, input: dict) -> list[dict]:
    """Fan out: one object per name."""
    return [{"name": f"item-{i}"} for i in range(config.count)]


class SleepConfig(BaseModel):
    seconds: float


@satellite("satellite/deploytest/sleep", config=SleepConfig)
async def sleep(config: SleepConfig, input: dict) -> list[dict]:
    """Take longer than any test SLA."""
    await asyncio.sleep(config.seconds)
    return [input]


class RecordConfig(BaseModel):
    path: str
    fields: dict[str, Any] = {}


@satellite("satellite/deploytest/record", config=RecordConfig)
def record(config: RecordConfig, input: dict) -> list[dict]:
    """Append one JSON line (the rendered fields and the input) to ``path``; also a log sink."""
    with Path(config.path).open("a") as fh:
        fh.write(json.dumps({"fields": config.fields, "input": input}, default=str) + "\n")
    return [{"recorded": True}]
