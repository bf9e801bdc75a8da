"""A chunk travels between steps as a pickle of item batches (runtime/items.py ``Chunk``): pickle
keeps every object it wrote until the end, so a million items in one pickle held about 250 MB
more than the items (bench/results/large_run.md). The items must come back whole and in order."""

from __future__ import annotations

import dataclasses
import pickle

from exosphere_dagster.runtime import items
from exosphere_dagster.runtime.items import PICKLE_BATCH, Chunk, Item, PackedItems, seed_items
from exosphere_dagster.translate.ops import keyed_outputs


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


def test_an_item_pickled_before_items_had_slots_still_loads(monkeypatch):
    """A re-execution after an upgrade reads the parent run's chunks, manifests and reports,
    pickled by the Item of before (a plain dataclass: its fields as a dict)."""

    @dataclasses.dataclass
    class Item_:  # noqa: N801 - the old class, pickled under the current one's name
        id: str
        value: object
        lineage: dict
        seed: object = None
        failure: dict | None = None

    Item_.__module__, Item_.__qualname__ = Item.__module__, Item.__qualname__
    fields = {"id": "a~1", "value": {"k": 1}, "lineage": {"s": 1}, "seed": {}, "failure": None}
    with monkeypatch.context() as patched:
        patched.setattr(items, "Item", Item_)
        old = pickle.dumps([Item_(**fields)], protocol=pickle.HIGHEST_PROTOCOL)
    (item,) = pickle.loads(old)
    assert type(item) is Item and item == Item(**fields)


def test_a_chunk_output_and_its_manifest_entry_are_pickled_once_for_both():
    """The gathering and start steps pickle each chunk's items once: the chunk's output is
    stored as the bytes its manifest entry holds (a million items took 7 s more otherwise)."""
    roots = seed_items([{"n": i} for i in range(25)])
    out = list(keyed_outputs({"c00000": roots[:20], "c00001": roots[20:]}))
    chunks = {o.mapping_key: o.value for o in out if o.output_name == "chunks"}
    (manifest,) = [o.value for o in out if o.output_name == "manifest"]
    for key, chunk in chunks.items():
        assert chunk.packed is manifest[key].data
        assert pickle.loads(pickle.dumps(chunk)) == chunk
        assert manifest[key].unpack() == chunk.items


def test_a_manifest_entry_written_as_one_pickle_still_unpacks():
    """Manifests written before items were packed in batches (a re-execution after an upgrade
    reads its parent run's)."""
    roots = seed_items([{"n": i} for i in range(3)])
    assert PackedItems(pickle.dumps(roots), 3).unpack() == roots
