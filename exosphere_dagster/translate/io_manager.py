"""Where items travel between steps: pickled files under ``$DAGSTER_HOME/storage`` by default
(:class:`ChunkFiles`), or S3 (any S3-compatible endpoint) when ``EXOSPHERE_IO_S3_BUCKET`` is set,
as a deployment needs when steps run in separate pods.

``ChunkFiles`` keeps the layout and the pickles of Dagster's filesystem IO manager
(``<storage>/<run id>/<step key>/<output>[/<mapping key>]``, so a re-execution reads what a
parent run wrote with either), without its two log lines per output and input ("Writing file
at", "Loading file from"): each is a row of the event log, written in its own SQLite
transaction, about a fifth of the rows of a run whose steps do little (bench/job_execute.py).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from dagster import ConfigurableIOManagerFactory, InputContext, IOManager, OutputContext
from pydantic import Field

from exosphere_dagster.resolve.deployment import Deployment


class _PickledFiles(IOManager):
    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir

    def _path(self, context: OutputContext) -> Path:
        return self.base_dir.joinpath(*context.get_identifier())

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        with partial.open("wb") as fh:
            pickle.dump(obj, fh, pickle.HIGHEST_PROTOCOL)
        partial.replace(path)  # a step killed mid-write leaves no torn output behind

    def load_input(self, context: InputContext) -> Any:
        upstream = context.upstream_output
        assert upstream is not None, "every input of a cluster's ops comes from an output"
        with self._path(upstream).open("rb") as fh:
            return pickle.load(fh)


class ChunkFiles(ConfigurableIOManagerFactory):
    """Step outputs as pickled files, in the layout of Dagster's ``FilesystemIOManager``, without
    a log line per file (module docstring)."""

    base_dir: str | None = Field(
        default=None,
        description="Folder of the files; default: the instance's storage folder "
        "($DAGSTER_HOME/storage), as Dagster's own filesystem IO manager.",
    )

    def create_io_manager(self, context: Any) -> IOManager:
        base = self.base_dir or context.instance.storage_directory()
        return _PickledFiles(Path(base))


def io_resources(deployment: Deployment) -> dict[str, Any]:
    """The job's IO manager for ``deployment``: local pickled files, or S3."""
    config = deployment.settings
    bucket = config.io_s3_bucket
    if not bucket:
        return {"io_manager": ChunkFiles()}
    from dagster_aws.s3 import S3PickleIOManager, S3Resource

    s3 = S3Resource(endpoint_url=config.io_s3_endpoint_url or deployment.s3_endpoint_url)
    return {
        "io_manager": S3PickleIOManager(
            s3_resource=s3, s3_bucket=bucket, s3_prefix=config.io_s3_prefix
        )
    }
