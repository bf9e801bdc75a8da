"""Satellites that misbehave on purpose (registered via EXOSPHERE_SATELLITE_MODULES).

``behaviours`` maps an item label to what the satellite does with it; other labels succeed.
Every exception message quotes the secret ``token``, so a test can check it never leaks.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from pydantic import BaseModel

from satellite_ops import satellite


class HostileBase(BaseException):
    """A BaseException subclass of the satellite's own (not an Exception)."""


class UnprintableError(Exception):
    """An exception whose ``__str__`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class HostileConfig(BaseModel):
    label: str
    token: str = ""
    log_dir: str
    behaviours: dict[str, str] = {}


def misbehave(config: HostileConfig) -> list[dict]:
    """Do what ``behaviours`` says for this label; a plain success otherwise."""
    behaviour = config.behaviours.get(config.label, "succeed")
    message = f"{behaviour} for {config.label} with token {config.token}"
    if behaviour == "system-exit":
        raise SystemExit(message)
    if behaviour == "keyboard-interrupt":
        raise KeyboardInterrupt(message)
    if behaviour == "custom-base":
        raise HostileBase(message)
    if behaviour == "unprintable":
        raise UnprintableError(message)
    if behaviour == "unpicklable":
        return [{"label": config.label, "lock": threading.Lock()}]
    with Path(config.log_dir, f"hostile-{os.getpid()}.log").open("a") as fh:
        fh.write(config.label + "\n")
    return [{"label": config.label}]


@satellite("satellite/test/hostile", config=HostileConfig, max_concurrency=4)
def hostile(config: HostileConfig, input: dict) -> list[dict]:
    """Sync: misbehave in a worker thread; a stuck item blocks its thread."""
    if config.behaviours.get(config.label) == "stuck":  # longer than any test
        time.sleep(3600)
    return misbehave(config)


@satellite("satellite/test/hostile-async", config=HostileConfig, max_concurrency=4)
async def hostile_async(config: HostileConfig, input: dict) -> list[dict]:
    """Async: misbehave on the step's event loop; a stuck item waits on it."""
    if config.behaviours.get(config.label) == "stuck":  # longer than any test
        await asyncio.sleep(3600)
    return misbehave(config)
