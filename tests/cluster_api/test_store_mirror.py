"""The S3 mirror never raises on a key: keys that cannot be files of a folder are skipped and
reported (``store.skipped``, ``store.problem``, the log, the code location's ``invalid__`` job),
the other keys still load. Real keys on the moto server."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from clusters import cluster, dump, satellite_entry
from exosphere_dagster.definitions import build_definitions
from exosphere_dagster.entry.clusters.mirror import mirror
from exosphere_dagster.entry.clusters.store import S3Store

pytestmark = pytest.mark.integration

WEBHOOK = satellite_entry("satellite/exospherehost/call-webhook", config={"url": "https://e.com"})
PREFIX = "team/clusters"


def good(identifier: str) -> bytes:
    return dump(cluster(identifier, [WEBHOOK])).encode()


@pytest.fixture
def store(moto_server: str, s3_bucket: str, tmp_path) -> S3Store:
    found = S3Store(s3_bucket, PREFIX, endpoint_url=moto_server)
    found.cache_folder = lambda: tmp_path / "cache" / "mirror"  # type: ignore[method-assign]
    return found


def put(s3: Any, store: S3Store, name: str, data: bytes) -> None:
    """Straight to S3 under the prefix, as `aws s3 cp` would (no name check)."""
    s3.put_object(Bucket=store.bucket, Key=f"{PREFIX}/{name}", Body=data)


def files(folder) -> set[str]:
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix == ".yml"
    }


LONG = "x" * 252 + ".yml"  # 256 bytes: one more than a file name may have
HOSTILE = {
    "a.yml/b.yml": "its folder 'a.yml' is itself a cluster file",
    LONG: "longer than a file name may be (255 bytes)",
    f"deep/{'é' * 127}z.yml": "longer than a file name may be",  # 259 bytes in UTF-8
    "/abs.yml": "not a plain relative path",
    "up/../escape.yml": "not a plain relative path",
    "./dot.yml": "not a plain relative path",
    "twice//slash.yml": "not a plain relative path",
    ".lock/inside.yml": "'.lock' is the mirror's own file",
}


def test_keys_that_cannot_be_files_are_skipped_and_reported_never_raised(
    store: S3Store, s3: Any, tmp_path, caplog
) -> None:
    fits = "y" * 251 + ".yml"  # 255 bytes: a file name may be that long
    put(s3, store, "a.yml", good("acme/a"))
    put(s3, store, fits, good("acme/fits"))
    for name in HOSTILE:
        put(s3, store, name, good("acme/hostile"))
    listed = set(store.listing())
    assert set(HOSTILE) | {"a.yml", fits} <= listed, "moto kept every key as written"

    with caplog.at_level(logging.ERROR, logger="exosphere"):
        folder = store.local_folder()
    assert files(folder) == {"a.yml", fits}
    assert not (tmp_path / "cache" / "escape.yml").exists() and not (folder / "dot.yml").exists()
    assert set(store.list()) == {"a.yml", fits}  # what `apply` sees
    for name, why in HOSTILE.items():
        where = f"s3://{store.bucket}/{PREFIX}/{name}"
        assert why in store.skipped[where], (name, store.skipped[where])
        assert f"{where}: " in store.problem
        assert f"skipping {where}" in caplog.text
    assert store.unreachable is None

    repo = build_definitions(store).get_repository_def()  # the code location loads the rest
    names = {j.name for j in repo.get_all_jobs()}
    assert {"acme__a", "acme__fits"} <= names
    (stand_in,) = [j for j in repo.get_all_jobs() if j.tags.get("exosphere/invalid")]
    assert stand_in.metadata["cluster file"].text == store.url
    assert f"{len(HOSTILE)} object(s) of {store.url} cannot be files" in stand_in.description
    assert f"s3://{store.bucket}/{PREFIX}/a.yml/b.yml" in stand_in.description


def test_a_path_may_turn_from_folder_to_file_and_back(store: S3Store, s3: Any, tmp_path) -> None:
    """The file wins over the folder whatever the order the keys came in; the mirror follows
    each change of the store without leaving a stale file or folder in the way."""
    folder = tmp_path / "mirror"
    put(s3, store, "a.yml/b.yml", good("acme/b"))
    mirror(store, folder)
    assert files(folder) == {"a.yml/b.yml"} and not store.skipped

    put(s3, store, "a.yml", good("acme/a"))  # a.yml is a folder in the mirror until now
    mirror(store, folder)
    assert files(folder) == {"a.yml"} and (folder / "a.yml").read_bytes() == good("acme/a")
    assert list(store.skipped) == [f"s3://{store.bucket}/{PREFIX}/a.yml/b.yml"]

    s3.delete_object(Bucket=store.bucket, Key=f"{PREFIX}/a.yml")
    mirror(store, folder)
    assert files(folder) == {"a.yml/b.yml"} and not store.skipped
