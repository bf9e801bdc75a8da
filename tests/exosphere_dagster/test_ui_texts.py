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


def test_ops_describe_their_satellite_and_name_their_types(registry):
    from exosphere_dagster.translate.job import build_job

    job = build_job(plan(load(REFERENCE), registry), registry)
    webhook = job.graph.node_named("call_webhook").definition
    definition = registry.get("satellite/exospherehost/call-webhook")
    text = webhook.description
    assert definition.description and text.startswith(definition.description)  # its docstring
    assert "Satellite **call-webhook** (`satellite/exospherehost/call-webhook`)." in text
    assert definition.config_model.__doc__.strip() in text  # its config model's
    assert "`call_webhook[c00000]` runs `call_webhook` over chunk c00000" in text
    types = {d.name: d.dagster_type for d in (*webhook.input_defs, *webhook.output_defs)}
    assert types["items"].display_name == "ExosphereChunk"
    assert types["report"].display_name == "ExosphereChunkReports"
    assert "chunk of items" in types["items"].description
    start = job.graph.node_named("exosphere__start").definition
    assert start.output_defs[0].dagster_type.display_name == "ExosphereChunk"


def test_the_summary_has_one_report_edge_per_segment_end(registry):
    from exosphere_dagster.translate.job import build_job

    job = build_job(plan(load(REFERENCE), registry), registry)
    summary = job.graph.node_named("exosphere__summary").definition
    reports = sorted(d.name for d in summary.input_defs if d.name.startswith("report_"))
    # segments: the S3 listing | parse -> llm -> webhook -> delete | move -> pagerduty
    assert reports == [
        "report_delete_file_from_s3",
        "report_get_files_from_s3",
        "report_send_pagerduty_alert",
    ]
    assert len(summary.input_defs) == 8  # was 13: one report edge per satellite
    deps = job.graph.dependency_structure.input_to_upstream_outputs_for_node("exosphere__summary")
    assert sum(len(outputs) for outputs in deps.values()) == 8


def test_a_failed_item_is_the_first_words_of_its_step_and_run_failure(tmp_path, sqlite_instance):
    from clusters import cluster, fan_out, record, write_cluster
    from exosphere_dagster.entry.launch import run_cluster_file

    label = "${{ satellites.items.output.label }}"
    satellites = [
        fan_out("items", count=3, prefix="item-"),
        record("record", label, tmp_path, fail_for=["item-1"]),
        record("again", label, tmp_path),
    ]
    path = write_cluster(tmp_path, "c.yml", cluster("test/first-words", satellites, retries=0))
    result = run_cluster_file(path, instance=sqlite_instance)
    assert not result.success
    failures = {
        e.step_key: e.event_specific_data.error
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    }
    step = failures["record[c00000]"]
    assert step.cls_name == "ItemFailed"
    first = step.message.splitlines()[0]
    assert first.startswith("ItemFailed: item-1~") or first.startswith("ItemFailed: input.0.1~")
    assert first.endswith("at 'record': RuntimeError: cannot process item-1")
    assert "dagster._core" not in step.message
    summary = failures["exosphere__summary"]
    assert summary.message.startswith("ItemsFailed: record: 1 item(s) failed")
    (run_failure,) = [
        r.dagster_event
        for r in sqlite_instance.all_logs(result.run_id)
        if r.dagster_event and r.dagster_event.event_type_value == "PIPELINE_FAILURE"  # RUN_FAILURE
    ]
    assert run_failure.event_specific_data.error.message == step.message  # the first red step

    # counts stay right with the reports travelling along the segment (record -> again)
    tags = sqlite_instance.get_run_by_id(result.run_id).tags
    counts = [tags[f"exosphere/{k}"] for k in ("items", "succeeded", "routed", "failed")]
    assert counts == ["3", "2", "0", "1"]
