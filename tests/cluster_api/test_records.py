"""``exosphere clusters logs`` records come from the structured data a step writes (the
``item_events`` JSON of its report, the counts and item ids of its outputs), never from the
text of a log line: a satellite that logs "attempt 2/3 failed:" is not misread as a retry."""

from __future__ import annotations

import json

from exosphere_dagster.entry.clusters.records import records
from exosphere_dagster.runtime.items import ChunkReport, ItemEvent
from exosphere_dagster.runtime.logs import item_prefix


def _report(events: list[ItemEvent], limit: int = 200, **counts: int) -> dict:
    entries = [
        {
            "label": "item_events",
            "jsonString": json.dumps(ChunkReport("parse", events=events).events_metadata(limit)),
        }
    ]
    entries += [{"label": k, "intValue": v} for k, v in counts.items()]
    entries.append({"label": "failures", "text": "none"})
    return {
        "__typename": "ExecutionStepOutputEvent",
        "outputName": "report",
        "stepKey": "parse[c00002]",
        "timestamp": "1765000000000",
        "metadataEntries": entries,
    }


def test_item_events_become_records_with_their_outcomes() -> None:
    events = [
        ItemEvent("a.pdf~1", "parse", "retry", 1, 3, "RetryableError: 503", 1765000001.0),
        ItemEvent("a.pdf~1", "parse", "attempt-failed", 3, 3, "ValueError: bad", 1765000002.0),
        ItemEvent("a.pdf~1", "parse", "routed", 3, 3, "ValueError: bad", 1765000003.0),
        ItemEvent("b.pdf~2", "parse", "failed", 1, 1, "KeyError: 'x'", 1765000004.0),
    ]
    found = records(_report(events, items_in=5, succeeded=3, failed=2))
    assert [(r.item, r.outcome, r.error) for r in found] == [
        ("a.pdf~1", "retry", "RetryableError: 503"),
        ("a.pdf~1", "attempt-failed", "ValueError: bad"),
        ("a.pdf~1", "routed", "ValueError: bad"),
        ("b.pdf~2", "failed", "KeyError: 'x'"),
        (None, "chunk", None),
    ]
    assert {r.chunk for r in found} == {"c00002"} and found[0].timestamp == 1765000001.0
    assert found[0].message == "parse: attempt 1/3 failed (will retry)"
    assert (
        found[2].message
        == "parse: item a.pdf~1 failed after 3 attempt(s), routed to the failure branch"
    )
    unset = ItemEvent("c~3", "parse", "routed", 0, 3, "secret 'TOKEN' is not set", 1765000005.0)
    [first, *_] = records(_report([unset], items_in=1, succeeded=0, failed=1))
    assert (
        first.message
        == "parse: item c~3 failed before its first attempt, routed to the failure branch"
    )
    assert found[-1].message == "parse: 5 in, 3 succeeded, 2 failed"


def test_events_beyond_the_listed_ones_are_counted() -> None:
    events = [ItemEvent(f"i~{n}", "parse", "failed", 1, 1, "boom") for n in range(5)]
    found = records(_report(events, limit=2))
    assert [r.outcome for r in found] == ["failed", "failed", "more"]
    assert found[-1].message == "3 more item event(s), not listed"


def test_a_logged_line_is_a_log_record_whatever_it_says() -> None:
    for text in (
        "parse: attempt 2/3 failed: upstream said so",
        "parse: item x~1 failed after 3 attempt(s), routed to the failure branch: no",
        "parse: 3 in, 3 succeeded, 0 failed, 3 out",
    ):
        event = {
            "__typename": "LogMessageEvent",
            "message": item_prefix("a.pdf~1") + text,
            "level": "INFO",
            "stepKey": "parse[c00001]",
            "timestamp": "1765000000000",
        }
        [record] = records(event)
        assert (record.item, record.outcome, record.message) == ("a.pdf~1", "log", text)
        # the same text not logged for an item is nobody's record
        assert records({**event, "message": text}) == []


def test_emitted_items_are_read_from_the_items_output() -> None:
    event = {
        "__typename": "ExecutionStepOutputEvent",
        "outputName": "items",
        "stepKey": "files[c00001]",
        "timestamp": "1765000000000",
        "metadataEntries": [
            {"label": "items_out", "intValue": 3},
            {"label": "item_ids", "text": "a~1, b~2 ..."},
        ],
    }
    found = records(event)
    assert [(r.item, r.outcome) for r in found] == [("a~1", "out"), ("b~2", "out"), (None, "more")]
