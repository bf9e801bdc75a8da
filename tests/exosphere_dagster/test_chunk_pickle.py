"""A chunk travels between steps as a pickle of item batches (runtime/items.py ``Chunk``): pickle
keeps every object it wrote until the end, so a million items in one pickle held about 250 MB
more than the items (bench/results/large_run.md). The items must come back whole and in order."""

from __future__ import annotations

import pickle

from exosphere_dagster.runtime.items import PICKLE_BATCH, Chunk, seed_items


def test_a_large_chunk_comes_back_whole_and_in_order_from_its_batches():
    roots = seed_items([{"n": i} for i in range(PICKLE_BATCH * 2 + 7)])
    items = [root.child("parse", 0, {"page": root.value["n"]}) for root in roots]
    chunk = Chunk("c00003", items)
    _, (key, batches) = chunk.__reduce__()
    assert key == "c00003" and len(batches) == 3
    back = pickle.loads(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == chunk
    assert back.items[-1].lineage == {"parse": {"page": PICKLE_BATCH * 2 + 6}}


def test_an_item_keeps_its_own_value_shared_with_its_lineage():
    """Within a batch pickle still shares objects: an item's value and the lineage entry its
    satellite wrote stay one object (memory of a large run)."""
    (root,) = seed_items([{}])
    child = root.child("fan", 0, {"k": "v"})
    (back,) = pickle.loads(pickle.dumps(Chunk("c00000", [child]))).items
    assert back.value is back.lineage["fan"]


def test_an_empty_chunk_stays_empty():
    assert pickle.loads(pickle.dumps(Chunk("c00000", []))) == Chunk("c00000", [])
