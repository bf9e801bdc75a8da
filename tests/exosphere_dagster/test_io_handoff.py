"""A step started on its upstream's *yielded* output still reads it (translate/io_manager.py).

With ``require_upstream_step_success: false`` (our executor's default, so good items of a red
chunk move on) Dagster starts the reader when the writer yields, before the IO manager has
stored the output. 100,000 items took long enough to pickle that ``generate__rechunk`` found no
file, every time (bench/large_run.py). Here the race is made certain instead of likely: the
written object pickles only once the event log shows the reader's step started. A real job,
multiprocess executor, SQLite instance.
"""

from __future__ import annotations

import time

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    execute_job,
    job,
    multiprocess_executor,
    op,
    reconstructable,
)

from exosphere_dagster.translate.io_manager import ChunkFiles

pytestmark = pytest.mark.integration


class StoredAfterReaderStarts:
    """Pickling waits for the reading step's STEP_START: the store lands after the reader began."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def __getstate__(self) -> dict:
        with DagsterInstance.get() as instance:
            while not _started(instance, self.run_id, "read"):
                time.sleep(0.05)
        return {"run_id": self.run_id}


def _started(instance: DagsterInstance, run_id: str, step_key: str) -> bool:
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_START).records
    return any(r.event_log_entry.step_key == step_key for r in records)


@op
def write(context) -> StoredAfterReaderStarts:
    return StoredAfterReaderStarts(context.run_id)


@op
def read(value: StoredAfterReaderStarts) -> str:
    return value.run_id


@job(resource_defs={"io_manager": ChunkFiles()}, executor_def=multiprocess_executor)
def handoff() -> None:
    read(write())


def test_a_reader_started_before_the_output_is_stored_waits_for_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    config = {
        "execution": {
            "config": {"step_dependency_config": {"require_upstream_step_success": False}}
        }
    }
    with (
        DagsterInstance.get() as instance,
        execute_job(reconstructable(handoff), instance=instance, run_config=config) as result,
    ):
        assert result.success, [
            e.event_specific_data.error.message
            for e in result.all_events
            if e.event_type == DagsterEventType.STEP_FAILURE
        ]
        assert result.output_for_node("read") == result.run_id
        kinds = {DagsterEventType.STEP_START, DagsterEventType.HANDLED_OUTPUT}
        order = [
            (r.event_log_entry.step_key, r.event_log_entry.dagster_event_type)
            for r in instance.get_records_for_run(result.run_id, of_type=kinds).records
        ]
    # the race happened: the reader's step started before the writer's output was stored
    started = order.index(("read", DagsterEventType.STEP_START))
    assert started < order.index(("write", DagsterEventType.HANDLED_OUTPUT))
