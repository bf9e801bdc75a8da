"""The clusters store: a folder or an S3 prefix (moto), its change token, the S3 mirror the code
location loads (fetching by ETag, keeping its last copy when S3 is unreachable), and the
location over it: errors name ``s3://bucket/prefix/file.yml:line:col``, one broken file hides
nothing, and the store sensor publishes the store and says when it changed."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from dagster import build_sensor_context

from exosphere_dagster.cluster_store import (
    STORE_SENSOR,
    STORE_TOKEN_KEY,
    STORE_URL_KEY,
    FolderStore,
    S3Store,
    StoreError,
    mirror_folder,
    store_from_url,
    store_name,
    sync_mirror,
    view_of,
)

GOOD = """\
version: 0.0.1b
cluster:
  identifier: apitest/good
  sla: 6h
  trigger: api-call
  satellites:
    - uses: satellite/apitest/picky
      config: {refuse: nothing}
"""
BROKEN = GOOD.replace("apitest/good", "apitest/broken").replace("6h", "7h")


def test_store_urls_and_file_names() -> None:
    store = store_from_url("s3://bucket/team/clusters/")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.url) == (
        "bucket",
        "team/clusters",
        "s3://bucket/team/clusters",
    )
    assert store.key("a.yml") == "team/clusters/a.yml"
    assert store.display("a.yml") == "s3://bucket/team/clusters/a.yml"
    assert isinstance(store_from_url("some/folder"), FolderStore)
    assert store_name("cluster/aikin/strucutred-pdfs") == "aikin__strucutred_pdfs.yml"
    with pytest.raises(StoreError, match="no bucket in the store URL"):
        store_from_url("s3://").list()


def test_env_names_the_store(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("EXOSPHERE_CLUSTERS_DIR", "s3://b/p")
    assert store_from_url().url == "s3://b/p"
    monkeypatch.delenv("EXOSPHERE_CLUSTERS_DIR")
    assert store_from_url().url == "clusters"


def test_a_folder_store(tmp_path: Path) -> None:
    store = FolderStore(tmp_path)
    assert store.list() == {} and store.read("a.yml") is None
    empty = store.change_token()
    store.write("a.yml", b"one")
    store.write("team/b.yaml", b"two")
    (tmp_path / "notes.txt").write_text("not a cluster")
    assert sorted(store.list()) == ["a.yml", "team/b.yaml"]
    assert store.read("team/b.yaml") == b"two"
    token = store.change_token()
    assert token != empty and token == FolderStore(tmp_path).change_token()
    store.write("a.yml", b"one, longer")
    assert store.change_token() != token
    assert store.delete("a.yml") is True and store.delete("a.yml") is False
    assert list(store.list()) == ["team/b.yaml"]


def test_an_s3_store(s3, s3_bucket: str) -> None:
    store = S3Store(s3_bucket, "team/clusters", client=s3)
    assert store.list() == {}
    store.write("a.yml", b"one")
    s3.put_object(Bucket=s3_bucket, Key="team/clusters/readme.txt", Body=b"not a cluster")
    s3.put_object(Bucket=s3_bucket, Key="team/clustersX/b.yml", Body=b"another prefix")
    s3.put_object(Bucket=s3_bucket, Key="team/clusters/../up.yml", Body=b"no escaping")
    listing = store.list()
    assert list(listing) == ["a.yml"] and listing["a.yml"]
    assert store.read("a.yml") == b"one" and store.read("nope.yml") is None
    assert store.delete("a.yml") is True and store.delete("a.yml") is False
    assert store.list() == {}


def test_the_mirror_fetches_only_new_or_changed_objects(s3, s3_bucket: str, tmp_path) -> None:
    gets: list[str] = []
    s3.meta.events.register(
        "provide-client-params.s3.GetObject", lambda params, **_: gets.append(params["Key"])
    )
    store = S3Store(s3_bucket, "p", client=s3)
    store.write("a.yml", b"a")
    store.write("team/b.yml", b"b")
    folder = sync_mirror(store, tmp_path / "mirror")
    assert sorted(gets) == ["p/a.yml", "p/team/b.yml"]
    assert (folder / "team" / "b.yml").read_bytes() == b"b"
    view = view_of(folder)
    assert (view.url, view.token, view.error) == (store.url, store.change_token(), None)
    assert view.display(folder / "team" / "b.yml") == "s3://" + s3_bucket + "/p/team/b.yml"

    gets.clear()
    sync_mirror(store, folder)
    assert gets == []  # same ETags: nothing fetched
    store.write("a.yml", b"a, changed")
    store.delete("team/b.yml")
    sync_mirror(store, folder)
    assert gets == ["p/a.yml"]
    assert (folder / "a.yml").read_bytes() == b"a, changed"
    assert not (folder / "team" / "b.yml").exists()
    assert view_of(folder).token == store.change_token()


def test_an_unreachable_store_keeps_the_last_copy_and_says_why(s3, s3_bucket, tmp_path) -> None:
    store = S3Store(s3_bucket, "p", client=s3)
    store.write("a.yml", b"a")
    folder = sync_mirror(store, tmp_path / "mirror")
    dead = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",  # discard port: refused
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )
    sync_mirror(S3Store(s3_bucket, "p", client=dead), folder)
    assert (folder / "a.yml").read_bytes() == b"a"
    view = view_of(folder)
    assert view.error and f"cannot list s3://{s3_bucket}/p" in view.error
    assert "AWS_ENDPOINT_URL" in view.error


@pytest.fixture
def s3_location(monkeypatch, moto_server: str, s3, s3_bucket: str, tmp_path) -> S3Store:
    """The code location's environment for an S3 store on moto."""
    monkeypatch.setenv("EXOSPHERE_CLUSTERS_DIR", f"s3://{s3_bucket}/team")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("EXOSPHERE_STORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EXOSPHERE_SATELLITE_MODULES", "api_satellites")
    return S3Store(s3_bucket, "team", client=s3)


def test_the_location_on_an_s3_store_names_its_files(s3_location: S3Store) -> None:
    from exosphere_dagster.definitions import build_definitions, cluster_jobs, store_folder
    from exosphere_dagster.location import lazy_repository

    s3_location.write("good.yml", GOOD.encode())
    s3_location.write("broken.yml", BROKEN.encode())
    repo = build_definitions().get_repository_def()
    assert {"apitest__good", "invalid__broken"} <= {j.name for j in repo.get_all_jobs()}
    where = s3_location.display("broken.yml")
    assert (
        f"{where}:4:8: cluster.sla: invalid value for 'sla'"
        in repo.get_job("invalid__broken").description
    )
    assert repo.get_job("invalid__broken").metadata["cluster file"].text == where
    sensor = repo.get_sensor_def(STORE_SENSOR)
    assert sensor.metadata[STORE_URL_KEY].text == s3_location.url
    assert sensor.metadata[STORE_TOKEN_KEY].text == s3_location.change_token()
    mirror = mirror_folder(s3_location)
    assert (mirror / "good.yml").read_text() == GOOD
    alone = lazy_repository(store_folder, build_definitions, cluster_jobs)
    assert alone.get_job("apitest__good").name == "apitest__good"  # built from the mirror


def test_an_unreadable_store_shows_in_the_location(monkeypatch, tmp_path) -> None:
    from exosphere_dagster.definitions import build_definitions

    monkeypatch.setenv("EXOSPHERE_CLUSTERS_DIR", "s3://")
    monkeypatch.setenv("EXOSPHERE_STORE_CACHE", str(tmp_path / "cache"))
    repo = build_definitions().get_repository_def()
    [job] = [j for j in repo.get_all_jobs() if j.name.startswith("invalid__")]
    assert "no bucket in the store URL" in job.description


def test_the_store_sensor_says_whether_the_store_changed(tmp_path, monkeypatch) -> None:
    from exosphere_dagster.definitions import build_definitions

    monkeypatch.setenv("EXOSPHERE_SATELLITE_MODULES", "api_satellites")
    (tmp_path / "good.yml").write_text(GOOD)
    sensor = build_definitions(tmp_path).get_repository_def().get_sensor_def(STORE_SENSOR)
    assert sensor.metadata[STORE_URL_KEY].text == str(tmp_path)

    def tick() -> str:
        return sensor.evaluate_tick(build_sensor_context()).skip_message

    assert tick() == f"{tmp_path}: loaded and unchanged"
    (tmp_path / "second.yml").write_text(GOOD.replace("apitest/good", "apitest/second"))
    assert "changed since this code location loaded" in tick()
