"""What a person reads in Dagster about a cluster (issue 21): Launchpad keys spelled as the file
spelled them, USD amounts without exponents, op descriptions from the satellite's docstrings,
named chunk types, failures that start with the item, and a summary with one edge per segment
end. The browser half is tests/ui/test_ui_polish.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import GraphDefinition, OpDefinition, Out, Output, validate_run_config

from exosphere_dagster.resolve.catalog import registry_with_plugins
from exosphere_dagster.translate.launchpad.edits import config_schema, configured_node
from exosphere_dagster.translate.ui import usd_text
from yaml_loader import load, plan

ROOT = Path(__file__).parents[2]
REFERENCE = ROOT / "examples" / "structured-pdfs-fixed.yml"
LLM = "deepseek_r1_distrill_llama_70b"


@pytest.fixture(scope="module")
def registry():
    return registry_with_plugins()


def llm_node(tmp_path: Path, registry, spelling: str) -> Any:
    text = REFERENCE.read_text()
    assert "max-tokens:" in text
    path = tmp_path / "spelled.yml"
    path.write_text(text.replace("max-tokens:", f"{spelling}:"))
    cluster = plan(load(path), registry)
    (node,) = [n for n in cluster.nodes if n.op_name == LLM]
    return node


def one_op_job(node: Any, definition: Any, seen: dict[str, Any]) -> Any:
    def compute(context, _inputs):
        seen["node"] = configured_node(node, definition, context.op_config)
        yield Output(None)

    op = OpDefinition(
        compute_fn=compute,
        name=node.op_name,
        config_schema=config_schema(node, definition),
        outs={"result": Out()},
    )
    return GraphDefinition(name="spelled", node_defs=[op]).to_job()


@pytest.mark.parametrize("spelling", ["max_tokens", "max-tokens"])
def test_launchpad_keys_are_spelled_as_the_file_spelled_them(tmp_path, registry, spelling):
    node = llm_node(tmp_path, registry, spelling)
    definition = registry.get(node.uses)
    schema = config_schema(node, definition)
    other = {"max_tokens": "max-tokens", "max-tokens": "max_tokens"}[spelling]
    assert spelling in schema and other not in schema
    assert schema[spelling].default_value == node.config[spelling]

    seen: dict[str, Any] = {}
    job = one_op_job(node, definition, seen)
    edited = {"ops": {LLM: {"config": {spelling: 77}}}}
    validate_run_config(job, edited)  # what the file wrote is what the Launchpad takes
    assert job.execute_in_process(run_config=edited).success
    assert definition.config_model.model_validate(seen["node"].config).max_tokens == 77

    # another field edited: the file's value of this one is kept, whatever its spelling
    temperature = {"ops": {LLM: {"config": {"temperature": 1.5}}}}
    assert job.execute_in_process(run_config=temperature).success
    config = definition.config_model.model_validate(seen["node"].config)
    assert (config.temperature, config.max_tokens) == (1.5, node.config[spelling])


def test_a_field_the_file_left_out_keeps_the_models_spelling(tmp_path, registry):
    node = llm_node(tmp_path, registry, "max_tokens")
    model = registry.get(node.uses).config_model
    schema = config_schema(node, registry.get(node.uses))
    left_out = [
        (name, info.alias)
        for name, info in model.model_fields.items()
        if "_" in name
        and info.alias in schema | {name: None}
        and not {name, info.alias} & set(node.config)
    ]
    assert left_out  # e.g. a timeout or sampling field the reference file does not set
    for name, alias in left_out:
        assert alias in schema and name not in schema


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (3.7e-07, "0.00000037"),
        (1.234e-05, "0.00001234"),
        (0.0123, "0.0123"),
        (12.5, "12.5"),
        (0.0, "0.0"),
    ],
)
def test_usd_amounts_are_plain_decimals(amount, text):
    assert usd_text(amount) == text
    assert "e" not in text and float(text) == pytest.approx(amount)
