"""What is new in a watched folder or S3 prefix, and the sensor cursor that remembers it.

An arrival is a name plus a version: a file is its path, modification time (ns) and size; an
S3 object is its key and ETag. A new version under a known name (a file replaced, an object
re-uploaded with other bytes) is new work; the same version is not. Modification times are
not compared with each other, so files renamed or moved in with an older mtime are found.

Readiness: an S3 object is listed only once its upload completed. A file may still be
written, so it is ready when its version is the same on two consecutive ticks (no write in
between) and its mtime is at least ``settle_seconds`` old (the deployment's
``EXOSPHERE_FOLDER_SETTLE_SECONDS``, default 0, passed in by the sensor), for writers that pause
longer than a tick. Writing under another name and renaming into the
pattern is always safe.

The cursor holds short tokens (a hash of name + version) of arrivals already launched and still
present, and of those seen once and not yet ready; tokens of arrivals that disappeared are
dropped, so it grows with what is present, never with history.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISREG
from typing import Any

from satellite_ops.helpers.s3_client import INFRASTRUCTURE_ATTEMPTS, object_item, s3_client
from yaml_loader.ir import ClusterPlan

CURSOR_VERSION = 2
TOKEN_CHARS = 12  # 48 bits: a collision among 10^4 present files has odds of about 10^-7


@dataclass(frozen=True)
class Arrival:
    """One listed file or object: its identity, the run input it becomes, and readiness."""

    name: str
    version: str
    mtime: float
    item: dict[str, Any] = field(compare=False)
    settled: bool = True  # False: changed too recently to be trusted complete
    confirm: bool = False  # True: ready only once the same version was seen on the last tick

    @property
    def token(self) -> str:
        digest = hashlib.blake2b(f"{self.name}\0{self.version}".encode(), digest_size=8)
        return digest.hexdigest()[:TOKEN_CHARS]


@dataclass(frozen=True)
class Selection:
    ready: list[Arrival]
    cursor: dict[str, Any]
    waiting: int  # arrivals seen but not ready yet


def select_new(listing: Iterable[Arrival], cursor: dict[str, Any]) -> Selection:
    """Arrivals to launch now, and the cursor after launching them."""
    done, pending = set(cursor.get("done", ())), set(cursor.get("pending", ()))
    legacy = _legacy_watermark(cursor)
    kept, waiting, ready = set(), set(), []
    for arrival in listing:
        token = arrival.token
        if token in done or (legacy and legacy(arrival)):
            kept.add(token)
        elif not arrival.settled or (arrival.confirm and token not in pending):
            waiting.add(token)
        else:
            ready.append(arrival)
            kept.add(token)
    ready.sort(key=lambda a: (a.mtime, a.name))
    generation = int(cursor.get("n", 0)) + (1 if ready else 0)
    after = {"v": CURSOR_VERSION, "n": generation, "done": sorted(kept), "pending": sorted(waiting)}
    return Selection(ready, after, len(waiting))


def run_key(cursor: dict[str, Any], batch: list[Arrival]) -> str:
    """A run key from the identities in the batch and the cursor's launch count: a retried tick
    (same cursor) repeats it, so Dagster skips runs already made; a later appearance of the same
    version, after the sensor saw it gone, gets a new key and runs again."""
    text = "\n".join([str(cursor.get("n", 0)), *sorted(a.token for a in batch)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _legacy_watermark(cursor: dict[str, Any]) -> Callable[[Arrival], bool] | None:
    """Cursors written before identities (newest mtime + names at it): what they covered counts
    as launched, so upgrading does not re-run a whole folder."""
    if "since" not in cursor:
        return None
    since, names = float(cursor["since"]), set(cursor.get("names", ()))
    return lambda a: a.mtime < since or (a.mtime == since and a.name in names)


def list_s3(plan: ClusterPlan) -> Iterator[Arrival]:
    spec = plan.trigger.s3
    assert spec is not None
    client = s3_client(endpoint_url=spec.endpoint_url or None, attempts=INFRASTRUCTURE_ATTEMPTS)
    extension = (spec.extension or "").lower().lstrip(".")
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=spec.bucket, Prefix=spec.prefix
    ):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith("/") or (extension and not key.lower().endswith("." + extension)):
                continue
            item = object_item(spec.bucket, obj)
            yield Arrival(key, item["etag"], obj["LastModified"].timestamp(), item)


def list_folder(
    plan: ClusterPlan, *, settle_seconds: float, now: float | None = None
) -> Iterator[Arrival]:
    spec = plan.trigger.folder
    assert spec is not None
    root = Path(os.path.expanduser(spec.path))
    if not root.is_dir():
        return
    now = time.time() if now is None else now
    settle = settle_seconds
    for path in sorted(root.rglob("*")):
        if not fnmatch.fnmatch(path.name, spec.pattern):
            continue
        try:
            info = path.stat()
        except FileNotFoundError:  # removed or renamed away while listing
            continue
        if not S_ISREG(info.st_mode):
            continue
        item = {
            "file-path": str(path),
            "file-name": path.name,
            "size": info.st_size,
            "uri": path.resolve().as_uri(),
            "last-modified": datetime.fromtimestamp(info.st_mtime, UTC).isoformat(),
        }
        age = now - info.st_mtime  # a future mtime says nothing: the two-tick check decides
        yield Arrival(
            str(path),
            f"{info.st_mtime_ns}:{info.st_size}",
            info.st_mtime,
            item,
            settled=not 0 <= age < settle,
            confirm=True,
        )
