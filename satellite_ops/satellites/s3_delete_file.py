"""Delete one S3 object; deleting an object that is already gone succeeds (idempotent)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from botocore.exceptions import ClientError
from pydantic import BeforeValidator, Field

from satellite_ops import (
    FIXED_AT_LAUNCH,
    SatelliteConfig,
    SatelliteContext,
    declares_endpoints,
    normalise_single_key_maps,
    s3_endpoint,
    satellite,
)
from satellite_ops.helpers import AwsSecrets, client_for, is_not_found, s3_errors, s3_uri

IDENTIFIER = "satellite/exospherehost/delete-file-from-s3"


class DeleteFileFromS3Config(SatelliteConfig):
    """The object to delete and how to reach S3."""

    bucket: Annotated[str, FIXED_AT_LAUNCH] = Field(
        description="Bucket holding the object.", min_length=3
    )
    file_path: Annotated[str, FIXED_AT_LAUNCH] = Field(
        description="Key of the object to delete.", min_length=1
    )
    endpoint_url: str | None = Field(
        None, description="S3 endpoint (MinIO, moto...); default: AWS or AWS_ENDPOINT_URL."
    )
    region: str | None = Field(None, description="AWS region; default: the boto3 default chain.")
    secrets: Annotated[AwsSecrets | None, BeforeValidator(normalise_single_key_maps)] = Field(
        None, description="AWS_ACCESS_KEY / AWS_SECRET_KEY; omit to use the default chain."
    )


def object_exists(client: Any, bucket: str, key: str) -> bool:
    """HEAD the object: True if present, False on 404, a Retryable/Fatal error otherwise."""
    with s3_errors("head", s3_uri(bucket, key)):
        try:
            client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if is_not_found(exc):
                return False
            raise
    return True


@declares_endpoints(
    lambda cfg: [s3_endpoint("sink", cfg.get("bucket"), cfg.get("file_path"), delivers=False)]
)
@satellite(IDENTIFIER, config=DeleteFileFromS3Config)
def delete_file_from_s3(
    config: DeleteFileFromS3Config, input: Mapping[str, Any], context: SatelliteContext
) -> list[dict[str, Any]]:
    """Delete one object from S3; an object that is already gone is not an error.

    Outputs ``uri`` and ``deleted`` (false when there was nothing to delete).
    """
    client = client_for(config.endpoint_url, config.region, config.secrets)
    bucket, key = config.bucket, config.file_path
    uri = s3_uri(bucket, key)
    existed = object_exists(client, bucket, key)
    if existed:
        with s3_errors("delete", uri):
            client.delete_object(Bucket=bucket, Key=key)
        context.log.info("deleted %s", uri)
    else:
        context.log.info("%s does not exist: nothing to delete", uri)
    return [{"uri": uri, "deleted": existed, "bucket": bucket, "file-path": key}]
