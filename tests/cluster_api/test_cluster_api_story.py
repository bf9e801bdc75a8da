"""The cluster API end to end, once per store kind (a folder; an S3 prefix on moto): the real
``exosphere clusters`` CLI against a real ``exosphere dev`` started on an empty store, through
its GraphQL endpoint. The tests walk one story in order on one server (conftest.py ``story``):
apply the README tour, list it, run it, read its status and item records, route a failing item,
refuse a broken file, undo a file the server refuses, pick up files dropped into the store by
hand, apply a cluster written in Python, delete them all."""

from __future__ import annotations

import json
import re

import pytest
from api_story import Story, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PICKY = """\
version: 0.0.1b
cluster:
  identifier: tour/picky
  sla: 6h
  trigger: api-call
  retries: 1
  delay: 0
  satellites:
    - uses: satellite/tour/words
      identifier: words
      config:
        words: [alpha, beta]
    - uses: satellite/apitest/picky
      identifier: picky
      config:
        refuse: beta
  failure:
    from: picky
    satellites:
      - uses: satellite/tour/shout
        identifier: report
        config:
          text: ${{ failure.error }}
"""
CLI_ONLY = """\
version: 0.0.1b
cluster:
  identifier: tour/cli-only
  sla: 12h
  trigger: api-call
  satellites:
    - uses: satellite/apitest/cli-only
      config:
        text: hello
"""
PYTHON_CLUSTER = """\
from exosphere_dagster import Cluster, Satellite

words = Satellite(uses="satellite/tour/words", identifier="words", config={"words": ["one"]})
python_cluster = Cluster(identifier="tour/from-python", sla="12h", trigger="api-call",
                         satellites=[words])
"""


def test_an_empty_store_has_no_clusters(story: Story) -> None:
    done = story.cli("list")
    assert done.returncode == 0, done.stderr + story.tail()
    assert f"no clusters in {story.store.url}" in done.stdout
    assert story.cli_json("list") == {"clusters": [], "invalid": []}


def test_apply_stores_the_readme_tour_and_the_server_serves_it(story: Story) -> None:
    done = story.cli("apply", "hello.yml")
    assert done.returncode == 0, done.stderr + story.tail()
    stored = story.store.display("tour__hello.yml")
    assert f"created: tour/hello -> {stored} (job tour__hello)" in done.stdout
    assert story.store.read("tour__hello.yml") == (story.files / "hello.yml").read_bytes()
    assert "tour__hello" in story.job_names()
    again = story.cli_json("apply", "hello.yml")  # the same identifier again: the same file
    assert again == [
        {"identifier": "tour/hello", "job": "tour__hello", "file": stored, "action": "unchanged"}
    ]
    assert list(story.store.list()) == ["tour__hello.yml"]


def test_list_shows_the_tour(story: Story) -> None:
    listed = story.cli_json("list")
    assert listed["invalid"] == []
    [row] = listed["clusters"]
    assert row["identifier"] == "tour/hello" and row["job"] == "tour__hello"
    assert (row["trigger"], row["sla"], row["last_run"]) == ("api-call", "24h", None)
    human = story.cli("list").stdout
    assert re.search(r"^tour/hello\s+api-call\s+24h\s+-", human, re.M), human


def test_run_launches_the_tour_and_waits_for_it(story: Story) -> None:
    done = story.cli("run", "tour/hello", "--input", '{"who": "cli"}', "--wait", "--json")
    assert done.returncode == 0, done.stderr + story.tail()
    run = json.loads(done.stdout)
    assert run["status"] == "SUCCESS"
    assert (run["items"], run["succeeded"], run["routed"], run["failed"]) == (3, 3, 0, 0)
    story.state["run_id"] = run["run_id"]


def test_status_shows_the_runs_counts_and_deadline(story: Story) -> None:
    run_id = story.state["run_id"]
    status = story.cli_json("status", "tour/hello")
    assert (status["identifier"], status["trigger"], status["sla"]) == (
        "tour/hello",
        "api-call",
        "24h",
    )
    assert status["file"] == story.store.display(
        "tour__hello.yml"
    )  # s3://... for S3, not the mirror
    [run] = status["runs"]
    assert run["run_id"] == run_id and run["status"] == "SUCCESS"
    assert (run["items"], run["succeeded"], run["routed"], run["failed"]) == (3, 3, 0, 0)
    assert run["deadline"] and run["cost_usd"] is None  # the launch stamped now + 24h
    human = story.cli("status", "tour/hello").stdout
    assert re.search(rf"^{run_id}\s+SUCCESS\s+\S+ \S+\s+3\s+3\s+0\s+0\s", human, re.M), human
    listed = story.cli_json("list")["clusters"][0]["last_run"]
    assert listed["run_id"] == run_id and listed["items"] == 3


def test_logs_show_each_items_records(story: Story) -> None:
    run_id = story.state["run_id"]
    done = story.cli("logs", run_id, "--json")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    emitted = [
        r["item"] for r in records if r["satellite"] == "words" and r["outcome"] == "emitted"
    ]
    shouted = {r["item"]: r["message"] for r in records if r["outcome"] == "log"}
    assert len(emitted) == 3 and set(shouted) == set(emitted)  # words' items reached shout
    assert sorted(shouted.values()) == [
        f"shouting {w} from tour/hello" for w in ("alpha", "beta", "gamma")
    ]
    assert {r["satellite"] for r in records if r["outcome"] == "log"} == {"shout"}
    human = story.cli("logs", run_id, "--follow")  # an ended run: prints and exits
    assert human.returncode == 0, human.stderr
    assert f"run {run_id}: SUCCESS; items 3: 3 succeeded, 0 routed, 0 failed" in human.stdout
    assert re.search(rf"{re.escape(emitted[0])}\s+log\s+shouting", human.stdout), human.stdout


def test_a_failing_item_is_routed_and_its_records_say_why(story: Story) -> None:
    (story.files / "picky.yml").write_text(PICKY)
    done = story.cli("apply", "picky.yml")
    assert done.returncode == 0, done.stderr + story.tail()
    run = json.loads(story.cli("run", "tour/picky", "--wait", "--json").stdout)
    assert run["status"] == "SUCCESS"  # the failed item had a handler
    assert (run["items"], run["succeeded"], run["routed"], run["failed"]) == (2, 1, 1, 0)
    logs = story.cli("logs", run["run_id"], "--json").stdout.splitlines()
    records = [json.loads(line) for line in logs]
    error = "ValueError: beta is not acceptable"
    attempts = [r for r in records if r["outcome"] == "attempt"]
    assert [(r["satellite"], r["message"], r["error"]) for r in attempts] == [
        ("picky", "attempt 1/2 failed, will retry", error),
        ("picky", "attempt 2/2 failed, no retries left", error),
    ]
    [routed] = [r for r in records if r["outcome"] == "routed"]
    assert (routed["satellite"], routed["item"], routed["error"]) == (
        "picky",
        attempts[0]["item"],
        error,
    )
    assert any(r["satellite"] == "report" and error in r["message"] for r in records)


def test_a_broken_file_is_refused_with_its_place_and_changes_nothing(story: Story) -> None:
    broken = (story.files / "hello.yml").read_text().replace("words: [", "word: [")
    (story.files / "broken.yml").write_text(broken)
    before, jobs = story.store.list(), story.job_names()
    done = story.cli("apply", "broken.yml")
    assert done.returncode == 1
    assert "broken.yml:9:9: cluster.satellites[0].config.word: unknown key 'word'" in done.stderr
    assert "did you mean 'words'?" in done.stderr
    assert story.store.list() == before and story.job_names() == jobs
    listed = story.cli_json("list")
    assert listed["invalid"] == [] and len(listed["clusters"]) == 2


def test_a_file_the_server_refuses_is_undone(story: Story) -> None:
    """The CLI knows a satellite the server does not: the server's error (naming the store's
    file) comes back and the store is as it was."""
    (story.files / "cli-only.yml").write_text(CLI_ONLY)
    before = story.store.list()
    done = story.cli("apply", "cli-only.yml")
    assert done.returncode == 1, done.stdout
    where = story.store.display("tour__cli_only.yml")
    assert f"{where}:7:13: cluster.satellites[0].uses: unknown satellite" in done.stderr
    assert "the store is as it was" in done.stderr
    assert story.store.list().keys() == before.keys()
    wait_for(lambda: not any("cli_only" in n for n in story.job_names()), 60, "placeholder gone")


def test_files_dropped_into_the_store_appear_and_a_broken_one_hides_nothing(story: Story) -> None:
    """No CLI: the watcher of ``exosphere dev`` reloads the location on its own."""
    hand = (story.files / "hello.yml").read_text().replace("tour/hello", "tour/by-hand")
    story.store.write("by-hand.yml", hand.encode())
    story.store.write(
        "typo.yml", hand.replace("tour/by-hand", "tour/typo").replace("24h", "7h").encode()
    )
    wait_for(lambda: {"tour__by_hand", "invalid__typo"} <= story.job_names(), 90, "dropped files")
    listed = story.cli_json("list")
    assert {c["identifier"] for c in listed["clusters"]} == {
        "tour/hello",
        "tour/picky",
        "tour/by-hand",
    }
    [invalid] = listed["invalid"]
    assert invalid["file"] == story.store.display("typo.yml")
    assert f"{story.store.display('typo.yml')}:4:8: cluster.sla:" in invalid["errors"]


def test_apply_a_cluster_written_in_python(story: Story) -> None:
    (story.files / "python_cluster.py").write_text(PYTHON_CLUSTER)
    done = story.cli("apply", "python_cluster.py")
    assert done.returncode == 0, done.stderr + story.tail()
    assert "created: tour/from-python" in done.stdout
    stored = story.store.read("tour__from_python.yml").decode()
    assert "identifier: tour/from-python" in stored and "satellite/tour/words" in stored
    assert "tour__from_python" in story.job_names()


def test_delete_removes_the_jobs_from_the_running_server(story: Story) -> None:
    done = story.cli("delete", "tour/hello")
    assert done.returncode == 0, done.stderr + story.tail()
    assert f"deleted: tour/hello ({story.store.display('tour__hello.yml')})" in done.stdout
    assert "tour__hello" not in story.job_names()
    assert "tour__hello.yml" not in story.store.list()
    for target in ("tour/picky", "tour/by-hand", "tour/from-python", "typo.yml"):
        gone = story.cli("delete", target)
        assert gone.returncode == 0, gone.stderr + story.tail()
    assert story.job_names() == set() and story.store.list() == {}
    missing = story.cli("delete", "tour/hello")
    assert missing.returncode == 1 and "no cluster 'tour/hello'" in missing.stderr
    unknown = story.cli("status", "tour/hello")
    assert unknown.returncode == 1 and "no cluster 'tour/hello'" in unknown.stderr
