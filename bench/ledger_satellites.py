"""A no-op satellite that keeps a ledger of what it delivers, for bench/large_run.py --kill-at
(registered through EXOSPHERE_SATELLITE_MODULES).

Each item is one line ``<satellite> <n>`` appended to ``$EXOSPHERE_BENCH_LEDGER/<pid>`` before
the item is returned: one file per process, written unbuffered, so a process killed with
SIGKILL keeps every line it wrote. Across a killed run and its re-execution from failure, each
(satellite, n) must appear exactly once."""

from __future__ import annotations

import os

from pydantic import BaseModel

from satellite_ops import satellite

LEDGER_ENV = "EXOSPHERE_BENCH_LEDGER"
_files: dict[int, int] = {}  # pid -> file descriptor (a forked step has a pid of its own)


class LedgerConfig(BaseModel):
    pass


def _ledger() -> int:
    pid = os.getpid()
    if pid not in _files:
        path = os.path.join(os.environ[LEDGER_ENV], str(pid))
        _files[pid] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    return _files[pid]


@satellite("satellite/bench/ledger", config=LedgerConfig)
async def ledger(config: LedgerConfig, input: dict, context) -> list[dict]:
    """Pass the item on unchanged, after writing it to this process's ledger."""
    os.write(_ledger(), f"{context.satellite} {input['n']}\n".encode())
    return [input]


def read_ledger(folder: str) -> dict[tuple[str, int], int]:
    """(satellite, n) -> how many times it was delivered, over every process's file."""
    counts: dict[tuple[str, int], int] = {}
    for name in os.listdir(folder):
        with open(os.path.join(folder, name)) as fh:
            for line in fh:
                satellite_id, _, n = line.strip().partition(" ")
                if n:
                    key = (satellite_id, int(n))
                    counts[key] = counts.get(key, 0) + 1
    return counts
