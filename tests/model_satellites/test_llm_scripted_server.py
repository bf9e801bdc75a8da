"""LLM satellites against a scripted OpenAI-compatible server (the local HTTP recorder):
request shape, <think> stripping, and invalid answers retried then routed to failure."""

from __future__ import annotations

import asyncio

import pytest
import yaml
from test_llm_output_schema import reference_llm_config

from exosphere_dagster.entry.launch import run_cluster_file
from satellite_ops import BatchItem, FatalError, RetryableError
from satellite_ops.satellites.deepseek_r1_distill_llama_70b import MODEL as DEEPSEEK_MODEL
from satellite_ops.satellites.deepseek_r1_distill_llama_70b import (
    DeepSeekR1DistillLlama70BConfig,
    deepseek_r1_distrill_llama_70b,
)
from satellite_ops.satellites.llm import LlmConfig, llm

pytestmark = pytest.mark.integration

ANSWER = {
    "company": "Acme Corp", "quarter": "Q2", "year": "2026", "revenue": 1200.5,
    "net-income": 100.0, "gross-profit": 400.0, "operating-income": 150.0,
    "net-income-margin": 0.08, "gross-profit-margin": 0.33, "operating-income-margin": 0.12,
}  # fmt: skip


def chat(content: str, finish: str = "stop") -> dict:
    """A /chat/completions answer as OpenAI-compatible servers write it."""
    return {
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 40, "completion_tokens": 25, "total_tokens": 65},
    }


def deepseek_items(url: str, prompts: list[str]) -> list[BatchItem]:
    raw = {**reference_llm_config(), "engine": "openai", "base-url": f"{url}/v1"}
    config = DeepSeekR1DistillLlama70BConfig.model_validate(raw)
    return [BatchItem(config, {"prompt": p}) for p in prompts]


def test_think_prefix_is_removed_and_the_request_asks_for_the_schema(http_recorder):
    import json

    http_recorder.reset(
        default=(200, {}, chat("<think>\nQ2 figures...\n</think>\n\n" + json.dumps(ANSWER)))
    )
    items = deepseek_items(http_recorder.url, ["report A", "report B"])
    results = asyncio.run(deepseek_r1_distrill_llama_70b(items))
    assert results == [[ANSWER], [ANSWER]]
    bodies = [r.json for r in http_recorder.requests]
    assert sorted(b["messages"][0]["content"] for b in bodies) == ["report A", "report B"]
    body = bodies[0]
    assert (body["model"], body["temperature"], body["max_tokens"]) == (DEEPSEEK_MODEL, 0.5, 1024)
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema == items[0].config.output_schema
    assert body["response_format"]["type"] == "json_schema"
    assert http_recorder.requests[0].path == "/v1/chat/completions"


def test_server_errors_are_retryable_and_refusals_are_fatal(http_recorder):
    items = deepseek_items(http_recorder.url, ["a"])
    http_recorder.reset(default=(503, {"Retry-After": "2"}, {"error": "loading model"}))
    (result,) = asyncio.run(deepseek_r1_distrill_llama_70b(items))
    assert isinstance(result, RetryableError) and result.retry_after == 2.0
    http_recorder.reset(default=(400, {}, {"error": "response_format not supported"}))
    (result,) = asyncio.run(deepseek_r1_distrill_llama_70b(items))
    assert isinstance(result, FatalError) and "response_format not supported" in str(result)


def test_missing_prompt_and_missing_endpoint_fail_only_their_items(http_recorder, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    http_recorder.reset(default=(200, {}, chat("hello")))
    good = LlmConfig.model_validate(
        {"model": "m", "engine": "openai", "base-url": http_recorder.url}
    )
    no_url = LlmConfig.model_validate({"model": "m", "engine": "openai"})
    results = asyncio.run(
        llm(
            [
                BatchItem(good, {"prompt": "hi"}),
                BatchItem(good, {}),
                BatchItem(no_url, {"prompt": "x"}),
            ]
        )
    )
    assert results[0] == [{"text": "hello"}]
    assert isinstance(results[1], FatalError) and "prompt" in str(results[1])
    assert isinstance(results[2], FatalError) and "base-url" in str(results[2])


CLUSTER = {
    "version": "0.0.1b",
    "cluster": {
        "identifier": "test/llm-bad-answers",
        "sla": "6h",
        "trigger": "api-call",
        "retries": 2,
        "delay": 0,
        "satellites": [
            {
                "uses": "satellite/exospherehost/llm",
                "identifier": "llm",
                "config": {
                    "model": "tiny",
                    "engine": "openai",
                    "output-format": "json",
                    "output-schema": '{"company": string, "revenue": number,}',
                },
            }
        ],
        "failure": {
            "from": "llm",
            "satellites": [
                {
                    "uses": "satellite/exospherehost/call-webhook",
                    "identifier": "report-failure",
                    "config": {
                        "method": "POST",
                        "body": {
                            "error": "${{ failure.error }}",
                            "attempts": "${{ failure.attempts }}",
                        },
                    },
                }
            ],
        },
    },
}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"company": "Acme", "revenue": ', "answer is not valid JSON"),
        ('{"company": "Acme", "revenue": "lots"}', "does not match output-schema at revenue"),
    ],
)
def test_invalid_answers_are_retried_then_routed_to_failure(
    tmp_path, dagster_instance, http_recorder, content, reason
):
    http_recorder.reset(default=(200, {}, chat(content)))
    spec = CLUSTER["cluster"]
    spec["satellites"][0]["config"]["base-url"] = f"{http_recorder.url}/v1"
    spec["failure"]["satellites"][0]["config"]["url"] = f"{http_recorder.url}/failed"
    path = tmp_path / "llm.yml"
    path.write_text(yaml.safe_dump(CLUSTER, sort_keys=False))
    inputs = [{"prompt": f"report {i}"} for i in range(3)]
    result = run_cluster_file(path, inputs, instance=dagster_instance)
    assert result.success  # every failure had a handler
    llm_calls = [r for r in http_recorder.requests if r.path == "/v1/chat/completions"]
    assert len(llm_calls) == 3 * 3  # each item: first try + 2 retries
    failures = [r.json for r in http_recorder.requests if r.path == "/failed"]
    assert len(failures) == 3
    for failure in failures:
        assert failure["error"].startswith("InvalidAnswerError: ")
        assert reason in failure["error"]
        assert failure["attempts"] == 3
    tags = dagster_instance.get_run_by_id(result.run_id).tags
    assert (tags["exosphere/succeeded"], tags["exosphere/routed"]) == ("0", "3")
