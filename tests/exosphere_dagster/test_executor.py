"""Cluster jobs start their steps cheaply by default: forked from a forkserver that preloaded the
product and the satellites; run config still picks spawn or in-process, and
``EXOSPHERE_EXECUTOR=k8s`` still picks the Kubernetes executor."""

from __future__ import annotations

import os

import pytest
from dagster import execute_job
from probe_satellites import read_where

from clusters import cluster, satellite_entry, write_cluster
from exosphere_dagster.entry.launch import run_cluster_file
from exosphere_dagster.entry.reconstruct import reconstructable_job
from exosphere_dagster.resolve.catalog import registry_with_plugins
from exosphere_dagster.resolve.settings import reload_settings
from exosphere_dagster.translate.executor import ensure_forkserver
from exosphere_dagster.translate.job import build_job
from exosphere_dagster.translate.scheduling.triggers import run_config_for
from yaml_loader import load, plan


@pytest.fixture(autouse=True)
def probes(satellite_modules):
    satellite_modules("byo_satellites", "probe_satellites")


def where_cluster(tmp_path, name: str):
    """A cluster of one ``where`` probe writing to its own ``out`` folder: (path, out)."""
    out = tmp_path / f"out-{name}"
    out.mkdir()
    where = satellite_entry("satellite/test/where", "where", {"out": out})
    return write_cluster(tmp_path, f"{name}.yml", cluster(f"test/where-{name}", [where])), out


def execute(path, instance, inputs: int, execution: dict | None = None):
    config = run_config_for([{"n": i} for i in range(inputs)])
    if execution is not None:
        config["execution"] = {"config": execution}
    with execute_job(reconstructable_job(path), instance=instance, run_config=config) as result:
        assert result.success
        steps = {e.step_key for e in result.all_events if e.step_key}
    return sorted(s for s in steps if s.startswith("where["))


@pytest.mark.integration
def test_steps_fork_from_the_preloaded_server_and_see_this_processs_environment(
    tmp_path, sqlite_instance, monkeypatch
):
    """A multiprocess run with only ``max_concurrent`` set: every chunk step is a fork of one
    server (not of this process) that had the product loaded; 100 items at 6h with 2 workers
    make 2 x 4 chunks. A second run after an environment change sees the new value (the server
    was restarted for it)."""
    path, out = where_cluster(tmp_path, "fork")
    monkeypatch.setenv("PROBE_VALUE", "first")
    steps = execute(path, sqlite_instance, 100, {"multiprocess": {"max_concurrent": 2}})
    assert len(steps) == 8
    first = read_where(out)
    assert len(first) == 100
    assert all(seen["preloaded"] and seen["env"] == "first" for seen in first)
    servers = {seen["ppid"] for seen in first}
    assert len(servers) == 1 and os.getpid() not in servers
    assert len({seen["pid"] for seen in first}) == 8  # one process per chunk step

    monkeypatch.setenv("PROBE_VALUE", "second")
    for old in out.iterdir():
        old.unlink()
    execute(path, sqlite_instance, 3, {"multiprocess": {}})
    second = read_where(out)
    assert [seen["env"] for seen in second] == ["second"] * 3
    assert {seen["ppid"] for seen in second}.isdisjoint(servers)


@pytest.mark.integration
def test_run_config_still_chooses_spawn_or_in_process(tmp_path, sqlite_instance):
    path, out = where_cluster(tmp_path, "spawn")
    spawn = {"multiprocess": {"start_method": {"spawn": {}}}}
    assert execute(path, sqlite_instance, 3, spawn) == ["where[c00000]"]
    (seen,) = {(s["ppid"], s["preloaded"]) for s in read_where(out)}
    assert seen == (os.getpid(), False)  # a fresh interpreter started by this process

    path, out = where_cluster(tmp_path, "inline")
    assert run_cluster_file(path, [{"n": 1}], instance=sqlite_instance).success  # exosphere run
    assert {s["pid"] for s in read_where(out)} == {os.getpid()}


def test_kubernetes_keeps_its_own_executor(tmp_path, monkeypatch):
    path, _ = where_cluster(tmp_path, "k8s")
    registry = registry_with_plugins()
    cluster_plan = plan(load(path), registry)
    assert build_job(cluster_plan, registry).executor_def.name == "exosphere_multi_or_in_process"
    monkeypatch.setenv("EXOSPHERE_EXECUTOR", "k8s")
    reload_settings()  # read once per process
    assert build_job(cluster_plan, registry).executor_def.name == "k8s"


def test_the_forkserver_restarts_only_when_what_steps_inherit_changed(monkeypatch):
    monkeypatch.setenv("PROBE_VALUE", "a")
    first = ensure_forkserver(["json"])
    assert ensure_forkserver(["json"]) == first
    monkeypatch.setenv("PROBE_VALUE", "b")
    second = ensure_forkserver(["json"])
    assert second != first
    assert ensure_forkserver(["json", "csv"]) != second  # another preload list
