"""satellite_ops stays independent of Dagster and of the loader (docs/architecture.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def test_no_dagster_or_loader_import() -> None:
    code = (
        "import sys, satellite_ops\n"
        "satellite_ops.default_registry()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'dagster', 'yaml_loader'})\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("EXOSPHERE_SATELLITE_MODULES", None)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
