"""What a launcher may change, through GraphQL ``launchRun`` against a real ``exosphere dev``:
a run that points ``delete-file-from-s3`` at another bucket is refused before any satellite runs
(the message names the field and the opt-in) and moto shows no object touched; a cluster whose
file lists the keys under ``launch-editable`` accepts the same launch."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from dev_server import EXOSPHERE, aws_env, eventually

from exosphere_dagster.entry.clusters.graphql import DagsterApi
from exosphere_dagster.entry.devserver import free_port
from processes import stop_group

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message }
  }
}
"""
EVENTS = """
query Events($id: ID!) {
  logsForRun(runId: $id, limit: 5000) {
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message stepKey }
        ... on ExecutionStepFailureEvent { error { message } }
      }
    }
  }
}
"""
DONE = {"SUCCESS", "FAILURE", "CANCELED"}


def cluster_file(name: str, endpoint: str, bucket: str, opt_in: bool) -> str:
    extra = "          launch-editable: [bucket, file-path]\n" if opt_in else ""
    return (
        "version: 0.0.1b\n"
        "cluster:\n"
        f"    identifier: launch/{name}\n"
        "    sla: 6h\n"
        "    trigger: api-call\n"
        "    satellites:\n"
        "        - uses: satellite/exospherehost/delete-file-from-s3\n"
        "          identifier: delete\n"
        f"{extra}"
        "          config:\n"
        f"            bucket: {bucket}\n"
        "            file-path: in/report.pdf\n"
        f"            endpoint-url: {endpoint}\n"
    )


@pytest.fixture(scope="module")
def world(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    own, other = f"own-{uuid.uuid4().hex[:10]}", f"other-{uuid.uuid4().hex[:10]}"
    for bucket in (own, other):
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="in/report.pdf", Body=b"pdf")
        s3.put_object(Bucket=bucket, Key="payroll.csv", Body=b"secret")
    base = tmp_path_factory.mktemp("launch-fields")
    store = base / "store"
    store.mkdir()
    (store / "fixed.yml").write_text(cluster_file("fixed", moto_server, own, opt_in=False))
    (store / "editable.yml").write_text(cluster_file("editable", moto_server, own, opt_in=True))
    env = {**os.environ, **aws_env(), "DAGSTER_HOME": str(base / "home")}
    env.pop("EXOSPHERE_CLUSTERS_DIR", None)
    port = free_port()
    log = open(base / "dev.log", "w")  # noqa: SIM115 - closed after the server stops
    proc = subprocess.Popen(
        [str(EXOSPHERE), "dev", str(store), "--port", str(port)],
        env=env,
        cwd=base,
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = DagsterApi(f"http://127.0.0.1:{port}")

    def up() -> Any:
        if proc.poll() is not None:
            raise AssertionError("exosphere dev exited:\n" + (base / "dev.log").read_text()[-3000:])
        location = api.location()
        return (
            location
            if {"launch__fixed", "launch__editable"} <= {j.name for j in api.jobs(location)}
            else None
        )

    try:
        location = eventually(up, 240, "the webserver with both clusters")
        yield {"api": api, "location": location, "s3": s3, "own": own, "other": other}
    finally:
        stop_group(proc)
        log.close()


def launch(world: dict[str, Any], job: str, config: dict[str, Any]) -> dict[str, Any]:
    """``launchRun`` as a launcher sends it; waits for the run's end; its status and events."""
    location, api = world["location"], world["api"]
    params = {
        "selector": {**location.selector, "jobName": job},
        "runConfigData": {"ops": {"delete": {"config": config}}},
    }
    answer = api.query(LAUNCH_RUN, {"params": params})["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    run_id = answer["run"]["runId"]
    run = eventually(lambda: (r := api.run(run_id)).status in DONE and r, 300, f"run {run_id}")
    events = api.query(EVENTS, {"id": run_id})["logsForRun"]["events"]
    return {"status": run.status, "events": json.dumps(events)}


def keys(world: dict[str, Any], bucket: str) -> list[str]:
    listed = world["s3"].list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def test_a_launch_that_retargets_a_fixed_bucket_is_refused(world: dict[str, Any]) -> None:
    before = {b: keys(world, b) for b in (world["own"], world["other"])}
    done = launch(world, "launch__fixed", {"bucket": world["other"], "file-path": "payroll.csv"})
    assert done["status"] == "FAILURE"
    assert "ops.delete.config.bucket: 'bucket' is fixed by the cluster file" in done["events"]
    assert "`launch-editable: [bucket]`" in done["events"]
    assert "'file-path' is fixed by the cluster file" in done["events"]
    assert {b: keys(world, b) for b in before} == before  # nothing deleted anywhere


def test_a_launch_with_the_files_values_runs(world: dict[str, Any]) -> None:
    done = launch(world, "launch__fixed", {"bucket": world["own"]})
    assert done["status"] == "SUCCESS", done["events"][-3000:]
    assert keys(world, world["own"]) == ["payroll.csv"]
    world["s3"].put_object(Bucket=world["own"], Key="in/report.pdf", Body=b"pdf")


def test_a_cluster_that_opts_in_accepts_the_edit(world: dict[str, Any]) -> None:
    config = {"bucket": world["other"], "file-path": "payroll.csv"}
    done = launch(world, "launch__editable", config)
    assert done["status"] == "SUCCESS", done["events"][-3000:]
    assert keys(world, world["other"]) == ["in/report.pdf"]
    assert keys(world, world["own"]) == ["in/report.pdf", "payroll.csv"]
