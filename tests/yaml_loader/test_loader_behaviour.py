"""What a valid cluster file turns into: the ClusterPlan's identifiers, graph, retries, secrets."""

from __future__ import annotations

import textwrap

import pytest

from satellite_ops.registry import default_registry
from yaml_loader import ClusterPlan, ConfigErrors, load_text, plan
from yaml_loader.models import DEFAULT_RETRIES
from yaml_loader.templates import CompiledTemplate, render_value

S3 = "satellite/exospherehost/get-files-from-s3"
HOOK = "satellite/exospherehost/call-webhook"
DELETE = "satellite/exospherehost/delete-file-from-s3"


def cluster(body: str, *, head: str = "", identifier: str = "tests/behaviour") -> str:
    """A cluster file: fixed head, then ``head`` (cluster keys), then ``body`` (more keys)."""
    text = f"""\
version: 0.0.1b
cluster:
  identifier: {identifier}
  sla: 24h
  trigger: api-call
"""
    return (
        text
        + textwrap.indent(textwrap.dedent(head), "  ")
        + textwrap.indent(textwrap.dedent(body), "  ")
    )


def planned(text: str) -> ClusterPlan:
    return plan(load_text(text, "behaviour.yml"), default_registry())


def hook(identifier: str, extra: str = "", body: str = "x") -> str:
    """One call-webhook satellite entry; ``extra`` holds more of its keys (one per line)."""
    text = f"""\
  - uses: {HOOK}
    identifier: {identifier}
    config:
      url: https://example.com/{identifier}
      body: {body}
"""
    for line in textwrap.dedent(extra).splitlines():
        text += f"    {line}\n"
    return text


def parents_of(cluster_plan: ClusterPlan) -> dict[str, tuple[str, ...]]:
    return {n.id: n.parents for n in cluster_plan.nodes}


CHAIN = "satellites:\n" + hook("a") + hook("b") + hook("c") + hook("d")


# -- identifiers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identifier", "normalised", "job"),
    [
        ("aikin/strucutred-pdfs", "aikin/strucutred-pdfs", "aikin__strucutred_pdfs"),
        ("cluster/aikin/strucutred-pdfs", "aikin/strucutred-pdfs", "aikin__strucutred_pdfs"),
        ("my_project/nightly-2", "my_project/nightly-2", "my_project__nightly_2"),
    ],
)
def test_identifier_is_normalised_and_names_the_job(
    identifier: str, normalised: str, job: str
) -> None:
    result = planned(cluster(CHAIN, identifier=identifier))
    assert result.identifier == normalised
    assert result.job_name == job


def test_satellite_identifier_defaults_to_the_name_part_of_uses_and_names_the_op() -> None:
    result = planned(
        cluster(f"satellites:\n  - uses: {S3}\n    config: {{bucket: my-bucket}}\n" + hook("b-c"))
    )
    first, second = result.nodes
    assert (first.id, first.op_name, first.name) == (
        "get-files-from-s3",
        "get_files_from_s3",
        "get-files-from-s3",
    )
    assert (second.id, second.op_name) == ("b-c", "b_c")


# -- secrets ---------------------------------------------------------------------------------

SECRET_USER = "satellites:\n" + hook(
    "a", extra="", body="'${{ secrets.TOKEN }} ${{ secrets.OTHER }}'"
)


def test_secrets_as_a_list_of_single_key_maps_or_a_mapping_are_the_same() -> None:
    as_list = planned(
        cluster(
            SECRET_USER,
            head="secrets:\n  - TOKEN: env:TOKEN\n  - OTHER: aws-secretsmanager:prod/other#key\n",
        )
    )
    as_map = planned(
        cluster(
            SECRET_USER,
            head="secrets:\n  TOKEN: env:TOKEN\n  OTHER: aws-secretsmanager:prod/other#key\n",
        )
    )
    expected = {"TOKEN": "env:TOKEN", "OTHER": "aws-secretsmanager:prod/other#key"}
    assert dict(as_list.secrets) == dict(as_map.secrets) == expected
    assert as_list.node("a").secrets == frozenset({"TOKEN", "OTHER"})
    assert as_list.warnings == as_map.warnings == ()


def test_a_satellite_is_given_only_the_secrets_its_templates_name() -> None:
    text = cluster(
        "satellites:\n" + hook("a", body="${{ secrets.TOKEN }}") + hook("b"),
        head="secrets:\n  TOKEN: env:TOKEN\n  OTHER: env:OTHER\n",
    )
    result = planned(text)
    assert result.node("a").secrets == frozenset({"TOKEN"})
    assert result.node("b").secrets == frozenset()


def test_literal_secrets_are_accepted_with_a_warning_naming_their_line() -> None:
    text = cluster(
        SECRET_USER,
        head="secrets:\n  - TOKEN: hunter2\n  - OTHER: /var/run/secrets/other\n",
    )
    result = planned(text)
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert warning.startswith("behaviour.yml:7: secret 'TOKEN' is a literal value")
    assert "env:TOKEN" in warning
    assert "hunter2" not in warning


# -- templates in config ---------------------------------------------------------------------


def test_whole_value_templates_keep_their_type_and_embedded_ones_render_as_text() -> None:
    text = cluster(
        f"satellites:\n  - uses: {S3}\n    identifier: files\n    config: {{bucket: bkt}}\n"
        + hook(
            "notify",
            extra="",
            body="${{ satellites.files.output }}",
        ).replace(
            "url: https://example.com/notify",
            "url: https://example.com/$${{ satellites.files.output.size }}",
        )
    )
    node = planned(text).node("notify")
    body, url = node.config["body"], node.config["url"]
    assert isinstance(body, CompiledTemplate) and body.whole
    assert isinstance(url, CompiledTemplate) and not url.whole
    scope = {"satellites": {"files": {"output": {"size": 12, "file-path": "a.pdf"}}}}
    rendered = render_value(node.config, scope)
    assert rendered["body"] == {"size": 12, "file-path": "a.pdf"}
    assert rendered["url"] == "https://example.com/12"


def test_templated_values_are_not_type_checked_at_load_time_but_literals_are() -> None:
    templated = cluster(
        f"satellites:\n  - uses: {S3}\n    config:\n      bucket: bkt\n"
        "      max-objects: ${{ run.input }}\n"
    )
    assert planned(templated).nodes[0].config["max-objects"].whole
    literal = templated.replace("${{ run.input }}", "many")
    with pytest.raises(ConfigErrors, match="max-objects"):
        planned(literal)


# -- the graph -------------------------------------------------------------------------------


def test_default_parents_follow_the_list_order() -> None:
    result = planned(cluster(CHAIN))
    assert parents_of(result) == {"a": (), "b": ("a",), "c": ("b",), "d": ("c",)}
    assert [n.id for n in result.nodes] == ["a", "b", "c", "d"]


def test_explicit_parents_and_children_replace_the_default() -> None:
    text = cluster(
        "satellites:\n"
        + hook("a")
        + hook("b", extra="parents: [a]")
        + hook("c", extra="parents: [a]\nchildren: [d]")
        + hook("d", extra="parents: [b]")
    )
    assert parents_of(planned(text)) == {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}


def test_empty_parents_make_a_root() -> None:
    text = cluster("satellites:\n" + hook("a") + hook("b", extra="parents: []"))
    assert parents_of(planned(text)) == {"a": (), "b": ()}


def test_a_reference_adds_its_satellite_as_a_parent() -> None:
    text = cluster(
        "satellites:\n"
        + hook("a")
        + hook("b", extra="parents: []")
        + hook("c", extra="parents: [a]", body="${{ satellites.b.output }}")
    )
    assert parents_of(planned(text))["c"] == ("a", "b")


def test_a_reference_to_a_satellite_listed_later_but_not_downstream_reorders_the_plan() -> None:
    text = cluster(
        "satellites:\n"
        + hook("a")
        + hook("b", body="${{ satellites.c.output }}")
        + hook("c", extra="parents: [a]")
    )
    result = planned(text)
    assert parents_of(result)["b"] == ("c",)  # 'a' is implied by 'c'
    assert [n.id for n in result.nodes] == ["a", "c", "b"]


def test_parents_implied_by_other_parents_are_dropped() -> None:
    text = cluster(
        "satellites:\n"
        + hook("a")
        + hook("b")
        + hook("c", extra="parents: [a, b]")
        + hook("d", body="${{ satellites.a.output }}")
    )
    assert parents_of(planned(text)) == {"a": (), "b": ("a",), "c": ("b",), "d": ("c",)}


def test_failure_branch_routes_from_its_satellite_and_everything_downstream() -> None:
    failure = """\
failure:
  from: b
  satellites:
    - uses: satellite/exospherehost/call-webhook
      identifier: report
      config: {url: "https://example.com/failed", body: "${{ failure.error }} ${{ satellites.a.output }}"}
    - uses: satellite/exospherehost/call-webhook
      identifier: page
      config: {url: "https://example.com/page", body: "${{ satellites.report.output }}"}
"""
    result = planned(cluster(CHAIN + failure))
    assert result.failure_from == "b"
    assert result.routed_nodes() == frozenset({"b", "c", "d"})
    assert {n.id: n.parents for n in result.failure_nodes} == {"report": (), "page": ("report",)}
    assert {n.branch for n in result.failure_nodes} == {"failure"}


def test_failure_from_defaults_to_the_first_satellite() -> None:
    failure = "failure:\n  satellites:\n" + textwrap.indent(hook("report"), "  ")
    result = planned(cluster(CHAIN + failure))
    assert result.failure_from == "a"
    assert result.routed_nodes() == frozenset({"a", "b", "c", "d"})


def test_log_satellites_have_no_parents() -> None:
    logs = "logs:\n  satellites:\n" + textwrap.indent(hook("log-1") + hook("log-2"), "  ")
    result = planned(cluster(CHAIN + logs))
    assert [(n.id, n.parents, n.branch) for n in result.log_nodes] == [
        ("log-1", (), "logs"),
        ("log-2", (), "logs"),
    ]
    assert result.routed_nodes() == frozenset()


# -- retries, delays, triggers ---------------------------------------------------------------


def test_retries_and_delay_defaults() -> None:
    node = planned(cluster(CHAIN)).nodes[0]
    assert (node.retry.retries, node.retry.delay) == (DEFAULT_RETRIES, 1.0)


def test_retries_and_delay_overrides() -> None:
    text = cluster(
        "satellites:\n"
        + hook("a")
        + hook("b", extra="retries: 0\ndelay: 500ms")
        + hook("c", extra="delay: 5m\ntimeout: 1h")
        + hook("d", extra="retries: 7\ndelay: 2.5"),
        head="retries: 3\ndelay: 10s\n",
    )
    result = planned(text)
    retry = {n.id: (n.retry.retries, n.retry.delay) for n in result.nodes}
    assert retry == {"a": (3, 10.0), "b": (0, 0.5), "c": (3, 300.0), "d": (7, 2.5)}
    assert result.node("c").timeout == 3600.0
    assert result.node("a").retry.wait_before(3) == 40.0  # doubles per attempt


@pytest.mark.parametrize(
    ("trigger", "kind", "text"),
    [
        ("trigger: api-call", "api-call", "api-call"),
        ("trigger:\n    api-call:", "api-call", "api-call"),
        ('trigger:\n    cron: "0 0 * * *"\n    timezone: Europe/Berlin', "cron", "cron '0 0 * * *' (Europe/Berlin)"),
        ("trigger:\n    s3: {bucket: inbox, prefix: new/}", "s3", "new objects in s3://inbox/new/"),
        ("trigger:\n    folder: {path: /data/in, pattern: '*.pdf'}", "folder", "new files in /data/in matching *.pdf"),
    ],
)  # fmt: skip
def test_trigger_spellings(trigger: str, kind: str, text: str) -> None:
    result = planned(cluster(CHAIN).replace("trigger: api-call", trigger))
    assert result.trigger.kind == kind
    assert result.trigger_text == text


def test_sla_tier() -> None:
    result = planned(cluster(CHAIN).replace("sla: 24h", "sla: 12h"))
    assert (result.sla.name, result.sla.hours, result.sla.seconds) == ("12h", 12, 43200)


def test_a_node_knows_where_it_was_written() -> None:
    result = planned(cluster(CHAIN))
    assert (result.node("a").line, result.node("a").column) == (
        7,
        7,
    )  # the satellite's mapping, after '- '
    assert result.file == "behaviour.yml"
