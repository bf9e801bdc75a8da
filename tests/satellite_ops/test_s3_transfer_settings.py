"""``parse-pdf-with-docling`` and ``move-to-s3`` transfer with the shared S3 settings: what
their own clients did is recorded (every s3transfer manager they opened, its TransferConfig and
its client's botocore config) and a broken download costs them one GET, not s3transfer's five.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3.s3.inject
import boto3.s3.transfer
import pytest
import test_one_retry_policy as retry_policy

from satellite_ops.errors import RetryableError
from satellite_ops.satellites.parse_pdf import parse_pdf_with_docling
from satellite_ops.satellites.s3_move import move_to_s3
from satellite_ops.testing import call

NATIVE = {"pipeline": "native"}
S3Proxy = retry_policy.S3Proxy
s3_proxy = retry_policy.s3_proxy  # the body-breaking proxy in front of moto, as a fixture here
MOVE_SECRETS = [
    {"ORIGIN_AWS_ACCESS_KEY": "origin-key"},
    {"ORIGIN_AWS_SECRET_KEY": "origin-secret"},
    {"DESTINATION_AWS_ACCESS_KEY": "dest-key"},
    {"DESTINATION_AWS_SECRET_KEY": "dest-secret"},
]


@pytest.fixture
def transfers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Any, Any]]]:
    """(client, TransferConfig) of every transfer manager opened while the test runs."""
    opened: list[tuple[Any, Any]] = []
    real = boto3.s3.transfer.create_transfer_manager

    def spy(client: Any, config: Any, osutil: Any = None) -> Any:
        opened.append((client, config))
        return real(client, config, osutil)

    monkeypatch.setattr(boto3.s3.transfer, "create_transfer_manager", spy)
    monkeypatch.setattr(boto3.s3.inject, "create_transfer_manager", spy)
    yield opened


def assert_shared_settings(opened: list[tuple[Any, Any]], count: int) -> None:
    assert len(opened) == count
    for client, config in opened:
        assert config.num_download_attempts == 1  # s3transfer's default: 5
        assert config.max_concurrency == 4  # s3transfer's default: 10
        assert client.meta.config.retries == {"total_max_attempts": 1, "mode": "standard"}
        assert client.meta.config.max_pool_connections == 32


def move_config(endpoint: str, origin: str, dest: str, secrets: list[dict[str, str]]) -> dict:
    return {
        "origin-bucket": origin,
        "origin-file-path": "in/report.pdf",
        "origin-endpoint-url": endpoint,
        "destination-bucket": dest,
        "destination-file-path": "out/report.pdf",
        "destination-endpoint-url": endpoint,
        "secrets": secrets,
    }


def test_parse_pdf_reads_a_broken_download_once(
    s3: Any, s3_bucket: str, s3_proxy: S3Proxy, transfers: list
) -> None:
    s3.put_object(Bucket=s3_bucket, Key="a.pdf", Body=b"%PDF" + b"x" * 200_000)
    s3_proxy.break_bodies = True
    config = {**NATIVE, "endpoint-url": s3_proxy.url, "region": "us-east-1"}
    with pytest.raises(RetryableError, match=f"download s3://{s3_bucket}/a.pdf"):
        call(parse_pdf_with_docling, config, {"uri": f"s3://{s3_bucket}/a.pdf"})
    assert sum(method == "GET" for method, _ in s3_proxy.hits) == 1
    assert_shared_settings(transfers, 1)


@pytest.mark.parametrize("size", [1024, 9 * 1024 * 1024], ids=["small", "multipart"])
def test_move_copies_and_uploads_with_the_shared_settings(
    s3: Any, moto_server: str, transfers: list, size: int
) -> None:
    """Same keys: a managed copy; keys per side: a managed upload of the origin's stream."""
    origin, dest = f"origin-{uuid.uuid4().hex[:10]}", f"dest-{uuid.uuid4().hex[:10]}"
    for bucket in (origin, dest):
        s3.create_bucket(Bucket=bucket)
    for secrets in ([], MOVE_SECRETS):
        s3.put_object(Bucket=origin, Key="in/report.pdf", Body=b"p" * size)
        (result,) = call(move_to_s3, move_config(moto_server, origin, dest, secrets))
        assert result["moved"] is True and result["size"] == size
    assert_shared_settings(transfers, 2)
    assert transfers[0][0] is not transfers[1][0]  # the second move's destination client
