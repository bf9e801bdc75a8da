"""What a chunk works out once for all its items (runtime/chunk_job.py) leaves each item's
call as it was: its own config, the same start order and concurrency bound."""

from __future__ import annotations

import asyncio
import dataclasses

from pydantic import BaseModel, model_validator
from test_execute import job_for, node

from exosphere_dagster.runtime.execute import run_chunk
from exosphere_dagster.runtime.items import seed_items


def test_a_plain_config_is_worked_out_once_and_anything_else_per_item():
    assert job_for(lambda c, i: [], node(config={"label": "x", "n": 2}))[0].plain_config == {
        "label": "x",
        "n": 2,
    }
    for config in ({"label": "${{ run.input.name }}"}, {"label": ["nested"]}):
        assert job_for(lambda c, i: [], node(config=config))[0].plain_config is None


class Consuming(BaseModel):
    """A model whose validation takes the value out of the dict it is given."""

    label: str = "missing"

    @model_validator(mode="before")
    @classmethod
    def take(cls, data: dict) -> dict:
        return {"label": data.pop("label", "missing")}


def test_each_item_validates_its_own_copy_of_a_plain_config():
    def label(config, input):
        seen = config.label
        config.label = "changed by the satellite"
        return [{"label": seen}]

    job, _ = job_for(label, node(config={"label": "x"}))
    job.definition = dataclasses.replace(job.definition, config_model=Consuming)
    children, report = run_chunk(job, seed_items([{}] * 5))
    assert [c.value["label"] for c in children] == ["x"] * 5 and not report.failed


def test_items_start_in_order_and_never_more_than_the_bound():
    started: list[int] = []
    running = {"now": 0, "peak": 0}

    async def track(config, input):
        started.append(input["n"])
        running["now"] += 1
        running["peak"] = max(running["peak"], running["now"])
        await asyncio.sleep(0.001 * (input["n"] % 4))
        running["now"] -= 1
        return [input]

    job, _ = job_for(track, node(concurrency=3))
    children, _ = run_chunk(job, seed_items([{"n": n} for n in range(30)]))
    assert started == list(range(30)) and running["peak"] == 3
    assert [c.value["n"] for c in children] == list(range(30))
