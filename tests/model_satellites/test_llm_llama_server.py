"""The LLM satellites against a real OpenAI-compatible server: llama.cpp's llama-server on
127.0.0.1, CPU only, serving a tiny random model. Tokenisation, concurrent batching and
schema-constrained decoding are llama.cpp's own; the answers' content is random."""

from __future__ import annotations

import asyncio
import json
import logging

import jsonschema
import pytest
import yaml
from test_llm_output_schema import reference_llm_config
from tiny_llama import server_metrics

from exosphere_dagster.entry.launch import run_cluster_file
from satellite_ops import BatchItem, SatelliteContext
from satellite_ops.satellites.deepseek_r1_distill_llama_70b import (
    DeepSeekR1DistillLlama70BConfig,
    deepseek_r1_distrill_llama_70b,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROMPT = (
    "Parse the following quarterly financial report and return a structured json output as "
    "defined in the output-schema, report text is provided below:\n"
    "{company} quarterly report, Q{quarter} 2026: revenue {revenue} million, net income 12."
)


def reference_config(url: str) -> DeepSeekR1DistillLlama70BConfig:
    raw = {**reference_llm_config(), "engine": "openai", "base-url": url, "model": "tiny"}
    return DeepSeekR1DistillLlama70BConfig.model_validate({**raw, "max-concurrency": 8})


def test_every_answer_validates_against_the_reference_schema(llama_url):
    config = reference_config(llama_url)
    before = server_metrics(llama_url)
    metrics: dict[str, float] = {}
    context = SatelliteContext(log=logging.getLogger("test.llm"), item_id="", metrics=metrics)
    items = [
        BatchItem(
            config,
            {"prompt": PROMPT.format(company=f"Co {i}", quarter=i % 4 + 1, revenue=i)},
            context,
        )
        for i in range(16)
    ]
    results = asyncio.run(deepseek_r1_distrill_llama_70b(items))
    validator = jsonschema.Draft202012Validator(config.output_schema)
    for result in results:
        assert isinstance(result, list), result  # no item failed
        (answer,) = result
        assert list(validator.iter_errors(answer)) == []
        assert set(answer) == set(config.output_schema["properties"])
    assert metrics["llm/prompts"] == 16
    assert metrics["llm/prompt_tokens"] > 16 * 100  # the byte-level tokenizer really ran
    assert metrics["llm/completion_tokens"] > 16 * 20
    after = server_metrics(llama_url)
    decodes = after["n_decode_total"] - before["n_decode_total"]
    assert 0 < decodes < metrics["llm/completion_tokens"]  # several sequences per decode step
    assert after["n_busy_slots_per_decode"] > 1


def test_a_cluster_sends_schema_valid_json_downstream(
    tmp_path, dagster_instance, llama_url, http_recorder
):
    config = {**reference_llm_config(), "engine": "openai", "base-url": llama_url, "model": "tiny"}
    cluster = {
        "version": "0.0.1b",
        "cluster": {
            "identifier": "test/llm-llama-cpp",
            "sla": "12h",
            "trigger": "api-call",
            "retries": 3,
            "delay": 0,
            "satellites": [
                {
                    "uses": "satellite/exospherehost/deepseek-r1-distrill-llama-70b",
                    "identifier": "deepseek-r1-distrill-llama-70b",
                    "config": config,
                },
                {
                    "uses": "satellite/exospherehost/call-webhook",
                    "identifier": "call-webhook",
                    "config": {
                        "url": f"{http_recorder.url}/reports",
                        "method": "POST",
                        "body": [
                            {"data": "${{ satellites.deepseek-r1-distrill-llama-70b.output }}"}
                        ],
                    },
                },
            ],
        },
    }
    path = tmp_path / "llm.yml"
    path.write_text(yaml.safe_dump(cluster, sort_keys=False))
    inputs = [{"prompt": PROMPT.format(company=f"Co {i}", quarter=1, revenue=i)} for i in range(6)]
    result = run_cluster_file(path, inputs, instance=dagster_instance)
    assert result.success
    schema = DeepSeekR1DistillLlama70BConfig.model_validate(config).output_schema
    posted = [r.json for r in http_recorder.requests if r.path == "/reports"]
    assert len(posted) == 6
    for body in posted:
        data = body["data"] if isinstance(body, dict) else body[0]["data"]
        jsonschema.validate(data, schema)
    assert json.dumps(posted)  # plain JSON all the way
