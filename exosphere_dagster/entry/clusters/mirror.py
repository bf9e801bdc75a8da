"""An S3 prefix mirrored into a local folder, which is what the code location loads.

Only objects whose ETag changed are downloaded; files whose object is gone are removed. A key
that cannot be a file of the folder is skipped and reported (``S3Store.skipped``, shown by the
code location as an ``invalid__`` job and by ``exosphere clusters list``), never raised:

- a name that is not a plain relative path (``/abs.yml``, ``a/../b.yml``, ``./a.yml``,
  ``a//b.yml``, ``a.yml/``, a NUL byte), which could escape the folder or alias another key;
- a path component longer than a file name may be (``NAME_MAX``, 255 bytes);
- a key below another cluster file (``a.yml/b.yml`` beside ``a.yml``: a path cannot be a file
  and a folder; the file wins, whatever order the keys arrive in);
- anything the filesystem still refuses when writing (named with its error).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from exosphere_dagster.entry.clusters.store import StoreError

if TYPE_CHECKING:
    from exosphere_dagster.entry.clusters.store import S3Store

logger = logging.getLogger("exosphere")
MANIFEST = ".exosphere-etags.json"
LOCK = ".lock"
NAME_MAX = 255  # bytes per path component on ext4, xfs, btrfs, tmpfs, APFS


def name_problem(name: str) -> str | None:
    """Why a key name (below the prefix) cannot be a file of the mirror, or None."""
    parts = name.split("/")
    if "\x00" in name:
        return "the key holds a NUL byte"
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return (
            "the key is not a plain relative path (an empty, '.' or '..' part, or a leading "
            "or trailing '/'): it could land outside the mirror or on another key's file"
        )
    if parts[0] in (MANIFEST, LOCK):
        return f"{parts[0]!r} is the mirror's own file"
    long = [p for p in parts if len(p.encode("utf-8", "surrogatepass")) > NAME_MAX]
    if long:
        return f"a part of the key is longer than a file name may be ({NAME_MAX} bytes)"
    return None


def mirror_plan(listed: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(name -> ETag of the keys to mirror, name -> why each other key is skipped)."""
    wanted: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name, etag in listed.items():
        problem = name_problem(name)
        if problem:
            skipped[name] = problem
        else:
            wanted[name] = etag
    for name in list(wanted):
        parts = PurePosixPath(name).parts
        above = next(
            ("/".join(parts[:i]) for i in range(1, len(parts)) if "/".join(parts[:i]) in wanted),
            None,
        )
        if above is not None:
            skipped[name] = f"its folder {above!r} is itself a cluster file of the store"
    return {n: e for n, e in wanted.items() if n not in skipped}, skipped


def mirror(store: S3Store, folder: Path) -> Path:
    """Make ``folder`` hold exactly the store's mirrorable cluster files: download the objects
    whose ETag is new, remove files whose object is gone, skip (and report in
    ``store.skipped``) the keys that cannot be files here. One process at a time (a lock file).
    If the store cannot be listed, the last mirror is kept (logged), so a blip of S3 never
    empties a location; with no mirror yet that is the one error raised (StoreError)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest_path = folder / MANIFEST
        try:
            known = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            known = {}
        try:
            listed = store.listing()
        except StoreError as exc:
            if not known:
                raise
            logger.error("%s; loading the last copy of the store (%s)", exc, folder)
            return folder
        wanted, skipped = mirror_plan(listed)
        _remove_unwanted(folder, wanted)
        kept: dict[str, str] = {}
        for name, etag in wanted.items():
            target = folder / name
            if known.get(name) == etag and target.is_file():
                kept[name] = etag
                continue
            try:
                data = store.read(name)
                if data is not None:  # None: deleted since the listing
                    _write(folder, target, data)
                    kept[name] = etag
            except StoreError as exc:
                skipped[name] = f"cannot be read: {exc}"
            except (OSError, ValueError) as exc:
                skipped[name] = f"cannot be written to the mirror {folder}: {exc}"
        with contextlib.suppress(OSError):
            manifest_path.write_text(json.dumps(kept))
    store.skipped = {store.where_key(name): why for name, why in skipped.items()}
    for where, why in store.skipped.items():
        logger.error("skipping %s: %s", where, why)
    return folder


def _write(folder: Path, target: Path, data: bytes) -> None:
    """Atomically, through a temporary file at the top of the mirror (its name does not grow
    with the key's, and it is no cluster file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".exosphere-download.{os.getpid()}.tmp"
    try:
        tmp.write_bytes(data)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_unwanted(folder: Path, wanted: dict[str, str]) -> None:
    """Remove every file that is no wanted cluster file (but the mirror's own), then every
    empty folder: a path that was a folder may have to become a file, and the reverse."""
    for path in sorted(folder.rglob("*"), reverse=True):  # children before their folder
        relative = path.relative_to(folder).as_posix()
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                if not any(path.iterdir()):
                    path.rmdir()
            elif relative not in wanted and relative not in (MANIFEST, LOCK):
                path.unlink()
