"""Helpers of the cluster API tests: the README tour, a running ``exosphere dev`` (``Story``)
and the real ``exosphere clusters`` CLI as a subprocess against its GraphQL endpoint.

The satellites are the README tour's (cut out of README.md as tests/exosphere_dagster/
test_schema.py does, into ``my_satellites.py``) plus ``api_satellites``; the CLI's environment
also has ``cli_only_satellites``, which the server lacks.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from exosphere_dagster.cluster_store import ClusterStore

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXOSPHERE = Path(sys.executable).with_name("exosphere")
SERVER_MODULES = "my_satellites,api_satellites"
CLI_MODULES = SERVER_MODULES + ",cli_only_satellites"
JOBS_QUERY = "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }"


def tour_blocks() -> tuple[str, str]:
    """The README tour's satellites (Python) and cluster (YAML)."""
    tour = (ROOT / "README.md").read_text().split("## A five-minute tour", 1)[1]
    python = re.search(r"```python\n(.*?)```", tour, re.S)
    cluster = re.search(r"```yaml\n(.*?)```", tour, re.S)
    assert python and cluster, "the README's tour lost its python or yaml block"
    return python.group(1), cluster.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - a server still starting answers oddly
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what}: not reached in {timeout:.0f}s (last: {last!r})")


@dataclass
class Story:
    """One running ``exosphere dev`` on one store, and what the tests learn along the way."""

    kind: str
    url: str
    store: ClusterStore
    env: dict[str, str]
    files: Path  # the user's own files (the tour, broken copies)
    log: Path
    state: dict[str, Any] = field(default_factory=dict)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``exosphere clusters ARGS --url URL``, the installed console script."""
        env = {**self.env, "EXOSPHERE_SATELLITE_MODULES": CLI_MODULES}
        command = [str(EXOSPHERE), "clusters", *args, "--url", self.url]
        return subprocess.run(
            command, env=env, cwd=self.files, capture_output=True, text=True, timeout=timeout
        )

    def cli_json(self, *args: str) -> Any:
        done = self.cli(*args, "--json")
        assert done.returncode == 0, done.stderr + self.tail()
        return json.loads(done.stdout)

    def job_names(self) -> set[str]:
        """Straight from GraphQL, not through the CLI."""
        response = httpx.post(f"{self.url}/graphql", json={"query": JOBS_QUERY}, timeout=30)
        repos = response.json()["data"]["repositoriesOrError"].get("nodes", [])
        return {job["name"] for repo in repos for job in repo["jobs"]} - {"__ASSET_JOB"}

    def tail(self) -> str:
        return "\n--- exosphere dev log (tail) ---\n" + self.log.read_text()[-4000:]
