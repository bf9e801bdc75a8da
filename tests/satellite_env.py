"""What a process needs to load test satellites: their folder on ``PYTHONPATH`` and their
modules named in ``EXOSPHERE_SATELLITE_MODULES`` (the product's registration, README.md).

The ``satellite_modules`` fixture (tests/conftest.py) applies it to a test and the processes it
starts; a module-scoped daemon passes it in its environment.
"""

from __future__ import annotations

import os
from pathlib import Path


def satellite_env(folder: Path, *modules: str) -> dict[str, str]:
    """Environment variables that register ``modules`` (files in ``folder``)."""
    paths = [str(folder), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return {
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(p for p in paths if p)),
        "EXOSPHERE_SATELLITE_MODULES": ",".join(modules),
    }
