"""DeepSeek R1 Distill Llama 70B: the LLM satellite (``llm.py``) with its model preset.

The reference cluster names this satellite; its ``<think>`` reasoning is dropped from the
answer by the LLM satellite's own parsing.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from satellite_ops import BatchItem, Resources, satellite
from satellite_ops.satellites.llm import LlmConfig, LlmInput, answer_batch

IDENTIFIER = "satellite/exospherehost/deepseek-r1-distrill-llama-70b"
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"


class DeepSeekR1DistillLlama70BConfig(LlmConfig):
    """:class:`LlmConfig` with DeepSeek R1 Distill Llama 70B as the default model."""

    model: str = Field(MODEL, description="Model name; defaults to DeepSeek R1 70B.")


@satellite(
    IDENTIFIER,
    config=DeepSeekR1DistillLlama70BConfig,
    input_model=LlmInput,
    batched=True,
    max_concurrency=1,
    resources=Resources(gpu=1),
)
async def deepseek_r1_distrill_llama_70b(
    items: list[BatchItem],
) -> list[list[dict[str, Any]] | BaseException]:
    """Answer each item's prompt with DeepSeek R1 Distill Llama 70B, a whole chunk per batch.

    The same satellite as ``satellite/exospherehost/llm`` with the model preset; its
    ``<think>`` reasoning is dropped from the answer.
    """
    return await answer_batch(items, DeepSeekR1DistillLlama70BConfig)
