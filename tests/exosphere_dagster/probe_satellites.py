"""Satellites that report on the process they run in (tests of the executor and of lazy loading;
registered via EXOSPHERE_SATELLITE_MODULES).

``satellite/test/where`` appends one JSON line per item to ``<out>/where-<pid>.jsonl``: its pid,
its parent's pid, whether the forkserver's preload module is in ``sys.modules``, and the value
of an environment variable. ``satellite/test/built`` appends ``<name> <pid>`` to ``<out>`` each
time its config is validated, which happens when a cluster file using it is planned, so it
tells which processes planned (built) which cluster.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from pydantic import BaseModel, model_validator

from satellite_ops import satellite

PRELOAD_MODULE = "exosphere_dagster.entry.preload"


class WhereConfig(BaseModel):
    out: str
    env: str = "PROBE_VALUE"


@satellite("satellite/test/where", config=WhereConfig)
def where(config: WhereConfig, input: dict) -> list[dict]:
    seen = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "preloaded": PRELOAD_MODULE in sys.modules,
        "env": os.environ.get(config.env),
    }
    with Path(config.out, f"where-{os.getpid()}.jsonl").open("a") as fh:
        fh.write(json.dumps(seen) + "\n")
    return [input]


def read_where(out: str | Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(Path(out).glob("where-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


class BuiltConfig(BaseModel):
    name: str
    out: str

    @model_validator(mode="after")
    def _note(self) -> BuiltConfig:
        with Path(self.out).open("a") as fh:
            fh.write(f"{self.name} {os.getpid()}\n")
        return self


@satellite("satellite/test/built", config=BuiltConfig)
def built(config: BuiltConfig, input: dict) -> list[dict]:
    return [{"pid": os.getpid()}]


def read_built(out: str | Path) -> dict[str, set[int]]:
    """Cluster name -> pids of the processes that validated its config."""
    seen: dict[str, set[int]] = {}
    for line in Path(out).read_text().splitlines() if Path(out).exists() else []:
        name, pid = line.split()
        seen.setdefault(name, set()).add(int(pid))
    return seen
