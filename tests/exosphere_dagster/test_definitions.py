"""The code location: a folder of cluster files becomes jobs, schedules and sensors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import build_schedule_context

from clusters import cluster, cluster_from, satellite_entry, write_cluster
from exosphere_dagster import definitions
from exosphere_dagster.definitions import build_definitions, cluster_jobs
from exosphere_dagster.entry.cli import main as cli
from exosphere_dagster.entry.clusters.store import FolderStore
from exosphere_dagster.entry.location import find_job
from exosphere_dagster.entry.reconstruct import job_for_file
from exosphere_dagster.resolve.catalog import plan_file
from yaml_loader import ConfigErrors

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def nightly(identifier: str = "cluster/acme/nightly-report") -> dict:
    """A 24h cluster started at 02:30 on weekdays, Berlin time."""
    cron = {"cron": "30 2 * * 1-5", "timezone": "Europe/Berlin"}
    return cluster_from(
        "fan-out", identifier=identifier, sla="24h", trigger=cron, config={"items": {"count": 2}}
    )


def test_folder_loads_good_files_and_shows_broken_ones(tmp_path):
    write_cluster(tmp_path, "nightly.yml", nightly())
    write_cluster(tmp_path, "weekly.yml", nightly("cluster/acme/weekly-report"))  # same ops
    write_cluster(tmp_path, "broken.yaml", "version: 0.0.1b\ncluster:\n  sla: 7h\n")
    write_cluster(tmp_path, "zz-copy.yml", nightly())  # same identifier as nightly.yml
    defs = build_definitions(tmp_path)
    repo = defs.get_repository_def()
    names = {job.name for job in repo.get_all_jobs()}
    assert {"acme__nightly_report", "acme__weekly_report"} <= names
    broken = repo.get_job("invalid__broken")
    assert "broken.yaml:3:8: cluster.sla" in broken.description
    duplicate = repo.get_job("invalid__zz_copy")
    assert "already defined in" in duplicate.description

    schedule = repo.get_schedule_def("acme__nightly_report__schedule")
    assert schedule.cron_schedule == "30 2 * * 1-5"
    assert schedule.execution_timezone == "Europe/Berlin"
    when = datetime(2026, 11, 24, 1, 30, tzinfo=UTC)
    request = schedule.evaluate_tick(
        build_schedule_context(scheduled_execution_time=when)
    ).run_requests[0]
    assert request.tags["exosphere/deadline"] == "2026-11-25T01:30:00+00:00"  # trigger + 24h
    inputs = request.run_config["ops"]["exosphere__start"]["config"]["inputs"]
    assert inputs == [{"trigger": "cron", "scheduled-time": when.isoformat()}]

    job = repo.get_job("acme__nightly_report")
    assert job.tags["dagster/priority"] == "10"
    assert job.tags["exosphere/sla"] == "24h"
    assert job.tags["dagster/max_runtime"] == str(24 * 3600)


def test_a_plugin_that_cannot_be_imported_takes_down_only_the_clusters_that_use_it(
    tmp_path, monkeypatch, satellite_modules
):
    """A module named in EXOSPHERE_SATELLITE_MODULES that fails to import is shown as an
    ``invalid__`` job with its import error; the other clusters load, build alone (a step or
    ``dagster job execute``) and run; a cluster that uses its satellites says why it cannot.
    The code location used to fail as a whole (`exosphere validate` already reported it)."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "acme_broken_plugin.py").write_text("raise RuntimeError('boom: missing setting')\n")
    satellite_modules("byo_satellites")  # nightly's fan-out: a plugin that still loads
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.setenv("EXOSPHERE_SATELLITE_MODULES", "acme_broken_plugin,byo_satellites")
    folder = tmp_path / "clusters"
    folder.mkdir()
    write_cluster(folder, "nightly.yml", nightly())
    custom = cluster("acme/custom", [satellite_entry("satellite/acme/custom", "custom")])
    write_cluster(folder, "custom.yml", custom)

    repo = build_definitions(folder).get_repository_def()
    assert "acme__nightly_report" in repo.job_names
    invalid = {name: repo.get_job(name).description for name in repo.job_names}
    invalid = {name: text for name, text in invalid.items() if name.startswith("invalid__")}
    assert len(invalid) == 2, invalid
    plugin_text, custom_text = sorted(invalid.values(), key=lambda text: "custom.yml" in text)
    assert plugin_text.startswith("A satellite plugin cannot be imported")
    assert "<satellite plugins>:1:1" in plugin_text
    assert "acme_broken_plugin" in plugin_text and "RuntimeError: boom" in plugin_text
    assert "satellite/acme/custom" in custom_text

    assert find_job(folder, "acme__nightly_report", cluster_jobs) is not None
    assert job_for_file(str(folder / "nightly.yml")).name == "acme__nightly_report"
    with pytest.raises(ConfigErrors) as caught:
        plan_file(folder / "custom.yml")
    assert "satellite/acme/custom" in str(caught.value) and "RuntimeError: boom" in str(
        caught.value
    )


def test_a_cluster_whose_job_cannot_be_built_is_shown_and_validate_refuses_it(
    tmp_path, monkeypatch, satellite_modules
):
    """Whatever stops one cluster's Dagster build (a bug, in exosphere or in a satellite's config
    model: a recursive model was one) is that file's error: the location shows it as an
    ``invalid__`` job and `exosphere validate`, which builds the jobs too, refuses the file.
    The bug is injected (fault injection: the known ones are fixed, test_op_config.py)."""
    satellite_modules("byo_satellites")
    write_cluster(tmp_path, "nightly.yml", nightly())
    write_cluster(tmp_path, "weekly.yml", nightly("cluster/acme/weekly-report"))
    built = definitions.job_for

    def job_for(execution, *args):
        if execution.plan.identifier == "acme/weekly-report":
            raise RecursionError("maximum recursion depth exceeded")
        return built(execution, *args)

    monkeypatch.setattr(definitions, "job_for", job_for)
    repo = build_definitions(tmp_path).get_repository_def()
    assert "acme__nightly_report" in repo.job_names
    assert "acme__weekly_report" not in repo.job_names
    text = repo.get_job("invalid__weekly").description
    assert "weekly.yml:1:1: <document>: its Dagster job could not be built: RecursionError" in text
    assert "bug in exosphere" in text

    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert f"ok: {tmp_path / 'nightly.yml'}" in result.output
    assert "weekly.yml:1:1: <document>: its Dagster job could not be built" in result.output
    assert "ok: " + str(tmp_path / "weekly.yml") not in result.output
    skipped = CliRunner().invoke(cli, ["validate", "--no-build", str(tmp_path)])
    assert skipped.exit_code == 0, skipped.output


def test_a_kubernetes_configmap_mount_loads_each_cluster_once(tmp_path, satellite_modules):
    """The Helm chart mounts the clusters' ConfigMap as the kubelet lays it out: the files in
    ``..<timestamp>/``, a ``..data`` link to it, and a link beside it for each file. Hidden
    folders are not read, so each cluster loads once (every one was a duplicate of itself)."""
    satellite_modules("byo_satellites")
    mount = tmp_path / "clusters"
    data = mount / "..2026_12_06_16_53_00.123456789"
    data.mkdir(parents=True)
    write_cluster(data, "nightly.yml", nightly())
    write_cluster(data, "weekly.yml", nightly("cluster/acme/weekly-report"))
    (mount / "..data").symlink_to(data.name)
    for name in ("nightly.yml", "weekly.yml"):
        (mount / name).symlink_to(f"..data/{name}")
    (mount / ".git").mkdir()
    write_cluster(mount / ".git", "old.yml", nightly("cluster/acme/old-report"))

    names = build_definitions(mount).get_repository_def().job_names
    assert {"acme__nightly_report", "acme__weekly_report"} <= set(names)
    assert not [name for name in names if name.startswith("invalid__")], names
    assert "acme__old_report" not in names
    assert set(FolderStore(mount).list()) == {"nightly.yml", "weekly.yml"}


@pytest.mark.skipif(sys.platform == "darwin", reason="APFS refuses names that are not UTF-8")
def test_a_file_name_that_is_not_utf8_is_that_files_error(tmp_path, satellite_modules):
    """Dagster keeps names as UTF-8 text: such a file failed every run, or, when it was broken,
    took the whole location down while naming it."""
    satellite_modules("byo_satellites")
    write_cluster(tmp_path, "nightly.yml", nightly())
    (tmp_path / os.fsdecode(b"bad\xffname.yml")).write_text("version: 0.0.1b\n")
    weekly = tmp_path / os.fsdecode(b"weekly\xfe.yml")
    write_cluster(tmp_path, weekly.name, nightly("cluster/acme/weekly-report"))

    repo = build_definitions(tmp_path).get_repository_def()
    assert "acme__nightly_report" in repo.job_names
    assert "acme__weekly_report" not in repo.job_names
    texts = [repo.get_job(n).description for n in repo.job_names if n.startswith("invalid__")]
    assert len(texts) == 2
    assert all("name is not valid UTF-8" in text for text in texts)
    assert any("bad\\xffname.yml:1:1" in text for text in texts)
    assert find_job(tmp_path, "acme__weekly_report", cluster_jobs) is None  # no step builds it


@pytest.mark.parametrize("command", ["validate", "plan", "run"])
def test_a_deployment_that_cannot_be_used_ends_each_command_with_its_errors(
    tmp_path, monkeypatch, satellite_modules, dagster_home, command
):
    """The location then shows only ``invalid__deployment``: ``validate`` used to say ok and
    exit 0, and ``run`` to print a traceback."""
    satellite_modules("byo_satellites")
    write_cluster(tmp_path, "nightly.yml", nightly())
    monkeypatch.setenv("EXOSPHERE_PLACEMENT_FILE", str(tmp_path / "missing-placement.yml"))
    result = CliRunner().invoke(cli, [command, str(tmp_path / "nightly.yml")])
    assert result.exit_code == 1, result.output
    assert "missing-placement.yml:1:1: <document>: cannot read file" in result.output
    assert "ok: " not in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[1]", "each input must be a JSON object"),  # a list of objects is fine, of numbers not
        ("5", "each input must be a JSON object"),
        ("null", "each input must be a JSON object"),
        ('{"a": NaN}', "NaN is not a JSON value"),
        ("{bad", "not JSON"),
    ],
)
def test_run_refuses_an_input_that_is_not_json_objects(tmp_path, dagster_home, value, message):
    """``exosphere run --input`` took any JSON, and Dagster's config error came out as a
    traceback; ``exosphere clusters run`` takes the same values (entry/run_inputs.py)."""
    write_cluster(tmp_path, "nightly.yml", nightly())
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "nightly.yml"), "--input", value])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_missing_folder_gives_an_empty_location(tmp_path):
    defs = build_definitions(tmp_path / "nope")
    assert list(defs.get_repository_def().get_all_jobs()) == []


@pytest.mark.integration
def test_dagster_cli_accepts_the_reference_example(tmp_path):
    """`dagster definitions validate` / `dagster job list` on the examples folder."""
    for example in EXAMPLES.glob("*.yml"):
        shutil.copy(example, tmp_path)
    env = {**os.environ, "EXOSPHERE_CLUSTERS_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    dagster = [sys.executable, "-m", "dagster"]
    validate = subprocess.run(
        [*dagster, "definitions", "validate", "-m", "exosphere_dagster.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert validate.returncode == 0, validate.stderr
    assert "All code locations passed validation" in validate.stderr + validate.stdout
    listing = subprocess.run(
        [*dagster, "job", "list", "-m", "exosphere_dagster.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listing.returncode == 0, listing.stderr
    out = listing.stdout
    assert "Job: aikin__strucutred_pdfs" in out
    for op in (
        "get_files_from_s3",
        "parse_pdf_with_docling",
        "deepseek_r1_distrill_llama_70b",
        "call_webhook",
        "delete_file_from_s3",
        "move_to_failure_bucket",
        "send_pagerduty_alert",
        "exosphere__summary",
    ):
        assert op in out
    assert "invalid__structured_pdfs" in out  # the verbatim copy is shown as broken, not dropped
