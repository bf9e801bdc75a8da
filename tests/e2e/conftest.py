"""End-to-end fixtures: the e2e satellites registered, and a SQLite Dagster instance in a
temporary DAGSTER_HOME (compute logs included) whose every file the tests can search."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dagster import instance_for_test

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def e2e_satellites(monkeypatch):
    """Make the e2e satellites importable here and in step subprocesses."""
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("EXOSPHERE_SATELLITE_MODULES", "e2e_satellites")


@pytest.fixture
def dagster_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("EXOSPHERE_CHECKPOINT_DIR", raising=False)
    return home


@pytest.fixture
def sqlite_instance(dagster_home):
    """A SQLite instance whose storage, compute logs and checkpoints all live in DAGSTER_HOME."""
    overrides = {
        "compute_logs": {
            "module": "dagster._core.storage.local_compute_log_manager",
            "class": "LocalComputeLogManager",
            "config": {"base_dir": str(dagster_home / "compute_logs")},
        }
    }
    with instance_for_test(temp_dir=str(dagster_home), overrides=overrides) as instance:
        yield instance
