"""Checkpoints as S3 objects (AWS or any S3-compatible store), for deployments that keep them
out of the instance database: ``EXOSPHERE_CHECKPOINT_S3_URL=s3://bucket/prefix``, endpoint from
``EXOSPHERE_CHECKPOINT_S3_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL`` (both read by the Deployment).
The client comes from the one S3 factory (``satellite_ops/helpers/s3_client.py``) with the
infrastructure's attempts: nothing retries a checkpoint write around it.

Layout: ``<prefix>/<root run id>/<op>/<chunk>/<time>-<random>.ckpt``; each object holds the
frames of one or more finished items. Objects are never overwritten (two pods may write the same
chunk), and a PUT is atomic, so no object is ever torn.

Cost and durability: a PUT per finished item would cost a request and a round trip (tens of ms)
per item, stalling fast satellites. Instead a writer thread per log writes whatever finished
since its last PUT as one object (group commit): a slow satellite gets an object per item, a
fast one an object per PUT round trip. ``record`` never waits on the network; an item is durable
one PUT after it finished, and a pod killed in that window redoes those items (satellites are
idempotent). ``close`` (the end of every chunk) waits until everything is written, and raises if
a write failed.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

from exosphere_dagster.runtime.checkpoint import (
    SUFFIX,
    FramedLog,
    frame,
    read_frames_from,
    safe_chunk,
)

MAX_ITEMS_PER_OBJECT = 500


def _client(endpoint_url: str | None) -> Any:
    from satellite_ops.helpers.s3_client import INFRASTRUCTURE_ATTEMPTS, s3_client

    return s3_client(endpoint_url=endpoint_url, attempts=INFRASTRUCTURE_ATTEMPTS)


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at the ends)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(
            f"EXOSPHERE_CHECKPOINT_S3_URL must look like s3://bucket/prefix, found {url!r}"
        )
    return parsed.netloc, parsed.path.strip("/")


class S3CheckpointLog(FramedLog):
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix  # prefix ends with "/"
        self._pending: list[bytes] = []
        self._cond = threading.Condition()
        self._writing = False
        self._error: BaseException | None = None

    def record_state(self, key: str, value: Any) -> None:
        """State is written at once (not group-committed): a batch id must survive a kill."""
        super().record_state(key, value)
        self.flush()

    def _frames(self) -> dict[str, Any]:
        done: dict[str, Any] = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        keys = sorted(o["Key"] for page in pages for o in page.get("Contents", []))
        with ThreadPoolExecutor(max_workers=min(8, len(keys) or 1)) as pool:
            bodies = pool.map(self._get, keys)  # in key order: a later record of an item wins
            for body in bodies:
                done.update(read_frames_from(body))
        return done

    def _get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def record(self, item_id: str, outputs: Any) -> None:
        data = frame(item_id, outputs)  # pickled now: later changes to outputs do not leak in
        with self._cond:
            self._raise_failure()
            self._pending.append(data)
            if not self._writing:
                self._writing = True
                threading.Thread(
                    target=self._write, name="exosphere-checkpoints", daemon=True
                ).start()

    def flush(self) -> None:
        """Wait until every recorded item is in S3; raise if a write failed."""
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._raise_failure()

    def close(self) -> None:
        self.flush()

    def _write(self) -> None:
        while True:
            with self._cond:
                if not self._pending or self._error is not None:
                    self._writing = False
                    self._cond.notify_all()
                    return
                batch = self._pending[:MAX_ITEMS_PER_OBJECT]
                del self._pending[:MAX_ITEMS_PER_OBJECT]
            key = f"{self.prefix}{time.time_ns():020d}-{uuid.uuid4().hex[:12]}{SUFFIX}"
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=b"".join(batch))
            except Exception as exc:  # noqa: BLE001 - reported by the next record/flush
                with self._cond:
                    self._error = exc
                    self._pending[:0] = batch

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise RuntimeError(
                f"could not write checkpoints to s3://{self.bucket}/{self.prefix}: "
                f"{type(self._error).__name__}: {self._error} ({len(self._pending)} item(s) not kept)"
            ) from self._error


class S3CheckpointStore:
    """Checkpoint logs as objects under ``s3://bucket/prefix``."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.client = client or _client(None)

    @classmethod
    def from_url(cls, url: str, endpoint_url: str | None = None) -> S3CheckpointStore:
        """The store at ``s3://bucket/prefix`` on ``endpoint_url`` (None: boto3's default)."""
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix, _client(endpoint_url))

    def _op_prefix(self, root_run_id: str, op_name: str) -> str:
        return f"{self.prefix}{root_run_id}/{op_name}/"

    def log_for(self, root_run_id: str, op_name: str, chunk_key: str) -> S3CheckpointLog:
        prefix = f"{self._op_prefix(root_run_id, op_name)}{safe_chunk(chunk_key)}/"
        return S3CheckpointLog(self.client, self.bucket, prefix)

    def logs(self, root_run_id: str, op_name: str) -> list[S3CheckpointLog]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._op_prefix(root_run_id, op_name), Delimiter="/"
        )
        prefixes = sorted(p["Prefix"] for page in pages for p in page.get("CommonPrefixes", []))
        return [S3CheckpointLog(self.client, self.bucket, prefix) for prefix in prefixes]

    def prune(self, cutoff: float) -> list[str]:
        newest: dict[str, float] = {}
        keys: dict[str, list[str]] = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for entry in (o for page in pages for o in page.get("Contents", [])):
            root, _, rest = entry["Key"][len(self.prefix) :].partition("/")
            if not rest:
                continue  # not a checkpoint object: left alone
            keys.setdefault(root, []).append(entry["Key"])
            newest[root] = max(newest.get(root, 0.0), _written_at(entry))
        removed = sorted(root for root, at in newest.items() if at < cutoff)
        doomed = [key for root in removed for key in keys[root]]
        for start in range(0, len(doomed), 1000):  # DeleteObjects takes 1000 keys at most
            batch = [{"Key": key} for key in doomed[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return removed

    def __repr__(self) -> str:
        return f"S3 objects under s3://{self.bucket}/{self.prefix}"


def _written_at(entry: dict[str, Any]) -> float:
    """When a checkpoint object was written: the writer's clock in its name (nanoseconds, see
    ``S3CheckpointLog._write``), else the store's ``LastModified``."""
    name = entry["Key"].rsplit("/", 1)[-1]
    stamp = name.split("-", 1)[0]
    if len(stamp) == 20 and stamp.isdigit():
        return int(stamp) / 1e9
    return entry["LastModified"].timestamp()
