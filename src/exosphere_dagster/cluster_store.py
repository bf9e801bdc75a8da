"""Where cluster files live: a local folder or an S3 prefix, named by ``EXOSPHERE_CLUSTERS_DIR``
(``./clusters`` by default; ``s3://bucket/prefix`` for any S3-compatible endpoint).

The code location reads the store, ``exosphere clusters apply|delete`` write it with the user's
own credentials, and ``exosphere dev`` polls its change token to reload the location. An S3
prefix is mirrored into a local cache folder (one GET per new or changed ETag) and loaded from
there, so the loader, the lazy repository and step processes all work on plain files; the
mirror's state file remembers the prefix, so errors still name ``s3://bucket/prefix/file.yml``.

Nothing here imports Dagster: the CLI uses it too. boto3 is imported when an S3 store is used
and honours the standard AWS environment (credentials, ``AWS_ENDPOINT_URL``, region).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from yaml_loader.ir import job_name_for
from yaml_loader.load import YAML_SUFFIXES

CLUSTERS_DIR_ENV = "EXOSPHERE_CLUSTERS_DIR"
CACHE_ENV = "EXOSPHERE_STORE_CACHE"  # where S3 prefixes are mirrored (default: the temp folder)
DEFAULT_FOLDER = "clusters"
MIRROR_STATE = ".exosphere-store.json"
# the code location publishes its store as metadata of this sensor (definitions.py)
STORE_SENSOR = "exosphere__clusters_store"
STORE_URL_KEY, STORE_TOKEN_KEY, STORE_ROOT_KEY = "store", "store token", "loaded from"
logger = logging.getLogger("exosphere")


class StoreError(Exception):
    """The store could not be read or written; the message says which and how to fix it."""


def store_name(identifier: str) -> str:
    """The file a cluster is stored under: its job name (one file per cluster)."""
    return job_name_for(identifier) + ".yml"


def token_of(listing: dict[str, str]) -> str:
    """A short digest of a listing (name -> version): equal listings, equal tokens."""
    text = json.dumps(sorted(listing.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _is_cluster_name(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return name.endswith(YAML_SUFFIXES) and ".." not in parts and not name.startswith("/")


class ClusterStore:
    """A flat namespace of cluster files (``name`` is a relative POSIX path)."""

    url: str

    def list(self) -> dict[str, str]:
        """Every cluster file: name -> a version that changes when the file does."""
        raise NotImplementedError

    def read(self, name: str) -> bytes | None:
        """The file's bytes, or None if there is no such file."""
        raise NotImplementedError

    def write(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def delete(self, name: str) -> bool:
        """Remove a file; False if it was not there."""
        raise NotImplementedError

    def local_folder(self) -> Path:
        """A folder holding the store's files now (the folder itself, or a synced mirror)."""
        raise NotImplementedError

    def change_token(self) -> str:
        return token_of(self.list())

    def display(self, name: str) -> str:
        return f"{self.url.rstrip('/')}/{name}"


class FolderStore(ClusterStore):
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.url = str(self.folder)

    def list(self) -> dict[str, str]:
        listing = {}
        if self.folder.is_dir():
            for path in self.folder.rglob("*"):
                if path.suffix in YAML_SUFFIXES and path.is_file():
                    stat = path.stat()
                    name = path.relative_to(self.folder).as_posix()
                    listing[name] = f"{stat.st_mtime_ns}-{stat.st_size}"
        return listing

    def read(self, name: str) -> bytes | None:
        try:
            return (self.folder / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self.display(name)}: {exc}") from None

    def write(self, name: str, data: bytes) -> None:
        try:
            _atomic_write(self.folder / name, data)
        except OSError as exc:
            raise StoreError(f"cannot write {self.display(name)}: {exc}") from None

    def delete(self, name: str) -> bool:
        try:
            (self.folder / name).unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreError(f"cannot delete {self.display(name)}: {exc}") from None
        return True

    def local_folder(self) -> Path:
        return self.folder


class S3Store(ClusterStore):
    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # here: only S3 stores need it

            self._client = boto3.client("s3")  # AWS_ENDPOINT_URL, credentials: boto3's own
        return self._client

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    @contextlib.contextmanager
    def _errors(self, action: str, where: str) -> Iterator[None]:
        """boto3's exceptions as one StoreError naming the object and the usual fixes."""
        if not self.bucket:
            raise StoreError(
                f"{self.url}: no bucket in the store URL (expected s3://bucket/prefix)"
            )
        try:
            yield
        except StoreError:
            raise
        except (
            Exception
        ) as exc:  # botocore's ClientError, NoCredentialsError, EndpointConnectionError
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            what = f"{code}: {exc}" if code else f"{type(exc).__name__}: {exc}"
            raise StoreError(
                f"cannot {action} {where}: {what}\n    hint: check the bucket, the credentials "
                "(AWS_ACCESS_KEY_ID/AWS_PROFILE) and, for another S3 endpoint, AWS_ENDPOINT_URL"
            ) from None

    def list(self) -> dict[str, str]:
        listing: dict[str, str] = {}
        start = f"{self.prefix}/" if self.prefix else ""
        with self._errors("list", self.url):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(start) :]
                    if _is_cluster_name(name):
                        listing[name] = obj["ETag"].strip('"')
        return listing

    def read_versioned(self, name: str) -> tuple[bytes, str] | None:
        """The object's bytes and its ETag as served (it may be newer than a listing)."""
        with self._errors("read", self.display(name)):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self.key(name))
            except self.client.exceptions.NoSuchKey:
                return None
            return response["Body"].read(), response["ETag"].strip('"')

    def read(self, name: str) -> bytes | None:
        found = self.read_versioned(name)
        return found[0] if found else None

    def write(self, name: str, data: bytes) -> None:
        with self._errors("write", self.display(name)):
            self.client.put_object(
                Bucket=self.bucket, Key=self.key(name), Body=data, ContentType="application/yaml"
            )

    def delete(self, name: str) -> bool:
        with self._errors("delete", self.display(name)):
            try:
                self.client.head_object(Bucket=self.bucket, Key=self.key(name))
            except Exception as exc:
                if getattr(exc, "response", {}).get("Error", {}).get("Code") in (
                    "404",
                    "NoSuchKey",
                ):
                    return False
                raise
            self.client.delete_object(Bucket=self.bucket, Key=self.key(name))
        return True

    def local_folder(self) -> Path:
        return sync_mirror(self, mirror_folder(self))


def store_from_url(url: str | Path | None = None) -> ClusterStore:
    """``s3://bucket/prefix`` or a folder path; None means ``$EXOSPHERE_CLUSTERS_DIR``."""
    text = str(url if url is not None else os.environ.get(CLUSTERS_DIR_ENV) or DEFAULT_FOLDER)
    if text.startswith("s3://"):
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        return S3Store(bucket, prefix)
    return FolderStore(text)


# -- the mirror of an S3 prefix ------------------------------------------------------------------
@dataclass(frozen=True)
class StoreView:
    """What a loaded folder stands for: the store's URL, the token of the files loaded, the
    folder they were loaded from, and the last error reading the store (None when fine)."""

    url: str
    token: str
    root: Path
    error: str | None = None

    def display(self, path: str | Path) -> str:
        """A loaded file's name as users know it (``s3://bucket/prefix/x.yml`` for a mirror)."""
        try:
            name = Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)
        return f"{self.url.rstrip('/')}/{name}" if self.url.startswith("s3://") else str(path)


def mirror_folder(store: S3Store) -> Path:
    """One cache folder per endpoint and prefix (two moto servers never share a mirror)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    digest = hashlib.sha256(f"{endpoint}|{store.url}".encode()).hexdigest()[:16]
    root = Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "exosphere-stores")
    return root / digest


def view_of(folder: str | Path) -> StoreView:
    """The StoreView of a folder the location loads: a mirror's recorded state, or the folder."""
    folder = Path(folder)
    state = _read_state(folder)
    if state is not None:
        return StoreView(state["url"], token_of(state["etags"]), folder, state.get("error"))
    return StoreView(str(folder), FolderStore(folder).change_token(), folder)


def sync_mirror(store: S3Store, folder: Path) -> Path:
    """Bring ``folder`` up to date with the prefix: fetch new or changed objects (by ETag),
    remove deleted ones. If the store cannot be read, keep the last copy and record the error
    (the location shows it); a process beside this one syncing the same mirror waits."""
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        state = _read_state(folder) or {"url": store.url, "etags": {}}
        state["url"], state["error"] = store.url, None
        try:
            listing = store.list()
            etags: dict[str, str] = {}
            for name, etag in sorted(listing.items()):
                target = folder / name
                if state["etags"].get(name) == etag and target.is_file():
                    etags[name] = etag
                    continue
                found = store.read_versioned(name)
                if found is not None:  # else deleted since the listing
                    _atomic_write(target, found[0])
                    etags[name] = found[1]
            state["etags"] = etags
        except StoreError as exc:
            state["error"] = str(exc)
            logger.error("clusters store %s: %s (loading the last copy)", store.url, exc)
        for path in folder.rglob("*"):  # what the store no longer holds
            name = path.relative_to(folder).as_posix()
            if path.suffix in YAML_SUFFIXES and path.is_file() and name not in state["etags"]:
                path.unlink()
        _atomic_write(folder / MIRROR_STATE, json.dumps(state, indent=1).encode())
    return folder


def _read_state(folder: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((folder / MIRROR_STATE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and "url" in state else None


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write then rename: a reader (the code location) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
