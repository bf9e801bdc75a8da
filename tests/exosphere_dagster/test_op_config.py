"""Satellites as ops with config schemas (issue 10), on the reference cluster.

Each test builds small Dagster jobs whose ops carry ``config_schema(node, definition)`` and read
``configured_node(...)`` from ``context.op_config``; Dagster's own run-config validation and a
real SQLite instance do the launching. Expected values come from the cluster file read with
plain ``yaml.safe_load``, not from the code under test.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from dagster import (
    DagsterInvalidConfigError,
    DependencyDefinition,
    Failure,
    GraphDefinition,
    JobDefinition,
    OpDefinition,
    Out,
    Output,
    op,
    validate_run_config,
)
from dagster._serdes import serialize_value
from pydantic import BaseModel, Field, SecretStr

from exosphere_dagster.resolve.catalog import registry_with_plugins
from exosphere_dagster.translate.launchpad.edits import (
    check_run_config,
    config_schema,
    configured_node,
    defaults,
)
from exosphere_dagster.translate.launchpad.fields import TEMPLATED, model_schema
from yaml_loader import load, plan
from yaml_loader.ir import ClusterPlan, SatelliteNode
from yaml_loader.templates import CompiledTemplate

ROOT = Path(__file__).parents[2]
REFERENCE = ROOT / "examples" / "structured-pdfs-fixed.yml"
DOCLING, LLM, WEBHOOK = "parse_pdf_with_docling", "deepseek_r1_distrill_llama_70b", "call_webhook"
DELETE, MOVE, LOGS = "delete_file_from_s3", "move_to_failure_bucket", "send_logs_to_new_relic"
PAGER = "send_pagerduty_alert"
SECRET_FIELDS = {"api-key", "headers", "secrets", "pagerduty-api-key"}
# where a satellite holding a secret sends it: fixed by the cluster file, never edited per run
GUARDED_FIELDS = {"url", "base-url", "endpoint", "endpoint-url", "region", "verify-tls"}


@pytest.fixture(scope="module")
def registry():
    return registry_with_plugins()


@pytest.fixture(scope="module")
def cluster(registry) -> ClusterPlan:
    return plan(load(REFERENCE), registry)


def nodes(cluster: ClusterPlan) -> dict[str, SatelliteNode]:
    return {n.op_name: n for n in (*cluster.nodes, *cluster.failure_nodes, *cluster.log_nodes)}


def satellite_job(cluster: ClusterPlan, registry, seen: dict[str, Any]) -> JobDefinition:
    """One op per satellite with the satellite's schema; each records the node it would run."""

    def make(node: SatelliteNode) -> OpDefinition:
        definition = registry.get(node.uses)

        def compute(context, inputs):
            seen[node.op_name] = configured_node(node, definition, context.op_config)
            yield Output(None)

        return OpDefinition(
            compute_fn=compute,
            name=node.op_name,
            config_schema=config_schema(node, definition),
            outs={"result": Out()},
        )

    ops = [make(node) for node in nodes(cluster).values()]
    return GraphDefinition(name=cluster.job_name, node_defs=ops).to_job()


def op_fields(job: JobDefinition, op_name: str) -> dict[str, Any]:
    """The Dagster fields of an op's config schema, as the job holds them."""
    return job.graph.node_named(op_name).definition.config_schema.config_type.fields


def run_config(op_name: str, **config: Any) -> dict[str, Any]:
    return {"ops": {op_name: {"config": config}}}


def file_config(op_name: str) -> dict[str, Any]:
    """A satellite's config exactly as the reference file writes it."""
    spec = yaml.safe_load(REFERENCE.read_text())["cluster"]
    satellites = [*spec["satellites"], *spec["failure"]["satellites"], *spec["logs"]["satellites"]]
    for sat in satellites:
        if sat["identifier"].replace("-", "_") == op_name:
            return sat["config"]
    raise KeyError(op_name)


def test_schema_holds_the_model_fields_with_the_file_values_as_defaults(cluster, registry):
    job = satellite_job(cluster, registry, {})
    resolved = validate_run_config(job, {})["ops"]  # an empty run config is valid
    assert resolved[DOCLING]["config"]["language"] == "en"
    assert resolved[LLM]["config"]["temperature"] == 0.5
    assert resolved[WEBHOOK]["config"]["method"] == "POST"
    for op_name in nodes(cluster):
        for key, value in file_config(op_name).items():
            if key not in SECRET_FIELDS | GUARDED_FIELDS:
                assert resolved[op_name]["config"][key] == value, (op_name, key)
    assert "url" not in resolved[WEBHOOK]["config"]  # the bearer header's destination

    llm = op_fields(job, LLM)
    model = registry.get(nodes(cluster)[LLM].uses).config_model
    assert llm["temperature"].config_type.given_name == "Float"
    assert llm["temperature"].description == model.model_fields["temperature"].description
    assert llm["max-tokens"].config_type.given_name == "Int"  # keys spelled as in the file
    method = op_fields(job, WEBHOOK)["method"]
    assert {"GET", "POST", "PUT"} <= set(method.config_type.config_values)
    docling = op_fields(job, DOCLING)
    assert docling["output-format"].config_type.config_values == ["markdown-string", "json", "text"]


def test_a_launch_with_an_edited_value_uses_it(cluster, registry, sqlite_instance):
    seen: dict[str, Any] = {}
    job = satellite_job(cluster, registry, seen)
    assert job.execute_in_process(instance=sqlite_instance).success
    assert all(seen[name] is node for name, node in nodes(cluster).items())  # defaults: the plan

    edited = {
        "ops": {
            **run_config(LLM, temperature=1.25)["ops"],
            **run_config(WEBHOOK, method="PUT")["ops"],
        }
    }
    assert check_run_config(cluster, registry, edited) == []
    assert job.execute_in_process(run_config=edited, instance=sqlite_instance).success
    llm, webhook = seen[LLM], seen[WEBHOOK]
    assert llm.config["temperature"] == 1.25
    assert llm.config["max-tokens"] == file_config(LLM)["max-tokens"]
    assert webhook.config["method"] == "PUT"
    plan_webhook = nodes(cluster)[WEBHOOK]
    assert webhook.config["headers"] == plan_webhook.config["headers"]  # the secret field: kept
    assert webhook.secrets == plan_webhook.secrets
    assert configured_node(plan_webhook, registry.get(plan_webhook.uses), {"method": "PUT"}) is (
        configured_node(plan_webhook, registry.get(plan_webhook.uses), {"method": "PUT"})
    )


@pytest.mark.parametrize(
    ("op_name", "key", "value", "path"),
    [
        (LLM, "temperature", "hot", f"root:ops:{LLM}:config:temperature"),
        (WEBHOOK, "method", "FETCH", f"root:ops:{WEBHOOK}:config:method"),
        (DOCLING, "extract-images", "maybe", f"root:ops:{DOCLING}:config:extract-images"),
        (LLM, "api-key", "sk-from-the-launchpad", f"root:ops:{LLM}:config"),  # not in the schema
    ],
)
def test_dagster_refuses_a_badly_typed_value_with_its_key_path(
    cluster, registry, op_name, key, value, path
):
    job = satellite_job(cluster, registry, {})
    with pytest.raises(DagsterInvalidConfigError) as caught:
        validate_run_config(job, run_config(op_name, **{key: value}))
    assert path in str(caught.value)
    assert key in str(caught.value)


def test_an_out_of_range_value_is_reported_with_its_key_path(cluster, registry):
    job = satellite_job(cluster, registry, {})
    config = run_config(LLM, temperature=3.5)
    validate_run_config(job, config)  # a Float: Dagster cannot see the model's bound
    [problem] = check_run_config(cluster, registry, config)
    assert problem.startswith(f"ops.{LLM}.config.temperature: ")
    assert "less than or equal to 2" in problem and "3.5" in problem and "(fix: " in problem


def test_a_start_op_fails_the_run_before_any_satellite_runs(cluster, registry, sqlite_instance):
    """The lead's start op calls check_run_config on ``context.run_config``, which holds only
    what the launch gave (not Dagster's filled-in defaults): both shapes must work."""
    ran: list[SatelliteNode] = []
    llm = nodes(cluster)[LLM]
    definition = registry.get(llm.uses)

    @op
    def start(context):
        problems = check_run_config(cluster, registry, context.run_config)
        if problems:
            raise Failure("\n".join(problems), allow_retries=False)

    @op(name=LLM, config_schema=config_schema(llm, definition))
    def satellite(context, _ready):
        ran.append(configured_node(llm, definition, context.op_config))

    job = GraphDefinition(
        name="guarded",
        node_defs=[start, satellite],
        dependencies={LLM: {"_ready": DependencyDefinition("start")}},
    ).to_job()
    bad = job.execute_in_process(
        run_config=run_config(LLM, temperature=3.5), instance=sqlite_instance, raise_on_error=False
    )
    assert not bad.success and ran == []
    failure = bad.failure_data_for_node("start").error.message
    assert f"ops.{LLM}.config.temperature" in failure

    good = job.execute_in_process(
        run_config=run_config(LLM, temperature=1.5), instance=sqlite_instance
    )
    assert good.success and ran[-1].config["temperature"] == 1.5


def test_templated_values_stay_valid(cluster, registry, tmp_path):
    """delete-file-from-s3's file-path is fixed by the file; with `launch-editable` it may be
    edited, and a templated edit is judged as the file's would be."""
    edited = "archive/${{ satellites.get-files-from-s3.output.file-name }}"
    config = run_config(DELETE, **{"file-path": edited})
    [refusal] = check_run_config(cluster, registry, config)
    assert "'file-path' is fixed by the cluster file" in refusal
    assert "`launch-editable: [file-path]`" in refusal
    text = REFERENCE.read_text().replace(
        "          identifier: delete-file-from-s3\n",
        "          identifier: delete-file-from-s3\n          launch-editable: [file-path]\n",
    )
    (tmp_path / "editable.yml").write_text(text)
    cluster = plan(load(tmp_path / "editable.yml"), registry)
    delete = nodes(cluster)[DELETE]
    assert delete.launch_editable == {"file-path"}
    schema = config_schema(delete, registry.get(delete.uses))
    assert defaults(schema)["file-path"] == file_config(DELETE)["file-path"]  # `$${{ ... }}` text
    validate_run_config(satellite_job(cluster, registry, {}), config)
    assert check_run_config(cluster, registry, config) == []
    node = configured_node(
        delete, registry.get(delete.uses), {**defaults(schema), "file-path": edited}
    )
    template = node.config["file-path"]
    assert isinstance(template, CompiledTemplate) and template.source == edited
    assert [r.path[0] for r in template.references] == ["get-files-from-s3"]


def test_a_templated_number_accepts_any_value_and_the_model_judges_it(registry, tmp_path):
    text = REFERENCE.read_text().replace(
        "max-tokens: 1024", "max-tokens: ${{ run.input.max-tokens }}"
    )
    (tmp_path / "templated.yml").write_text(text)
    cluster = plan(load(tmp_path / "templated.yml"), registry)
    job = satellite_job(cluster, registry, {})
    field = op_fields(job, LLM)["max-tokens"]
    assert field.config_type.given_name == "Any" and TEMPLATED in field.description
    assert field.default_value == "${{ run.input.max-tokens }}"
    for value in (512, "${{ run.input.tokens }}", "many"):
        validate_run_config(job, run_config(LLM, **{"max-tokens": value}))
    assert check_run_config(cluster, registry, run_config(LLM, **{"max-tokens": 512})) == []
    templated = run_config(LLM, **{"max-tokens": "${{ run.input.tokens }}"})
    assert check_run_config(cluster, registry, templated) == []
    [problem] = check_run_config(cluster, registry, run_config(LLM, **{"max-tokens": "many"}))
    assert problem.startswith(f"ops.{LLM}.config.max-tokens: ") and "an integer" in problem


@pytest.mark.parametrize(
    ("op_name", "key", "value", "expected"),
    [
        (DOCLING, "language", "${{ satellites.call-webhook.output }}", "is not an ancestor"),
        (DOCLING, "language", "${{ satellites.nope.output }}", "names an unknown satellite"),
        (DOCLING, "language", "${{ secrets.UNDECLARED }}", "is not declared in cluster.secrets"),
        (DOCLING, "language", "${{ secrets.API_BEARER_TOKEN }}", "in the cluster file"),
        (DOCLING, "language", "${{ run.nope }}", "'run.nope' is not available"),
        (DOCLING, "language", "${{ satellites. }}", "template syntax error"),
        (DOCLING, "language", "${{ failure.error }}", "only in the failure branch"),
        (LOGS, "application-id", "${{ satellites.get-files-from-s3.output }}", "log satellites"),
        (PAGER, "source", "${{ satellites.parse-pdf-with-docling.output }}", "ancestor"),
    ],
)
def test_references_are_checked_as_the_loader_checks_them(
    cluster, registry, op_name, key, value, expected
):
    [problem] = check_run_config(cluster, registry, run_config(op_name, **{key: value}))
    assert problem.startswith(f"ops.{op_name}.config.{key}: ")
    assert expected in problem and "(fix: " in problem


def test_references_the_node_can_read_are_accepted(cluster, registry):
    ok = {
        DOCLING: {"language": "${{ cluster.identifier }}-${{ run.id }}"},
        PAGER: {"source": "${{ satellites.get-files-from-s3.output.key }}"},
        WEBHOOK: {"url": "https://x.test/${{ satellites.deepseek-r1-distrill-llama-70b.output }}"},
        LOGS: {"application-id": "${{ secrets.NEW_RELIC_ACCOUNT_ID }}x"},
    }
    config = {"ops": {name: {"config": values} for name, values in ok.items()}}
    assert check_run_config(cluster, registry, config) == []


def test_no_secret_reaches_the_schema(registry, tmp_path):
    text = REFERENCE.read_text()
    text = text.replace("max-tokens: 1024", "max-tokens: 1024\n            api-key: sk-LITERAL-1")
    text = text.replace(
        "Authorization: Bearer ${{ secrets.API_BEARER_TOKEN }}",
        "Authorization: Bearer tok-LITERAL-2\n              - X-Key: ${{ secrets.API_BEARER_TOKEN }}",
    )
    (tmp_path / "literal.yml").write_text(text)
    cluster = plan(load(tmp_path / "literal.yml"), registry)
    assert nodes(cluster)[LLM].config["api-key"] == "sk-LITERAL-1"
    job = satellite_job(cluster, registry, {})
    snapshot = job.get_config_schema_snapshot()
    dumped = serialize_value(snapshot)
    for value in ("LITERAL", "your-aws", "your-api-bearer-token"):
        assert value not in dumped
    for name in nodes(cluster):
        key = job.graph.node_named(name).definition.config_schema.config_type.key
        fields = {f.name for f in snapshot.get_config_snap(key).fields}
        assert fields and not fields & SECRET_FIELDS, name
    webhook = nodes(cluster)[WEBHOOK]
    edited = configured_node(webhook, registry.get(webhook.uses), {"method": "PUT"})
    assert edited.config["headers"] == webhook.config["headers"]


class _Inner(BaseModel):
    depth: int = Field(2, description="How deep.")


class _Sealed(BaseModel):
    token: SecretStr | None = None


def _model(values: tuple[str, ...]) -> type[BaseModel]:
    class Mode(BaseModel):
        mode: Literal[values] = Field(values[0], description="Which mode.")  # type: ignore[valid-type]
        tags: list[str] = Field(default_factory=list, description="Tags.")
        extra: dict[str, Any] = Field(default_factory=dict, description="Anything.")
        labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
        limit: int | None = Field(None, description="Optional limit.")
        either: int | str = Field(1, description="A union.")
        inner: _Inner = Field(default_factory=_Inner, description="A nested model.")
        sealed: _Sealed = Field(default_factory=_Sealed, description="Holds a secret inside.")

    return Mode


def test_types_map_to_dagster_types_and_enum_names_never_clash():
    a, b = model_schema(_model(("x", "y")), {}), model_schema(_model(("x", "z")), {"limit": 3})
    kinds = {k: f.config_type.kind.name for k, f in a.items()}
    assert kinds == {
        "mode": "ENUM",
        "tags": "ARRAY",
        "extra": "PERMISSIVE_SHAPE",
        "labels": "MAP",
        "limit": "NONEABLE",
        "either": "ANY",
        "inner": "STRICT_SHAPE",
    }
    assert a["mode"].config_type.given_name != b["mode"].config_type.given_name  # same model name
    assert a["mode"].config_type is model_schema(_model(("x", "y")), {})["mode"].config_type
    assert b["limit"].default_value == 3 and a["limit"].default_value is None
    assert a["inner"].config_type.fields["depth"].default_value == 2
    assert all(f.description for f in a.values())


class Tree(BaseModel):
    """A model that holds itself: a tree of named nodes."""

    name: str = "root"
    children: list[Tree] = []
    parent: Tree | None = None


def test_a_model_that_holds_itself_is_typed_at_its_first_level_and_free_below():
    """Dagster's config types cannot refer to themselves: the schema of a recursive model used to
    recurse until Python's limit, which took the whole code location down."""
    schema = model_schema(Tree, {"children": [{"name": "a", "children": [{"name": "b"}]}]})
    assert schema["name"].config_type.kind.name == "SCALAR"
    children = schema["children"].config_type
    assert children.kind.name == "ARRAY" and children.inner_type.kind.name == "ANY"
    assert schema["parent"].config_type.kind.name == "NONEABLE"
    job = GraphDefinition(
        name="tree", node_defs=[op(name="grow", config_schema=schema)(lambda: None)]
    ).to_job()
    deep = {"name": "x", "children": [{"name": "y", "children": [{"name": "z"}]}]}
    assert validate_run_config(job, {"ops": {"grow": {"config": deep}}})


class Derived(BaseModel):
    name: str = "report"
    title: str = Field(default_factory=lambda data: data["name"].title())  # from the fields


def test_a_default_made_from_the_other_fields_is_left_to_the_model():
    """A default factory that reads the validated fields has no value of its own: the schema
    offers none (it used to call the factory with no fields, and the job could not be built)."""
    title = model_schema(Derived, {})["title"]
    assert not title.is_required and not title.default_provided
    assert Derived.model_validate({"name": "weekly"}).title == "Weekly"


class Shade(enum.StrEnum):
    LIGHT = "light"
    DARK = "dark"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Styled(BaseModel):
    shade: Shade = Shade.DARK
    shades: list[Shade] = [Shade.LIGHT]
    level: Level = Level.HIGH


def test_enum_defaults_of_str_and_int_enums_are_their_values():
    """A StrEnum's or IntEnum's member is a str or an int too: it was passed to Dagster as the
    member, which Dagster refuses, so such a model's job could not be built."""
    schema = model_schema(Styled, {})
    assert schema["shade"].default_value == "dark" and type(schema["shade"].default_value) is str
    assert schema["shades"].default_value == ["light"]
    assert schema["level"].default_value == 2 and type(schema["level"].default_value) is int
    job = GraphDefinition(
        name="styled", node_defs=[op(name="paint", config_schema=schema)(lambda: None)]
    ).to_job()
    assert validate_run_config(job, {})["ops"]["paint"]["config"]["shade"] == "dark"
