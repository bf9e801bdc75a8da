"""The content hash a served cluster job carries, so that ``exosphere clusters apply`` can tell
that the server serves *this* file's content, not an older or newer version of the same name.

The hash is the SHA-256 of the file's bytes (what the clusters store holds), put on the job as
metadata (``cluster file sha256``): metadata stays on the job, unlike job tags, which Dagster
copies onto every run. Dagster-free: the CLI reads it too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CONTENT_HASH_KEY = "cluster file sha256"


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_hash(path: str | Path) -> str | None:
    """The hash of a file's bytes; None for a cluster with no file on disk (built in Python)."""
    try:
        return content_hash(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
