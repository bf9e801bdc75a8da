"""Where items travel between steps: Dagster's filesystem IO manager by default, or S3 (any
S3-compatible endpoint) when ``EXOSPHERE_IO_S3_BUCKET`` is set, as a deployment needs when steps
run in separate pods."""

from __future__ import annotations

from typing import Any

from exosphere_dagster.resolve.deployment import Deployment


def io_resources(deployment: Deployment) -> dict[str, Any]:
    """The job's IO manager for ``deployment``: none (Dagster's default) or S3."""
    config = deployment.settings
    bucket = config.io_s3_bucket
    if not bucket:
        return {}  # Dagster's default: pickled files under $DAGSTER_HOME/storage
    from dagster_aws.s3 import S3PickleIOManager, S3Resource

    s3 = S3Resource(endpoint_url=config.io_s3_endpoint_url or deployment.s3_endpoint_url)
    return {
        "io_manager": S3PickleIOManager(
            s3_resource=s3, s3_bucket=bucket, s3_prefix=config.io_s3_prefix
        )
    }
