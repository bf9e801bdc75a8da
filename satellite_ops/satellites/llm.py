"""LLM satellites: one batch of prompts per chunk, structured JSON answers checked and retried.

LLM satellites are batched (a whole chunk of items per call: vLLM offline batching, or many
requests in flight to an OpenAI-compatible server, is where the cost per token drops). When
the SLA leaves time, an ``openai`` chunk goes through the provider's Batch API instead, at the
batch price (``batch:``, ``helpers/llm_batch_mode.py``). The engine constrains decoding to the
output schema; the satellite then strips a reasoning model's ``<think>`` block, parses and
validates the answer, and fails only that item (retryable) when it does not fit, so the
runtime retries it and finally routes it to the failure branch.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from satellite_ops import (
    BatchItem,
    FatalError,
    Resources,
    RetryableError,
    SatelliteConfig,
    SatelliteContext,
    describe_validation_error,
    satellite,
    secret_or_none,
)
from satellite_ops.helpers import (
    EngineSettings,
    Generation,
    GenerationRequest,
    OutputSchemaError,
    answer_through_batch,
    batch_wanted,
    generate,
    to_json_schema,
    validate_answer,
)

IDENTIFIER = "satellite/exospherehost/llm"

logger = logging.getLogger(__name__)
_THINK_END = re.compile(r"</think\s*>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"^\s*<think\s*>", re.IGNORECASE)
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(?P<body>.*?)\n\s*```\s*$", re.DOTALL)


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
        None,
        description="Expected shape of a JSON answer: JSON Schema, or the loose "
        '`{"key": string, ...}` notation (turned into JSON Schema at load time).',
    )
    engine: Literal["vllm", "openai"] = Field(
        "vllm", description="'vllm' (offline batch on a GPU) or any OpenAI-compatible endpoint."
    )
    base_url: str | None = Field(
        None, description="Base URL of the OpenAI-compatible endpoint (default: OPENAI_BASE_URL)."
    )
    api_key: SecretStr | None = Field(
        None, description="API key of that endpoint (default: OPENAI_API_KEY)."
    )
    timeout_seconds: float = Field(600.0, gt=0, description="Timeout of one request, in seconds.")
    max_concurrency: int = Field(
        16, ge=1, le=1024, description="Requests in flight at once with the 'openai' engine."
    )
    engine_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra engine arguments: vllm.LLM(...) keywords (tensor_parallel_size, "
        "max_model_len...) or extra fields of the OpenAI request body.",
    )
    batch: Literal["auto", "always", "never"] = Field(
        "auto",
        description="'openai' engine: send a chunk through the Batch API (half price, answers "
        "within hours) when the run's SLA tier allows it ('auto'), whatever the tier "
        "('always'), or never. Near the run's deadline a chunk answers synchronously.",
    )

    @model_validator(mode="after")
    def _batch_needs_openai(self) -> LlmConfig:
        if self.batch == "always" and self.engine != "openai":
            raise ValueError(
                "batch: always needs engine: openai (a Batch API is an OpenAI-compatible "
                "server's); vllm already batches a chunk on the step's GPU"
            )
        return self

    @field_validator("output_schema", mode="after")
    @classmethod
    def _schema(cls, value: str | dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            return to_json_schema(value)
        except OutputSchemaError as exc:
            raise ValueError(str(exc)) from None


class LlmInput(SatelliteConfig):
    """What to ask the model for one item."""

    prompt: str = Field(description="The prompt, usually templated with a parent's output.")


class InvalidAnswerError(RetryableError):
    """The model's answer is not the JSON the config asks for; another sample may be."""


def strip_reasoning(text: str) -> str:
    """Drop a reasoning model's ``<think>...</think>`` block (or its tail, when the chat
    template opened it, as DeepSeek R1's does) and keep the answer after it."""
    parts = _THINK_END.split(text)
    if len(parts) > 1:
        return parts[-1].strip()
    if _THINK_OPEN.match(text):  # an unfinished thought: there is no answer yet
        return ""
    return text.strip()


def parse_answer(text: str, config: LlmConfig) -> list[dict[str, Any]]:
    """The output objects of one answer: ``{"text": ...}``, or the validated JSON object."""
    answer = strip_reasoning(text)
    if config.output_format == "text":
        return [{"text": answer}]
    fenced = _FENCE.match(answer)
    if fenced:
        answer = fenced.group("body")
    try:
        value = json.loads(answer)
    except json.JSONDecodeError as exc:
        raise InvalidAnswerError(
            f"answer is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
            f"{answer[:200]!r}"
        ) from None
    if config.output_schema is not None:
        try:
            validate_answer(value, config.output_schema)
        except ImportError as exc:
            raise FatalError(str(exc)) from None
        except ValueError as exc:
            raise InvalidAnswerError(str(exc)) from None
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    return [{"value": value}]


def _settings(config: LlmConfig) -> EngineSettings:
    return EngineSettings(
        engine=config.engine,
        model=config.model,
        temperature=config.temperature,
        top_p=config.top_p,
        max_tokens=config.max_tokens,
        base_url=config.base_url,
        api_key=secret_or_none(config.api_key),
        timeout_seconds=config.timeout_seconds,
        max_concurrency=config.max_concurrency,
        engine_options=json.dumps(config.engine_options, sort_keys=True, default=str),
    )


def _request(item: BatchItem, config: LlmConfig) -> GenerationRequest:
    try:
        prompt = LlmInput.model_validate(dict(item.input or {})).prompt
    except ValidationError as exc:
        raise FatalError(f"invalid input: {describe_validation_error(exc)}") from None
    json_out = config.output_format == "json"
    return GenerationRequest(
        prompt=prompt,
        json_schema=config.output_schema if json_out else None,
        json_mode=json_out,
    )


def _record(
    context: SatelliteContext | None, generations: list[Generation], seconds: float, batch: int
) -> dict[str, float]:
    """Token counts and throughput of one engine batch, logged once and handed to the runtime
    through ``context.metrics`` where the runtime provides one. The counts include what the
    Batch API answered (``llm/batch_*``, counted by ``llm_batch_mode``)."""
    prompt = sum(g.prompt_tokens for g in generations)
    completion = sum(g.completion_tokens for g in generations)
    stats = {
        "llm/prompts": float(batch),
        "llm/prompt_tokens": float(prompt),
        "llm/completion_tokens": float(completion),
        "llm/seconds": round(seconds, 4),
        "llm/completion_tokens_per_s": round(completion / seconds, 2) if seconds > 0 else 0.0,
    }
    log = context.log if context is not None else logger
    log.info(
        "llm batch: %d prompt(s), %d answered, %d prompt + %d completion tokens in %.2fs "
        "(%.1f completion tokens/s)",
        batch,
        len(generations),
        prompt,
        completion,
        seconds,
        stats["llm/completion_tokens_per_s"],
    )
    metrics = getattr(context, "metrics", None)
    if metrics is not None:
        for key, value in stats.items():
            if not key.endswith("_per_s"):
                metrics[key] = metrics.get(key, 0.0) + value
    return stats


async def answer_batch(
    items: list[BatchItem], config_model: type[LlmConfig]
) -> list[list[dict[str, Any]] | BaseException]:
    """Answer a chunk: items with the same engine settings go to the engine as one batch
    (the Batch API's, or the engine's own; see ``batch``)."""
    results: list[list[dict[str, Any]] | BaseException | None] = [None] * len(items)
    groups: dict[tuple[EngineSettings, str], list[tuple[int, GenerationRequest, LlmConfig]]] = {}
    for index, item in enumerate(items):
        config = item.config
        if not isinstance(config, config_model):
            results[index] = FatalError(
                f"config is a {type(config).__name__}, not the validated {config_model.__name__}"
            )
            continue
        try:
            member = (index, _request(item, config), config)
        except FatalError as exc:
            results[index] = exc
            continue
        groups.setdefault((_settings(config), config.batch), []).append(member)
    for (settings, mode), members in groups.items():
        context = _context_of([items[i] for i, _, _ in members])
        started = time.perf_counter()
        try:
            requests = [request for _, request, _ in members]
            if batch_wanted(mode, settings.engine, context):
                ids = [
                    items[i].context.item_id if items[i].context else str(i) for i, _, _ in members
                ]
                raw = await answer_through_batch(settings, requests, ids, context)
            else:
                raw = await generate(settings, requests)
        except Exception as exc:  # noqa: BLE001 - the engine failed: every member gets it
            raw = [exc] * len(members)
        seconds = time.perf_counter() - started
        answered = [g for g in raw if isinstance(g, Generation)]
        _record(context, answered, seconds, len(members))
        for (index, _, config), outcome in zip(members, raw, strict=True):
            if isinstance(outcome, BaseException):
                results[index] = outcome
                continue
            try:
                results[index] = parse_answer(outcome.text, config)
            except InvalidAnswerError as exc:
                if outcome.finish_reason == "length":
                    exc = InvalidAnswerError(f"{exc} (cut at max-tokens={config.max_tokens})")
                results[index] = exc
            except Exception as exc:  # noqa: BLE001 - whatever the answer is, only its item fails
                results[index] = exc
    return [r if r is not None else FatalError("no answer") for r in results]


def _context_of(items: list[BatchItem]) -> SatelliteContext:
    """What the items of one call share (run, deadline, state, metrics): the first item's
    context; a bare one when the satellite is called outside a run."""
    return next(
        (i.context for i in items if i.context is not None),
        SatelliteContext(log=logger, item_id=""),
    )


@satellite(
    IDENTIFIER,
    config=LlmConfig,
    input_model=LlmInput,
    batched=True,
    max_concurrency=1,
    resources=Resources(gpu=1),
)
async def llm(items: list[BatchItem]) -> list[list[dict[str, Any]] | BaseException]:
    """Answer each item's prompt with an LLM, a whole chunk as one batch.

    JSON answers are constrained by the engine, stripped of ``<think>``, parsed and checked
    against ``output-schema``; a bad answer fails only its item (retried, then routed).
    """
    return await answer_batch(items, LlmConfig)
