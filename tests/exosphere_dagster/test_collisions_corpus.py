"""A corpus of hostile files in one folder: ``validate`` refuses each with file:line:col, the code
location still loads every good cluster and exactly one ``invalid__...`` job per bad file, and
``exosphere plan`` prints every file ``validate`` accepts, odd quantities included, without a
traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from clusters import cluster, failure_branch, satellite_entry, write_cluster
from exosphere_dagster.definitions import build_definitions

EXOSPHERE = Path(sys.executable).with_name("exosphere")
S3 = "satellite/exospherehost/get-files-from-s3"
HOOK = "satellite/exospherehost/call-webhook"
LOCATED = re.compile(r"^(?P<file>/\S+?):(?P<line>\d+):(?P<col>\d+): ", re.M)


def fetch(identifier: str = "fetch", **resources) -> dict:
    entry = satellite_entry(S3, identifier, {"bucket": "reports"})
    if resources:
        entry["resources"] = resources
    return entry


def alerting(identifier: str, sat: str = "fetch") -> dict:
    hook = satellite_entry(HOOK, "alert", {"url": "http://127.0.0.1:9/hook"})
    return cluster(identifier, [fetch(sat)], failure=failure_branch(sat, [hook]))


GOOD = {
    "g1-plain.yml": cluster("good/plain", [fetch()]),
    "g2-quantities.yml": cluster("good/quantities", [fetch(cpu=2, memory="1e9", gpu="1")]),
    "g3-millicores.yml": cluster("good/milli", [fetch(cpu="250m", memory="512Mi", gpu=0)]),
    "g4-alerting.yml": alerting("good/alerting"),
    "g5-a-b.yml": cluster("mix/a-b", [fetch("c--d"), fetch("e")]),
    "g6-invalid.yml": cluster("invalid/h19-broken", [fetch()]),  # job invalid__h19_broken
}
BAD = {  # each refused alone or beside the good files above (folder order: after them)
    "h01-cpu-lots.yml": cluster("bad/cpu", [fetch(cpu="lots")]),
    "h02-memory-xb.yml": cluster("bad/memory", [fetch(memory="12XB")]),
    "h03-gpu-negative.yml": cluster("bad/gpu-neg", [fetch(gpu=-1)]),
    "h04-gpu-fraction.yml": cluster("bad/gpu-frac", [fetch(gpu=1.5)]),
    "h05-cpu-negative.yml": cluster("bad/cpu-neg", [fetch(cpu="-500m")]),
    "h06-memory-space.yml": cluster("bad/memory-space", [fetch(memory="2 Gi")]),
    "h07-gpu-bool.yml": cluster("bad/gpu-bool", [fetch(gpu=True)]),
    "h08-cpu-huge.yml": cluster("bad/cpu-huge", [fetch(cpu="1e999999999")]),
    "h09-start.yml": cluster("bad/start", [fetch("exosphere__start")]),
    "h10-summary.yml": cluster("bad/summary", [fetch("exosphere-_summary")]),
    "h11-rechunk.yml": cluster("bad/rechunk", [fetch(), fetch("fetch__rechunk")]),
    "h12-breach.yml": alerting("bad/breach", "sla_breach"),
    "h13-op-clash.yml": cluster("bad/op-clash", [fetch("a-b"), fetch("a_b")]),
    "h14-mix.yml": cluster("mix/a_b__c", [fetch("d")]),  # op mix__a_b__c__d, as g5's c--d
    "h15-breach-job.yml": cluster("good/alerting__sla_breach", [fetch()]),
    "h16-dash-underscore.yml": cluster("good/plain", [fetch()]),
    "h17-graph.yml": cluster("mix/a_b__e", [fetch()]),  # its graph is g5's op mix__a_b__e
    "invalid__good.yml": "version: 0.0.1b\ncluster: [1, 2\n",  # a broken file, odd name
    "h18-broken.yml": "version: 0.0.1b\ncluster:\n  identifier: bad/x\n  sla: 7h\n",
    "h18_broken.yaml": "version: 0.0.1b\ncluster:\n  identifier: bad/y\n  sla: 7h\n",
    "h19-broken.yml": "version: 0.0.1b\ncluster:\n  identifier: bad/z\n  sla: 7h\n",
}


def test_hostile_files_are_refused_located_and_hide_nothing(tmp_path):
    for name, data in {**GOOD, **BAD}.items():
        write_cluster(tmp_path, name, data)

    shown = subprocess.run(
        [EXOSPHERE, "validate", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert shown.returncode == 1 and "Traceback" not in shown.stderr
    refused = {Path(m["file"]).name for m in LOCATED.finditer(shown.stderr)}
    assert refused == set(BAD), shown.stderr
    for name in GOOD:
        assert f"ok: {tmp_path / name}" in shown.stdout
    assert f"in {len(BAD)} file(s)" in shown.stderr

    repo = build_definitions(tmp_path).get_repository_def()
    jobs = {job.name for job in repo.get_all_jobs()}  # every job loaded: Dagster's checks pass
    jobs.discard("__ASSET_JOB")  # Dagster's own, for the catalog's assets
    clusters = {"good__plain", "good__quantities", "good__milli", "good__alerting", "mix__a_b"}
    clusters |= {"invalid__h19_broken", "good__alerting__sla_breach"}
    stand_ins = jobs - clusters
    assert clusters <= jobs and len(stand_ins) == len(BAD)
    assert all(name.startswith("invalid__") for name in stand_ins)
    for name in stand_ins:  # each stand-in's description shows where its file went wrong
        assert LOCATED.search(repo.get_job(name).description)


def test_plan_prints_every_accepted_file_without_a_traceback(tmp_path):
    for name, data in GOOD.items():
        path = write_cluster(tmp_path, name, data)
        shown = subprocess.run(
            [EXOSPHERE, "plan", str(path)], capture_output=True, text=True, check=False
        )
        assert shown.returncode == 0, shown.stderr
        assert "Traceback" not in shown.stderr and "cost estimate per" in shown.stdout
    quantities = subprocess.run(
        [EXOSPHERE, "plan", str(tmp_path / "g2-quantities.yml")], capture_output=True, text=True
    )
    assert "2 CPU + 1 GPU" in quantities.stdout
