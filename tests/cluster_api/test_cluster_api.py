"""The cluster API end to end: ``exosphere clusters`` (the real command) against ``exosphere dev``
started on an empty store, a folder and an S3 prefix, through the webserver's GraphQL endpoint.

The tests are one story, in order, per store kind: apply the README tour, list it, run it, read
its status and item records, route a failing item, be refused (by the loader, then by the
server) without changing anything, see files dropped straight into the store, apply the
Python-built reference cluster, delete.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from dev_server import EXOSPHERE, ROOT, Server, eventually

from clusters import cluster, dump, failure_branch, satellite_entry
from exosphere_dagster.entry.clusters import graphql as graphql_api
from yaml_loader import load_python_clusters

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PICKY = cluster(
    "tour/picky",
    [
        satellite_entry("satellite/tour/words", "words", {"words": ["alpha", "beta"]}),
        satellite_entry(
            "satellite/test/refuse",
            "refuse",
            {"text": "${{ satellites.words.output.word }}", "refuse": ["beta"]},
            retries=0,
        ),
    ],
    failure=failure_branch(
        "refuse",
        [satellite_entry("satellite/tour/shout", "report", {"text": "${{ failure.error }}"})],
    ),
)
CLI_ONLY = cluster("tour/cli-only", [satellite_entry("satellite/test/cli-only")])


def broken_tour(server: Server) -> tuple[str, int]:
    """The tour with ``words`` misspelt, and the line of the misspelling."""
    text = (server.files / "hello.yml").read_text().replace("words: [", "word: [")
    return text, next(n for n, row in enumerate(text.splitlines(), 1) if "word: [" in row)


def records(server: Server, run_id: str, *flags: str) -> list[dict]:
    done = server.clusters("logs", run_id, "--json", *flags)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_an_empty_store_has_no_clusters(server: Server) -> None:
    listed = server.clusters_json("list")
    assert listed == {"store": server.store.url, "clusters": [], "invalid": []}
    assert "no clusters in" in server.clusters("list").stdout


def test_apply_stores_the_readme_tour_and_the_running_server_serves_it(server: Server) -> None:
    hello = server.files / "hello.yml"
    done = server.clusters("apply", str(hello))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("created: tour/hello (job tour__hello")
    assert server.store.read("tour__hello.yml") == hello.read_bytes()  # the file, comments and all
    assert "tour__hello" in server.job_names()  # already served: apply waited for it

    (listed,) = server.clusters_json("list")["clusters"]
    assert listed == {
        "identifier": "tour/hello",
        "job": "tour__hello",
        "trigger": "api-call",
        "sla": "24h",
        "last_run": None,
    }
    again = server.clusters("apply", str(hello))
    assert again.returncode == 0 and again.stdout.startswith("unchanged: tour/hello")


def test_run_then_status_counts_and_logs_show_the_items(server: Server) -> None:
    launched = server.clusters_json("run", "tour/hello", "--input", '{"who": "test"}', "--wait")
    run_id = launched["run_id"]
    assert launched["run"]["status"] == "SUCCESS"

    (latest, *_) = server.clusters_json("status", "tour/hello")["runs"]
    assert latest["run_id"] == run_id
    counts = {k: latest[k] for k in ("items", "succeeded", "routed", "failed")}
    assert counts == {"items": 3, "succeeded": 3, "routed": 0, "failed": 0}
    assert latest["deadline"] and latest["cost_usd"] >= 0  # the summary prices every run
    table = server.clusters("status", "tour/hello").stdout
    assert re.search(rf"{run_id}\s+SUCCESS\s+\S+ \S+\s+3\s+3\s+0\s+0", table), table

    found = records(server, run_id)
    words = [r["item"] for r in found if r["satellite"] == "words" and r["outcome"] == "out"]
    shouted = {
        r["item"]: r["message"]
        for r in found
        if r["satellite"] == "shout" and r["outcome"] == "log"
    }
    assert len(words) == 3 and set(shouted) == set(words)  # each word item reached shout
    assert sorted(shouted.values()) == [
        f"shouting {w} from tour/hello" for w in ("alpha", "beta", "gamma")
    ]
    human = server.clusters("logs", run_id).stdout
    assert all(item in human for item in words)
    assert (
        human.splitlines()[-1]
        == f"run {run_id}: SUCCESS (items 3, succeeded 3, routed 0, failed 0)"
    )

    (listed,) = server.clusters_json("list")["clusters"]
    assert listed["last_run"]["run_id"] == run_id and listed["last_run"]["succeeded"] == 3


def test_a_failing_item_is_routed_and_its_record_names_the_error(server: Server) -> None:
    picky = server.files / "picky.yml"
    picky.write_text(dump(PICKY))
    assert server.clusters("apply", str(picky)).returncode == 0
    run_id = server.clusters_json("run", "tour/picky")["run_id"]
    followed = server.clusters("logs", run_id, "--follow")  # returns when the run ends
    assert followed.returncode == 0, followed.stdout + followed.stderr
    assert "routed 1" in followed.stdout.splitlines()[-1]

    (routed,) = [r for r in records(server, run_id) if r["outcome"] == "routed"]
    assert routed["satellite"] == "refuse" and "ValueError: refused beta" in routed["error"]
    (latest, *_) = server.clusters_json("status", "tour/picky")["runs"]
    assert (latest["items"], latest["succeeded"], latest["routed"]) == (2, 1, 1)


def test_list_finds_last_runs_older_than_its_window_of_recent_runs(
    server: Server, monkeypatch
) -> None:
    """`list` reads the latest runs in one query; a job whose last run is older than that
    window is looked up job by job, with the same answer."""
    api, jobs = server.api, ["tour__hello", "tour__picky"]
    location = api.location()
    windowed = {job: run.run_id for job, run in api.last_runs(location, jobs).items()}
    assert set(windowed) == set(jobs)
    monkeypatch.setattr(graphql_api, "RECENT_RUNS", 1)  # the picky run fills the window
    assert {job: run.run_id for job, run in api.last_runs(location, jobs).items()} == windowed


def test_a_broken_file_is_refused_where_it_is_broken_and_changes_nothing(server: Server) -> None:
    text, line = broken_tour(server)
    broken = server.files / "broken.yml"
    broken.write_text(text)
    stored, served = server.store.list(), server.job_names()

    refused = server.clusters("apply", str(broken))
    assert refused.returncode == 1
    assert (
        f"{broken}:{line}:9: cluster.satellites[0].config.word: unknown key 'word'"
        in refused.stderr
    )
    assert "nothing was changed" in refused.stderr
    assert server.store.list() == stored and server.job_names() == served


def test_a_file_the_server_cannot_load_is_rolled_back(server: Server) -> None:
    """Valid where the command runs (it has the satellite), refused by the server (it has not):
    the store is put back and the server shows no trace of it."""
    only = server.files / "cli-only.yml"
    only.write_text(dump(CLI_ONLY))
    stored, served = server.store.list(), server.job_names()
    refused = server.clusters("apply", str(only))
    assert refused.returncode == 1
    assert "the server refused" in refused.stderr and "satellite/test/cli-only" in refused.stderr
    assert server.store.list() == stored
    assert eventually(lambda: server.job_names() == served, what="the server back as it was")


def test_files_dropped_into_the_store_reach_the_running_server(server: Server) -> None:
    """No command: the dev server's watch reloads the location; a broken file is shown (named
    as in the store) and hides nothing."""
    text = (server.files / "hello.yml").read_text()
    server.store.write("team/dropped.yml", text.replace("tour/hello", "tour/dropped").encode())
    broken, line = broken_tour(server)
    server.store.write("zz-broken.yml", broken.encode())
    eventually(lambda: {"tour__dropped", "invalid__zz_broken", "tour__hello"} <= server.job_names())

    listed = server.clusters_json("list")
    (invalid,) = listed["invalid"]
    where = server.store.where("zz-broken.yml")
    assert (
        invalid["file"] == where
        and f"{where}:{line}:9: cluster.satellites[0].config" in invalid["errors"]
    )
    assert "tour/dropped" in {c["identifier"] for c in listed["clusters"]}

    deleted = server.clusters(
        "delete", "tour/dropped"
    )  # found by the file the server built it from
    assert deleted.returncode == 0, deleted.stderr
    assert "team/dropped.yml" not in server.store.list()
    server.store.delete("zz-broken.yml")
    eventually(lambda: not {"tour__dropped", "invalid__zz_broken"} & server.job_names())


def test_watch_reloads_the_location_when_its_store_changes(server: Server) -> None:
    """`exosphere clusters watch` (the sidecar for a webserver without `exosphere dev`), here on
    a second store the dev server does not watch: a change there reloads the location."""
    other = server.store_url.rstrip("/") + "-watched"
    watcher = subprocess.Popen(
        [
            str(EXOSPHERE),
            "clusters",
            "watch",
            "--store",
            other,
            "--interval",
            "0.5",
            "--url",
            server.url,
        ],
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().startswith(f"watching {other.rstrip('/')}")
        loaded = server.location_loaded_at()
        store = server.store_at(other)
        store.write("any.yml", b"version: 0.0.1b\n")
        assert "changed; code location reload done" in watcher.stdout.readline()
        assert server.location_loaded_at() > loaded
        store.delete("any.yml")
    finally:
        watcher.terminate()
        watcher.wait(timeout=30)


def test_the_python_reference_cluster_is_accepted(server: Server) -> None:
    reference = ROOT / "examples" / "reference_pipeline.py"
    done = server.clusters("apply", str(reference))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("created: aikin/strucutred-pdfs (job aikin__strucutred_pdfs")
    (built,) = load_python_clusters(reference)
    assert server.store.read("aikin__strucutred_pdfs.yml") == built.to_yaml().encode()
    assert "aikin__strucutred_pdfs" in server.job_names()


def test_delete_removes_the_job_from_the_running_server(server: Server) -> None:
    for identifier, job in (
        ("tour/hello", "tour__hello"),
        ("aikin/strucutred-pdfs", "aikin__strucutred_pdfs"),
    ):
        done = server.clusters("delete", identifier)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"deleted: {identifier} (job {job}")
        assert job not in server.job_names()
    assert "tour__hello.yml" not in server.store.list()
    again = server.clusters("delete", "tour/hello")
    assert again.returncode == 1 and "no cluster 'tour/hello'" in again.stderr
    assert server.clusters("status", "tour/hello").returncode == 1
