"""Where chunks are re-made: one node per fan-out point, joins and the failure branch only."""

from __future__ import annotations

from pathlib import Path

import pytest

from exosphere_dagster.build.catalog import registry_with_plugins
from exosphere_dagster.build.job import build_job
from exosphere_dagster.build.segments import FAILURES, START, cut_segments
from yaml_loader import load, load_text, plan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def registry():  # after the autouse fixture registered the test satellites
    return registry_with_plugins()


def cluster(registry, satellites: str, extra: str = ""):
    text = f"""\
version: 0.0.1b
cluster:
  identifier: test/segments
  sla: 6h
  trigger: api-call
  satellites:
{satellites}{extra}"""
    return plan(load_text(text), registry)


def layout(segments) -> list[tuple[str, list[str]]]:
    return [(s.name, [n.id for n in s.nodes]) for s in segments]


def test_reference_cluster_has_one_node_per_satellite_plus_four(registry):
    reference = plan(load(EXAMPLES / "structured-pdfs-fixed.yml"), registry)
    segments = cut_segments(reference, registry)
    assert layout(segments) == [
        (START, ["get-files-from-s3"]),
        (
            "get_files_from_s3__rechunk",
            [
                "parse-pdf-with-docling",
                "deepseek-r1-distrill-llama-70b",
                "call-webhook",
                "delete-file-from-s3",
            ],
        ),
        (FAILURES, ["move-to-failure-bucket", "send-pagerduty-alert"]),
    ]
    job = build_job(reference, registry)
    satellites = len(reference.nodes) + len(reference.failure_nodes)
    assert len(job.graph.nodes) == satellites + 4


def test_fan_out_satellites_start_a_segment_and_plain_ones_chain(registry):
    segments = cut_segments(
        cluster(
            registry,
            """\
    - {uses: satellite/test/fan-out, identifier: files}
    - {uses: satellite/test/fan-out, identifier: pages}
    - {uses: satellite/test/note-failure, identifier: a, config: {log_dir: /tmp, message: x}}
    - {uses: satellite/test/note-failure, identifier: b, config: {log_dir: /tmp, message: x}}
""",
        ),
        registry,
    )
    assert layout(segments) == [
        (START, ["files"]),
        ("files__rechunk", ["pages"]),
        ("pages__rechunk", ["a", "b"]),
    ]


def test_branches_share_a_segment_and_a_cross_segment_join_gathers(registry):
    segments = cut_segments(
        cluster(
            registry,
            """\
    - {uses: satellite/test/fan-out, identifier: files}
    - {uses: satellite/test/note-failure, identifier: a, config: {log_dir: /tmp, message: x}}
    - uses: satellite/test/note-failure
      identifier: b
      parents: [files]
      config: {log_dir: /tmp, message: x}
    - uses: satellite/test/note-failure
      identifier: both
      parents: [a, b]
      config: {log_dir: /tmp, message: x}
    - uses: satellite/test/fan-out
      identifier: pages
      parents: [files]
    - uses: satellite/test/note-failure
      identifier: page-note
      parents: [pages]
      config: {log_dir: /tmp, message: x}
    - uses: satellite/test/note-failure
      identifier: late
      parents: [both, page-note]
      config: {log_dir: /tmp, message: x}
""",
        ),
        registry,
    )
    # a, b and their join chain under the same mapping; `late` joins two segments
    assert layout(segments) == [
        (START, ["files"]),
        ("files__rechunk", ["a", "b", "both", "pages"]),
        ("pages__rechunk", ["page-note"]),
        ("late__join", ["late"]),
    ]
    assert segments[3].sources == ("both", "page-note")


@pytest.mark.integration
def test_a_cross_segment_join_runs_the_union_of_its_parents_items(tmp_path, sqlite_instance):
    from exosphere_dagster.entry.launch import run_cluster_file

    notes = tmp_path / "notes"
    notes.mkdir()
    path = tmp_path / "join.yml"
    path.write_text(f"""\
version: 0.0.1b
cluster:
  identifier: test/join
  sla: 6h
  trigger: api-call
  satellites:
    - {{uses: satellite/test/fan-out, identifier: files, config: {{count: 3}}}}
    - uses: satellite/test/note-failure
      identifier: a
      config: {{log_dir: {tmp_path}, message: a}}
    - uses: satellite/test/fan-out
      identifier: pages
      parents: [files]
      config: {{count: 2}}
    - uses: satellite/test/note-failure
      identifier: late
      parents: [a, pages]
      config: {{log_dir: {notes}, message: "n${{{{ satellites.files.output.n }}}}"}}
""")
    result = run_cluster_file(path, instance=sqlite_instance)
    assert result.success
    assert "late__join" in {n.name for n in result.job_def.graph.nodes}
    lines = (notes / "failures.log").read_text().split()
    assert sorted(lines) == sorted(["n0", "n1", "n2"] + ["n0", "n0", "n1", "n1", "n2", "n2"])
