"""``exosphere code-server``: the code location served over gRPC and rebuilt in place. A changed
file is rebuilt alone (the other clusters' jobs are the very objects they were), the server
takes a new id so that the webserver and daemon load it again, and what they load (through
Dagster's own ``GrpcServerCodeLocation``, as the webserver does) shows the change; a broken or
removed file is handled as the location always does."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, GraphDefinition, OpDefinition
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.remote_origin import GrpcServerCodeLocationOrigin, RemoteRepositoryOrigin
from dagster._core.remote_representation.code_location import GrpcServerCodeLocation
from dagster._core.remote_representation.external_data import JobDataSnap
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.test_utils import create_run_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.utils import FuturesAwareThreadPoolExecutor
from dagster._grpc.__generated__ import dagster_api_pb2
from dagster._grpc.client import DagsterGrpcClient
from dagster._serdes import deserialize_value, serialize_value
from dagster._utils.error import SerializableErrorInfo

from clusters import cluster, cluster_from, satellite_entry, write_cluster
from exosphere_dagster import definitions
from exosphere_dagster.entry import code_server as code_server_module
from exosphere_dagster.entry.code_server import InPlaceApiServer
from exosphere_dagster.entry.devserver import LOCATION_NAME, free_port
from exosphere_dagster.resolve.content import CONTENT_HASH_KEY, file_hash
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


def test_an_edit_that_plans_the_same_still_makes_a_new_job(tmp_path, dagster_home):
    """A comment changes no plan, but the job carries the file's hash (what ``exosphere
    clusters apply`` waits to see served): the cluster is built again."""
    folder = folder_of(tmp_path, ["a"])
    builds = ClusterBuilds()
    first = jobs_by_name(definitions.build_definitions(folder, builds=builds))
    path = folder / "a.yml"
    path.write_text(path.read_text() + "# a comment\n")
    builds.start()
    second = jobs_by_name(definitions.build_definitions(folder, builds=builds))
    assert (builds.built, builds.reused) == (1, 0)
    hashes = [jobs["acme__a"].metadata[CONTENT_HASH_KEY].value for jobs in (first, second)]
    assert hashes[0] != hashes[1] and hashes[1] == file_hash(path)


def test_a_rebuild_that_fails_shows_its_error_until_a_rebuild_succeeds(monkeypatch):
    """In process, with ``rebuilt_location`` made to fail (the location's own build turns
    every error of a file or the deployment into an ``invalid__`` job, so only a bug fails)."""
    servicer = in_process_server(monkeypatch)
    ids = [servicer._server_id]

    def boom():
        raise RuntimeError("the rebuild broke")

    monkeypatch.setattr(definitions, "rebuilt_location", boom)
    assert servicer.rebuild_if_changed() is False
    listed = servicer.ListRepositories(dagster_api_pb2.ListRepositoriesRequest(), None)
    error = deserialize_value(listed.serialized_list_repositories_response_or_error)
    assert isinstance(error, SerializableErrorInfo) and "the rebuild broke" in error.message
    ids.append(servicer._server_id)

    repository = Definitions(jobs=[]).get_repository_def()
    monkeypatch.setattr(definitions, "rebuilt_location", lambda: repository)
    assert servicer.rebuild_if_changed() is True
    assert servicer._loaded_repositories.definitions_by_name == {repository.name: repository}
    assert servicer._serializable_load_error is None
    ids.append(servicer._server_id)
    assert len(set(ids)) == 3, "each rebuild, failed or not, tells the clients to load again"


def test_a_server_whose_first_load_failed_starts_again_on_a_change(tmp_path, monkeypatch):
    """Nothing to rebuild from: the server execs itself (recorded here instead) when the clusters
    or the deployment change, as it does for changed code. It used to need a manual restart.
    The first load is made to fail with a module that raises (only a bug fails it for real)."""
    (tmp_path / "broken_location.py").write_text("raise RuntimeError('first load broke')\n")
    tokens = iter(range(100))
    monkeypatch.setattr(definitions, "location_token", lambda: next(tokens))
    execs = []
    monkeypatch.setattr(code_server_module.os, "execv", lambda *args: execs.append(args))
    servicer = InPlaceApiServer(
        server_termination_event=threading.Event(),
        logger=logging.getLogger("test"),
        server_threadpool_executor=FuturesAwareThreadPoolExecutor(),
        loadable_target_origin=LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name="broken_location",
            attribute="defs",
            working_directory=str(tmp_path),
        ),
        lazy_load_user_code=True,
    )
    assert servicer._loaded_repositories is None
    assert "first load broke" in servicer._serializable_load_error.to_string()
    assert servicer.rebuild_if_changed() is False
    assert len(execs) == 1 and execs[0][0] == sys.executable
    servicer._server_termination_event.set()  # its cleanup thread ends


def test_a_server_told_to_stop_does_not_restart(monkeypatch):
    """A restart that waited for runs happens on Dagster's cleanup tick, unless the server
    was told to stop meanwhile (SIGTERM, Ctrl-C in `exosphere dev`, ``ShutdownServer``)."""
    servicer = in_process_server(monkeypatch)
    execs = []
    monkeypatch.setattr(code_server_module.os, "execv", lambda *args: execs.append(args))
    servicer._deferred = "code changed"
    servicer._shutdown_once_executions_finish_event.set()
    servicer._check_for_orphaned_runs()
    assert execs == []
    servicer._shutdown_once_executions_finish_event.clear()
    servicer._server_termination_event.clear()
    servicer._check_for_orphaned_runs()
    assert len(execs) == 1, "no run in flight and not stopping: it restarts"
    servicer._server_termination_event.set()


def in_process_server(monkeypatch) -> InPlaceApiServer:
    """A servicer with no gRPC around it, whose location changes whenever it is asked."""
    tokens = iter(range(100))
    monkeypatch.setattr(definitions, "location_token", lambda: next(tokens))
    return InPlaceApiServer(
        server_termination_event=threading.Event(),
        logger=logging.getLogger("test"),
        server_threadpool_executor=FuturesAwareThreadPoolExecutor(),
    )


def noop_job(name: str):
    return GraphDefinition(name=name, node_defs=[OpDefinition(lambda _: None, "noop")]).to_job()


def test_a_job_removed_while_a_client_loads_is_still_served(monkeypatch):
    """A client that listed the location before a rebuild removed a job asks for it next."""
    servicer = in_process_server(monkeypatch)
    locations = iter([[noop_job("kept"), noop_job("removed")], [noop_job("kept")]])
    monkeypatch.setattr(
        definitions,
        "rebuilt_location",
        lambda: Definitions(jobs=next(locations)).get_repository_def(),
    )
    servicer.rebuild_if_changed()
    servicer.rebuild_if_changed()
    origin = GrpcServerCodeLocationOrigin(host="127.0.0.1", port=1, location_name=LOCATION_NAME)
    request = dagster_api_pb2.ExternalJobRequest(
        serialized_repository_origin=serialize_value(
            RemoteRepositoryOrigin(origin, "__repository__")
        ),
        job_name="removed",
    )
    reply = servicer.ExternalJob(request, None)
    assert deserialize_value(reply.serialized_job_data, JobDataSnap).name == "removed"


def test_a_changed_deployment_rebuilds_every_cluster(tmp_path, dagster_home, monkeypatch):
    folder = folder_of(tmp_path, ["a", "b"])
    builds = ClusterBuilds()
    first = jobs_by_name(definitions.build_definitions(folder, builds=builds))
    monkeypatch.setenv("EXOSPHERE_DEADLINE_INTERVAL", "45")  # a new Deployment
    builds.start()
    second = jobs_by_name(definitions.build_definitions(folder, builds=builds))
    assert (builds.built, builds.reused) == (2, 0)
    assert second["acme__a"] is not first["acme__a"]


@contextlib.contextmanager
def running_code_server(folder: Path, log: Path, **env: str):
    """A real ``exosphere code-server`` process serving ``folder``, once it answers (it has
    built the location then): its process, port and a gRPC client."""
    port = free_port()
    env = {**os.environ, "EXOSPHERE_CLUSTERS_DIR": str(folder), **env}
    command = [sys.executable, "-m", "exosphere_dagster.entry.cli", "code-server", "-p", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    try:
        wait_until_answering(proc, client, log)
        yield proc, port, client
    finally:
        stop_group(proc)


def wait_until_answering(proc: subprocess.Popen, client: DagsterGrpcClient, log: Path) -> None:
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            client.ping("")
            return
        except DagsterUserCodeUnreachableError:
            time.sleep(0.2)


@pytest.fixture
def code_server(tmp_path, dagster_home):
    """A code server on a folder of three clusters."""
    folder = folder_of(tmp_path, ["a", "b", "c"])
    log = tmp_path / "code-server.log"
    with running_code_server(folder, log) as (_proc, port, client):
        yield folder, port, client, log


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
    lists the repositories first, and that is where the server notices the change; it rebuilds
    in the background and takes a new id, on which the webserver loads the location again."""
    folder, port, client, _log = code_server
    with load_location(port) as location:
        assert {"acme__a", "acme__b", "acme__c"} <= set(descriptions(location))
    before = client.get_server_id()
    write_cluster(folder, "broken.yml", "version: 1\ncluster: [not, a, mapping\n")
    (folder / "c.yml").unlink()
    with load_location(port):
        pass  # what a webserver's reload does first
    while client.get_server_id() == before:  # the rebuild's end, as Dagster's watch sees it
        time.sleep(0.1)
    with load_location(port) as location:
        shown = descriptions(location)
    assert "acme__c" not in shown and "acme__a" in shown and "acme__b" in shown
    [invalid] = [name for name in shown if name.startswith("invalid__")]
    assert "broken.yml" in shown[invalid]


PLUGIN = """
from pydantic import BaseModel
from satellite_ops import satellite


class GreetConfig(BaseModel):
    greeting: str = "hello"


@satellite("satellite/plugin/{name}", config=GreetConfig)
def greet(config: GreetConfig, input: dict) -> list[dict]:
    return [{{"text": config.greeting}}]
"""


@pytest.mark.integration
@pytest.mark.slow
def test_changed_satellite_code_restarts_the_server_in_the_same_process(tmp_path, dagster_home):
    """Python cannot rebuild in place what it imported: a changed plugin module restarts the
    server (exec: same process, same port), and the location then uses the new code. Here the
    plugin's satellite is renamed, so the cluster that uses it becomes an ``invalid__`` job."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    module = plugins / "greetplug.py"
    module.write_text(PLUGIN.format(name="greet"))
    old = time.time() - 60  # older than the server: the code it starts with is on disk
    os.utime(module, (old, old))
    folder = tmp_path / "clusters"
    folder.mkdir()
    entry = satellite_entry("satellite/plugin/greet", "greet")
    write_cluster(folder, "greet.yml", cluster("acme/greet", [entry]))
    log = tmp_path / "code-server.log"
    env = {"PYTHONPATH": str(plugins), "EXOSPHERE_SATELLITE_MODULES": "greetplug"}
    with running_code_server(folder, log, **env) as (proc, port, client):
        with load_location(port) as location:
            assert "acme__greet" in descriptions(location)
        before = client.get_server_id()

        module.write_text(PLUGIN.format(name="renamed"))
        with contextlib.suppress(DagsterUserCodeUnreachableError):
            client.reload_code(timeout=60)  # the server execs while answering
        wait_until_answering(proc, client, log)
        assert client.get_server_id() != before
        with load_location(port) as location:
            shown = descriptions(location)
        assert "acme__greet" not in shown
        [invalid] = [name for name in shown if name.startswith("invalid__")]
        assert "satellite/plugin/greet" in shown[invalid]
        assert "restarting the code server" in log.read_text()
        assert proc.poll() is None, "the same process serves again"


HOLD_PLUGIN = """
import time
from pathlib import Path

from pydantic import BaseModel
from satellite_ops import satellite


class HoldConfig(BaseModel):
    started: str
    release: str


@satellite("satellite/plugin/hold", config=HoldConfig)
def hold(config: HoldConfig, input: dict) -> list[dict]:
    Path(config.started).touch()
    while not Path(config.release).exists():  # held until the test releases it (or cancels)
        time.sleep(0.05)
    return [{{}}]
{comment}"""


@pytest.mark.integration
@pytest.mark.slow
def test_a_restart_waits_for_the_runs_the_server_started(tmp_path, dagster_home):
    """A run's process and its cancellation belong to the server that started it (Dagster's
    ``StartRun`` and ``CancelExecution``). Satellite code that changes while a run is in flight
    no longer restarts the server under it: the UI's Terminate still reaches the run, and the
    server restarts by itself once the run has ended."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    module = plugins / "holdplug.py"
    module.write_text(HOLD_PLUGIN.format(comment=""))
    old = time.time() - 60
    os.utime(module, (old, old))
    folder = tmp_path / "clusters"
    folder.mkdir()
    started, release = tmp_path / "started", tmp_path / "release"
    entry = satellite_entry(
        "satellite/plugin/hold", "hold", {"started": started, "release": release}
    )
    write_cluster(folder, "hold.yml", cluster("acme/hold", [entry]))
    log = tmp_path / "code-server.log"
    env = {"PYTHONPATH": str(plugins), "EXOSPHERE_SATELLITE_MODULES": "holdplug"}
    with running_code_server(folder, log, **env) as (proc, port, client):
        instance = DagsterInstance.get()
        with load_location(port) as location:
            job = location.get_repository("__repository__").get_full_job("acme__hold")
        run = create_run_for_test(
            instance,
            job_name=job.name,
            remote_job_origin=job.get_remote_origin(),
            job_code_origin=job.get_python_origin(),
            job_snapshot=job.job_snapshot,
        )
        DefaultRunLauncher.launch_run_from_grpc_client(instance, run, client)  # the UI's launch
        while not started.exists():
            assert not instance.get_run_by_id(run.run_id).is_finished, "the run ended early"
            time.sleep(0.1)
        before = client.get_server_id()

        module.write_text(HOLD_PLUGIN.format(comment="# edited while a run is in flight\n"))
        client.reload_code(timeout=60)
        assert client.get_server_id() == before, "no restart under a run in flight"
        assert "restarts once its 1 run(s) in flight end" in log.read_text()

        assert instance.run_launcher.terminate(run.run_id), "Terminate reaches the run"
        while not instance.get_run_by_id(run.run_id).is_finished:
            time.sleep(0.1)
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELED

        while "restarting the code server" not in log.read_text():  # by itself, once it ended
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        wait_until_answering(proc, client, log)
        assert client.get_server_id() != before


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_stops_a_server_started_as_a_background_job(tmp_path, dagster_home):
    """A background job inherits SIGINT ignored, and Dagster gives SIGTERM the handler SIGINT
    has: the server must still stop on SIGTERM (``kill``, a supervisor)."""
    folder = folder_of(tmp_path, ["a"])
    port = free_port()
    log = tmp_path / "code-server.log"
    env = {**os.environ, "EXOSPHERE_CLUSTERS_DIR": str(folder)}
    command = [sys.executable, "-m", "exosphere_dagster.entry.cli", "code-server", "-p", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    try:
        wait_until_answering(proc, DagsterGrpcClient(port=port, host="127.0.0.1"), log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, log.read_text()  # a ceiling: it stops in seconds
    finally:
        stop_group(proc)
