"""The clusters store: a folder or an S3 prefix (moto), the mirror the code location loads an S3
prefix from, and the code location built from each."""

from __future__ import annotations

import boto3
import pytest

from clusters import cluster, dump, satellite_entry
from exosphere_dagster.definitions import STORE_RESOURCE, build_definitions
from exosphere_dagster.entry.clusters.mirror import mirror
from exosphere_dagster.entry.clusters.store import (
    FolderStore,
    S3Store,
    StoreError,
    StoreUnreachable,
    open_store,
)

WEBHOOK = satellite_entry("satellite/exospherehost/call-webhook", config={"url": "https://e.com"})
GOOD = dump(cluster("acme/good", [WEBHOOK])).encode()
BROKEN = b"version: 0.0.1b\ncluster:\n  identifier: acme/broken\n  sla: 7h\n"


@pytest.fixture
def s3_store(moto_server: str, s3_bucket: str) -> S3Store:
    return S3Store(s3_bucket, "team/clusters", endpoint_url=moto_server)


def test_open_store_reads_folders_and_s3_urls(tmp_path) -> None:
    assert open_store(tmp_path).url == str(tmp_path.resolve())
    assert open_store("s3://bucket/a/b/") == S3Store("bucket", "a/b")
    assert open_store("s3://bucket").url == "s3://bucket"
    for bad in ("s3:///prefix", "gs://bucket/x"):
        with pytest.raises(StoreError, match="s3://bucket/prefix"):
            open_store(bad)


@pytest.mark.parametrize("name", ["../up.yml", "/abs.yml", "notes.txt", ""])
def test_a_store_name_is_a_relative_cluster_file(tmp_path, name: str) -> None:
    with pytest.raises(StoreError, match="not a cluster file name"):
        FolderStore(tmp_path).write(name, GOOD)


def test_a_folder_store_lists_reads_writes_and_deletes(tmp_path) -> None:
    store = FolderStore(tmp_path / "store")
    assert store.list() == {} and store.read("a.yml") is None
    store.write("team/a.yml", GOOD)
    store.write("b.yaml", BROKEN)
    (tmp_path / "store" / "notes.txt").write_text("not a cluster")
    before = store.token()
    assert list(store.list()) == ["b.yaml", "team/a.yml"]
    assert store.read("team/a.yml") == GOOD
    assert store.where("team/a.yml") == str(tmp_path / "store" / "team" / "a.yml")
    store.delete("b.yaml")
    store.delete("b.yaml")  # already gone: nothing to do
    assert list(store.list()) == ["team/a.yml"] and store.token() != before


@pytest.mark.integration
def test_an_s3_store_lists_reads_writes_and_deletes(s3_store: S3Store) -> None:
    assert s3_store.list() == {} and s3_store.read("a.yml") is None
    s3_store.write("team/a.yml", GOOD)
    s3_store.write("b.yaml", BROKEN)
    boto3.client("s3", endpoint_url=s3_store.endpoint_url).put_object(
        Bucket=s3_store.bucket, Key="team/clusters/notes.txt", Body=b"not a cluster"
    )
    listed = s3_store.list()
    assert list(listed) == ["b.yaml", "team/a.yml"]
    assert s3_store.read("team/a.yml") == GOOD
    assert s3_store.where("b.yaml") == f"s3://{s3_store.bucket}/team/clusters/b.yaml"
    token = s3_store.token()
    s3_store.write("b.yaml", GOOD)
    assert s3_store.token() != token  # a new ETag
    s3_store.delete("b.yaml")
    assert list(s3_store.list()) == ["team/a.yml"]


@pytest.mark.integration
def test_the_mirror_downloads_only_what_changed_and_drops_what_is_gone(
    s3_store: S3Store, tmp_path
) -> None:
    s3_store.write("a.yml", GOOD)
    s3_store.write("team/b.yml", BROKEN)
    folder = mirror(s3_store, tmp_path / "mirror")
    assert (folder / "a.yml").read_bytes() == GOOD and (folder / "team/b.yml").exists()

    reads: list[str] = []
    original = s3_store.read

    def counted(name: str) -> bytes | None:
        reads.append(name)
        return original(name)

    s3_store.read = counted  # type: ignore[method-assign]
    mirror(s3_store, folder)
    assert reads == []  # every ETag as recorded
    s3_store.write("team/b.yml", GOOD)
    s3_store.delete("a.yml")
    mirror(s3_store, folder)
    assert reads == ["team/b.yml"]
    assert not (folder / "a.yml").exists() and (folder / "team/b.yml").read_bytes() == GOOD


@pytest.mark.integration
def test_an_unreachable_s3_store_keeps_the_last_mirror_or_says_why(
    s3_store: S3Store, tmp_path
) -> None:
    s3_store.write("a.yml", GOOD)
    folder = mirror(s3_store, tmp_path / "mirror")
    down = S3Store(s3_store.bucket, s3_store.prefix, endpoint_url="http://127.0.0.1:9")
    with pytest.raises(StoreUnreachable, match="cannot reach the S3 endpoint"):
        down.list()
    assert mirror(down, folder) == folder and (folder / "a.yml").read_bytes() == GOOD

    never = S3Store(s3_store.bucket, "never/mirrored", endpoint_url="http://127.0.0.1:9")
    never.cache_folder = lambda: tmp_path / "empty"  # type: ignore[method-assign]
    repo = build_definitions(never).get_repository_def()
    assert "cannot reach the S3 endpoint" in never.problem
    (stand_in,) = [j for j in repo.get_all_jobs() if j.name.startswith("invalid__")]
    assert "s3://" in stand_in.description and "cannot reach" in stand_in.description


@pytest.mark.integration
def test_the_code_location_loads_an_s3_store_and_names_broken_objects(
    s3_store: S3Store, tmp_path
) -> None:
    s3_store.write("good.yml", GOOD)
    s3_store.write("broken.yml", BROKEN)
    s3_store.cache_folder = lambda: tmp_path / "cache"  # type: ignore[method-assign]
    repo = build_definitions(s3_store).get_repository_def()
    names = {j.name for j in repo.get_all_jobs()}
    assert {"acme__good", "invalid__broken"} <= names
    where = f"s3://{s3_store.bucket}/team/clusters/broken.yml"
    assert f"{where}:4:8: cluster.sla" in repo.get_job("invalid__broken").description
    published = repo.get_top_level_resources()[STORE_RESOURCE]
    assert published.configurable_resource_cls.__name__ == "ClustersStore"
    assert published.config_schema.default_value == {"url": s3_store.url}  # what the CLI reads
