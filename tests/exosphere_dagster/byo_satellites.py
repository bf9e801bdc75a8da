"""Bring-your-own satellites used by the runtime tests (registered via EXOSPHERE_SATELLITE_MODULES)."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from pydantic import BaseModel

from satellite_ops import satellite


class FanOutConfig(BaseModel):
    count: int = 10
    prefix: str = ""


@satellite("satellite/test/fan-out", config=FanOutConfig, fans_out=True)
def fan_out(config: FanOutConfig, input: dict) -> list[dict]:
    """Emit ``count`` objects per item."""
    return [{"n": i, "label": f"{config.prefix}{i}"} for i in range(config.count)]


class RecordConfig(BaseModel):
    label: str
    log_dir: str
    fail_for: list[str] = []
    fail_rate: float = 0.0
    block_on: str | None = None  # this label sleeps (until the test kills the process)
    fail_while: str | None = None  # fail_for labels fail only while this file exists


@satellite("satellite/test/record", config=RecordConfig, max_concurrency=4)
def record(config: RecordConfig, input: dict, context) -> list[dict]:
    """Append the label to a call log once the call succeeds; fail on purpose when told."""
    blocked = Path(config.log_dir, "blocked")
    if config.block_on == config.label and not blocked.exists():  # only the first time
        blocked.write_text(config.label)
        time.sleep(3600)
    broken = config.fail_while is None or Path(config.fail_while).exists()
    if config.label in config.fail_for and broken:
        raise RuntimeError(f"cannot process {config.label}")
    if config.fail_rate and random.random() < config.fail_rate:
        with Path(config.log_dir, f"attempt-failures-{os.getpid()}").open("a") as fh:
            fh.write(config.label + "\n")
        raise ConnectionError(f"transient failure for {config.label}")
    with Path(config.log_dir, f"calls-{os.getpid()}.log").open("a") as fh:
        fh.write(f"{config.label}\n")
    return [{"label": config.label, "item": context.item_id}]


class NoteConfig(BaseModel):
    log_dir: str
    message: str


@satellite("satellite/test/note-failure", config=NoteConfig)
def note_failure(config: NoteConfig, input: dict) -> list[dict]:
    """Failure-branch handler: record what it was told."""
    with Path(config.log_dir, "failures.log").open("a") as fh:
        fh.write(config.message.replace("\n", " ") + "\n")
    return [{"noted": True}]


def read_calls(log_dir: str | Path, pattern: str = "calls-*.log") -> list[str]:
    lines: list[str] = []
    for path in sorted(Path(log_dir).glob(pattern)):
        lines.extend(line for line in path.read_text().splitlines() if line)
    return lines
