"""``exosphere dev`` starts Dagster's dev server through ``dg dev -m`` and prints no
``SupersessionWarning`` (``dagster dev`` says it is superseded by ``dg dev`` on every start)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_exosphere_dev_serves_without_a_supersession_warning(tmp_path: Path):
    port = free_port()
    log = tmp_path / "dev.log"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exosphere_dagster.entry.cli", "dev", str(tmp_path / "c")]
            + ["--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while proc.poll() is None:  # until the webserver answers (or the command dies)
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=5).is_success:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert proc.poll() is None, log.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    text = log.read_text()
    assert "watching" in text
    assert "superseded" not in text.lower(), text
