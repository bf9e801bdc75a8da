"""The cluster API never silently replaces or loses a cluster, against a real ``exosphere dev``
on a folder and on an S3 prefix (moto):

- ``apply`` of an identifier whose job or file another cluster holds (``xx_yy/zz`` after
  ``xx-yy/zz``, ``aa__bb/cc`` after ``aa/bb__cc``, two such clusters in one ``.py`` file) is
  refused with exit 1, naming both, and changes nothing; ``delete`` and ``status`` of such an
  identifier refuse too, naming what the store holds;
- the lost update: A applies a file the server refuses while B applies a good version of the
  same cluster; B's write is injected at the two moments that matter (while A waits on the
  server, and between A's refusal and A's rollback). B's version stays stored and served
  (the served job carries its content hash) and A exits 1 saying what it did not put back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dev_server import HERE, Server, eventually

from clusters import cluster, dump, satellite_entry
from exosphere_dagster.entry.clusters import apply as cluster_apply
from exosphere_dagster.entry.clusters.graphql import ApiError, DagsterApi
from exosphere_dagster.resolve.content import CONTENT_HASH_KEY, content_hash
from yaml_loader.identity import file_name_for, job_name_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def words(identifier: str, *said: str) -> dict[str, Any]:
    return cluster(identifier, [satellite_entry("satellite/tour/words", "words", {"words": said})])


def write(server: Server, name: str, data: dict[str, Any]) -> Path:
    path = server.files / name
    path.write_text(dump(data))
    return path


def applied(server: Server, path: Path) -> str:
    done = server.clusters("apply", str(path))
    assert done.returncode == 0, done.stderr
    return done.stdout


def served_hash(server: Server, job: str) -> str | None:
    jobs = {j.name: j for j in server.api.jobs(server.api.location())}
    return jobs[job].metadata.get(CONTENT_HASH_KEY) if job in jobs else None


@pytest.mark.parametrize(
    ("first", "second"), [("xx-yy/zz", "xx_yy/zz"), ("aa/bb__cc", "aa__bb/cc")]
)
def test_an_identifier_whose_job_and_file_another_cluster_holds_is_refused(
    server: Server, first: str, second: str
) -> None:
    original = write(server, "first.yml", words(first, "one"))
    assert applied(server, original).startswith(f"created: {first}")
    stored, served = server.store.list(), server.job_names()
    file = file_name_for(first)
    held = server.store.read(file)

    other = write(server, "second.yml", words(second, "two"))
    refused = server.clusters("apply", str(other))
    assert refused.returncode == 1, refused.stdout
    assert f"cluster '{second}' ({other})" in refused.stderr
    assert f"already has for cluster '{first}'" in refused.stderr
    assert f"which holds cluster '{first}'" in refused.stderr and server.store.where(file) in (
        refused.stderr
    )
    assert "nothing was changed" in refused.stderr
    assert server.store.list() == stored and server.store.read(file) == held
    assert server.job_names() == served

    deleted = server.clusters("delete", second)
    assert deleted.returncode == 1
    assert f"is cluster '{first}'" in deleted.stderr and "nothing was deleted" in deleted.stderr
    assert server.store.read(file) == held
    status = server.clusters("status", second)
    assert status.returncode == 1 and f"is cluster '{first}'" in status.stderr

    assert server.clusters("delete", first).returncode == 0
    assert file not in server.store.list()


def test_a_python_file_with_two_colliding_clusters_is_refused(server: Server) -> None:
    script = server.files / "twins.py"
    script.write_text(
        "from yaml_loader import Cluster, Satellite\n"
        "\n"
        "words = Satellite(uses='satellite/tour/words', config={'words': ['a']})\n"
        "one = Cluster(identifier='twin/a-b', sla='24h', trigger='api-call', satellites=[words])\n"
        "two = Cluster(identifier='twin/a_b', sla='24h', trigger='api-call', satellites=[words])\n"
    )
    stored = server.store.list()
    refused = server.clusters("apply", str(script))
    assert refused.returncode == 1
    assert "twin/a-b" in refused.stderr and "twin/a_b" in refused.stderr
    assert "nothing was changed" in refused.stderr
    assert server.store.list() == stored


class HookedApi(DagsterApi):
    """The webserver's API, with ``hook`` run once just before the first reload: that is,
    after the command wrote the store and before it looks at the server."""

    def __init__(self, url: str, hook: Callable[[], None]) -> None:
        super().__init__(url)
        self.hook: Callable[[], None] | None = hook

    def reload(self, location: Any) -> None:
        hook, self.hook = self.hook, None
        if hook:
            hook()
        super().reload(location)


@pytest.fixture
def caller_has_cli_only(server: Server, monkeypatch) -> None:
    """This process validates as the command does: with the satellite the server lacks."""
    monkeypatch.syspath_prepend(str(HERE / "cli_only"))
    monkeypatch.syspath_prepend(str(server.files))
    monkeypatch.setenv(
        "EXOSPHERE_SATELLITE_MODULES", "my_satellites,picky_satellites,cli_only_satellites"
    )


def refused_version(server: Server, identifier: str) -> list[cluster_apply.Validated]:
    """A version of the cluster that the server refuses (a satellite only the caller has)."""
    path = write(
        server, "refused.yml", cluster(identifier, [satellite_entry("satellite/test/cli-only")])
    )
    found, errors = cluster_apply.validate([str(path)])
    assert not errors, errors
    return found


@pytest.mark.usefixtures("caller_has_cli_only")
@pytest.mark.parametrize("moment", ["while A waits on the server", "just before A's rollback"])
def test_a_rollback_never_overwrites_a_write_it_did_not_make(server: Server, moment: str) -> None:
    identifier = f"race/{'wait' if 'waits' in moment else 'rollback'}"
    job, file = job_name_for(identifier), file_name_for(identifier)
    applied(server, write(server, "v1.yml", words(identifier, "v1")))
    good = write(server, "v2.yml", words(identifier, "v2"))
    b_runs: list[Any] = []

    def b_applies() -> None:  # the other user, through the real command
        b_runs.append(server.clusters("apply", str(good), "--json"))

    store, api = server.store, DagsterApi(server.url)
    if "waits" in moment:
        api = HookedApi(server.url, b_applies)
    else:
        swap, a_wrote = store.swap, []

        def swap_then_race(name: str, data: bytes | None, expect: str | None) -> Any:
            if a_wrote and expect == a_wrote[0]:
                b_applies()  # A saw the refusal and puts back next: B writes first
            written = swap(name, data, expect)
            a_wrote.append(written)
            return written

        store.swap = swap_then_race  # type: ignore[method-assign]

    with pytest.raises(ApiError) as refused:
        cluster_apply.apply(api, api.location(), store, refused_version(server, identifier), 120)

    (b,) = b_runs
    assert b.returncode == 0, b.stderr
    (row,) = json.loads(b.stdout)["applied"]
    assert row["action"] == "updated" and row["identifier"] == identifier
    message = str(refused.value)
    assert f"not put back: {store.where(file)} was changed by another writer" in message
    if "waits" in moment:
        assert f"another writer changed {store.where(file)} meanwhile" in message
    else:
        assert f"the server refused {store.where(file)}" in message
    assert store.read(file) == good.read_bytes()  # B's version, not A's nor v1
    assert served_hash(server, job) == content_hash(good.read_bytes())
    assert eventually(lambda: f"invalid__{job}" not in server.job_names(), what="no stand-in")


def test_a_key_the_mirror_cannot_hold_is_listed_as_invalid(server: Server) -> None:
    if not server.store_url.startswith("s3://"):
        pytest.skip("a folder store has no keys to mirror")
    store = server.store
    store.write("kept.yml", dump(words("mirror/kept", "k")).encode())
    long = "k" * 300 + ".yml"
    bucket, _, prefix = server.store_url.removeprefix("s3://").partition("/")
    import boto3

    boto3.client("s3", endpoint_url=server.env["AWS_ENDPOINT_URL"]).put_object(
        Bucket=bucket, Key=f"{prefix}/{long}", Body=b"version: 0.0.1b\n"
    )
    where = f"s3://{bucket}/{prefix}/{long}"

    def listed() -> Any:
        found = server.clusters_json("list")
        invalid = [i for i in found["invalid"] if where in i["errors"]]
        kept = "mirror/kept" in {c["identifier"] for c in found["clusters"]}
        return invalid if kept else None

    (invalid,) = eventually(listed, what="the skipped key listed as invalid")
    assert invalid["file"] == server.store_url and "longer than a file name" in invalid["errors"]
    store.delete("kept.yml")
    boto3.client("s3", endpoint_url=server.env["AWS_ENDPOINT_URL"]).delete_object(
        Bucket=bucket, Key=f"{prefix}/{long}"
    )
