"""A real ``dagster-daemon run`` for the deployment tests, and waits on conditions.

Nothing here is a wall-clock budget for the system under test: every wait polls a condition
(a run's status, a sensor tick in the instance) and gives up only at a ceiling far above what
a loaded machine needs, with the daemon's log in the failure message.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from dagster import DagsterInstance
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

ROOT = Path(__file__).resolve().parents[2]
CEILING = 600.0  # seconds one condition may take before a test gives up on it
FINISHED_TICKS = (TickStatus.SUCCESS, TickStatus.SKIPPED, TickStatus.FAILURE)


def wait_for(what: str, check: Callable[[], Any], log: Path, ceiling: float = CEILING) -> Any:
    """Poll ``check`` until it returns something truthy, and return that."""
    end = time.monotonic() + ceiling
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            tail = log.read_text()[-4000:] if log.exists() else ""
            raise AssertionError(f"gave up after {ceiling:.0f}s waiting for {what}\n{tail}")
        time.sleep(0.25)


def instance_config() -> dict[str, Any]:
    """``deployments/dagster.local.yaml``, for a test to adjust and write into its home."""
    return yaml.safe_load((ROOT / "deployments" / "dagster.local.yaml").read_text())


@contextlib.contextmanager
def running_daemon(
    base: Path, config: dict[str, Any], env: Mapping[str, str]
) -> Iterator[tuple[Path, Path]]:
    """``dagster-daemon run`` on an instance with this ``dagster.yaml`` under ``base/home``,
    over the product's workspace; yields (DAGSTER_HOME, daemon log). The daemon, its code
    server and its run processes share one session, all stopped at the end."""
    home = base / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    workspace = base / "workspace.yaml"
    workspace.write_text((ROOT / "deployments" / "workspace.yaml").read_text())
    log = base / "daemon.log"
    with mock.patch.dict(os.environ, {"DAGSTER_HOME": str(home), **env}), log.open("w") as out:
        daemon = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(workspace)],
            cwd=base,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield home, log
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.wait(20)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(10)


def sensor_ticks(instance: DagsterInstance, name: str, after: float = 0.0) -> list[Any]:
    """Finished ticks of sensor ``name`` that started after ``after`` (a ``time.time()``)."""
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == name:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after)
            return [t for t in ticks if t.status in FINISHED_TICKS]
    return []
