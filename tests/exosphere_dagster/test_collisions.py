"""One file never hides the others: names that collide only after normalisation.

A table of folders whose files each load alone but would make Dagster see one name twice (a
job, an op/graph definition, a schedule or sensor). For each: ``exosphere validate FOLDER``
exits 1 with a located error naming both files; the real code location (``build_definitions``,
every job loaded by ``get_repository_def``) loads every other cluster and shows the colliding
file as its own ``invalid__...`` job. A second test builds real Definitions and checks that
every name Dagster sees is one ``yaml_loader.identity.claims`` predicted, so the check cannot
drift from the builder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clusters import cluster, failure_branch, satellite_entry, write_cluster
from exosphere_dagster.definitions import build_definitions
from exosphere_dagster.resolve.catalog import load_catalog
from exosphere_dagster.resolve.segments import FAILURES, START
from exosphere_dagster.translate.scheduling.breach_job import BREACH_OP, breach_job_name
from exosphere_dagster.translate.summary import SUMMARY_OP
from yaml_loader.identity import (
    BREACH_NODE,
    FAILURES_NODE,
    START_NODE,
    SUMMARY_NODE,
    claims,
    file_name_for,
    invalid_job_name,
    job_name_for,
)
from yaml_loader.identity import breach_job_name as identity_breach_job_name

EXOSPHERE = Path(sys.executable).with_name("exosphere")
S3 = "satellite/exospherehost/get-files-from-s3"
NOTE = "satellite/exospherehost/call-webhook"


def files_sat(identifier: str | None = None, **fields) -> dict:
    return satellite_entry(S3, identifier, {"bucket": "reports"}, **fields)


def hook(identifier: str) -> dict:
    return satellite_entry(NOTE, identifier, {"url": "http://127.0.0.1:9/hook"})


def with_failure(identifier: str, sat: str = "fetch") -> dict:
    """A cluster with a failure branch: it also has a ``<job>__sla_breach`` alert job."""
    return cluster(identifier, [files_sat(sat)], failure=failure_branch(sat, [hook("alert")]))


BROKEN = "version: 0.0.1b\ncluster:\n  identifier: acme/broken\n  sla: 7h\n"

# case -> (files in folder order, the file that must be refused, the file it names, the name)
CASES = {
    "op-definition-across-files": (
        {
            "a.yml": cluster("a/b", [files_sat("c__d")]),
            "b.yml": cluster("a/b__c", [files_sat("d")]),
        },
        "b.yml",
        "a.yml",
        "a__b__c__d",
    ),
    "graph-vs-op-definition": (
        {"a.yml": cluster("a/b", [files_sat("c")]), "b.yml": cluster("a/b__c", [files_sat()])},
        "b.yml",
        "a.yml",
        "a__b__c",
    ),
    "job-vs-sla-breach-job": (
        {
            "a.yml": with_failure("acme/report"),
            "b.yml": cluster("acme/report__sla_breach", [files_sat()]),
        },
        "b.yml",
        "a.yml",
        "acme__report__sla_breach",
    ),
    "identifier-dash-vs-underscore": (
        {"a.yml": cluster("xx-yy/zz", [files_sat()]), "b.yml": cluster("xx_yy/zz", [files_sat()])},
        "b.yml",
        "a.yml",
        "xx_yy__zz",
    ),
    "slash-vs-double-underscore": (
        {
            "a.yml": cluster("aa/bb__cc", [files_sat()]),
            "b.yml": cluster("aa__bb/cc", [files_sat()]),
        },
        "b.yml",
        "a.yml",
        "aa__bb__cc",
    ),
    "schedule-names": (
        {
            "a.yml": cluster("acme/nightly", [files_sat()], trigger={"cron": "0 1 * * *"}),
            "b.yml": cluster("cluster/acme/nightly", [files_sat()], trigger={"cron": "0 2 * * *"}),
        },
        "b.yml",
        "a.yml",
        "acme__nightly",
    ),
}


def _write(folder: Path, files: dict) -> None:
    for name, data in files.items():
        write_cluster(folder, name, data)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_collision_after_normalisation_is_refused_and_hides_nothing(tmp_path, case):
    files, refused, named, clash = CASES[case]
    _write(tmp_path, files)
    write_cluster(tmp_path, "zz-good.yml", cluster("acme/good", [files_sat()]))

    catalog = load_catalog([tmp_path], log=False)
    assert set(catalog.broken) == {str(tmp_path / refused)}
    (error,) = catalog.broken[str(tmp_path / refused)]
    assert error.file == str(tmp_path / refused) and error.line > 1
    assert str(tmp_path / named) in error.message and clash in error.message + error.hint

    repo = build_definitions(tmp_path).get_repository_def()
    jobs = {job.name for job in repo.get_all_jobs()}  # loads every job: Dagster's own checks
    kept = {p.job_name for p in catalog.plans}
    assert kept | {"acme__good", invalid_job_name(refused)} <= jobs
    stand_in = repo.get_job(invalid_job_name(refused))
    assert f"{tmp_path / refused}:{error.line}:{error.column}" in stand_in.description

    shown = subprocess.run(
        [EXOSPHERE, "validate", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert shown.returncode == 1
    assert f"{tmp_path / refused}:{error.line}:{error.column}: " in shown.stderr
    assert str(tmp_path / named) in shown.stderr and "Traceback" not in shown.stderr
    assert f"ok: {tmp_path / 'zz-good.yml'}" in shown.stdout


def test_broken_files_get_unique_stand_in_jobs(tmp_path):
    """``invalid__<stem>`` taken by a cluster, and two broken stems that normalise alike: each
    broken file still gets its own job, named deterministically, and every cluster loads."""
    write_cluster(tmp_path, "a-report.yml", cluster("invalid/a_report", [files_sat()]))
    for name in ("a_report.yml", "b-x.yml", "b_x.yaml", "b.x.yml"):
        write_cluster(tmp_path, name, BROKEN)

    first = build_definitions(tmp_path).get_repository_def()
    names = {job.name for job in first.get_all_jobs()}
    stand_ins = {n for n in names if n.startswith("invalid__") and n != "invalid__a_report"}
    assert "invalid__a_report" in names  # the cluster keeps its name
    assert len(stand_ins) == 4 and "invalid__b_x" in stand_ins
    for job in stand_ins:
        assert "7h" in first.get_job(job).description or "sla" in first.get_job(job).description
    again = {job.name for job in build_definitions(tmp_path).get_repository_def().get_all_jobs()}
    assert again == names  # deterministic

    shown = subprocess.run(
        [EXOSPHERE, "validate", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert shown.returncode == 1 and "Traceback" not in shown.stderr
    assert f"{tmp_path / 'a_report.yml'}:1:1: <document>: its stand-in job name" in shown.stderr
    assert f"{tmp_path / 'a-report.yml'} (cluster 'invalid/a_report')" in shown.stderr
    assert "b_x.yaml:1:1" in shown.stderr and f"{tmp_path / 'b-x.yml'}" in shown.stderr


@pytest.mark.parametrize(
    ("identifier", "words"),
    [
        ("exosphere__start", "node name the project adds"),
        ("exosphere__summary", "node name the project adds"),
        ("exosphere-_failures", "node name the project adds"),
        ("exosphere__anything", "node name the project adds"),
        ("fetch__rechunk", "gather nodes"),
        ("x-_join", "gather nodes"),
        ("sla-breach", "SLA-breach alert job"),
        ("sla_breach__exosphere__sla_breach", "SLA-breach alert job"),
    ],
)
def test_a_satellite_named_like_a_project_node_is_refused_at_plan(tmp_path, identifier, words):
    data = cluster("acme/reserved", [files_sat("fetch"), files_sat(identifier)])
    data["cluster"]["failure"] = failure_branch("fetch", [hook("alert")])
    path = write_cluster(tmp_path, "reserved.yml", data)
    catalog = load_catalog([path], log=False)
    (error,) = catalog.broken[str(path)]
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.endswith(f"identifier: {identifier}"))
    assert (error.line, error.column) == (line, lines[line - 1].index(identifier) + 1)
    assert error.key_path == ("cluster", "satellites", 1, "identifier")
    assert words in error.message and error.hint
    repo = build_definitions(tmp_path).get_repository_def()
    assert {j.name for j in repo.get_all_jobs()} == {"invalid__reserved"}


def test_the_builder_uses_the_identity_names():
    """The names the builder adds are the ones yaml_loader reserves and claims."""
    assert (START, FAILURES, SUMMARY_OP, BREACH_OP) == (
        START_NODE,
        FAILURES_NODE,
        SUMMARY_NODE,
        BREACH_NODE,
    )
    assert breach_job_name("a__b") == identity_breach_job_name("a__b") == "a__b__sla_breach"
    assert job_name_for("cluster/aikin/strucutred-pdfs") == "aikin__strucutred_pdfs"
    assert file_name_for("tour/hello-world") == "tour__hello_world.yml"


def test_every_name_dagster_sees_is_claimed(tmp_path):
    """Real Definitions from clusters with fan-out, joins, a failure branch, logs and every
    trigger: each job, op/graph definition, schedule, sensor and asset key of a cluster is one
    that ``claims`` names for it."""
    fan = satellite_entry("satellite/exospherehost/parse-pdf-with-docling", "parse")
    both = satellite_entry(
        NOTE, "both", {"url": "http://127.0.0.1:9/hook"}, parents=["fetch", "parse"]
    )
    write_cluster(
        tmp_path,
        "wide.yml",
        cluster(
            "acme/wide",
            [files_sat("fetch"), fan, both, hook("after-both")],
            trigger={"cron": "0 1 * * *"},
            failure=failure_branch("fetch", [hook("alert"), hook("page")]),
        ),
    )
    write_cluster(
        tmp_path,
        "watch.yml",
        cluster("acme/watch", [files_sat()], trigger={"s3": {"bucket": "in", "prefix": "x/"}}),
    )
    write_cluster(tmp_path, "examples.yml", with_failure("acme/alerting"))
    catalog = load_catalog([tmp_path], log=False)
    assert not catalog.broken and len(catalog.plans) == 3
    claimed = {(c.namespace, c.name) for plan in catalog.plans for c in claims(plan)}
    repo = build_definitions(tmp_path).get_repository_def()
    seen: set[tuple[str, str]] = set()
    for job in repo.get_all_jobs():
        if job.name == "__ASSET_JOB":  # Dagster's own, for the catalog's assets
            continue
        seen.add(("job", job.name))
        seen.update(("node", n.name) for n in (*job.all_node_defs, job.graph))
    seen.update(("trigger", s.name) for s in repo.schedule_defs)
    seen.update(("trigger", s.name) for s in repo.sensor_defs if "__" in s.name[10:])
    seen.update(("asset", "/".join(k.path)) for k in repo.asset_graph.get_all_asset_keys())
    project = {("trigger", "exosphere__deadlines"), ("trigger", "exosphere__sla_breach")}
    places = {s for s in seen if s[0] == "asset" and not s[1].startswith("acme__")}
    assert seen - project - places <= claimed
    assert ("node", "acme__wide__fetch__rechunk") in seen  # a gather node was really built
