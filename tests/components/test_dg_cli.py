"""The real ``dg`` CLI (dagster-dg-cli, in the test venv) on a scratch project in the shape
``create-dagster project`` makes: ``dg list components`` shows ours, ``dg scaffold defs``
writes a cluster that loads, ``dg check yaml`` reports a broken attribute at its line,
``dg check defs`` a broken template at its line, ``dg list defs --json`` lists the job and its
assets and sensors, and a ``dg launch --job`` run succeeds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from dg_project import make_project, project_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def dg(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["dg", *args], cwd=root, env=env, capture_output=True, text=True, timeout=280
    )


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("dg") / "my-project"
    defs, _ = make_project(root)
    return root, defs, project_env(root, tmp_path_factory.mktemp("dagster_home"))


def test_dg_lists_our_components(project):
    root, _, env = project
    listed = dg(root, env, "list", "components", "--json")
    assert listed.returncode == 0, listed.stderr
    keys = {c["key"] for c in json.loads(listed.stdout)["items"]}
    assert {
        "exosphere_dagster.ClusterComponent",
        "exosphere_dagster.ClusterFolderComponent",
    } <= keys


def test_scaffold_check_list_and_launch(project):
    root, defs, env = project
    made = dg(
        root, env, "scaffold", "defs", "exosphere_dagster.ClusterComponent", "clusters/reports"
    )
    assert made.returncode == 0, made.stderr
    folder = defs / "clusters" / "reports"
    assert (folder / "defs.yaml").read_text().endswith("  file: cluster.yaml\n")
    starter = folder / "cluster.yaml"
    assert "identifier: my-project/reports" in starter.read_text()
    checked = dg(root, env, "check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr  # loads as written

    # an inline cluster, scaffolded, then given the offline test satellite (no network here)
    made = dg(
        root,
        env,
        "scaffold",
        "defs",
        "exosphere_dagster.ClusterComponent",
        "clusters/inline",
        "--json-params",
        '{"inline": true}',
    )
    assert made.returncode == 0, made.stderr
    inline = defs / "clusters" / "inline" / "defs.yaml"
    text = inline.read_text()
    head, _, _ = text.partition("    satellites:")
    inline.write_text(
        head.replace("sla: 24h", "sla: 7h")
        + "    satellites:\n"
        + "      - uses: satellite/test/fan-out\n"
        + "        identifier: items\n"
        + "        config:\n"
        + "          count: ${{ satellites.nowhere.output }}\n"
    )
    yaml_check = dg(root, env, "check", "yaml", str(inline.parent))
    assert yaml_check.returncode == 1
    assert f"defs.yaml:{line_of(inline, 'sla: 7h')}" in yaml_check.stdout
    assert "attributes.cluster.sla" in yaml_check.stdout and "'7h'" in yaml_check.stdout

    inline.write_text(inline.read_text().replace("sla: 7h", "sla: 24h"))
    assert dg(root, env, "check", "yaml", str(inline.parent)).returncode == 0
    defs_check = dg(root, env, "check", "defs")
    assert defs_check.returncode == 1
    where = f"{inline}:{line_of(inline, 'nowhere')}:"
    assert where in defs_check.stdout + defs_check.stderr
    assert "attributes.cluster.satellites[0].config.count" in defs_check.stdout + defs_check.stderr

    inline.write_text(inline.read_text().replace("${{ satellites.nowhere.output }}", "2"))
    listed = dg(root, env, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert {job["name"] for job in found["jobs"]} == {"my_project__inline", "my_project__reports"}
    assert {"my_project__inline/items", "my_project__reports/notify"} <= {
        asset["asset_key"] for asset in found["assets"]
    }
    assert "exosphere__deadlines__my_project__inline" in {s["name"] for s in found["sensors"]}

    launched = dg(root, env, "launch", "--job", "my_project__inline")
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    assert 'Finished execution of run for "my_project__inline"' in launched.stdout + launched.stderr
