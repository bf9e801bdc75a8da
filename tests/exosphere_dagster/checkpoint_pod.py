"""A stand-in for one step pod in the checkpoint store tests: its own process, its own store
object and connections, the same store settings as its siblings.

    python checkpoint_pod.py SPEC record ROOT OP CHUNK ITEM...   record items, print each, close
    python checkpoint_pod.py SPEC hold ROOT OP CHUNK ITEM...     record items, print "held", sleep
    python checkpoint_pod.py SPEC load ROOT OP [CHUNK]           print {chunk: {item: outputs}}

SPEC is JSON: {"kind": "postgres", "url": ...} | {"kind": "s3", "bucket", "prefix", "endpoint"}
| {"kind": "files", "dir": ...}. ``hold`` never closes its log: it waits to be killed.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def store_from(spec: dict[str, Any]) -> Any:
    if spec["kind"] == "postgres":
        from exosphere_dagster.runtime.checkpoint_postgres import PostgresCheckpointStore

        return PostgresCheckpointStore(spec["url"])
    if spec["kind"] == "s3":
        import boto3

        from exosphere_dagster.runtime.checkpoint_s3 import S3CheckpointStore

        client = boto3.client("s3", endpoint_url=spec["endpoint"], region_name="us-east-1")
        return S3CheckpointStore(spec["bucket"], spec["prefix"], client)
    from exosphere_dagster.runtime.checkpoint import CheckpointStore

    return CheckpointStore(spec["dir"])


def outputs_for(item_id: str) -> list[dict[str, Any]]:
    return [{"item": item_id, "text": f"parsed {item_id}"}]


def main(argv: list[str]) -> None:
    spec, action, root, op, *rest = argv
    store = store_from(json.loads(spec))
    if action == "load":
        logs = [store.log_for(root, op, rest[0])] if rest else store.logs(root, op)
        print(json.dumps([log.load() for log in logs]), flush=True)
        return
    chunk, items = rest[0], rest[1:]
    log = store.log_for(root, op, chunk)
    for item_id in items:
        log.record(item_id, outputs_for(item_id))
        print(f"recorded {item_id}", flush=True)
    if action == "hold":
        print("held", flush=True)
        while True:
            time.sleep(60)
    log.close()


if __name__ == "__main__":
    main(sys.argv[1:])
