"""The code location builds lazily: a job asked for by name is built from its own file alone, the
same job the folder lists; what only the folder can answer builds the folder, where a broken
file still shows and hides nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from probe_satellites import read_built, read_where

from clusters import cluster, cluster_from, failure_branch, note, satellite_entry, write_cluster
from exosphere_dagster.definitions import build_definitions, cluster_jobs, job_names
from exosphere_dagster.entry.location import ClusterRepositoryData, lazy_repository
from satellite_env import satellite_env


def noted(identifier: str, message: str = "seen", **fields) -> dict:
    """The two-satellite fixture cluster under ``identifier``; ``message`` is ``note``'s."""
    return cluster_from(
        "fan-out-and-note", identifier=identifier, config={"note": {"message": message}}, **fields
    )


def lazy(folder: Path, names=None) -> tuple[ClusterRepositoryData, list[Path]]:
    """Repository data over ``folder`` whose folder builds are counted."""
    builds: list[Path] = []

    def build_all(path: Path):
        builds.append(path)
        return build_definitions(path)

    return ClusterRepositoryData(folder, build_all, cluster_jobs, names), builds


def test_a_job_asked_by_name_is_built_alone_and_is_the_listed_one(tmp_path):
    write_cluster(tmp_path, "nightly.yml", noted("acme/nightly-report"))
    write_cluster(tmp_path, "weekly.yml", noted("acme/weekly-report"))
    write_cluster(tmp_path, "broken.yaml", "version: 0.0.1b\ncluster:\n  sla: 7h\n")
    data, builds = lazy(tmp_path)

    job = data.get_job("acme__nightly_report")
    assert data.has_job("acme__nightly_report")
    assert builds == []  # neither the other cluster nor the broken file was built

    listed = build_definitions(tmp_path).get_repository_def().get_job("acme__nightly_report")
    assert job.metadata["cluster file"] == listed.metadata["cluster file"]
    assert {n.name for n in job.graph.nodes} == {n.name for n in listed.graph.nodes}
    assert job.executor_def.name == listed.executor_def.name
    assert job.tags == listed.tags

    names = set(data.get_job_names())  # listing builds the folder, broken file included
    assert builds == [tmp_path]
    assert {"acme__nightly_report", "acme__weekly_report", "invalid__broken"} <= names
    assert "broken.yaml:3:8" in data.get_job("invalid__broken").description


def test_the_first_file_that_loads_owns_an_identifier_as_in_the_folder(tmp_path):
    """A broken file and a file that only mentions the name come first in folder order; of two
    files with the identifier, the first one owns it, as the folder build decides."""
    write_cluster(
        tmp_path, "a-broken.yml", "version: 0.0.1b\ncluster:\n  identifier: acme/report\n"
    )
    write_cluster(tmp_path, "b-mention.yml", noted("acme/other", "see cluster/acme/report"))
    owner = write_cluster(tmp_path, "c-owner.yml", noted("acme/report"))
    write_cluster(tmp_path, "d-copy.yml", noted("cluster/acme/report"))
    data, builds = lazy(tmp_path)

    assert data.get_job("acme__report").metadata["cluster file"].text == str(owner)
    assert builds == []
    repo = build_definitions(tmp_path).get_repository_def()
    assert repo.get_job("acme__report").metadata["cluster file"].text == str(owner)
    assert "already defined in" in repo.get_job("invalid__d_copy").description


def test_an_sla_breach_job_is_built_alone_too(tmp_path):
    write_cluster(tmp_path, "plain.yml", noted("acme/plain"))
    report = note("report", "/tmp", "failed")
    alerts = noted("acme/alerts", failure=failure_branch("note", [report]))
    write_cluster(tmp_path, "alerts.yml", alerts)
    data, builds = lazy(tmp_path)
    assert data.get_job("acme__alerts__sla_breach").name == "acme__alerts__sla_breach"
    assert builds == []
    with pytest.raises(Exception, match="acme__plain__sla_breach"):  # it has no alert job
        data.get_job("acme__plain__sla_breach")
    assert builds == [tmp_path]  # only the folder could say so


def test_job_names_are_the_folders_without_building_a_job(tmp_path):
    """What `dagster job execute -j` checks its name against: every name the folder build
    lists (alert jobs, broken files' and collisions' stand-ins, the asset job), and no build."""
    write_cluster(tmp_path, "a-broken.yml", "version: 0.0.1b\ncluster:\n  identifier: acme/x\n")
    write_cluster(tmp_path, "b-plain.yml", noted("acme/plain"))
    report = note("report", "/tmp", "failed")
    write_cluster(
        tmp_path, "c-alerts.yml", noted("acme/alerts", failure=failure_branch("note", [report]))
    )
    write_cluster(tmp_path, "d-copy.yml", noted("cluster/acme/plain"))
    data, builds = lazy(tmp_path, job_names)

    names = data.get_job_names()
    assert builds == []
    listed = build_definitions(tmp_path).get_repository_def().job_names
    assert sorted(names) == sorted(listed)
    assert {"acme__alerts__sla_breach", "invalid__a_broken", "invalid__d_copy"} <= set(names)
    assert data.get_job("acme__plain").name == "acme__plain"
    assert builds == []
    assert data.get_all_jobs() and builds == [tmp_path]  # the UI's listing builds the folder
    assert data.get_job_names() == listed


def test_the_code_location_is_the_lazy_repository(tmp_path):
    write_cluster(tmp_path, "nightly.yml", noted("acme/nightly-report"))
    repo = lazy_repository(tmp_path, build_definitions, cluster_jobs)
    assert repo.name == "__repository__"  # what Definitions names it: run origins stay valid
    assert repo.get_job("acme__nightly_report").name == "acme__nightly_report"
    assert "acme__nightly_report" in repo.job_names


@pytest.mark.integration
def test_a_step_process_plans_only_its_own_cluster(tmp_path):
    """Through `dagster job execute` on the code location: the step that ran ``where``, and the
    forkserver it was forked from, planned their own cluster and none of the folder's others
    (the CLI process lists the folder and planned them all: the probe sees plans in any
    process)."""
    folder, out, built = tmp_path / "clusters", tmp_path / "out", tmp_path / "built.log"
    folder.mkdir()
    out.mkdir()
    asked = [
        satellite_entry("satellite/test/where", "where", {"out": out}),
        satellite_entry("satellite/test/built", "built", {"name": "asked", "out": built}),
    ]
    write_cluster(folder, "asked.yml", cluster("test/asked", asked, sla="24h"))
    for n in range(3):
        other = [satellite_entry("satellite/test/built", config={"name": "other", "out": built})]
        write_cluster(folder, f"other-{n}.yml", cluster(f"test/other-{n}", other, sla="24h"))
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        **satellite_env(Path(__file__).parent, "byo_satellites", "probe_satellites"),
        "EXOSPHERE_CLUSTERS_DIR": str(folder),
    }
    command = [sys.executable, "-m", "dagster", "job", "execute"]
    command += ["-m", "exosphere_dagster.definitions", "-j", "test__asked"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    ((step, server),) = {(seen["pid"], seen["ppid"]) for seen in read_where(out)}
    plans = read_built(built)
    assert server in plans["asked"] and step not in plans["asked"]  # built once, before forks
    assert plans["other"] and not plans["other"] & {step, server}
