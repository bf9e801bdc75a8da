"""Chunk counts follow the run's parallelism and the SLA tier: no more chunks (steps per
satellite) than the executor runs at once, times the tier's chunks per worker, unless the tier's
largest chunk needs more, and then in whole waves."""

from __future__ import annotations

import math
import os

import pytest

from clusters import cluster_from, write_cluster
from exosphere_dagster.entry.launch import run_cluster_file
from exosphere_dagster.resolve import execution_plan
from exosphere_dagster.resolve.chunking import max_chunks, run_chunk_size
from exosphere_dagster.resolve.deployment import Deployment
from exosphere_dagster.resolve.execution_plan import CHUNK_BYTES, SEGMENT_CHUNKS_CAP, ChunkPolicy
from exosphere_dagster.resolve.settings import Settings
from exosphere_dagster.runtime.items import seed_items
from exosphere_dagster.translate.executor import run_workers, sampled_item_bytes
from yaml_loader.tiers import tier

DEFAULT = "exosphere_multi_or_in_process"


def chunks(count: int, sla: str, workers: int, batched: bool = False) -> int:
    return math.ceil(count / run_chunk_size(count, sla, workers, batched)) if count else 1


@pytest.mark.parametrize(
    ("count", "sla", "workers", "expected"),
    [
        (3, "24h", 2, 1),  # a few items: one step, whatever the workers
        (40, "6h", 1, 4),  # in process, 6h: four chunks of 10 (first results sooner)
        (40, "24h", 1, 1),
        (10_000, "24h", 2, 2),  # one chunk a worker: the fewest steps
        (30_000, "24h", 2, 4),  # 10,000 at most per chunk: 2 waves of 2, not 3 chunks
        (10_000, "24h", 16, 16),
        (10_000, "12h", 4, 16),  # 8 chunks would exceed 1,000 items each: 2 waves of 8
        (100_000, "24h", 2, 10),
        (100_000, "6h", 2, 128),  # past the cap on a segment's steps, chunks grow instead
        (1_000_000, "24h", 2, 100),
        (1_000_000, "6h", 64, 256),  # one wave of 64 workers x 4 is more than the cap: kept
        (900, "24h", 3, 3),
        (100, "6h", 2, 8),
    ],
)
def test_chunk_count_follows_workers_and_tier(count, sla, workers, expected):
    assert chunks(count, sla, workers) == expected


@pytest.mark.parametrize("sla", ["6h", "12h", "24h"])
@pytest.mark.parametrize("workers", [1, 2, 3, 8, 16, 64])
@pytest.mark.parametrize("count", [0, 1, 9, 199, 1_000, 4_097, 123_457, 1_000_000])
def test_no_more_chunks_than_parallelism_buys(sla, workers, count):
    low, high = tier(sla).chunk_bounds
    size = run_chunk_size(count, sla, workers)
    limit = max_chunks(sla, workers)
    assert limit == workers * tier(sla).chunks_per_worker
    made = chunks(count, sla, workers)
    assert low <= size
    if size > high:  # only past the cap on a segment's steps, and then no more chunks than it
        assert math.ceil(count / high) > SEGMENT_CHUNKS_CAP
        assert made <= max(SEGMENT_CHUNKS_CAP, limit)
    if made > limit:  # only the tier's largest chunk may ask for more, in whole waves
        assert math.ceil(count / high) > limit
        assert made <= limit * math.ceil(math.ceil(count / high) / limit)


def test_batches_are_never_cut_past_the_tiers_bound():
    """A batch's bound is the model's or provider's limit: the cap on a segment's steps never
    grows a batch past it."""
    size = run_chunk_size(1_000_000, "24h", 2, batched=True)
    assert size <= tier("24h").batch_bounds[1]
    assert chunks(1_000_000, "24h", 2, batched=True) > SEGMENT_CHUNKS_CAP


def test_batched_satellites_get_small_batches_on_6h_and_one_large_batch_on_24h():
    assert chunks(64, "6h", 2, batched=True) == 8  # batches of 8: first answers sooner
    assert chunks(64, "24h", 2, batched=True) == 1  # one batch: the fewest steps
    assert run_chunk_size(10_000, "24h", 2, batched=True) == 2_500  # 4,096 at most, 2 waves


@pytest.mark.parametrize(
    ("execution", "executor", "env", "expected"),
    [
        ({"in_process": {}}, DEFAULT, {}, 1),
        ({"multiprocess": {"max_concurrent": 3}}, DEFAULT, {}, 3),
        ({"multiprocess": {}}, DEFAULT, {"DAGSTER_MULTIPROCESS_EXECUTOR_MAX_CONCURRENT": "5"}, 5),
        ({}, DEFAULT, {}, None),  # the CPU count
        ({"max_concurrent": 6}, "multiprocess", {}, 6),  # Dagster's own multiprocess executor
        ({}, "in_process", {}, 1),
        ({"max_concurrent": 12}, "k8s", {"EXOSPHERE_STEP_PODS": "40"}, 12),
        ({}, "k8s", {"EXOSPHERE_STEP_PODS": "40"}, 40),
        ({}, "k8s", {}, Settings.model_fields["step_pods"].default),
    ],
)
def test_workers_come_from_the_run_config_then_the_executors_default(
    execution, executor, env, expected, monkeypatch
):
    monkeypatch.delenv("DAGSTER_MULTIPROCESS_EXECUTOR_MAX_CONCURRENT", raising=False)
    monkeypatch.delenv("EXOSPHERE_STEP_PODS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    step_pods = Deployment.load().settings.step_pods  # EXOSPHERE_STEP_PODS, read once
    workers = run_workers({"execution": {"config": execution}}, executor, step_pods)
    assert workers == (expected if expected is not None else os.cpu_count())


@pytest.mark.integration
@pytest.mark.parametrize(("sla", "expected"), [("6h", 4), ("24h", 1)])
def test_an_in_process_run_cuts_chunks_for_one_worker(tmp_path, sqlite_instance, sla, expected):
    """`exosphere run` executes in process: one worker, so 40 items are one 24h chunk and four
    6h chunks (the 6h tier's four chunks per worker)."""
    forty = cluster_from(
        "fan-out-and-note",
        identifier=f"test/chunks-{sla}",
        sla=sla,
        config={"items": {"count": 40}, "note": {"log_dir": tmp_path}},
    )
    path = write_cluster(tmp_path, f"{sla}.yml", forty)
    result = run_cluster_file(path, instance=sqlite_instance)
    assert result.success
    steps = {e.step_key for e in result.all_events if e.step_key and e.step_key.startswith("note[")}
    assert len(steps) == expected
    assert sqlite_instance.get_run_by_id(result.run_id).tags["exosphere/succeeded"] == "40"


def test_large_items_make_smaller_chunks_whatever_the_counts_say():
    """The counts assume small items; a chunk is also bounded to CHUNK_BYTES pickled, below
    the tier's smallest chunk too (a step holds its chunk in memory)."""
    policy = ChunkPolicy.of_tier(tier("24h"))
    assert policy.size(10_000, 2) == 10_000 // 2
    assert policy.size(10_000, 2, item_bytes=2**20) == CHUNK_BYTES // 2**20
    assert policy.size(10, 2, item_bytes=CHUNK_BYTES * 3) == 1
    assert policy.size(10_000, 2, item_bytes=10.0) == 10_000 // 2  # small items: the counts


def test_an_items_size_is_sampled_spread_over_the_chunk():
    small = [{"n": i, "text": f"{i}"} for i in range(1_000)]
    large = [{"n": i, "text": f"{i}" + "x" * 50_000} for i in range(1_000)]
    assert sampled_item_bytes(small) < 100
    assert 50_000 < sampled_item_bytes(large) < 51_000
    assert 5_000 < sampled_item_bytes(small[:500] + large[:500]) < 50_000  # both halves seen
    assert sampled_item_bytes([]) == 0.0
    assert sampled_item_bytes([lambda: None]) == 0.0  # unpicklable: the counts decide


def test_siblings_sharing_a_large_ancestor_are_sized_as_a_chunk_holds_them():
    """Paragraphs of 1 MB documents carry the document in their lineage; a chunk of neighbours
    pickles each document once, so an item is a few KB, not 1 MB (which would cut 64-item
    chunks and thousands of steps)."""
    docs = seed_items([{"doc": i, "text": f"{i}" + "x" * 2**20} for i in range(8)])
    paragraphs = [
        d.child("split", j, {"p": j, "text": "y" * 2_000}) for d in docs for j in range(500)
    ]
    assert 2_000 < sampled_item_bytes(paragraphs) < 10_000


@pytest.mark.integration
def test_a_run_cuts_large_inputs_into_chunks_of_at_most_chunk_bytes(
    tmp_path, sqlite_instance, monkeypatch
):
    """40 inputs of over 2 KB each (about 100 KB as items) with CHUNK_BYTES at 8 KB: the start
    step cuts them into a dozen or so chunks of 3 or 4, where the counts alone (24h, in process)
    make one."""
    monkeypatch.setattr(execution_plan, "CHUNK_BYTES", 8 * 1024)
    forty = cluster_from(
        "fan-out-and-note",
        identifier="test/chunk-bytes",
        config={"items": {"count": 1}, "note": {"log_dir": tmp_path}},
    )
    path = write_cluster(tmp_path, "bytes.yml", forty)
    inputs = [{"n": i, "blob": f"{i}" + "x" * 2000} for i in range(40)]  # not one shared str
    result = run_cluster_file(path, inputs, instance=sqlite_instance)
    assert result.success
    steps = {
        e.step_key for e in result.all_events if e.step_key and e.step_key.startswith("items[")
    }
    assert 10 <= len(steps) <= 20
