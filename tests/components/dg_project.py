"""A scratch dg project in the shape ``create-dagster project`` makes: ``pyproject.toml`` with
``[tool.dg]``, ``src/<package>/definitions.py`` loading ``src/<package>/defs/``. It is
installed into nothing: its ``src`` goes on ``PYTHONPATH`` and the test venv's ``dg`` runs it."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

from satellite_env import satellite_env

TEST_SATELLITES = Path(__file__).parents[1] / "exosphere_dagster"  # byo_satellites.py
PYPROJECT = """\
[project]
name = "{package}"
version = "0.1.0"
requires-python = ">=3.11,<3.14"
dependencies = ["dagster==1.13.27", "exosphere-dagster"]

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "{package}"
registry_modules = ["{package}.components.*"]
"""
DEFINITIONS = """\
from pathlib import Path

from dagster import definitions, load_from_defs_folder


@definitions
def defs():
    return load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


def make_project(root: Path) -> tuple[Path, str]:
    """Write the project under ``root``; return its defs folder and its package name (unique,
    so that several projects import side by side in one test process)."""
    package = f"proj_{uuid.uuid4().hex[:8]}"
    defs = root / "src" / package / "defs"
    defs.mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT.format(package=package))
    (defs.parent / "__init__.py").write_text("")
    (defs / "__init__.py").write_text("")
    (defs.parent / "definitions.py").write_text(DEFINITIONS)
    return defs, package


def project_env(root: Path, home: Path) -> dict[str, str]:
    """The environment ``dg`` runs the project in: the test venv first on PATH, the project's
    ``src`` and the test satellites importable, a fresh DAGSTER_HOME."""
    env = {**os.environ, **satellite_env(TEST_SATELLITES, "byo_satellites")}
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), env["PYTHONPATH"]])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["DAGSTER_HOME"] = str(home)
    env["DAGSTER_DISABLE_TELEMETRY"] = "1"
    env["NO_COLOR"] = "1"
    return env
