"""output-schema: the reference example's loose notation and JSON Schema both become JSON
Schema; answers are stripped of <think> and checked against it."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from satellite_ops.helpers.output_schema import OutputSchemaError, to_json_schema
from satellite_ops.satellites.deepseek_r1_distill_llama_70b import MODEL as DEEPSEEK_MODEL
from satellite_ops.satellites.deepseek_r1_distill_llama_70b import DeepSeekR1DistillLlama70BConfig
from satellite_ops.satellites.llm import (
    InvalidAnswerError,
    LlmConfig,
    parse_answer,
    strip_reasoning,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "structured-pdfs-fixed.yml"
FIELDS = [
    "company", "quarter", "year", "revenue", "net-income", "gross-profit", "operating-income",
    "net-income-margin", "gross-profit-margin", "operating-income-margin",
]  # fmt: skip


def reference_llm_config() -> dict:
    """The deepseek satellite's config block, exactly as the reference example writes it."""
    cluster = yaml.safe_load(EXAMPLE.read_text())["cluster"]
    (node,) = [
        s for s in cluster["satellites"] if s["identifier"] == "deepseek-r1-distrill-llama-70b"
    ]
    return node["config"]


def test_reference_example_schema_becomes_json_schema():
    config = DeepSeekR1DistillLlama70BConfig.model_validate(reference_llm_config())
    schema = config.output_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    assert list(schema["properties"]) == FIELDS
    assert schema["required"] == FIELDS
    assert schema["additionalProperties"] is False
    assert schema["properties"]["company"] == {"type": "string"}
    assert schema["properties"]["revenue"] == {"type": "number"}
    assert (config.model, config.engine, config.temperature) == (DEEPSEEK_MODEL, "vllm", 0.5)


def test_real_json_schema_is_kept_as_written():
    schema = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 3}}}
    assert to_json_schema(schema) == schema
    assert to_json_schema('{"type": "object", "properties": {"a": {"type": "integer"}}}') == {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
    }


def test_loose_notation_nesting_arrays_and_optional_keys():
    schema = to_json_schema("{name: string, tags: string[], owner?: {id: int,}, scores: [number]}")
    assert schema["required"] == ["name", "tags", "scores"]
    assert schema["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    assert schema["properties"]["owner"]["properties"] == {"id": {"type": "integer"}}
    assert schema["properties"]["scores"]["items"] == {"type": "number"}
    assert to_json_schema({"company": "string"})["properties"] == {"company": {"type": "string"}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"company": strin}', "line 1 column 13: 'company' has unknown type 'strin'"),
        ('{\n  "a": string\n  "b": number}', "line 3 column 3: expected ',' or '}' after 'a'"),
        ('{"a": string', "expected ',' or '}' after 'a', found the end"),
        ("[string]", "must describe an object"),
        ('{"type": "objekt"}', "not valid JSON Schema"),
    ],
)
def test_bad_schemas_are_config_errors_with_a_position(text, message):
    with pytest.raises(OutputSchemaError, match="output-schema") as info:
        to_json_schema(text)
    assert message in str(info.value)
    with pytest.raises(ValueError, match="output-schema\\n  Value error"):
        LlmConfig.model_validate({"model": "m", "output-schema": text})


def test_think_blocks_are_removed():
    assert strip_reasoning('<think>\nfigures first</think>\n{"a": 1}') == '{"a": 1}'
    # DeepSeek R1's chat template opens <think> itself: the answer has only the closing tag.
    assert strip_reasoning('so revenue is 5\n</think>\n\n{"a": 1}') == '{"a": 1}'
    assert strip_reasoning("<think>never finished") == ""
    assert strip_reasoning("  plain answer ") == "plain answer"


def test_answers_are_parsed_and_validated():
    config = LlmConfig.model_validate(
        {"model": "m", "output-format": "json", "output-schema": '{"a": number, "b": string}'}
    )
    assert parse_answer('<think>x</think>```json\n{"a": 1.5, "b": "x"}\n```', config) == [
        {"a": 1.5, "b": "x"}
    ]
    with pytest.raises(InvalidAnswerError, match="not valid JSON"):
        parse_answer('{"a": 1.5, "b": ', config)
    with pytest.raises(InvalidAnswerError, match="does not match output-schema at a"):
        parse_answer('{"a": "many", "b": "x"}', config)
    with pytest.raises(InvalidAnswerError, match="'b' is a required property"):
        parse_answer('{"a": 1}', config)
    text = LlmConfig.model_validate({"model": "m"})
    assert parse_answer("<think>hm</think>Hello", text) == [{"text": "Hello"}]
