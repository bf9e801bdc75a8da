"""S3 satellites against a real moto server on loopback."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import boto3
import pytest

from satellite_ops import FatalError
from satellite_ops.satellites.s3_delete_file import delete_file_from_s3
from satellite_ops.satellites.s3_get_files import get_files_from_s3
from satellite_ops.satellites.s3_move import move_to_s3
from satellite_ops.testing import CapturedLog, call

pytestmark = pytest.mark.integration

SECRETS = [{"AWS_ACCESS_KEY": "testing"}, {"AWS_SECRET_KEY": "testing"}]
LAYOUT = {
    "sec/2024/report-{}.pdf": 1200,
    "sec/2025/upper-{}.PDF": 300,
    "sec/2024/notes-{}.txt": 500,
    "other/x-{}.pdf": 400,
    "sec/top-{}.pdf": 100,
}


@pytest.fixture(scope="session")
def big_bucket(moto_server: str) -> str:
    """2,500 small objects (plus a folder marker) in one bucket, created once."""
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    bucket = f"big-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    keys = [pattern.format(i) for pattern, count in LAYOUT.items() for i in range(count)]
    keys.append("sec/empty/")
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=b"x"), keys))
    return bucket


def _list(moto_server: str, bucket: str, log: CapturedLog | None = None, **config: Any) -> list:
    config = {"bucket": bucket, "endpoint-url": moto_server, "secrets": SECRETS, **config}
    return call(get_files_from_s3, config, {}, log=log)


def test_list_everything_paginated(moto_server: str, big_bucket: str) -> None:
    log = CapturedLog()
    found = _list(moto_server, big_bucket, log)
    assert len(found) == 2500  # more than two pages of 1,000; the folder marker is skipped
    assert len({item["file-path"] for item in found}) == 2500
    assert log.messages == [f"found 2500 object(s) under s3://{big_bucket}/"]


def test_max_objects_stops_the_listing_with_a_warning(moto_server: str, big_bucket: str) -> None:
    log = CapturedLog()
    assert len(_list(moto_server, big_bucket, log, prefix="sec/", **{"max-objects": 10})) == 10
    assert log.at("WARNING") == [f"stopped listing s3://{big_bucket}/sec/ at max-objects=10"]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"prefix": "sec/", "extension": "pdf"}, 1600),
        ({"prefix": "sec/", "extension": ".PDF"}, 1600),
        ({"prefix": "sec/2024/", "extension": "txt"}, 500),
        ({"prefix": "other/"}, 400),
        ({"prefix": "sec/", "recursive": False}, 100),
        ({"prefix": "sec/", "recursive": False, "extension": "txt"}, 0),
        ({"prefix": "sec/", "max-objects": 10}, 10),
        ({"prefix": "nothing-here/"}, 0),
    ],
)
def test_list_filters(moto_server: str, big_bucket: str, config: dict, expected: int) -> None:
    assert len(_list(moto_server, big_bucket, **config)) == expected


def test_listing_output_shape(moto_server: str, s3: Any, s3_bucket: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="a/b/report.pdf", Body=b"hello")
    (item,) = _list(moto_server, s3_bucket, prefix="a/")
    assert item["file-path"] == "a/b/report.pdf"
    assert item["file-name"] == "report.pdf"
    assert item["size"] == 5
    assert item["uri"] == f"s3://{s3_bucket}/a/b/report.pdf"
    assert item["bucket"] == s3_bucket
    assert item["etag"] and '"' not in item["etag"]
    assert datetime.fromisoformat(item["last-modified"]).tzinfo is not None


def test_default_credential_chain(moto_server: str, s3: Any, s3_bucket: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="k.pdf", Body=b"x")
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"  # set by the moto_server fixture
    found = call(get_files_from_s3, {"bucket": s3_bucket, "endpoint-url": moto_server})
    assert [item["file-path"] for item in found] == ["k.pdf"]


def test_missing_bucket_is_fatal(moto_server: str) -> None:
    with pytest.raises(FatalError, match="NoSuchBucket"):
        _list(moto_server, "no-such-bucket-here")


def test_delete_is_idempotent(moto_server: str, s3: Any, s3_bucket: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="done/file.pdf", Body=b"x")
    config = {
        "bucket": s3_bucket,
        "file-path": "done/file.pdf",
        "endpoint-url": moto_server,
        "secrets": SECRETS,
    }
    first = call(delete_file_from_s3, config)
    assert first == [
        {
            "uri": f"s3://{s3_bucket}/done/file.pdf",
            "deleted": True,
            "bucket": s3_bucket,
            "file-path": "done/file.pdf",
        }
    ]
    assert s3.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
    again = call(delete_file_from_s3, config)
    assert again[0]["deleted"] is False


def _move_config(moto_server: str, origin: str, dest: str, secrets: list[dict]) -> dict:
    return {
        "origin-source": "s3",
        "origin-bucket": origin,
        "origin-file-path": "in/report.pdf",
        "origin-endpoint-url": moto_server,
        "destination-source": "s3",
        "destination-bucket": dest,
        "destination-file-path": "failed/report.pdf",
        "destination-endpoint-url": moto_server,
        "secrets": secrets,
    }


@pytest.mark.parametrize("size", [1024, 9 * 1024 * 1024], ids=["small", "multipart"])
def test_move_across_credentials_then_rerun(moto_server: str, s3: Any, size: int) -> None:
    origin, dest = f"origin-{uuid.uuid4().hex[:10]}", f"dest-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=origin)
    s3.create_bucket(Bucket=dest)
    payload = os.urandom(size)
    s3.put_object(Bucket=origin, Key="in/report.pdf", Body=payload)
    secrets = [
        {"ORIGIN_AWS_ACCESS_KEY": "origin-key"},
        {"ORIGIN_AWS_SECRET_KEY": "origin-secret"},
        {"DESTINATION_AWS_ACCESS_KEY": "dest-key"},
        {"DESTINATION_AWS_SECRET_KEY": "dest-secret"},
    ]
    config = _move_config(moto_server, origin, dest, secrets)

    (result,) = call(move_to_s3, config)
    assert result["file-uri"] == f"s3://{dest}/failed/report.pdf"
    assert result["moved"] is True
    assert s3.get_object(Bucket=dest, Key="failed/report.pdf")["Body"].read() == payload
    assert s3.list_objects_v2(Bucket=origin).get("KeyCount") == 0

    (again,) = call(move_to_s3, config)
    assert again["moved"] is False and again["file-uri"] == result["file-uri"]


def test_move_same_credentials_server_side(moto_server: str, s3: Any, s3_bucket: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="in/report.pdf", Body=b"pdf")
    config = _move_config(moto_server, s3_bucket, s3_bucket, [])
    (result,) = call(move_to_s3, config)
    assert result["moved"] is True
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys == ["failed/report.pdf"]


def test_move_of_nothing_is_fatal(moto_server: str, s3_bucket: str) -> None:
    with pytest.raises(FatalError, match="does not exist"):
        call(move_to_s3, _move_config(moto_server, s3_bucket, s3_bucket, []))


def test_move_onto_itself_keeps_the_object(moto_server: str, s3: Any, s3_bucket: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="in/report.pdf", Body=b"pdf")
    config = {
        **_move_config(moto_server, s3_bucket, s3_bucket, []),
        "destination-file-path": "in/report.pdf",
    }
    (result,) = call(move_to_s3, config)
    assert result["moved"] is False
    assert s3.get_object(Bucket=s3_bucket, Key="in/report.pdf")["Body"].read() == b"pdf"
