"""A step's durable state (``SatelliteContext.state``) lives in its chunk's checkpoint log, in
each of the three backends: a fresh store (another pod, a re-execution) reads it back, and it
never counts as a finished item."""

from __future__ import annotations

import uuid

import pytest
from test_checkpoint_stores import BACKENDS, new_store, pg_schema_url, spec  # noqa: F401

from exosphere_dagster.runtime.checkpoint import CheckpointState
from satellite_ops.context import StepState

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("spec", BACKENDS, indirect=True)
def test_state_survives_a_new_store_and_is_not_an_item(spec):  # noqa: F811 (fixture)
    root = uuid.uuid4().hex
    log = new_store(spec).log_for(root, "llm", "c00000")
    state = CheckpointState(log)
    assert isinstance(state, StepState) and state.get("llm-batch/x") is None
    state.put("llm-batch/x", [{"batch": "batch_1", "rows": {"a~1": "h1"}}])
    log.record("a~1", [{"answer": 1}])
    state.put("llm-batch/x", [{"batch": "batch_2", "rows": {"b~2": "h2"}}])  # last put wins
    log.close()

    again = new_store(spec)  # what a retried step or a new pod builds
    reread = again.log_for(root, "llm", "c00000")
    assert reread.load() == {"a~1": [{"answer": 1}]}
    assert CheckpointState(reread).get("llm-batch/x") == [
        {"batch": "batch_2", "rows": {"b~2": "h2"}}
    ]
    assert CheckpointState(again.log_for(root, "llm", "c00001")).get("llm-batch/x") is None
    (listed,) = again.logs(root, "llm")
    assert listed.load() == {"a~1": [{"answer": 1}]}
