"""Where items travel between steps: pickled files under ``$DAGSTER_HOME/storage`` by default
(:class:`ChunkFiles`), or S3 (any S3-compatible endpoint) when ``EXOSPHERE_IO_S3_BUCKET`` is set,
as a deployment needs when steps run in separate pods.

``ChunkFiles`` keeps the layout and the pickles of Dagster's filesystem IO manager
(``<storage>/<run id>/<step key>/<output>[/<mapping key>]``, so a re-execution reads what a
parent run wrote with either), without its two log lines per output and input ("Writing file
at", "Loading file from"): each is a row of the event log, written in its own SQLite
transaction, about a fifth of the rows of a run whose steps do little (bench/job_execute.py).

A reader may run before its file is written: with ``require_upstream_step_success: false``
(our executor's default, so good items of a red chunk move on) Dagster starts a downstream step
as soon as the upstream *yields* its output, and the IO manager stores it only after that
event. A large chunk takes long enough to pickle that the reader would find no file. So a
reader waits for the file while the step that writes it has not ended (the event log says when
it has); a file appears whole or not at all (written aside, then renamed).
"""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path
from typing import Any

from dagster import (
    ConfigurableIOManagerFactory,
    DagsterEventType,
    InputContext,
    IOManager,
    OutputContext,
)
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
        path = self._path(upstream)
        if upstream.run_id == context.step_context.run_id:
            _await_written(path, context, upstream.step_key)
        with path.open("rb") as fh:
            return pickle.load(fh)


ENDED = {DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}


def _await_written(path: Path, context: InputContext, step_key: str) -> None:
    """Return once ``path`` exists, or once ``step_key`` ended without writing it (the open
    that follows then names the missing file). Polls with a growing pause, up to 0.5 s."""
    pause = 0.005
    while not path.exists():
        records = context.instance.get_records_for_run(
            context.step_context.run_id, of_type=ENDED
        ).records
        if any(r.event_log_entry.step_key == step_key for r in records):
            return
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


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
