"""``exosphere code-server``: the code location served over gRPC and rebuilt in place. A changed
file is rebuilt alone (the other clusters' jobs are the very objects they were), the server
takes a new id so that the webserver and daemon load it again, and what they load (through
Dagster's own ``GrpcServerCodeLocation``, as the webserver does) shows the change; a broken or
removed file is handled as the location always does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._core.remote_origin import GrpcServerCodeLocationOrigin
from dagster._core.remote_representation.code_location import GrpcServerCodeLocation
from dagster._grpc.client import DagsterGrpcClient

from clusters import cluster_from, write_cluster
from exosphere_dagster import definitions
from exosphere_dagster.entry.devserver import LOCATION_NAME, _free_port
from exosphere_dagster.translate.built_clusters import ClusterBuilds
from processes import stop_group


def acme(name: str, title: str = "first") -> dict:
    return cluster_from("fan-out", identifier=f"acme/{name}", title=title)


def folder_of(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "clusters"
    folder.mkdir()
    for name in names:
        write_cluster(folder, f"{name}.yml", acme(name))
    return folder


def jobs_by_name(defs) -> dict:
    return {job.name: job for job in defs.get_repository_def().get_all_jobs()}


def test_a_rebuild_gives_back_unchanged_clusters_and_builds_the_changed_one(tmp_path, dagster_home):
    folder = folder_of(tmp_path, ["a", "b", "c"])
    builds = ClusterBuilds()
    first = jobs_by_name(definitions.build_definitions(folder, builds=builds))
    assert (builds.built, builds.reused) == (3, 0)

    write_cluster(folder, "b.yml", acme("b", title="second"))
    (folder / "c.yml").unlink()
    builds.start()
    second = jobs_by_name(definitions.build_definitions(folder, builds=builds))
    assert (builds.built, builds.reused) == (1, 1)
    assert second["acme__a"] is first["acme__a"]
    assert second["acme__b"] is not first["acme__b"]
    assert second["acme__b"].description.startswith("second")
    assert "acme__c" not in second

    write_cluster(folder, "c.yml", acme("c"))
    builds.start()
    definitions.build_definitions(folder, builds=builds)
    assert (builds.built, builds.reused) == (1, 2), (
        "a removed cluster is forgotten: coming back, it is built again"
    )


def test_a_changed_deployment_rebuilds_every_cluster(tmp_path, dagster_home, monkeypatch):
    folder = folder_of(tmp_path, ["a", "b"])
    builds = ClusterBuilds()
    first = jobs_by_name(definitions.build_definitions(folder, builds=builds))
    monkeypatch.setenv("EXOSPHERE_DEADLINE_INTERVAL", "45")  # a new Deployment
    builds.start()
    second = jobs_by_name(definitions.build_definitions(folder, builds=builds))
    assert (builds.built, builds.reused) == (2, 0)
    assert second["acme__a"] is not first["acme__a"]


@pytest.fixture
def code_server(tmp_path, dagster_home):
    """A real ``exosphere code-server`` process on a folder of three clusters."""
    folder = folder_of(tmp_path, ["a", "b", "c"])
    port = _free_port()
    log = tmp_path / "code-server.log"
    env = {**os.environ, "EXOSPHERE_CLUSTERS_DIR": str(folder)}
    command = [sys.executable, "-m", "exosphere_dagster.entry.cli", "code-server", "-p", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    try:
        while True:  # it answers once it has built the location
            assert proc.poll() is None, log.read_text()
            try:
                client.ping("")
                break
            except DagsterUserCodeUnreachableError:
                time.sleep(0.2)
        yield folder, port, client, log
    finally:
        stop_group(proc)


def load_location(port: int) -> GrpcServerCodeLocation:
    """The location as Dagster's webserver loads it from a ``grpc_server`` workspace entry."""
    origin = GrpcServerCodeLocationOrigin(host="127.0.0.1", port=port, location_name=LOCATION_NAME)
    return GrpcServerCodeLocation(origin, DagsterInstance.get(), watch_server=False)


def descriptions(location: GrpcServerCodeLocation) -> dict[str, str]:
    repo = location.get_repository("__repository__")
    return {job.name: job.description or "" for job in repo.get_all_jobs()}


@pytest.mark.integration
@pytest.mark.slow
def test_the_code_server_rebuilds_a_changed_file_in_place(code_server):
    folder, port, client, log = code_server
    before = client.get_server_id()
    with load_location(port) as location:
        assert descriptions(location)["acme__b"].startswith("first")
        snapshot_a = location.get_repository("__repository__").get_full_job("acme__a")
        snapshot_a = snapshot_a.identifying_job_snapshot_id
    client.reload_code(timeout=60)
    assert client.get_server_id() == before, "nothing changed: nothing rebuilt, same id"

    write_cluster(folder, "b.yml", acme("b", title="second"))
    client.reload_code(timeout=600)
    assert client.get_server_id() != before, "a rebuild gives the server a new id"
    assert "1 cluster(s) built, 2 unchanged" in log.read_text()
    with load_location(port) as location:
        shown = descriptions(location)
        assert shown["acme__b"].startswith("second")
        assert shown["acme__a"].startswith("first")
        same_a = location.get_repository("__repository__").get_full_job("acme__a")
        assert same_a.identifying_job_snapshot_id == snapshot_a


@pytest.mark.integration
@pytest.mark.slow
def test_a_reload_through_the_webserver_sees_broken_and_removed_files(code_server):
    """No ``ReloadCode`` here: a webserver's reload (the UI's button, ``exosphere clusters``)
    lists the repositories first, and that is where the server notices the change."""
    folder, port, client, _log = code_server
    with load_location(port) as location:
        assert {"acme__a", "acme__b", "acme__c"} <= set(descriptions(location))
    write_cluster(folder, "broken.yml", "version: 1\ncluster: [not, a, mapping\n")
    (folder / "c.yml").unlink()
    with load_location(port) as location:
        shown = descriptions(location)
    assert "acme__c" not in shown and "acme__a" in shown and "acme__b" in shown
    [invalid] = [name for name in shown if name.startswith("invalid__")]
    assert "broken.yml" in shown[invalid]
