"""The one S3 client factory (satellites, checkpoints, triggers, the clusters store), its
transfer settings, and the error classes of the S3 satellites.

Clients are cached per (endpoint, region, credentials, attempts, process) because building one
costs tens of milliseconds and items of a step run concurrently; boto3 clients are thread-safe,
but a client is never reused across a fork.

Every client has the same configuration (:func:`client_config`: timeouts, 32 pooled
connections, standard retry mode) and :data:`TRANSFER_CONFIG`; only the number of attempts
differs. Satellites' clients make one request per call (``attempts=1``, the default): the
runtime owns their retries (docs/runtime.md), and throttling, timeouts and 5xx become
:class:`RetryableError` for it. Infrastructure that has no retry of its own around it
(checkpoint writes, a trigger's listing, the clusters store) asks for
``attempts=INFRASTRUCTURE_ATTEMPTS``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import posixpath
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from pydantic import Field, SecretStr, model_validator

from satellite_ops.config import SatelliteConfig, secret_or_none
from satellite_ops.errors import FatalError, RetryableError, parse_retry_after

RETRYABLE_CODES = frozenset(
    {
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "RequestLimitExceeded",
    }
)
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})

INFRASTRUCTURE_ATTEMPTS = 5  # requests per call for clients no runtime retry covers
POOL_CONNECTIONS = 32


@functools.cache
def client_config(attempts: int = 1) -> Config:
    """The botocore configuration of every S3 client: ``attempts`` requests per call at most."""
    return Config(
        # total_max_attempts counts the first request; botocore's max_attempts counts retries
        # after it (max_attempts=1 would mean two requests), so attempts=1 is one request.
        retries={"total_max_attempts": attempts, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=POOL_CONNECTIONS,
        user_agent_extra="exosphere-dagster",
    )


TRANSFER_THREADS = 4
TRANSFER_CONFIG = TransferConfig(num_download_attempts=1, max_concurrency=TRANSFER_THREADS)
"""The S3 transfer settings every managed transfer of a client from :func:`s3_client` uses
(``download_file``, ``upload_fileobj``, ``copy``...): s3transfer re-reads a download whose
stream breaks (5 times by default, beyond botocore's retries), here once, as any call; and a
transfer uses 4 threads, not 10, so that the items of a step moving files at once share the
client's 32 pooled connections instead of queueing for them."""
MANAGED_TRANSFERS = ("download_file", "download_fileobj", "upload_file", "upload_fileobj", "copy")


@functools.lru_cache(maxsize=32)
def _cached_client(
    endpoint_url: str | None,
    region: str | None,
    access_key: str | None,
    secret_key: str | None,
    session_token: str | None,
    attempts: int,
    pid: int,  # never reuse a client made before a fork
) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=session_token,
        region_name=region,
    )
    client = session.client("s3", endpoint_url=endpoint_url, config=client_config(attempts))
    for name in MANAGED_TRANSFERS:  # TRANSFER_CONFIG unless a caller passes its own Config=
        setattr(client, name, functools.partial(getattr(client, name), Config=TRANSFER_CONFIG))
    return client


def s3_client(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
    attempts: int = 1,
) -> Any:
    """An S3 client; without keys, boto3's default chain (env, profile, role, AWS_ENDPOINT_URL).

    The one factory of S3 clients: :func:`client_config` with ``attempts`` requests per call
    (1, the default: the runtime retries satellites' calls) and :data:`TRANSFER_CONFIG` for its
    managed transfers, whoever calls them."""
    if (access_key is None) != (secret_key is None):
        raise FatalError("S3 credentials need both an access key and a secret key, or neither")
    if attempts < 1:
        raise ValueError(f"an S3 client makes at least 1 attempt per call, not {attempts}")
    return _cached_client(
        endpoint_url, region, access_key, secret_key, session_token, attempts, os.getpid()
    )


class AwsSecrets(SatelliteConfig):
    """``AWS_ACCESS_KEY`` / ``AWS_SECRET_KEY`` (and an optional session token) for one S3 side."""

    aws_access_key: SecretStr | None = Field(
        None,
        alias="AWS_ACCESS_KEY",
        description="Access key id; omit both keys for the default chain.",
    )
    aws_secret_key: SecretStr | None = Field(
        None, alias="AWS_SECRET_KEY", description="Secret access key paired with AWS_ACCESS_KEY."
    )
    aws_session_token: SecretStr | None = Field(
        None, alias="AWS_SESSION_TOKEN", description="Session token for temporary credentials."
    )

    @model_validator(mode="after")
    def _both_keys(self) -> AwsSecrets:
        if (secret_or_none(self.aws_access_key) is None) != (
            secret_or_none(self.aws_secret_key) is None
        ):
            raise ValueError("give both AWS_ACCESS_KEY and AWS_SECRET_KEY, or neither")
        return self


def client_for(endpoint_url: str | None, region: str | None, secrets: AwsSecrets | None) -> Any:
    """An S3 client for one side of a config (endpoint, region, optional keys)."""
    secrets = secrets or AwsSecrets()
    return s3_client(
        endpoint_url=endpoint_url,
        region=region,
        access_key=secret_or_none(secrets.aws_access_key),
        secret_key=secret_or_none(secrets.aws_secret_key),
        session_token=secret_or_none(secrets.aws_session_token),
    )


def error_code(exc: ClientError) -> str:
    """The S3 error code of a ClientError (``NoSuchKey``, ``404``, ``SlowDown``...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_not_found(exc: BaseException) -> bool:
    """True for a missing key (HEAD answers a bare 404, GET answers NoSuchKey)."""
    return isinstance(exc, ClientError) and error_code(exc) in NOT_FOUND_CODES


def _http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _retry_after(exc: ClientError) -> float | None:
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders") or {}
    return parse_retry_after(headers.get("retry-after"))


@contextlib.contextmanager
def s3_errors(action: str, uri: str) -> Iterator[None]:
    """Translate boto errors into Retryable/Fatal errors that name the action and the object."""
    try:
        yield
    except ClientError as exc:
        code, status = error_code(exc), _http_status(exc)
        message = exc.response.get("Error", {}).get("Message") or code
        text = f"{action} {uri} failed: {code or status} ({message})"
        if code in RETRYABLE_CODES or status >= 500 or status in (408, 429):
            raise RetryableError(text, retry_after=_retry_after(exc)) from None
        raise FatalError(text) from None
    except (NoCredentialsError, PartialCredentialsError, ParamValidationError) as exc:
        raise FatalError(f"{action} {uri} failed: {exc}") from None
    except (BotoConnectionError, BotoCoreError, Boto3Error) as exc:
        raise RetryableError(f"{action} {uri} failed: {type(exc).__name__}: {exc}") from None


def s3_uri(bucket: str, key: str = "") -> str:
    """``s3://bucket/key``."""
    return f"s3://{bucket}/{key}"


def object_item(bucket: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of ``list_objects_v2`` as the item a cluster sees (``get-files-from-s3``'s
    output and an S3 trigger's run input are the same shape)."""
    key = entry["Key"]
    modified = entry.get("LastModified")
    return {
        "file-path": key,
        "file-name": posixpath.basename(key),
        "size": int(entry.get("Size", 0)),
        "etag": str(entry.get("ETag", "")).strip('"'),
        "uri": s3_uri(bucket, key),
        "last-modified": modified.isoformat() if modified is not None else None,
        "bucket": bucket,
    }
