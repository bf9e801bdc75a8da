"""A real ``exosphere dev`` on an empty clusters store, once per store kind (a folder, an S3
prefix on the moto server), for the whole module.

The server gets the README tour's satellites (``my_satellites``, written from README.md) and
``picky_satellites``; the command gets the same, plus ``cli_only_satellites``, which the server
lacks (a file the caller validates and the server refuses).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from dev_server import (
    EXOSPHERE,
    HERE,
    Server,
    aws_env,
    eventually,
    pythonpath,
    readme_tour,
)

from exosphere_dagster.entry.devserver import free_port
from processes import stop_group


@pytest.fixture(scope="module", params=["folder", "s3"])
def server(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Server]:
    """``exosphere dev`` on an empty store of one kind, for the whole module (the story's
    tests run in order against it)."""
    base = tmp_path_factory.mktemp(f"cluster-api-{request.param}")
    files = base / "files"
    files.mkdir()
    python, cluster = readme_tour()
    (files / "my_satellites.py").write_text(python)
    (files / "hello.yml").write_text(cluster)
    env = {**os.environ, "DAGSTER_HOME": str(base / "home")}
    env.pop("EXOSPHERE_CLUSTERS_DIR", None)
    if request.param == "s3":
        endpoint = request.getfixturevalue("moto_server")
        import boto3

        bucket = f"clusters-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=bucket
        )
        store_url = f"s3://{bucket}/team/clusters"
        env.update({**aws_env(), "AWS_ENDPOINT_URL": endpoint})
    else:
        store_url = str(base / "store")
    server_env = {
        **env,
        "PYTHONPATH": pythonpath(files, HERE),
        "EXOSPHERE_SATELLITE_MODULES": "my_satellites,picky_satellites",
    }
    cli_env = {
        **env,
        "PYTHONPATH": pythonpath(files, HERE, HERE / "cli_only"),
        "EXOSPHERE_SATELLITE_MODULES": "my_satellites,picky_satellites,cli_only_satellites",
    }
    port = free_port()
    log = open(base / "dev.log", "w")  # noqa: SIM115 - closed after the server stops
    proc = subprocess.Popen(
        [str(EXOSPHERE), "dev", store_url, "--port", str(port)],
        env=server_env,
        cwd=base,
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    running = Server(f"http://127.0.0.1:{port}", store_url, cli_env, files)

    def up() -> Any:
        if proc.poll() is not None:
            raise AssertionError("exosphere dev exited:\n" + (base / "dev.log").read_text()[-3000:])
        return running.api.location()

    try:
        eventually(up, 180, "the webserver")
        yield running
    finally:
        stop_group(proc)
        log.close()
