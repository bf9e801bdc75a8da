"""The clusters store: where a code location's cluster files live and where ``exosphere
clusters apply`` writes them. A local folder (the default, ``./clusters``) or an S3 prefix
(``s3://bucket/prefix``, any S3-compatible endpoint through ``AWS_ENDPOINT_URL``).

Both answer the same five calls (list, read, write, delete, and a change token to watch). The
code location loads a local folder either way: an S3 prefix is mirrored into a cache folder,
downloading only objects whose ETag changed, and errors name the object (``shown_as``).
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
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from yaml_loader.load import YAML_SUFFIXES

logger = logging.getLogger("exosphere")
MANIFEST = ".exosphere-etags.json"


class StoreError(Exception):
    """The store refused a call (missing bucket, access denied, a bad name)."""


class StoreUnreachable(StoreError):
    """The store could not be reached at all (endpoint down, no network)."""


def check_name(name: str) -> str:
    """A store name is a relative path to a YAML file, with no ``..``: it is also a file name
    in a folder (and in the mirror of an S3 prefix)."""
    path = PurePosixPath(name)
    if (
        path.is_absolute()
        or ".." in path.parts
        or not path.parts
        or path.suffix not in YAML_SUFFIXES
    ):
        raise StoreError(
            f"not a cluster file name in a store: {name!r} (want e.g. 'team__job.yml')"
        )
    return path.as_posix()


class FolderStore:
    """A local folder of cluster files (what ``exosphere dev clusters/`` watches)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.url = str(self.folder.resolve())

    def list(self) -> dict[str, tuple[int, int]]:
        """Name -> (mtime_ns, size) of every cluster file, in folder order."""
        found = {}
        if self.folder.is_dir():
            for path in sorted(self.folder.rglob("*")):
                if path.suffix in YAML_SUFFIXES and path.is_file():
                    stat = path.stat()
                    found[path.relative_to(self.folder).as_posix()] = (
                        stat.st_mtime_ns,
                        stat.st_size,
                    )
        return found

    def token(self) -> Any:
        return tuple(self.list().items())

    def where(self, name: str) -> str:
        return str(self.folder / check_name(name))

    def read(self, name: str) -> bytes | None:
        try:
            return (self.folder / check_name(name)).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self.where(name)}: {exc.strerror}") from None

    def write(self, name: str, data: bytes) -> None:
        """Atomically: a watcher or loader never sees half a file (the temporary name is no
        cluster file)."""
        target = self.folder / check_name(name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        except OSError as exc:
            raise StoreError(f"cannot write {target}: {exc.strerror}") from None

    def delete(self, name: str) -> None:
        try:
            (self.folder / check_name(name)).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot delete {self.where(name)}: {exc.strerror}") from None

    def local_folder(self) -> Path:
        return self.folder

    @property
    def problem(self) -> str | None:
        return None

    def shown_as(self, file: str) -> str:
        return file


@dataclass
class S3Store:
    """Cluster files under an S3 prefix, read and written with the caller's own credentials
    (boto3's standard chain; ``AWS_ENDPOINT_URL`` for MinIO, moto, ...)."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None  # None: boto3's own (AWS_ENDPOINT_URL, or AWS)
    _mirror: Path | None = field(default=None, repr=False)
    problem: str | None = field(default=None, repr=False)  # why the mirror could not be made

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _key(self, name: str) -> str:
        name = check_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def where(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"

    @contextlib.contextmanager
    def _client(self, doing: str) -> Iterator[Any]:
        """A fresh client per call (nothing held across a fork) and one place that turns
        botocore's exceptions into a message naming the store and the fix."""
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        try:
            yield boto3.client("s3", endpoint_url=self.endpoint_url)
        except EndpointConnectionError as exc:
            raise StoreUnreachable(
                f"cannot reach the S3 endpoint while {doing} {self.url}: {exc} "
                "(check AWS_ENDPOINT_URL and the network)"
            ) from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise StoreError(
                f"S3 refused {doing} {self.url}: {error.get('Code')}: {error.get('Message')}"
            ) from None
        except BotoCoreError as exc:  # no credentials, bad region, ...
            raise StoreError(f"S3 error while {doing} {self.url}: {exc}") from None

    def list(self) -> dict[str, str]:
        """Name -> ETag of every cluster file under the prefix, in key order."""
        start = f"{self.prefix}/" if self.prefix else ""
        found: dict[str, str] = {}
        with self._client("listing") as s3:
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            ):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(start) :]
                    if PurePosixPath(name).suffix in YAML_SUFFIXES and ".." not in name.split("/"):
                        found[name] = obj["ETag"]
        return found

    def token(self) -> Any:
        return tuple(self.list().items())

    def read(self, name: str) -> bytes | None:
        with self._client("reading") as s3:
            try:
                return s3.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
            except s3.exceptions.NoSuchKey:
                return None

    def write(self, name: str, data: bytes) -> None:
        with self._client("writing to") as s3:
            s3.put_object(
                Bucket=self.bucket, Key=self._key(name), Body=data, ContentType="application/yaml"
            )

    def delete(self, name: str) -> None:
        with self._client("deleting from") as s3:
            s3.delete_object(Bucket=self.bucket, Key=self._key(name))

    def cache_folder(self) -> Path:
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"exosphere-clusters-{os.getuid()}" / digest

    def local_folder(self) -> Path:
        """The prefix mirrored into the cache folder, once per store object (a process):
        later calls, and step processes forked after the first, reuse it. Never raises: when the
        store cannot be read and was never mirrored, ``problem`` says why."""
        if self._mirror is None:
            try:
                self._mirror = mirror(self, self.cache_folder())
            except StoreError as exc:  # never mirrored and unreachable: an empty location
                self.problem = str(exc)
                self._mirror = self.cache_folder()
        return self._mirror

    def shown_as(self, file: str) -> str:
        """A mirrored file's path as the object it came from (for error messages)."""
        cache = str(self.cache_folder())
        if file.startswith(cache + os.sep):
            return self.where(Path(file).relative_to(cache).as_posix())
        return file


def mirror(store: S3Store, folder: Path) -> Path:
    """Make ``folder`` hold exactly the store's cluster files: download the objects whose ETag
    is new, remove files whose object is gone. One process at a time (a lock file); an object
    that cannot be read is left out and logged, the rest still load. If the store cannot be
    listed, the last mirror is kept (logged), so a blip of S3 never empties a location."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest_path = folder / MANIFEST
        try:
            known = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            known = {}
        try:
            listed = store.list()
        except StoreError as exc:
            if not known:
                raise
            logger.error("%s; loading the last copy of the store (%s)", exc, folder)
            return folder
        kept: dict[str, str] = {}
        for name, etag in listed.items():
            target = folder / name
            if known.get(name) == etag and target.is_file():
                kept[name] = etag
                continue
            try:
                data = store.read(name)
            except StoreError as exc:
                logger.error("skipping %s: %s", store.where(name), exc)
                continue
            if data is None:
                continue  # deleted since the listing
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
            kept[name] = etag
        for path in folder.rglob("*"):
            if path.suffix in YAML_SUFFIXES and path.relative_to(folder).as_posix() not in kept:
                path.unlink(missing_ok=True)
        manifest_path.write_text(json.dumps(kept))
    return folder


ClusterStore = FolderStore | S3Store


def open_store(url: str | Path) -> ClusterStore:
    """``s3://bucket/prefix`` or a folder path."""
    text = str(url)
    if text.startswith("s3://"):
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        if not bucket:
            raise StoreError(f"no bucket in {text!r} (want s3://bucket/prefix)")
        return S3Store(bucket, prefix.strip("/"))
    if "://" in text:
        raise StoreError(f"unsupported clusters store {text!r}: use a folder or s3://bucket/prefix")
    return FolderStore(text)


def store_name(job_name: str) -> str:
    """The file a cluster is stored under: its job name (``tour/hello`` -> ``tour__hello.yml``),
    so one identifier is one file and applying it again replaces it."""
    return f"{job_name}.yml"
