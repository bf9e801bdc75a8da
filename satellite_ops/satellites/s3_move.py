"""Move one S3 object to another bucket/key, possibly under other credentials or endpoint.

Copy first, check the copy, then delete the origin: a crash in between leaves two copies,
never none. Re-running after a finished move succeeds without doing anything.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from botocore.exceptions import ClientError
from pydantic import BeforeValidator, Field, SecretStr, model_validator

from satellite_ops import (
    FIXED_AT_LAUNCH,
    Endpoint,
    FatalError,
    RetryableError,
    SatelliteConfig,
    SatelliteContext,
    StaticConfig,
    declares_endpoints,
    normalise_single_key_maps,
    s3_endpoint,
    satellite,
    secret_or_none,
)
from satellite_ops.helpers import AwsSecrets, client_for, is_not_found, s3_errors, s3_uri

IDENTIFIER = "satellite/exospherehost/move-to-s3"


class MoveSecrets(SatelliteConfig):
    """Keys for each side; a side without keys uses boto3's default chain."""

    origin_aws_access_key: SecretStr | None = Field(
        None, alias="ORIGIN_AWS_ACCESS_KEY", description="Access key id for the origin bucket."
    )
    origin_aws_secret_key: SecretStr | None = Field(
        None, alias="ORIGIN_AWS_SECRET_KEY", description="Secret key for the origin bucket."
    )
    origin_aws_session_token: SecretStr | None = Field(
        None, alias="ORIGIN_AWS_SESSION_TOKEN", description="Session token for the origin side."
    )
    destination_aws_access_key: SecretStr | None = Field(
        None, alias="DESTINATION_AWS_ACCESS_KEY", description="Access key id for the destination."
    )
    destination_aws_secret_key: SecretStr | None = Field(
        None, alias="DESTINATION_AWS_SECRET_KEY", description="Secret key for the destination."
    )
    destination_aws_session_token: SecretStr | None = Field(
        None,
        alias="DESTINATION_AWS_SESSION_TOKEN",
        description="Session token for the destination side.",
    )

    @model_validator(mode="after")
    def _pairs(self) -> MoveSecrets:
        for prefix in ("origin", "destination"):
            key = secret_or_none(getattr(self, f"{prefix}_aws_access_key"))
            secret = secret_or_none(getattr(self, f"{prefix}_aws_secret_key"))
            if (key is None) != (secret is None):
                upper = prefix.upper()
                raise ValueError(
                    f"give both {upper}_AWS_ACCESS_KEY and {upper}_AWS_SECRET_KEY, or neither"
                )
        return self

    def side(self, prefix: Literal["origin", "destination"]) -> AwsSecrets:
        """The keys of one side as :class:`AwsSecrets` (checks that both keys are given)."""
        return AwsSecrets(
            AWS_ACCESS_KEY=getattr(self, f"{prefix}_aws_access_key"),
            AWS_SECRET_KEY=getattr(self, f"{prefix}_aws_secret_key"),
            AWS_SESSION_TOKEN=getattr(self, f"{prefix}_aws_session_token"),
        )


class MoveToS3Config(SatelliteConfig):
    """Where the object is, where it goes, and how to reach each side."""

    origin_source: Literal["s3"] = Field("s3", description="Storage of the origin (only 's3').")
    origin_bucket: Annotated[str, FIXED_AT_LAUNCH] = Field(
        description="Bucket holding the object now.", min_length=3
    )
    origin_file_path: Annotated[str, FIXED_AT_LAUNCH] = Field(
        description="Key of the object to move.", min_length=1
    )
    origin_endpoint_url: str | None = Field(None, description="S3 endpoint of the origin side.")
    origin_region: str | None = Field(None, description="AWS region of the origin bucket.")
    destination_source: Literal["s3"] = Field(
        "s3", description="Storage of the destination (only 's3')."
    )
    destination_bucket: Annotated[str, FIXED_AT_LAUNCH] = Field(
        description="Bucket to move the object to.", min_length=3
    )
    destination_file_path: Annotated[str, FIXED_AT_LAUNCH] = Field(
        description="Key the object gets there.", min_length=1
    )
    destination_endpoint_url: str | None = Field(
        None, description="S3 endpoint of the destination side."
    )
    destination_region: str | None = Field(
        None, description="AWS region of the destination bucket."
    )
    secrets: Annotated[MoveSecrets | None, BeforeValidator(normalise_single_key_maps)] = Field(
        None, description="ORIGIN_AWS_* and DESTINATION_AWS_* keys; omit for the default chain."
    )


def _side_key(endpoint: str | None, region: str | None, secrets: AwsSecrets) -> tuple:
    return (
        endpoint,
        region,
        secret_or_none(secrets.aws_access_key),
        secret_or_none(secrets.aws_secret_key),
        secret_or_none(secrets.aws_session_token),
    )


def _size(client: Any, bucket: str, key: str) -> int | None:
    """Content length of an object, or None when it does not exist."""
    with s3_errors("head", s3_uri(bucket, key)):
        try:
            return int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise


def _endpoints(cfg: StaticConfig) -> Iterator[Endpoint | None]:
    """The S3 sides of the move (a local side is not a shared place)."""
    if cfg.get("origin_source") == "s3":
        yield s3_endpoint("source", cfg.get("origin_bucket"), cfg.get("origin_file_path"))
    if cfg.get("destination_source") == "s3":
        yield s3_endpoint("sink", cfg.get("destination_bucket"), cfg.get("destination_file_path"))


@declares_endpoints(_endpoints)
@satellite(IDENTIFIER, config=MoveToS3Config)
def move_to_s3(
    config: MoveToS3Config, input: Mapping[str, Any], context: SatelliteContext
) -> list[dict[str, Any]]:
    """Move an S3 object (copy, verify, delete the origin), across credentials if needed.

    Outputs ``file-uri`` and ``moved`` (false when an earlier run already moved it).
    """
    secrets = config.secrets or MoveSecrets()
    origin_secrets, dest_secrets = secrets.side("origin"), secrets.side("destination")
    origin_key = _side_key(config.origin_endpoint_url, config.origin_region, origin_secrets)
    dest_key = _side_key(config.destination_endpoint_url, config.destination_region, dest_secrets)
    origin = client_for(config.origin_endpoint_url, config.origin_region, origin_secrets)
    dest = client_for(config.destination_endpoint_url, config.destination_region, dest_secrets)
    src_uri = s3_uri(config.origin_bucket, config.origin_file_path)
    dst_uri = s3_uri(config.destination_bucket, config.destination_file_path)
    result = {"file-uri": dst_uri, "origin-uri": src_uri, "moved": False}

    same_place = origin_key[:2] == dest_key[:2] and src_uri == dst_uri
    if same_place:
        context.log.info("%s is already its own destination: nothing to move", src_uri)
        return [result]

    size = _size(origin, config.origin_bucket, config.origin_file_path)
    if size is None:
        if _size(dest, config.destination_bucket, config.destination_file_path) is not None:
            context.log.info("%s is gone and %s exists: already moved", src_uri, dst_uri)
            return [result]
        raise FatalError(f"cannot move {src_uri}: it does not exist (nor does {dst_uri})")

    source = {"Bucket": config.origin_bucket, "Key": config.origin_file_path}
    if origin_key == dest_key:
        with s3_errors("copy to " + dst_uri + " from", src_uri):
            dest.copy(source, config.destination_bucket, config.destination_file_path)
    else:
        with s3_errors("read", src_uri):
            body = origin.get_object(**source)["Body"]
        try:
            with s3_errors("upload to " + dst_uri + " from", src_uri):
                dest.upload_fileobj(body, config.destination_bucket, config.destination_file_path)
        finally:
            body.close()

    copied = _size(dest, config.destination_bucket, config.destination_file_path)
    if copied != size:
        raise RetryableError(
            f"copy of {src_uri} to {dst_uri} has {copied} bytes, expected {size}: origin kept"
        )
    with s3_errors("delete", src_uri):
        origin.delete_object(**source)
    context.log.info("moved %s to %s (%d bytes)", src_uri, dst_uri, size)
    return [{**result, "moved": True, "size": size}]
