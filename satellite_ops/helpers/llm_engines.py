"""The two ways an LLM satellite gets answers: vLLM in-process, or an OpenAI-compatible server.

Both take a whole batch of prompts at once, because that is where throughput comes from:
vLLM schedules the batch itself (continuous batching on the GPU), and with an HTTP server the
batch goes out as many concurrent requests that the server batches (vLLM's server, llama.cpp
with ``--parallel``, Ollama). Both enforce the output's JSON Schema while decoding, so answers
are valid by construction when the engine supports it; the satellite still checks them.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx

from satellite_ops.errors import FatalError, RetryableError, parse_retry_after

MAX_BODY_IN_ERROR = 500


@dataclass(frozen=True)
class EngineSettings:
    """What a batch shares: engine, model, sampling. Items with equal settings batch together."""

    engine: str
    model: str
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_seconds: float = 600.0
    max_concurrency: int = 16
    engine_options: str = "{}"  # JSON text, so that settings stay hashable

    @property
    def options(self) -> dict[str, Any]:
        """``engine_options`` as a mapping."""
        return json.loads(self.engine_options)


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt; ``json_schema`` asks the engine to constrain decoding to that schema."""

    prompt: str
    json_schema: dict[str, Any] | None = None
    json_mode: bool = False


@dataclass(frozen=True)
class Generation:
    """One answer and what it cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None


async def generate(
    settings: EngineSettings, requests: list[GenerationRequest]
) -> list[Generation | BaseException]:
    """Answer every request of the batch; a failed request is returned as its exception."""
    if settings.engine == "openai":
        return await _openai_batch(settings, requests)
    if settings.engine == "vllm":
        return await asyncio.to_thread(_vllm_batch, settings, requests)
    raise FatalError(f"unknown LLM engine '{settings.engine}' (use 'vllm' or 'openai')")


# -- OpenAI-compatible HTTP servers -----------------------------------------------------------
def base_url(settings: EngineSettings) -> str:
    """The endpoint's ``/v1`` URL: ``base-url`` or ``OPENAI_BASE_URL``."""
    url = settings.base_url or os.environ.get("OPENAI_BASE_URL")
    if not url:
        raise FatalError(
            "engine 'openai' needs base-url (e.g. http://vllm:8000/v1) or OPENAI_BASE_URL"
        )
    return url.rstrip("/")


def openai_body(settings: EngineSettings, request: GenerationRequest) -> dict[str, Any]:
    """The ``/chat/completions`` request body for one prompt."""
    body: dict[str, Any] = {
        "model": settings.model,
        "messages": [{"role": "user", "content": request.prompt}],
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "max_tokens": settings.max_tokens,
    }
    if request.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": request.json_schema, "strict": True},
        }
    elif request.json_mode:
        body["response_format"] = {"type": "json_object"}
    body.update(settings.options)
    return body


async def _openai_batch(
    settings: EngineSettings, requests: list[GenerationRequest]
) -> list[Generation | BaseException]:
    url = base_url(settings) + "/chat/completions"
    headers = auth_headers(settings)
    limits = httpx.Limits(
        max_connections=settings.max_concurrency, max_keepalive_connections=settings.max_concurrency
    )
    gate = asyncio.Semaphore(settings.max_concurrency)
    timeout = httpx.Timeout(settings.timeout_seconds, connect=min(10.0, settings.timeout_seconds))
    async with httpx.AsyncClient(limits=limits, timeout=timeout, headers=headers) as client:

        async def one(request: GenerationRequest) -> Generation | BaseException:
            async with gate:
                try:
                    return await _openai_call(client, url, openai_body(settings, request))
                except Exception as exc:  # noqa: BLE001 - the item's failure, not the batch's
                    return exc

        return list(await asyncio.gather(*(one(r) for r in requests)))


def auth_headers(settings: EngineSettings) -> dict[str, str]:
    """The ``Authorization`` header (``api-key`` or ``OPENAI_API_KEY``); it goes nowhere else."""
    api_key = settings.api_key or os.environ.get("OPENAI_API_KEY")
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def raise_for_status(response: httpx.Response, what: str) -> None:
    """429 and 5xx are retryable (``Retry-After`` honoured), another 4xx is fatal."""
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableError(
            f"{what}: server answered {response.status_code}: {response.text[:MAX_BODY_IN_ERROR]}",
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if response.status_code >= 400:
        raise FatalError(
            f"{what}: server refused the request ({response.status_code}): "
            f"{response.text[:MAX_BODY_IN_ERROR]}"
        )


def parse_chat_completion(data: Any) -> Generation:
    """A ``chat.completion`` object as a :class:`Generation`; ValueError when it is not one."""
    try:
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
        if not isinstance(text, str):
            raise TypeError("content is not text")
        usage = data.get("usage") or {}
        return Generation(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason=choice.get("finish_reason"),
        )
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        raise ValueError("not a chat completion") from None


async def _openai_call(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Generation:
    try:
        response = await client.post(url, json=body)
    except httpx.TimeoutException as exc:
        raise RetryableError(f"LLM request to {url} timed out ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise RetryableError(f"LLM request to {url} failed: {type(exc).__name__}: {exc}") from None
    raise_for_status(response, f"LLM request to {url}")
    try:
        return parse_chat_completion(response.json())
    except ValueError:
        raise RetryableError(
            f"LLM server sent an unexpected answer: {response.text[:MAX_BODY_IN_ERROR]}"
        ) from None


# -- vLLM, in-process offline batching ----------------------------------------------------------
_llms: dict[tuple[str, str], Any] = {}
_llms_lock = threading.Lock()


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise FatalError(
            "engine 'vllm' needs the vllm package, which runs on a GPU pod: install "
            "'exosphere-dagster[vllm]' in that image, or set engine: openai with base-url "
            f"pointing at an OpenAI-compatible server ({exc})"
        ) from None
    return vllm


def _llm(vllm: Any, settings: EngineSettings) -> Any:
    """One ``vllm.LLM`` per model and options per process: loading weights takes minutes."""
    key = (settings.model, settings.engine_options)
    with _llms_lock:
        if key not in _llms:
            _llms[key] = vllm.LLM(model=settings.model, **settings.options)
        return _llms[key]


def vllm_sampling_params(vllm: Any, settings: EngineSettings, request: GenerationRequest) -> Any:
    """``SamplingParams`` with structured output, for both the new and the older vLLM API."""
    kwargs: dict[str, Any] = {
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "max_tokens": settings.max_tokens,
    }
    if request.json_schema is not None or request.json_mode:
        target: Any = request.json_schema if request.json_schema is not None else {}
        module = vllm.sampling_params
        if hasattr(module, "StructuredOutputsParams"):  # vLLM >= 0.11
            kwargs["structured_outputs"] = module.StructuredOutputsParams(
                json=target or None, json_object=None if target else True
            )
        else:  # vLLM 0.8 - 0.10
            kwargs["guided_decoding"] = module.GuidedDecodingParams(
                json=target or None, json_object=None if target else True
            )
    return vllm.SamplingParams(**kwargs)


def _vllm_batch(
    settings: EngineSettings, requests: list[GenerationRequest]
) -> list[Generation | BaseException]:
    vllm = _import_vllm()
    llm = _llm(vllm, settings)
    params = [vllm_sampling_params(vllm, settings, r) for r in requests]
    conversations = [[{"role": "user", "content": r.prompt}] for r in requests]
    outputs = llm.chat(conversations, sampling_params=params, use_tqdm=False)
    results: list[Generation | BaseException] = []
    for output in outputs:
        completion = output.outputs[0]
        results.append(
            Generation(
                text=completion.text,
                prompt_tokens=len(output.prompt_token_ids or ()),
                completion_tokens=len(completion.token_ids or ()),
                finish_reason=completion.finish_reason,
            )
        )
    return results
