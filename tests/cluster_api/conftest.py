"""A real ``exosphere dev`` per store kind (an empty folder; an empty S3 prefix on moto), started
once per module and stopped at its end (api_story.py has the helpers)."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from api_story import EXOSPHERE, HERE, SERVER_MODULES, Story, free_port, tour_blocks, wait_for

from exosphere_dagster.cluster_store import ClusterStore, FolderStore, S3Store
from exosphere_dagster.graphql_api import DagsterApi


@pytest.fixture(scope="module")
def tour_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("user")
    python, cluster = tour_blocks()
    (folder / "my_satellites.py").write_text(python)
    (folder / "hello.yml").write_text(cluster)
    return folder


def _start(store_url: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(EXOSPHERE), "dev", store_url, "--port", str(port)],
            env=env,
            cwd=env["DAGSTER_HOME"],
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, f"http://127.0.0.1:{port}"


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module", params=["folder", "s3"])
def story(request, tmp_path_factory, tour_dir: Path) -> Iterator[Story]:
    """``exosphere dev`` on an empty folder, or on an empty prefix of a moto S3 bucket."""
    kind = request.param
    work = tmp_path_factory.mktemp(f"dev-{kind}")
    (work / "home").mkdir()
    extra: dict[str, str] = {}
    if kind == "s3":
        endpoint = request.getfixturevalue("moto_server")  # puts fake AWS credentials in env
        extra["AWS_ENDPOINT_URL"] = endpoint
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        bucket = f"clusters-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        store: ClusterStore = S3Store(bucket, "team/clusters", client=client)
    else:
        store = FolderStore(work / "clusters")
        store.folder.mkdir()
    env = {
        **os.environ,
        **extra,
        "DAGSTER_HOME": str(work / "home"),
        "PYTHONPATH": os.pathsep.join([str(tour_dir), str(HERE), os.environ.get("PYTHONPATH", "")]),
        "EXOSPHERE_SATELLITE_MODULES": SERVER_MODULES,
        "EXOSPHERE_STORE_CACHE": str(work / "cache"),
        "EXOSPHERE_STORE_POLL_SECONDS": "1",
    }
    log = work / "dev.log"
    proc, url = _start(store.url, env, log)
    story = Story(kind, url, store, env, tour_dir, log)
    try:
        wait_for(lambda: proc.poll() is None and DagsterApi(url).locations(), 180, "dev server up")
        yield story
    finally:
        _stop(proc)
