"""The code location module opens no store and reads no setting at import; a deployment or
store that cannot be used shows as an ``invalid__`` job with the located errors, not a
traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LIST_JOBS = """\
import json, sys
import exosphere_dagster.definitions as location
assert not location._OPENED, "the store was opened at import"
print("imported", flush=True)
repo = location.defs
jobs = {j.name: j.description for j in repo.get_all_jobs()}
print(json.dumps(jobs))
"""


def _list_jobs(tmp_path: Path, **env: str) -> tuple[str, dict[str, str]]:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("EXOSPHERE_", "DAGSTER_HOME"))
    }
    environ |= {"DAGSTER_HOME": str(tmp_path), **env}
    result = subprocess.run(
        [sys.executable, "-c", LIST_JOBS],
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    head, _, last = result.stdout.strip().rpartition("\n")
    return head, json.loads(last)


def test_an_unusable_store_is_an_invalid_job_not_an_import_error(tmp_path: Path) -> None:
    head, jobs = _list_jobs(tmp_path, EXOSPHERE_CLUSTERS_DIR="ftp://nowhere/clusters")
    assert head.endswith("imported")
    [(name, description)] = jobs.items()
    assert name.startswith("invalid__")
    assert "unsupported clusters store 'ftp://nowhere/clusters'" in description


def test_a_bad_placement_file_is_shown_with_its_position(tmp_path: Path) -> None:
    placement = tmp_path / "placement.yml"
    placement.write_text("tiers:\n  6h: [not, a, mapping]\n")
    clusters = tmp_path / "clusters"
    clusters.mkdir()
    _, jobs = _list_jobs(
        tmp_path, EXOSPHERE_CLUSTERS_DIR=str(clusters), EXOSPHERE_PLACEMENT_FILE=str(placement)
    )
    [(name, description)] = jobs.items()
    assert name.startswith("invalid__")
    assert f"{placement}:2:" in description, description
    assert description.startswith("The deployment cannot be used")
