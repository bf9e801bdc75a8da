"""`exosphere dev`: files dropped into, changed in or removed from the watched folder appear in
the running webserver without a restart (the product triggers the code location reload). It
starts Dagster's dev server through ``dg dev -w`` on exosphere's own code server (rebuilt in
place: test_code_server.py) and its log has no ``SupersessionWarning`` (``dagster dev`` says it
is superseded by ``dg dev`` on every start)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from clusters import cluster_from, write_cluster
from exosphere_dagster.entry.devserver import free_port
from processes import stop_group

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JOBS_QUERY = "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }"


def acme(name: str) -> dict:
    return cluster_from("fan-out", identifier=f"acme/{name}")


def job_names(port: int) -> set[str]:
    data = httpx.post(
        f"http://127.0.0.1:{port}/graphql", json={"query": JOBS_QUERY}, timeout=20
    ).json()
    repos = data["data"]["repositoriesOrError"].get("nodes", [])
    return {job["name"] for repo in repos for job in repo["jobs"]}


def eventually(check, timeout: float = 180.0):  # a ceiling for a loaded machine, not a budget
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, KeyError, TypeError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"not reached in {timeout}s (last: {last})")


LAUNCH = """
mutation($p: ExecutionParams!) {
  launchRun(executionParams: $p) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}"""
STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key value } } } }"


def graphql(port: int, query: str, variables: dict) -> dict:
    response = httpx.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query, "variables": variables},
        timeout=30,
    )
    return response.json()["data"]


def launch_by_api(port: int, job: str, inputs: list[dict]) -> str:
    """The call documented in docs/triggers.md."""
    params = {
        "selector": {
            "repositoryLocationName": "exosphere_dagster.definitions",
            "repositoryName": "__repository__",
            "jobName": job,
        },
        "runConfigData": {"ops": {"exosphere__start": {"config": {"inputs": inputs}}}},
    }
    result = graphql(port, LAUNCH, {"p": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def test_watched_folder_updates_the_running_code_location(tmp_path):
    folder = tmp_path / "clusters"
    folder.mkdir()
    write_cluster(folder, "first.yml", acme("first"))
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    log = tmp_path / "dev.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exosphere_dagster.entry.cli", "dev", str(folder)]
            + ["--port", str(port)],
            env=env,
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        eventually(lambda: proc.poll() is not None or "acme__first" in job_names(port))
        assert proc.poll() is None, log.read_text()[-3000:]
        run_id = launch_by_api(port, "acme__first", [{"a": 1}, {"a": 2}])
        run = eventually(
            lambda: (
                (r := graphql(port, STATUS, {"id": run_id})["runOrError"])["status"]
                in ("SUCCESS", "FAILURE")
                and r
            )
        )
        assert run["status"] == "SUCCESS"
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert (
            tags["exosphere/items"] == "2" and tags["exosphere/sla"] == "6h"
        )  # one path per input
        write_cluster(folder, "second.yml", acme("second"))
        eventually(lambda: "acme__second" in job_names(port))
        write_cluster(folder, "first.yml", acme("renamed"))
        eventually(lambda: {"acme__renamed", "acme__second"} == job_names(port) - {"__ASSET_JOB"})
        (folder / "broken.yml").write_text("version: 0.0.1b\ncluster: [\n")
        eventually(lambda: "invalid__broken" in job_names(port))
        (folder / "second.yml").unlink()
        eventually(lambda: "acme__second" not in job_names(port))
    finally:
        stop_group(proc, timeout=30)
    said = log.read_text()
    assert "watching" in said
    assert "superseded" not in said.lower(), said
