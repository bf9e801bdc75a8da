"""Compare-and-swap on both store kinds (a folder; an S3 prefix on moto, with S3's own
conditional put and delete): a write made against a version that is no longer there is
refused and leaves the other writer's version in place."""

from __future__ import annotations

import threading

import pytest

from exosphere_dagster.entry.clusters.store import (
    FOLDER_LOCK,
    ClusterStore,
    FolderStore,
    S3Store,
    StoreConflict,
)
from exosphere_dagster.resolve.content import content_hash

V1, V2, V3 = b"version: 1\n", b"version: 2\n", b"version: 3\n"


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path) -> ClusterStore:
    if request.param == "folder":
        return FolderStore(tmp_path / "store")
    moto_server = request.getfixturevalue("moto_server")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Store(bucket, "team/clusters", endpoint_url=moto_server)


def test_swap_writes_over_the_version_it_was_made_against_only(store: ClusterStore) -> None:
    assert store.read_version("a.yml") == (None, None)
    first = store.swap("a.yml", V1, None)  # create: only if absent
    assert store.read_version("a.yml") == (V1, first)
    with pytest.raises(StoreConflict, match="changed by another writer"):
        store.swap("a.yml", V2, None)  # it is not absent any more
    second = store.swap("a.yml", V2, first)
    assert second != first and store.read("a.yml") == V2

    with pytest.raises(StoreConflict):
        store.swap("a.yml", V3, first)  # made against V1: V2 is kept
    with pytest.raises(StoreConflict):
        store.swap("a.yml", None, first)  # a stale delete: V2 is kept
    assert store.read_version("a.yml") == (V2, second)

    assert store.swap("a.yml", None, second) is None  # delete at the version read
    assert store.read_version("a.yml") == (None, None)
    with pytest.raises(StoreConflict):
        store.swap("a.yml", V3, second)  # gone since: nothing is recreated
    assert store.read("a.yml") is None
    assert store.swap("a.yml", None, None) is None  # absent as expected: nothing to do
    store.write("a.yml", V1)
    with pytest.raises(StoreConflict):
        store.swap("a.yml", None, None)  # expected absent, found a file: kept
    assert store.read("a.yml") == V1


def test_a_folder_version_is_the_content_hash(tmp_path) -> None:
    store = FolderStore(tmp_path / "store")
    assert store.swap("a.yml", V1, None) == content_hash(V1)
    assert not (tmp_path / "store" / FOLDER_LOCK).name.endswith((".yml", ".yaml"))
    assert list(store.list()) == ["a.yml"]  # the lock file is no cluster file


def test_a_folder_swap_waits_for_the_lock_holder(tmp_path) -> None:
    """Another process holding the folder's lock (an apply between its read and its write)
    makes a swap wait, then see that process's write and refuse."""
    import fcntl

    store = FolderStore(tmp_path / "store")
    version = store.swap("a.yml", V1, None)
    started, outcome = threading.Event(), []

    def racer() -> None:
        started.set()
        try:
            store.swap("a.yml", V3, version)
            outcome.append("written")
        except StoreConflict:
            outcome.append("conflict")

    with open(tmp_path / "store" / FOLDER_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        thread = threading.Thread(target=racer)
        thread.start()
        started.wait()
        assert thread.is_alive() and not outcome  # blocked on the lock
        store.write("a.yml", V2)  # the holder's write, under its lock
    thread.join()
    assert outcome == ["conflict"] and store.read("a.yml") == V2
