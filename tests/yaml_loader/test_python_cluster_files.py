"""Python cluster files are read for their clusters and nothing else: Dagster ``Definitions``,
jobs, assets and other ``@record`` objects beside them are skipped (never iterated), the
project's own Dagster example gets a located answer, and a file that raises on import is a
located error, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from satellite_ops.registry import default_registry
from yaml_loader import ConfigErrors, load_python_clusters, load_text, plan

ROOT = Path(__file__).resolve().parents[2]
EXOSPHERE = Path(sys.executable).with_name("exosphere")
HOOK = "satellite/exospherehost/call-webhook"

MIXED = f"""\
from dagster import Definitions, asset, job, op
from dagster_shared.record import record
from yaml_loader import Cluster, Satellite


@record
class Settings:
    bucket: str


@op
def one() -> int:
    return 1


@job
def a_job() -> None:
    one()


@asset
def an_asset() -> int:
    return 2


hook = Satellite(uses="{HOOK}", config={{"url": "https://e.com/h"}})
reports = Cluster(identifier="acme/mixed", sla="6h", trigger="api-call", satellites=[hook])
settings = Settings(bucket="b")
defs = Definitions(jobs=[a_job], assets=[an_asset])
everything = [defs, a_job, settings, reports]
pair = (settings, defs)
"""


UNTOUCHABLE = """\
from yaml_loader import Cluster, Satellite


class Proxy:
    def __iter__(self):
        raise RuntimeError("iterated")

    def __getattribute__(self, name):
        raise RuntimeError(f"read {{name}}")


class Listish(list):
    def __iter__(self):
        raise RuntimeError("iterated a list subclass")


proxy = Proxy()
listish = Listish([1])
only = Cluster(
    identifier="acme/only",
    sla="24h",
    trigger="api-call",
    satellites=[Satellite(uses="{hook}", config={{"url": "https://e.com"}})],
)
"""


def exosphere(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXOSPHERE), *args], capture_output=True, text=True, cwd=ROOT, timeout=180
    )


def test_a_file_with_dagster_definitions_yields_only_its_clusters(tmp_path: Path) -> None:
    path = tmp_path / "mixed.py"
    path.write_text(MIXED)
    clusters = load_python_clusters(path)
    assert [c.identifier for c in clusters] == ["acme/mixed"]
    assert plan(load_text(clusters[0].to_yaml()), default_registry()).job_name == "acme__mixed"


def test_objects_are_judged_by_their_type_alone(tmp_path: Path) -> None:
    path = tmp_path / "untouchable.py"
    path.write_text(UNTOUCHABLE.format(hook=HOOK))
    assert [c.identifier for c in load_python_clusters(path)] == ["acme/only"]


def test_cli_validate_reads_the_clusters_of_a_file_with_definitions(tmp_path: Path) -> None:
    path = tmp_path / "mixed.py"
    path.write_text(MIXED)
    done = exosphere("validate", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"ok: {path} (acme/mixed, 1 satellites)\n"
    assert "Traceback" not in done.stderr


def test_cli_validate_of_the_projects_dagster_example_is_located_not_a_traceback() -> None:
    """examples/python_job.py is a Dagster job (satellite_as_op), not a cluster file."""
    done = exosphere("validate", "examples/python_job.py")
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert "examples/python_job.py:1:1: <document>: the file defines no cluster" in done.stderr
    assert "Dagster jobs and Definitions in the file are not read by exosphere" in done.stderr


@pytest.mark.parametrize(
    ("tail", "line", "message"),
    [
        ("defs.get_job_def('absent')\n", 32, "importing the file raised"),
        ("raise KeyError('no such bucket')\n", 32, "KeyError: 'no such bucket'"),
    ],
)
def test_a_file_with_definitions_that_raises_on_import_is_a_located_error(
    tmp_path: Path, tail: str, line: int, message: str
) -> None:
    path = tmp_path / "raises.py"
    path.write_text(MIXED + tail)
    assert MIXED.count("\n") + 1 == line
    with pytest.raises(ConfigErrors) as raised:
        load_python_clusters(path)
    [error] = raised.value.errors
    assert (Path(error.file), error.line) == (path, line)
    assert message in error.message
    done = exosphere("validate", str(path))
    assert done.returncode == 1
    assert f"{path}:{line}:" in done.stderr and "Traceback" not in done.stderr


def test_cli_apply_reads_a_file_with_definitions_before_connecting(tmp_path: Path) -> None:
    """apply gets past reading the file (its exit 3 is 'no webserver'), no traceback."""
    path = tmp_path / "mixed.py"
    path.write_text(MIXED)
    done = exosphere("clusters", "apply", str(path), "--url", "http://127.0.0.1:9")
    assert done.returncode == 3, done.stderr
    assert "no Dagster webserver answers" in done.stderr
    assert "Traceback" not in done.stderr and "Iteration is not allowed" not in done.stderr
