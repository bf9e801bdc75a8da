"""The vLLM engine's call shape, checked against a stand-in ``vllm`` module (vLLM itself has no
CPU build; on a GPU pod the same code runs against the real package)."""

from __future__ import annotations

import asyncio
import json
import sys
import types
from dataclasses import dataclass, field

import pytest

from satellite_ops import BatchItem, FatalError
from satellite_ops.helpers import llm_engines as engines
from satellite_ops.satellites.llm import LlmConfig, llm


@dataclass
class Params:
    """Whatever keywords SamplingParams / StructuredOutputsParams were built with."""

    kwargs: dict = field(default_factory=dict)


class FakeLLM:
    instances: list[FakeLLM] = []

    def __init__(self, model: str, **options):
        self.model, self.options, self.calls = model, options, []
        FakeLLM.instances.append(self)

    def chat(self, conversations, sampling_params, use_tqdm):
        self.calls.append((conversations, sampling_params))
        outputs = []
        for conversation in conversations:
            prompt = conversation[0]["content"]
            text = "<think>checking</think>" + json.dumps({"company": prompt.upper()})
            completion = types.SimpleNamespace(text=text, token_ids=[1] * 7, finish_reason="stop")
            outputs.append(types.SimpleNamespace(prompt_token_ids=[1] * 11, outputs=[completion]))
        return outputs


def fake_vllm(new_api: bool) -> types.ModuleType:
    module = types.ModuleType("vllm")
    sampling = types.ModuleType("vllm.sampling_params")
    name = "StructuredOutputsParams" if new_api else "GuidedDecodingParams"
    setattr(sampling, name, lambda **kw: Params(kw))
    module.sampling_params = sampling
    module.SamplingParams = lambda **kw: Params(kw)
    module.LLM = FakeLLM
    return module


@pytest.fixture(params=[True, False], ids=["structured_outputs", "guided_decoding"])
def vllm_module(request, monkeypatch):
    FakeLLM.instances.clear()
    monkeypatch.setattr(engines, "_llms", {})
    module = fake_vllm(request.param)
    monkeypatch.setitem(sys.modules, "vllm", module)
    return request.param


def items(prompts, **config):
    base = {"model": "org/model", "output-format": "json", "output-schema": '{"company": string}'}
    validated = LlmConfig.model_validate({**base, **config})
    return [BatchItem(validated, {"prompt": p}) for p in prompts]


def test_one_llm_per_process_and_one_chat_call_per_batch(vllm_module):
    options = {"engine-options": {"tensor_parallel_size": 2}}
    first = asyncio.run(llm(items(["acme", "globex", "initech"], **options)))
    second = asyncio.run(llm(items(["hooli"], **options)))
    assert first == [[{"company": "ACME"}], [{"company": "GLOBEX"}], [{"company": "INITECH"}]]
    assert second == [[{"company": "HOOLI"}]]
    (instance,) = FakeLLM.instances  # weights load once per process
    assert (instance.model, instance.options) == ("org/model", {"tensor_parallel_size": 2})
    assert [len(conversations) for conversations, _ in instance.calls] == [3, 1]
    params = instance.calls[0][1][0].kwargs
    assert (params["temperature"], params["max_tokens"]) == (0.0, 1024)
    structured = params["structured_outputs" if vllm_module else "guided_decoding"].kwargs
    assert structured["json"]["properties"] == {"company": {"type": "string"}}


def test_missing_vllm_is_a_clear_fatal_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    (result,) = asyncio.run(llm(items(["acme"])))
    assert isinstance(result, FatalError)
    assert "exosphere-dagster[vllm]" in str(result) and "engine: openai" in str(result)
