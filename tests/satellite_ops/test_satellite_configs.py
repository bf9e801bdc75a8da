"""Config models: kebab-case keys, strictness, single-key map lists, secrets, the reference file."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from satellite_ops import default_registry
from satellite_ops.config import (
    describe_validation_error,
    iter_secret_values,
    normalise_single_key_maps,
)
from satellite_ops.satellites.deepseek_r1_distill_llama_70b import MODEL as DEEPSEEK_MODEL
from satellite_ops.satellites.deepseek_r1_distill_llama_70b import DeepSeekR1DistillLlama70BConfig
from satellite_ops.satellites.llm import LlmConfig
from satellite_ops.satellites.new_relic import NewRelicLogsConfig
from satellite_ops.satellites.parse_pdf import ParsePdfWithDoclingConfig
from satellite_ops.satellites.s3_get_files import GetFilesFromS3Config
from satellite_ops.satellites.s3_move import MoveToS3Config
from satellite_ops.satellites.webhook import CallWebhookConfig

REFERENCE = Path(__file__).parent / "data" / "reference-cluster.yml"


def _reference_steps() -> list[dict]:
    cluster = yaml.safe_load(REFERENCE.read_text())["cluster"]
    return [
        *cluster["satellites"],
        *cluster["logs"]["satellites"],
        *cluster["failure"]["satellites"],
    ]


@pytest.mark.parametrize("step", _reference_steps(), ids=lambda step: step["identifier"])
def test_reference_example_configs_validate(step: dict) -> None:
    definition = default_registry().get(step["uses"])
    config = definition.config_model.model_validate(step.get("config") or {})
    assert config is not None
    if "input" in step and definition.input_model is not None:
        definition.input_model.model_validate(step["input"])


def test_every_builtin_field_has_a_description() -> None:
    registry = default_registry()
    for identifier in registry.identifiers():
        if not identifier.startswith("satellite/exospherehost/"):
            continue
        definition = registry.get(identifier)
        models = [definition.config_model, definition.input_model]
        for model in filter(None, models):
            for name, info in model.model_fields.items():
                assert info.description, f"{model.__name__}.{name} has no description"
                for inner in (info.annotation, *typing.get_args(info.annotation)):
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        models.append(inner)


def test_kebab_case_and_field_names_both_accepted() -> None:
    by_alias = ParsePdfWithDoclingConfig.model_validate({"output-format": "json"})
    by_name = ParsePdfWithDoclingConfig.model_validate({"output_format": "json"})
    assert by_alias == by_name
    assert by_alias.model_dump(by_alias=True)["output-format"] == "json"


def test_unknown_key_is_an_error() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        GetFilesFromS3Config.model_validate({"bucket": "abc", "prefx": "x"})


def test_frozen() -> None:
    config = GetFilesFromS3Config(bucket="abc")
    with pytest.raises(ValidationError):
        config.bucket = "other"  # type: ignore[misc]


def test_single_key_maps_and_mapping_are_equivalent() -> None:
    as_list = CallWebhookConfig.model_validate(
        {"url": "https://x.test", "headers": [{"A": "1"}, {"B": "2"}]}
    )
    as_map = CallWebhookConfig.model_validate(
        {"url": "https://x.test", "headers": {"A": "1", "B": 2}}
    )
    assert {k: v.get_secret_value() for k, v in as_list.headers.items()} == {"A": "1", "B": "2"}
    assert as_list == as_map


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (
            [{"A": "1", "B": "2"}],
            "entry 0 has 2 keys (A, B); a list entry must be a single-key map",
        ),
        (["A=1"], "entry 0 must be a single-key map like `- NAME: value`, got str"),
        ([{"A": "1"}, {"A": "2"}], "entry 1 repeats the key 'A'"),
        ("A=1", "expected a list of single-key maps"),
    ],
)
def test_single_key_map_errors(headers: object, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CallWebhookConfig.model_validate({"url": "https://x.test", "headers": headers})
    assert message in str(caught.value)


def test_secrets_never_in_repr_or_errors() -> None:
    config = GetFilesFromS3Config.model_validate(
        {
            "bucket": "abc",
            "secrets": [{"AWS_ACCESS_KEY": "AKIASECRETVALUE1"}, {"AWS_SECRET_KEY": "s3cr3t-value"}],
        }
    )
    assert "AKIASECRETVALUE1" not in repr(config) and "s3cr3t-value" not in repr(config)
    assert sorted(iter_secret_values(config)) == ["AKIASECRETVALUE1", "s3cr3t-value"]
    webhook = CallWebhookConfig.model_validate(
        {"url": "https://x.test", "headers": [{"Authorization": "Bearer tok-123456789"}]}
    )
    assert "tok-123456789" not in repr(webhook)
    with pytest.raises(ValidationError) as caught:
        NewRelicLogsConfig.model_validate(
            {"account-id": 1, "api-key": "nr-secret", "region": "mars"}
        )
    text = describe_validation_error(caught.value)
    assert "region" in text and "nr-secret" not in text


def test_s3_secrets_need_both_keys_and_reject_typos() -> None:
    with pytest.raises(ValidationError, match="both AWS_ACCESS_KEY and AWS_SECRET_KEY"):
        GetFilesFromS3Config.model_validate({"bucket": "abc", "secrets": [{"AWS_ACCESS_KEY": "x"}]})
    with pytest.raises(ValidationError, match="AWS_ACESS_KEY"):
        GetFilesFromS3Config.model_validate({"bucket": "abc", "secrets": [{"AWS_ACESS_KEY": "x"}]})
    with pytest.raises(ValidationError, match="DESTINATION_AWS_ACCESS_KEY and DESTINATION"):
        MoveToS3Config.model_validate(
            {
                "origin-bucket": "abc",
                "origin-file-path": "a",
                "destination-bucket": "def",
                "destination-file-path": "b",
                "secrets": [{"DESTINATION_AWS_SECRET_KEY": "x"}],
            }
        )


@pytest.mark.parametrize(("given", "expected"), [("pdf", ".pdf"), (".PDF", ".pdf"), ("", None)])
def test_extension_normalised(given: str, expected: str | None) -> None:
    assert GetFilesFromS3Config(bucket="abc", extension=given).extension == expected


@pytest.mark.parametrize(("given", "expected"), [("3-7", (3, 7)), ("5", (5, 5)), ([2, 4], (2, 4))])
def test_page_range(given: object, expected: tuple[int, int]) -> None:
    assert ParsePdfWithDoclingConfig.model_validate({"page-range": given}).page_range == expected


@pytest.mark.parametrize("given", ["7-3", "0-2", "pages"])
def test_bad_page_range(given: str) -> None:
    with pytest.raises(ValidationError, match="page-range"):
        ParsePdfWithDoclingConfig.model_validate({"page-range": given})


def test_llm_configs() -> None:
    assert DeepSeekR1DistillLlama70BConfig().model == DEEPSEEK_MODEL
    with pytest.raises(ValidationError, match="model"):
        LlmConfig.model_validate({})
    with pytest.raises(ValidationError, match="less than or equal to 2"):
        LlmConfig.model_validate({"model": "m", "temperature": 3})
    schema = {"type": "object"}
    assert LlmConfig.model_validate({"model": "m", "output-schema": schema}).output_schema == schema


def test_webhook_method_and_url() -> None:
    assert (
        CallWebhookConfig.model_validate({"url": "http://x.test", "method": "put"}).method == "PUT"
    )
    with pytest.raises(ValidationError, match="http:// or https://"):
        CallWebhookConfig.model_validate({"url": "ftp://x.test"})
    with pytest.raises(ValidationError):
        CallWebhookConfig.model_validate({"url": "http://x.test", "method": "FETCH"})


def test_coerce_accepts_instances_and_mappings() -> None:
    config = GetFilesFromS3Config(bucket="abc")
    assert GetFilesFromS3Config.coerce(config) is config
    assert GetFilesFromS3Config.coerce({"bucket": "abc"}) == config


def test_new_relic_endpoint() -> None:
    base = {"account-id": "1", "api-key": "k"}
    assert NewRelicLogsConfig.model_validate(base).url == "https://log-api.newrelic.com/log/v1"
    eu = NewRelicLogsConfig.model_validate({**base, "region": "eu"})
    assert eu.url == "https://log-api.eu.newrelic.com/log/v1"
    custom = NewRelicLogsConfig.model_validate({**base, "endpoint": "http://127.0.0.1:1/x"})
    assert custom.url == "http://127.0.0.1:1/x"


def test_json_schemas_use_kebab_case() -> None:
    registry = default_registry()
    for identifier in registry.identifiers():
        if identifier.startswith("satellite/exospherehost/"):
            schema = registry.get(identifier).config_model.model_json_schema(by_alias=True)
            assert all("_" not in key for key in schema.get("properties", {})), identifier


@given(st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=6))
def test_single_key_map_list_matches_mapping(values: dict[str, str]) -> None:
    as_list = [{key: value} for key, value in values.items()]
    assert normalise_single_key_maps(as_list) == normalise_single_key_maps(values) == values
