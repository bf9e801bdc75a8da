"""Where items travel between steps: Dagster's filesystem IO manager by default, or S3 (any
S3-compatible endpoint) when ``EXOSPHERE_IO_S3_BUCKET`` is set, as a deployment needs when steps
run in separate pods."""

from __future__ import annotations

import os
from typing import Any

IO_BUCKET_ENV = "EXOSPHERE_IO_S3_BUCKET"
IO_PREFIX_ENV = "EXOSPHERE_IO_S3_PREFIX"
IO_ENDPOINT_ENV = "EXOSPHERE_IO_S3_ENDPOINT_URL"


def io_resources() -> dict[str, Any]:
    bucket = os.environ.get(IO_BUCKET_ENV)
    if not bucket:
        return {}  # Dagster's default: pickled files under $DAGSTER_HOME/storage
    from dagster_aws.s3 import S3PickleIOManager, S3Resource

    s3 = S3Resource(
        endpoint_url=os.environ.get(IO_ENDPOINT_ENV) or os.environ.get("AWS_ENDPOINT_URL")
    )
    prefix = os.environ.get(IO_PREFIX_ENV, "exosphere-io")
    return {"io_manager": S3PickleIOManager(s3_resource=s3, s3_bucket=bucket, s3_prefix=prefix)}
