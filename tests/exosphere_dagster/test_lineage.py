"""Clusters in the asset catalog: each satellite is an asset wired to its parents and to the
places it names (S3 prefixes, webhook URLs, PagerDuty, New Relic), shared across clusters, and
each run's counts are materializations whose history Dagster keeps."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from dagster import AssetKey, AssetSpec, Definitions
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql
from pydantic import Field

from clusters import cluster, failure_branch, fan_out, note, satellite_entry, write_cluster
from exosphere_dagster.definitions import build_definitions
from exosphere_dagster.entry.launch import run_cluster_file
from exosphere_dagster.resolve.catalog import registry_with_plugins
from exosphere_dagster.translate.lineage import cluster_asset_specs, run_materializations
from satellite_ops import satellite
from satellite_ops.config import SatelliteConfig
from satellite_ops.endpoints import Endpoint, declares_endpoints
from satellite_ops.registry import SatelliteRegistry
from yaml_loader import load, plan

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "examples" / "structured-pdfs-fixed.yml"
JOB = "aikin__strucutred_pdfs"
TAG_VALUE = re.compile(r"^[A-Za-z0-9_.-]{0,63}$")


def by_key(specs: list[AssetSpec]) -> dict[str, AssetSpec]:
    keys = [s.key.to_user_string() for s in specs]
    assert len(keys) == len(set(keys)), keys
    return dict(zip(keys, specs, strict=True))


def deps(spec: AssetSpec) -> set[str]:
    return {d.asset_key.to_user_string() for d in spec.deps}


def acyclic_graph(specs: list[AssetSpec]):
    """The asset graph Dagster builds from ``specs``; toposorting it fails on a cycle."""
    graph = Definitions(assets=specs).get_repository_def().asset_graph
    assert graph.toposorted_asset_keys
    return graph


def write_12h(path: Path, identifier: str, satellites: list[dict], **fields) -> Path:
    """A 12h cluster of ``satellites`` written to ``path``."""
    return write_cluster(
        path.parent, path.name, cluster(identifier, satellites, sla="12h", **fields)
    )


S3_LIST = "satellite/exospherehost/get-files-from-s3"
S3_MOVE = "satellite/exospherehost/move-to-s3"
WEBHOOK = "satellite/exospherehost/call-webhook"


def test_reference_cluster_is_satellites_sources_and_sinks():
    registry = registry_with_plugins()
    reference = plan(load(REFERENCE), registry)
    specs = by_key(cluster_asset_specs(reference, registry))
    for node in (*reference.nodes, *reference.failure_nodes):
        spec = specs[f"{JOB}/{node.op_name}"]
        assert spec.group_name == JOB
        assert spec.metadata["uses"] == node.uses and node.name in spec.description
        assert all(TAG_VALUE.match(v) for v in spec.tags.values()), spec.tags
    s3_source = "external/s3/s3 aikin-financial-reports › sec"
    assert deps(specs[f"{JOB}/get_files_from_s3"]) == {s3_source}
    for node in reference.nodes[1:]:  # main satellites hang off their parents
        assert deps(specs[f"{JOB}/{node.op_name}"]) == {
            f"{JOB}/{p.replace('-', '_')}" for p in node.parents
        }
    routed = {f"{JOB}/{reference.node(n).op_name}" for n in reference.routed_nodes()}
    assert len(routed) == 4  # parse-pdf-with-docling and everything after it
    move = specs[f"{JOB}/move_to_failure_bucket"]
    assert deps(move) == routed | {"external/s3/s3 aikin-financial-reports-failure"}
    assert deps(specs[f"{JOB}/send_pagerduty_alert"]) == {f"{JOB}/move_to_failure_bucket"}
    sinks = {
        "external/webhook/webhook api.aikin.com › v1 › financial-reports": "call_webhook",
        "external/s3/s3 aikin-financial-reports-failure › failed › quaterly-financial-reports": (
            "move_to_failure_bucket"
        ),
        "external/s3/s3 aikin-financial-reports": "delete_file_from_s3",
        "external/pagerduty/PagerDuty": "send_pagerduty_alert",
        "external/newrelic/New Relic": "send_logs_to_new_relic",
    }
    for key, writer in sinks.items():
        assert deps(specs[key]) == {f"{JOB}/{writer}"}, key
    assert deps(specs[s3_source]) == set()
    assert "file-name" in move.description  # the per-item part of the key is shown, not keyed
    assert specs["external/pagerduty/PagerDuty"].kinds == {"pagerduty"}
    assert "events.pagerduty.com/v2/enqueue" in specs["external/pagerduty/PagerDuty"].description
    assert len(acyclic_graph(list(specs.values())).get_all_asset_keys()) == len(specs)


def test_urls_keep_scheme_host_and_path_only_and_templates_stop_at_their_literal_part(tmp_path):
    hooks = [
        satellite_entry(
            S3_LIST, "listing", {"bucket": "${{ cluster.identifier }}", "prefix": "in"}
        ),
        satellite_entry(
            WEBHOOK,
            "tokened",
            {"url": "https://bob:pa55word@hooks.example.com:8443/v1/in?token=qs-t0ken"},
        ),
        satellite_entry(
            WEBHOOK,
            "per-item",
            {"url": "https://api.example.com/items/${{ satellites.listing.output.etag }}"},
        ),
        satellite_entry(
            WEBHOOK, "templated-host", {"url": "https://${{ satellites.listing.output.bucket }}/x"}
        ),
        satellite_entry(
            WEBHOOK,
            "literal-secret",
            {"url": "https://hooks.example.com/services/T0/B0/literal-s3cret-value"},
        ),
    ]
    secrets = {"HOOK": "literal-s3cret-value"}
    path = write_12h(tmp_path / "hooks.yml", "acme/hooks", hooks, secrets=secrets)
    registry = registry_with_plugins()
    specs = by_key(cluster_asset_specs(plan(load(path), registry), registry))
    external = {k for k in specs if k.startswith("external/")}
    assert external == {
        "external/webhook/webhook hooks.example.com:8443 › v1 › in",
        "external/webhook/webhook api.example.com › items",
    }  # no templated bucket, no templated host, no literal secret
    text = repr(list(specs.values()))
    for secret in ("pa55word", "qs-t0ken", "bob", "literal-s3cret-value"):
        assert secret not in text


LOG_SINKS = "satellite/exospherehost/send-logs-to-{}"


def test_places_are_titled_by_service_and_place_not_their_last_path_segment(tmp_path):
    """Dagster's lineage graph shows an asset's last key part: it names the service and place."""
    main = [
        satellite_entry(S3_LIST, "listing", {"bucket": "reports", "prefix": "in/sec"}),
        satellite_entry(WEBHOOK, "hook", {"url": "https://api.example.com/v1/hook"}),
    ]
    key = "${{ secrets.KEY }}"
    logs = [
        satellite_entry(
            LOG_SINKS.format("new-relic"), "nr", {"api-key": key, "account-id": "1", "region": "eu"}
        ),
        satellite_entry(
            LOG_SINKS.format("cloudwatch"),
            "cw",
            {"log-group": "/exo/runs", "log-stream": "nightly"},
        ),
        satellite_entry(
            LOG_SINKS.format("otlp"), "otlp", {"endpoint": "http://collector:4318/v1/logs"}
        ),
    ]
    alert = satellite_entry(
        "satellite/exospherehost/send-pagerduty-alert",
        "page",
        {"pagerduty-api-key": key, "pagerduty-service-id": "svc"},
    )
    path = write_12h(
        tmp_path / "places.yml",
        "acme/places",
        main,
        secrets={"KEY": "env:KEY"},
        logs=logs,
        failure=failure_branch("hook", [alert]),
    )
    registry = registry_with_plugins()
    specs = by_key(cluster_asset_specs(plan(load(path), registry), registry))
    titles = {spec.key.path[-1] for key, spec in specs.items() if key.startswith("external/")}
    assert titles == {
        "s3 reports › in › sec",
        "webhook api.example.com › v1 › hook",
        "PagerDuty",
        "New Relic log-api.eu.newrelic.com",
        "CloudWatch Logs exo › runs › nightly",
        "OpenTelemetry collector:4318",
    }
    for title in titles:  # never the last URL segment alone (v1, enqueue, hook, sec)
        assert title not in ("v1", "enqueue", "hook", "sec", "logs")
        assert "/" not in title  # Dagster's UI splits keys on it


def shared_bucket_clusters(folder: Path) -> None:
    folder.mkdir()
    file_away = {
        "origin-bucket": "shared-bucket",
        "origin-file-path": "$${{ satellites.list.output.file-path }}",
        "destination-bucket": "shared-bucket",
        "destination-file-path": "done/$${{ satellites.list.output.file-name }}",
    }
    first = [
        satellite_entry(S3_LIST, "list", {"bucket": "shared-bucket", "prefix": "incoming/"}),
        satellite_entry(S3_MOVE, "file-away", file_away),
    ]
    write_12h(folder / "a.yml", "acme/first", first)
    second = [
        satellite_entry(S3_LIST, "list", {"bucket": "shared-bucket", "prefix": "done"}),
        satellite_entry(S3_LIST, "list-again", {"bucket": "shared-bucket", "prefix": "incoming"}),
    ]
    write_12h(folder / "b.yml", "acme/second", second)
    on_new_file = [satellite_entry("satellite/test/fan-out", "on-new-file")]
    trigger = {"s3": {"bucket": "shared-bucket", "prefix": "done/"}}
    write_12h(folder / "c.yml", "acme/third", on_new_file, trigger=trigger)
    (folder / "broken.yml").write_text("version: 0.0.1b\ncluster: [\n")


def test_clusters_naming_the_same_place_share_its_asset_and_chain_through_it(tmp_path):
    shared_bucket_clusters(tmp_path / "clusters")
    defs = build_definitions(tmp_path / "clusters")
    Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    incoming = AssetKey(["external", "s3", "s3 shared-bucket › incoming"])
    done = AssetKey(["external", "s3", "s3 shared-bucket › done"])
    readers = {k.to_user_string() for k in graph.get(incoming).child_keys}
    assert readers == {"acme__first/list", "acme__second/list_again"}  # one node, two clusters
    assert {k.to_user_string() for k in graph.get(done).parent_keys} == {"acme__first/file_away"}
    children = {k.to_user_string() for k in graph.get(done).child_keys}
    assert children == {"acme__second/list", "acme__third/on_new_file"}  # a trigger reads too
    assert graph.toposorted_asset_keys
    assert repo.has_job("invalid__broken") and repo.has_job("acme__first")


def test_a_cluster_writing_where_it_reads_keeps_the_graph_acyclic(tmp_path, caplog):
    back = {
        "origin-bucket": "loop-bucket",
        "origin-file-path": "$${{ satellites.list.output.file-path }}",
        "destination-bucket": "loop-bucket",
        "destination-file-path": "in/$${{ satellites.list.output.file-name }}x",
    }
    loop = [
        satellite_entry(S3_LIST, "list", {"bucket": "loop-bucket", "prefix": "in/"}),
        satellite_entry(S3_MOVE, "back", back),
    ]
    path = write_12h(tmp_path / "loop.yml", "acme/loop", loop)
    registry = registry_with_plugins()
    with caplog.at_level(logging.WARNING, logger="exosphere"):
        specs = by_key(cluster_asset_specs(plan(load(path), registry), registry))
    assert deps(specs["external/s3/s3 loop-bucket › in"]) == set()  # the closing edge is left out
    assert "external/s3/s3 loop-bucket › in" in deps(specs["acme__loop/list"])
    assert "acyclic" in caplog.text
    acyclic_graph(list(specs.values()))


class TableConfig(SatelliteConfig):
    table: str = Field(description="Table to write.")


def test_bring_your_own_satellite_declares_its_endpoints(tmp_path, caplog):
    registry = SatelliteRegistry()

    @declares_endpoints(
        lambda cfg: [
            Endpoint("sink", "postgres", ("warehouse", *cfg.get("table").split(".")), "postgres")
        ]
    )
    @satellite("satellite/acme/to-table", config=TableConfig, registry=registry)
    def to_table(config, input):
        return [input]

    def broken(cfg):
        raise RuntimeError("boom")

    @declares_endpoints(broken)
    @satellite("satellite/acme/broken-lineage", config=TableConfig, registry=registry)
    def other(config, input):
        return [input]

    byo = [
        satellite_entry("satellite/acme/to-table", config={"table": "public.reports"}),
        satellite_entry("satellite/acme/broken-lineage", config={"table": "x"}),
    ]
    path = write_12h(tmp_path / "byo.yml", "acme/byo", byo)
    with caplog.at_level(logging.WARNING, logger="exosphere"):
        specs = by_key(cluster_asset_specs(plan(load(path), registry), registry))
    assert deps(specs["external/postgres/postgres warehouse › public › reports"]) == {
        "acme__byo/to_table"
    }
    assert specs["acme__byo/broken_lineage"].kinds == {"exosphere"}  # loads, without endpoints
    assert "no lineage for satellite 'broken-lineage'" in caplog.text


def test_examples_folder_loads_with_its_assets_beside_the_jobs():
    """What `dagster definitions validate` checks, on the examples (one of them is broken)."""
    defs = build_definitions(ROOT / "examples")
    Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    keys = repo.asset_graph.get_all_asset_keys()
    assert AssetKey([JOB, "call_webhook"]) in keys
    assert repo.has_job(JOB) and repo.has_job("invalid__structured_pdfs")
    assert repo.asset_graph.toposorted_asset_keys


def test_run_counts_become_numeric_metadata_on_satellites_and_delivering_sinks():
    registry = registry_with_plugins()
    reference = plan(load(REFERENCE), registry)
    per = {
        "get-files-from-s3": {"in": 1, "succeeded": 1, "failed": 0, "resumed": 0},
        "parse-pdf-with-docling": {"in": 5, "succeeded": 4, "failed": 1, "resumed": 2},
        "deepseek-r1-distrill-llama-70b": {"in": 4, "succeeded": 4, "failed": 0, "resumed": 0},
        "call-webhook": {"in": 4, "succeeded": 3, "failed": 1, "resumed": 0},
        "delete-file-from-s3": {"in": 3, "succeeded": 3, "failed": 0, "resumed": 0},
        "move-to-failure-bucket": {"in": 2, "succeeded": 2, "failed": 0, "resumed": 0},
    }
    found = run_materializations(reference, {"per_satellite": per}, registry)
    got = {m.asset_key.to_user_string(): m.metadata for m in found}
    parse = got[f"{JOB}/parse_pdf_with_docling"]
    assert {k: v.value for k, v in parse.items()} == {
        "items_in": 5, "succeeded": 4, "failed": 1, "routed": 1, "unhandled": 0, "resumed": 2,
    }  # fmt: skip
    assert got[f"{JOB}/get_files_from_s3"]["routed"].value == 0  # upstream of failure.from
    assert got[f"{JOB}/send_pagerduty_alert"]["items_in"].value == 0  # did not run
    webhook = got["external/webhook/webhook api.aikin.com › v1 › financial-reports"]
    assert webhook["items_delivered"].value == 3
    failure_bucket = (
        "external/s3/s3 aikin-financial-reports-failure › failed › quaterly-financial-reports"
    )
    assert got[failure_bucket]["items_delivered"].value == 2
    assert "external/s3/s3 aikin-financial-reports" not in got  # deleting delivers nothing
    assert f"{JOB}/send_logs_to_new_relic" not in got  # log sinks have no item counts


ASSETS = """
query($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    groupName
    dependencyKeys { path }
    assetMaterializations(limit: 10) {
      runId
      metadataEntries { label ... on IntMetadataEntry { intValue } }
    }
  }
}"""


@pytest.mark.integration
def test_runs_record_history_that_the_graphql_api_serves(
    tmp_path, sqlite_instance, http_recorder, monkeypatch
):
    folder = tmp_path / "clusters"
    folder.mkdir()
    (tmp_path / "notes").mkdir()
    webhook = satellite_entry(
        WEBHOOK,
        "notify",
        {"url": f"{http_recorder.url}/hook?key=abc", "body": "${{ satellites.items.output }}"},
    )
    note_failure = note("note", tmp_path / "notes", "${{ failure.error }}")
    hooked = cluster(
        "test/hooked",
        [fan_out("items", count=3), webhook],
        retries=0,
        failure=failure_branch("notify", [note_failure]),
    )
    path = write_cluster(folder, "hooked.yml", hooked)
    (folder / "broken.yml").write_text("version: 0.0.1b\ncluster: [\n")
    runs = []
    for _ in range(2):
        http_recorder.script([(400, {}, {"error": "rejected"})])  # one item fails, is routed
        runs.append(run_cluster_file(path, instance=sqlite_instance))
    assert all(r.success for r in runs)
    assert len(http_recorder.requests) == 6
    host = http_recorder.url.removeprefix("http://")
    sink = AssetKey(["external", "webhook", f"webhook {host} › hook"])
    notify = AssetKey(["test__hooked", "notify"])
    records = sqlite_instance.fetch_materializations(notify, limit=10).records
    assert {r.run_id for r in records} == {r.run_id for r in runs}
    latest = sqlite_instance.get_latest_materialization_event(sink)
    assert latest.run_id == runs[1].run_id
    assert latest.asset_materialization.metadata["items_delivered"].value == 2

    monkeypatch.setenv("EXOSPHERE_CLUSTERS_DIR", str(folder))  # read by the code server
    workspace = tmp_path / "workspace.yaml"  # the code location as `dagster dev` loads it
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: exosphere_dagster.definitions\n"
    )
    with define_out_of_process_context(str(workspace), None, sqlite_instance) as context:
        keys = [{"path": k.path} for k in (sink, notify)]
        result = execute_dagster_graphql(context, ASSETS, {"keys": keys})
    assert not result.errors, result.errors
    nodes = {"/".join(n["assetKey"]["path"]): n for n in result.data["assetNodes"]}
    assert nodes[notify.to_user_string()]["groupName"] == "test__hooked"
    assert nodes[notify.to_user_string()]["dependencyKeys"] == [{"path": ["test__hooked", "items"]}]
    assert nodes[sink.to_user_string()]["dependencyKeys"] == [{"path": notify.path}]
    history = nodes[sink.to_user_string()]["assetMaterializations"]
    assert {h["runId"] for h in history} == {r.run_id for r in runs}
    for entry in history:
        values = {e["label"]: e.get("intValue") for e in entry["metadataEntries"]}
        assert values["items_delivered"] == 2
    counts = nodes[notify.to_user_string()]["assetMaterializations"][0]["metadataEntries"]
    assert {e["label"]: e.get("intValue") for e in counts}["routed"] == 1
