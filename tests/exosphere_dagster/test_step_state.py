"""A step's durable state (``SatelliteContext.state``): kept in the chunk's checkpoint log in all
three backends, read back by a new store object (a new pod), never counted as a finished item.
The LLM satellites keep their Batch API batch ids there."""

from __future__ import annotations

import uuid

import pytest
from test_checkpoint_stores import BACKENDS, new_store, pg_schema_url, spec  # noqa: F401
from test_execute import job_for, node

from exosphere_dagster.runtime.checkpoint import CheckpointState, CheckpointStore, split_state
from exosphere_dagster.runtime.execute import run_chunk
from exosphere_dagster.runtime.items import seed_items

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("spec", BACKENDS, indirect=True)
def test_state_is_durable_when_put_returns_and_is_not_a_finished_item(spec):  # noqa: F811
    root = uuid.uuid4().hex
    log = new_store(spec).log_for(root, "llm", "c00000")
    log.record("a~1", [{"answer": 1}])
    state = CheckpointState(log, {})
    state.put("llm/batches", [{"batch": "batch_1"}])
    state.put("llm/batches", [{"batch": "batch_1"}, {"batch": "batch_2"}])  # the last one wins
    assert state.get("llm/batches")[-1] == {"batch": "batch_2"}
    # read by another store object before the writer closes its log (a pod killed right after)
    items, values = split_state(new_store(spec).log_for(root, "llm", "c00000").load())
    log.close()
    assert items == {"a~1": [{"answer": 1}]}
    assert values == {"llm/batches": [{"batch": "batch_1"}, {"batch": "batch_2"}]}


def test_a_retried_step_sees_the_state_and_resumes_only_items(tmp_path):
    """What a satellite puts in ``context.state`` reaches the next run of the same chunk."""
    seen: list[tuple[str, object]] = []

    def remembers(config, input, context):  # items run concurrently: one key per item
        key = f"tries/{input['value']}"
        seen.append((input["value"], context.state.get(key)))
        context.state.put(key, (context.state.get(key) or 0) + 1)
        if input["value"] == "b":
            raise RuntimeError("b fails this time")
        return [{"value": input["value"]}]

    store = CheckpointStore(tmp_path)
    items = seed_items(["a", "b"])
    job, _ = job_for(remembers, node(retries=0), checkpoint=store.log_for("run", "sat", "c0"))
    _, first = run_chunk(job, items)
    assert (first.succeeded, len(first.failed), first.resumed) == (1, 1, 0)

    job, _ = job_for(remembers, node(retries=0), checkpoint=store.log_for("run", "sat", "c0"))
    _, second = run_chunk(job, items)
    assert (second.succeeded, len(second.failed), second.resumed) == (1, 1, 1)
    assert seen[2:] == [("b", 1)]  # only b ran again, and saw the try recorded before
