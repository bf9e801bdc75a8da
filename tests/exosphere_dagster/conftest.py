"""Runtime fixtures: real Dagster instances (SQLite in a temp DAGSTER_HOME, and Postgres)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dagster import instance_for_test

HERE = Path(__file__).parent
POSTGRES_URL = os.environ.get(
    "EXOSPHERE_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def byo_satellites(monkeypatch):
    """Make the test satellites importable here and in subprocesses."""
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("EXOSPHERE_SATELLITE_MODULES", "byo_satellites")


def _home(tmp_path: Path) -> str:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    return str(home)


@pytest.fixture
def sqlite_instance(tmp_path):
    with instance_for_test(temp_dir=_home(tmp_path)) as instance:
        yield instance


def _postgres_available() -> bool:
    try:
        import psycopg2

        psycopg2.connect(POSTGRES_URL.replace("+psycopg2", ""), connect_timeout=3).close()
        return True
    except Exception:
        return False


@pytest.fixture
def postgres_instance(tmp_path):
    if not _postgres_available():
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    overrides = {"storage": {"postgres": {"postgres_url": POSTGRES_URL}}}
    with instance_for_test(temp_dir=_home(tmp_path), overrides=overrides) as instance:
        yield instance


@pytest.fixture(params=["sqlite", "postgres"])
def instance(request):
    return request.getfixturevalue(f"{request.param}_instance")


def write_cluster(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path
