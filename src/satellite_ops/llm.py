"""Config models of the LLM satellites; the engines ship with the [vllm] extra.

LLM satellites are batched (a whole chunk of items per call: vLLM offline batching is where
the cost per token drops) and ask for one GPU.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr

from satellite_ops.config import SatelliteConfig
from satellite_ops.context import BatchItem
from satellite_ops.registry import Resources, satellite

IDENTIFIER = "satellite/exospherehost/llm"
DEEPSEEK_IDENTIFIER = "satellite/exospherehost/deepseek-r1-distrill-llama-70b"
DEEPSEEK_MODEL = "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"


class LlmConfig(SatelliteConfig):
    """Which model answers, how it samples, and which engine serves it."""

    model: str = Field(description="Model name (Hugging Face id for vLLM, or the API's name).")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature (0 to 2).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling probability mass.")
    max_tokens: int = Field(1024, ge=1, description="Most tokens generated per prompt.")
    output_format: Literal["json", "text"] = Field(
        "text", description="'json' parses (and checks) the answer as JSON; 'text' keeps it."
    )
    output_schema: str | dict[str, Any] | None = Field(
        None, description="Expected shape of a JSON answer: a JSON Schema or a textual sketch."
    )
    engine: Literal["vllm", "openai"] = Field(
        "vllm", description="'vllm' (offline batch on a GPU) or any OpenAI-compatible endpoint."
    )
    base_url: str | None = Field(None, description="Base URL of the OpenAI-compatible endpoint.")
    api_key: SecretStr | None = Field(None, description="API key of that endpoint.")
    timeout_seconds: float = Field(600.0, gt=0, description="Timeout of one batch, in seconds.")
    max_concurrency: int = Field(
        16, ge=1, le=1024, description="Requests in flight at once with the 'openai' engine."
    )


class DeepSeekR1DistillLlama70BConfig(LlmConfig):
    """:class:`LlmConfig` with DeepSeek R1 Distill Llama 70B as the default model."""

    model: str = Field(DEEPSEEK_MODEL, description="Model name; defaults to DeepSeek R1 70B.")


class LlmInput(SatelliteConfig):
    """What to ask the model for one item."""

    prompt: str = Field(description="The prompt, usually templated with a parent's output.")


def _not_in_build(identifier: str) -> NotImplementedError:
    return NotImplementedError(
        f"{identifier} is not implemented in this build: LLM support ships with the [vllm] "
        "extra work (vLLM offline batching, or an OpenAI-compatible endpoint)"
    )


@satellite(
    IDENTIFIER,
    config=LlmConfig,
    input_model=LlmInput,
    batched=True,
    max_concurrency=1,
    resources=Resources(gpu=1),
)
def llm(items: list[BatchItem]) -> list[list[dict[str, Any]] | BaseException]:
    """Answer each item's prompt with an LLM, a whole batch per call.

    Not in this build: the engines ship with the [vllm] extra work.
    """
    raise _not_in_build(IDENTIFIER)


@satellite(
    DEEPSEEK_IDENTIFIER,
    config=DeepSeekR1DistillLlama70BConfig,
    input_model=LlmInput,
    batched=True,
    max_concurrency=1,
    resources=Resources(gpu=1),
)
def deepseek_r1_distrill_llama_70b(
    items: list[BatchItem],
) -> list[list[dict[str, Any]] | BaseException]:
    """Answer each item's prompt with DeepSeek R1 Distill Llama 70B, a whole batch per call.

    Not in this build: the engines ship with the [vllm] extra work.
    """
    raise _not_in_build(DEEPSEEK_IDENTIFIER)
