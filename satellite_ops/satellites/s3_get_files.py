"""List objects under an S3 prefix: one output object (and so one item) per file."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator

from satellite_ops import (
    FIXED_AT_LAUNCH,
    SatelliteConfig,
    SatelliteContext,
    declares_endpoints,
    normalise_single_key_maps,
    s3_endpoint,
    satellite,
)
from satellite_ops.helpers import AwsSecrets, client_for, object_item, s3_errors, s3_uri

IDENTIFIER = "satellite/exospherehost/get-files-from-s3"


class GetFilesFromS3Config(SatelliteConfig):
    """Which bucket and prefix to list, which files to keep, and how to reach S3."""

    bucket: Annotated[str, FIXED_AT_LAUNCH] = Field(description="Bucket to list.", min_length=3)
    prefix: Annotated[str, FIXED_AT_LAUNCH] = Field(
        "",
        description="Key prefix, matched literally as S3 does; end it with '/' to mean a folder.",
    )
    recursive: bool = Field(
        True, description="List every key under the prefix; false lists only its direct children."
    )
    extension: str | None = Field(
        None,
        description="Keep only keys with this extension ('pdf' or '.pdf', case-insensitive).",
    )
    endpoint_url: str | None = Field(
        None, description="S3 endpoint (MinIO, moto...); default: AWS or AWS_ENDPOINT_URL."
    )
    region: str | None = Field(None, description="AWS region; default: the boto3 default chain.")
    secrets: Annotated[AwsSecrets | None, BeforeValidator(normalise_single_key_maps)] = Field(
        None, description="AWS_ACCESS_KEY / AWS_SECRET_KEY; omit to use the default chain."
    )
    max_objects: int | None = Field(
        None, ge=1, description="Stop after this many matching objects (default: no limit)."
    )

    @field_validator("extension")
    @classmethod
    def _normalise_extension(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return "." + value.strip().lstrip(".").lower()


def _objects(client: Any, cfg: GetFilesFromS3Config) -> Iterator[dict[str, Any]]:
    """Yield listing entries page by page, so only one page is ever held."""
    params: dict[str, Any] = {"Bucket": cfg.bucket, "Prefix": cfg.prefix}
    if not cfg.recursive:
        params["Delimiter"] = "/"
    paginator = client.get_paginator("list_objects_v2")
    with s3_errors("list", s3_uri(cfg.bucket, cfg.prefix)):
        for page in paginator.paginate(**params):
            yield from page.get("Contents", ())


@declares_endpoints(lambda cfg: [s3_endpoint("source", cfg.get("bucket"), cfg.get("prefix"))])
@satellite(IDENTIFIER, config=GetFilesFromS3Config)
def get_files_from_s3(
    config: GetFilesFromS3Config, input: Mapping[str, Any], context: SatelliteContext
) -> list[dict[str, Any]]:
    """List the objects under a bucket prefix, one output object per file.

    Folder markers (keys ending in '/') are skipped; listing is paginated to any size.
    """
    client = client_for(config.endpoint_url, config.region, config.secrets)
    found: list[dict[str, Any]] = []
    for entry in _objects(client, config):
        key = entry["Key"]
        if key.endswith("/"):
            continue
        if config.extension and not key.lower().endswith(config.extension):
            continue
        found.append(object_item(config.bucket, entry))
        if config.max_objects is not None and len(found) >= config.max_objects:
            context.log.warning(
                "stopped listing %s at max-objects=%d",
                s3_uri(config.bucket, config.prefix),
                config.max_objects,
            )
            break
    context.log.info(
        "found %d object(s) under %s", len(found), s3_uri(config.bucket, config.prefix)
    )
    return found
