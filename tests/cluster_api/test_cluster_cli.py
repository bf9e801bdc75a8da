"""``exosphere clusters`` without a server: what it refuses before connecting, its exit codes,
and ``exosphere validate`` on Python cluster files."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from dev_server import EXOSPHERE, ROOT

from clusters import cluster, dump, satellite_entry

WEBHOOK = satellite_entry("satellite/exospherehost/call-webhook", config={"url": "https://e.com"})


def exosphere(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXOSPHERE), *args], capture_output=True, text=True, timeout=120)


def closed_port_url() -> str:
    with socket.socket() as s:  # bound and closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_no_webserver_is_exit_3() -> None:
    url = closed_port_url()
    for args in (("list",), ("status", "tour/hello"), ("logs", "some-run"), ("delete", "a/b")):
        done = exosphere("clusters", *args, "--url", url)
        assert done.returncode == 3, (args, done.stderr)
        assert f"no Dagster webserver answers at {url}" in done.stderr


def test_bad_usage_is_exit_2() -> None:
    assert exosphere("clusters", "run", "tour/hello", "--input", "{not json").returncode == 2
    assert exosphere("clusters", "run", "tour/hello", "--input", "[1, 2]").returncode == 2
    assert exosphere("clusters", "apply").returncode == 2  # no FILE
    assert exosphere("clusters", "list", "--url", "ftp://host").returncode == 1


def test_apply_refuses_invalid_files_before_connecting(tmp_path: Path) -> None:
    """Nothing listens at --url: the files are refused first, with their locations."""
    bad = tmp_path / "bad.yml"
    bad.write_text(dump(cluster("acme/bad", [WEBHOOK], sla="7h")))
    nothing = tmp_path / "nothing.py"
    nothing.write_text("X = 1\n")
    done = exosphere(
        "clusters", "apply", str(bad), str(nothing), "--json", "--url", closed_port_url()
    )
    assert done.returncode == 1
    assert f"{bad}:4:8: cluster.sla: invalid value for 'sla'" in done.stderr
    assert f"{nothing}:1:1: <document>: the file defines no cluster" in done.stderr
    assert "nothing was changed" in done.stderr
    assert len(json.loads(done.stdout)["errors"]) == 2


def test_apply_refuses_a_python_cluster_at_its_python_line(tmp_path: Path) -> None:
    script = tmp_path / "reports.py"
    script.write_text(
        "from yaml_loader import Cluster, Satellite\n"
        "\n"
        "reports = Cluster(\n"
        "    identifier='acme/reports',\n"
        "    sla='24h',\n"
        "    trigger='api-call',\n"
        "    satellites=[Satellite(uses='satellite/exospherehost/call-webhook', retries='2')],\n"
        ")\n"
    )
    done = exosphere("clusters", "apply", str(script), "--url", closed_port_url())
    assert done.returncode == 1
    assert f"{script}:7:" in done.stderr and "cluster.satellites[0].retries" in done.stderr


def test_validate_accepts_python_cluster_files() -> None:
    reference = ROOT / "examples" / "reference_pipeline.py"
    done = exosphere("validate", str(reference))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok: {reference} (aikin/strucutred-pdfs, ")
