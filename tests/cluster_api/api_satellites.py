"""Satellites for the cluster API tests, beside the README tour's own (``my_satellites``): one
that refuses a word, so a run has an item routed to its failure branch."""

from __future__ import annotations

from pydantic import BaseModel, Field

from satellite_ops import satellite


class PickyConfig(BaseModel):
    refuse: str = Field(description="The word this satellite refuses.")


@satellite("satellite/apitest/picky", config=PickyConfig)
def picky(config: PickyConfig, input: dict) -> list[dict]:
    """Pass items through, failing the one whose ``word`` is ``refuse``."""
    if input.get("word") == config.refuse:
        raise ValueError(f"{config.refuse} is not acceptable")
    return [input]
