"""``exosphere clusters`` without a Dagster server: exit codes a shell can use (3 when nothing
answers GraphQL at --url, 2 for usage, 1 for a refused file, found before any server is asked)
and the run config ``run`` sends, which must stay the one ``exosphere run`` and the API use."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from api_story import EXOSPHERE, HERE, free_port, tour_blocks

from exosphere_dagster.clusters_cli import START_OP, run_config

DEAD = f"http://127.0.0.1:{free_port()}"  # nothing listens there


def exosphere(*args: str, cwd: Path, url: str = DEAD) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(cwd), str(HERE), os.environ.get("PYTHONPATH", "")]),
        "EXOSPHERE_SATELLITE_MODULES": "my_satellites",
    }
    return subprocess.run(
        [str(EXOSPHERE), "clusters", *args, "--url", url],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def user(tmp_path: Path) -> Path:
    python, cluster = tour_blocks()
    (tmp_path / "my_satellites.py").write_text(python)
    (tmp_path / "hello.yml").write_text(cluster)
    return tmp_path


@pytest.fixture
def not_dagster(tmp_path: Path) -> Iterator[str]:
    """An HTTP server that is not a Dagster webserver (plain files, 404 on /graphql)."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("status", "tour/hello"),
        ("logs", "0b8e5c3e-0000-0000-0000-000000000000"),
        ("run", "tour/hello"),
        ("delete", "tour/hello"),
        ("apply", "hello.yml"),  # valid: validation passes, then the server is needed
    ],
)
def test_no_server_at_the_url_is_exit_3(user: Path, args: tuple[str, ...]) -> None:
    done = exosphere(*args, cwd=user)
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"error: no Dagster webserver at {DEAD}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_server_that_is_not_dagster_is_exit_3(user: Path, not_dagster: str) -> None:
    done = exosphere("list", cwd=user, url=not_dagster)
    assert done.returncode == 3
    assert "without JSON: is this a Dagster webserver" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "tour/hello", "--input", "[1]"), "expected a JSON object, got list"),
        (("run", "tour/hello", "--input", "{nope"), "not JSON"),
        (("apply",), "Missing argument 'FILES...'"),
        (("status",), "Missing argument 'IDENTIFIER'"),
        (("list", "--limit", "3"), "No such option '--limit'"),
    ],
)
def test_usage_errors_are_exit_2(user: Path, args: tuple[str, ...], message: str) -> None:
    done = exosphere(*args, cwd=user)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_a_broken_file_is_refused_before_any_server_is_asked(user: Path) -> None:
    text = (user / "hello.yml").read_text()
    (user / "broken.yml").write_text(text.replace("words: [", "word: ["))
    (user / "twin.yml").write_text(text)  # the same identifier as hello.yml
    done = exosphere("apply", "broken.yml", "hello.yml", "twin.yml", cwd=user)
    assert done.returncode == 1, done.stderr  # not 3: nothing was sent anywhere
    assert "broken.yml:9:9: cluster.satellites[0].config.word: unknown key 'word'" in done.stderr
    assert (
        "twin.yml:1:1: cluster.identifier: cluster 'tour/hello' is already defined" in done.stderr
    )


def test_a_python_file_is_refused_at_its_line(user: Path) -> None:
    (user / "bad.py").write_text(
        "from exosphere_dagster import Cluster, Satellite\n"
        "\n"
        "c = Cluster(identifier='tour/py', sla='24h', trigger='api-call',\n"
        "            satellites=[Satellite(uses='satellite/tour/words', config={'word': []})])\n"
    )
    (user / "empty.py").write_text("X = 1\n")
    (user / "crash.py").write_text("import nothing_called_this\n")
    done = exosphere("apply", "bad.py", "empty.py", "crash.py", cwd=user)
    assert done.returncode == 1, done.stderr
    assert "bad.py:4:" in done.stderr and "unknown key 'word'" in done.stderr
    assert "empty.py:1:1: <document>: no Cluster(...) at module level" in done.stderr
    assert "crash.py:1:" in done.stderr and "nothing_called_this" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_sends_the_run_config_exosphere_run_and_the_api_use() -> None:
    from exosphere_dagster.ops import START_OP as OPS_START
    from exosphere_dagster.triggers import run_config_for

    assert START_OP == OPS_START
    items = [{"who": "me"}]
    assert run_config(items) == run_config_for(items)
