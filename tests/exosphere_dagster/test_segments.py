"""Where chunks are re-made: one node per fan-out point, joins and the failure branch only."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusters import cluster, dump, fan_out, note, satellite_entry, write_cluster
from exosphere_dagster.resolve.catalog import registry_with_plugins
from exosphere_dagster.resolve.segments import FAILURES, START, cut_segments
from exosphere_dagster.translate.job import build_job
from yaml_loader import load, load_text, plan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def registry():  # after the autouse fixture registered the test satellites
    return registry_with_plugins()


def planned(registry, satellites: list[dict]):
    """The plan of a cluster of ``satellites``."""
    return plan(load_text(dump(cluster("test/segments", satellites))), registry)


def quiet(identifier: str, *parents: str) -> dict:
    """A note-failure satellite that no test reads; ``parents`` when not the one before."""
    return satellite_entry(
        "satellite/test/note-failure",
        identifier,
        {"log_dir": "/tmp", "message": "x"},
        **({"parents": list(parents)} if parents else {}),
    )


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
        planned(registry, [fan_out("files"), fan_out("pages"), quiet("a"), quiet("b")]),
        registry,
    )
    assert layout(segments) == [
        (START, ["files"]),
        ("files__rechunk", ["pages"]),
        ("pages__rechunk", ["a", "b"]),
    ]


def test_branches_share_a_segment_and_a_cross_segment_join_gathers(registry):
    segments = cut_segments(
        planned(
            registry,
            [
                fan_out("files"),
                quiet("a"),
                quiet("b", "files"),
                quiet("both", "a", "b"),
                satellite_entry("satellite/test/fan-out", "pages", parents=["files"]),
                quiet("page-note", "pages"),
                quiet("late", "both", "page-note"),
            ],
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
    late = {"log_dir": notes, "message": "n${{ satellites.files.output.n }}"}
    join = [
        fan_out("files", count=3),
        note("a", tmp_path, "a"),
        satellite_entry("satellite/test/fan-out", "pages", {"count": 2}, parents=["files"]),
        satellite_entry("satellite/test/note-failure", "late", late, parents=["a", "pages"]),
    ]
    path = write_cluster(tmp_path, "join.yml", cluster("test/join", join))
    result = run_cluster_file(path, instance=sqlite_instance)
    assert result.success
    assert "late__join" in {n.name for n in result.job_def.graph.nodes}
    lines = (notes / "failures.log").read_text().split()
    assert sorted(lines) == sorted(["n0", "n1", "n2"] + ["n0", "n0", "n1", "n1", "n2", "n2"])
