"""README's first command: `exosphere demo` runs the pipeline end to end and prints the JSON."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo_prints_structured_json_per_file(tmp_path):
    env_cmd = [sys.executable, "-m", "exosphere_dagster.entry.cli", "demo"]
    proc = subprocess.run(
        env_cmd,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in __import__("os").environ.items() if k != "DAGSTER_HOME"},
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    documents = [json.loads(m) for m in re.findall(r"^\{\n.*?^\}$", out, re.S | re.M)]
    assert sorted(d["file-path"] for d in documents) == [
        "sec/acme-corp-q1-2026.pdf",
        "sec/acme-corp-q2-2026.pdf",
        "sec/globex-q1-2026.pdf",
        "sec/initech-q3-2026.pdf",
    ]
    globex = next(d["data"] for d in documents if "globex" in d["file-path"])
    assert globex["revenue"] == 980000.0 and globex["company"] == "Globex"
    assert "failed/quaterly-financial-reports/scanned-q4-2025.pdf" in out
    assert "left in s3://aikin-financial-reports: []" in out
    assert re.search(r"open http://127\.0\.0\.1:3000/runs/[0-9a-f-]{36}", out)
    assert (tmp_path / ".dagster_home" / "dagster.yaml").exists()
