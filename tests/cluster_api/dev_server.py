"""A running ``exosphere dev`` as the cluster API tests see it, and the real ``exosphere
clusters`` command pointed at it (conftest.py starts one per store kind)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exosphere_dagster.entry.clusters.graphql import ApiError, DagsterApi
from exosphere_dagster.entry.clusters.store import ClusterStore, S3Store, open_store

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
EXOSPHERE = Path(sys.executable).with_name("exosphere")


def readme_tour() -> tuple[str, str]:
    """The README tour's ``my_satellites.py`` and ``clusters/hello.yml``."""
    tour = (ROOT / "README.md").read_text().split("## A five-minute tour", 1)[1]
    python = re.search(r"```python\n(.*?)```", tour, re.S)
    cluster = re.search(r"```yaml\n(.*?)```", tour, re.S)
    assert python and cluster, "the README's tour lost its python or yaml block"
    return python.group(1), cluster.group(1)


def eventually(check: Callable[[], Any], timeout: float = 120.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except ApiError as exc:  # not up yet
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what or check} not reached in {timeout}s (last: {last})")


@dataclass
class Server:
    """A running ``exosphere dev`` and what a test needs to talk to it."""

    url: str
    store_url: str
    env: dict[str, str]  # the command's environment
    files: Path  # the tour and the test's cluster files

    @property
    def store(self) -> ClusterStore:
        """The server's store, as the command sees it (its S3 endpoint included)."""
        return self.store_at(self.store_url)

    def store_at(self, url: str) -> ClusterStore:
        store = open_store(url)
        if isinstance(store, S3Store):
            store.endpoint_url = self.env["AWS_ENDPOINT_URL"]
        return store

    def location_loaded_at(self) -> float:
        """When the webserver last (re)loaded the code location."""
        data = self.api.query(
            "{ workspaceOrError { ... on Workspace { locationEntries { updatedTimestamp } } } }"
        )
        (entry,) = data["workspaceOrError"]["locationEntries"]
        return entry["updatedTimestamp"]

    @property
    def api(self) -> DagsterApi:
        return DagsterApi(self.url)

    def clusters(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """``exosphere clusters ARGS --url URL`` as a user runs it."""
        return subprocess.run(
            [str(EXOSPHERE), "clusters", *args, "--url", self.url],
            capture_output=True,
            text=True,
            env=env or self.env,
            timeout=300,
        )

    def clusters_json(self, *args: str) -> Any:
        done = self.clusters(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def job_names(self) -> set[str]:
        location = self.api.location()
        return {job.name for job in self.api.jobs(location)}


def pythonpath(*folders: Path) -> str:
    paths = [*map(str, folders), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return os.pathsep.join(dict.fromkeys(p for p in paths if p))


def aws_env() -> dict[str, str]:
    """The fake credentials the ``moto_server`` fixture put in this process's environment."""
    names = (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
    )
    return {name: os.environ[name] for name in names if name in os.environ}
