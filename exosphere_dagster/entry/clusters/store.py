"""The clusters store: where a code location's cluster files live and where ``exosphere
clusters apply`` writes them. A local folder (the default, ``./clusters``) or an S3 prefix
(``s3://bucket/prefix``, any S3-compatible endpoint through ``AWS_ENDPOINT_URL``).

Both answer the same calls (list, read, write, delete, a change token to watch) and a
compare-and-swap, ``swap``, that writes only over the version it was made against (a folder: the
content hash, checked under a lock file; S3: the ETag, with a conditional put or delete): what
``exosphere clusters apply`` writes and puts back, so that it never overwrites a write it did not
make. The code location loads a local folder either way: an S3 prefix is mirrored into a cache
folder (store_mirror.py), and errors name the object (``shown_as``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from exosphere_dagster.resolve.content import content_hash
from yaml_loader.load import YAML_SUFFIXES, cluster_files_under

logger = logging.getLogger("exosphere")
FOLDER_LOCK = ".exosphere-store.lock"  # held by a folder store's compare-and-swap


class StoreError(Exception):
    """The store refused a call (missing bucket, access denied, a bad name)."""


class StoreUnreachable(StoreError):
    """The store could not be reached at all (endpoint down, no network)."""


class StoreConflict(StoreError):
    """A compare-and-swap found another version of the file than the one it was made against:
    someone else wrote (or deleted) it meanwhile, and their write was kept."""


def _conflict(where: str) -> StoreConflict:
    return StoreConflict(f"{where} was changed by another writer meanwhile; their version is kept")


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
            for path in cluster_files_under(self.folder):  # the files the location reads
                stat = path.stat()
                found[path.relative_to(self.folder).as_posix()] = (stat.st_mtime_ns, stat.st_size)
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

    def read_version(self, name: str) -> tuple[bytes | None, str | None]:
        """The file and its version (its content hash); (None, None) if there is none."""
        data = self.read(name)
        return data, None if data is None else content_hash(data)

    def swap(self, name: str, data: bytes | None, expect: str | None) -> str | None:
        """Write ``data`` (delete for None) only if the file's version is still ``expect``
        (None: no file); returns the new version, or raises StoreConflict. Atomic against every
        other ``swap`` on the folder (a lock file); a hand edit has no lock to take."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            lock = open(self.folder / FOLDER_LOCK, "a")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise StoreError(f"cannot lock {self.folder}: {exc.strerror}") from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.read_version(name)[1] != expect:
                raise _conflict(self.where(name))
            if data is None:
                self.delete(name)
                return None
            self.write(name, data)
            return content_hash(data)

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
    unreachable: str | None = field(default=None, repr=False, compare=False)  # never mirrored
    # the keys the mirror skipped (their s3:// URL -> why): store_mirror.py
    skipped: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def problem(self) -> str | None:
        """Why the location lacks some of the store: never mirrored and unreachable, or keys
        that cannot be mirrored (the code location shows it as an ``invalid__`` job)."""
        lines = [self.unreachable] if self.unreachable else []
        if self.skipped:
            lines.append(
                f"{len(self.skipped)} object(s) of {self.url} cannot be files of a folder and "
                "were skipped (rename them):"
            )
            lines += [f"  {where}: {why}" for where, why in self.skipped.items()]
        return "\n".join(lines) or None

    def _key(self, name: str) -> str:
        name = check_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def where(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"

    def where_key(self, name: str) -> str:
        """Any listed name's object, checked or not (to report a key that cannot be mirrored)."""
        return (
            f"s3://{self.bucket}/{self.prefix}/{name}"
            if self.prefix
            else f"s3://{self.bucket}/{name}"
        )

    @contextlib.contextmanager
    def _client(self, doing: str) -> Iterator[Any]:
        """The one S3 client factory's client (per process, so nothing is held across a fork)
        and one place that turns botocore's exceptions into a message naming the store and the
        fix."""
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        from satellite_ops.helpers.s3_client import INFRASTRUCTURE_ATTEMPTS, s3_client

        try:
            yield s3_client(endpoint_url=self.endpoint_url, attempts=INFRASTRUCTURE_ATTEMPTS)
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

    def listing(self) -> dict[str, str]:
        """Name (below the prefix, as the key has it) -> ETag of every object whose name ends
        in .yml or .yaml, in key order, mirrorable or not (store_mirror.py)."""
        start = f"{self.prefix}/" if self.prefix else ""
        found: dict[str, str] = {}
        with self._client("listing") as s3:
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            ):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(start) :]
                    if name.endswith(YAML_SUFFIXES):
                        found[name] = obj["ETag"]
        return found

    def list(self) -> dict[str, str]:
        """Name -> ETag of every cluster file the mirror holds (the others: ``skipped``)."""
        from exosphere_dagster.entry.clusters.mirror import mirror_plan

        return mirror_plan(self.listing())[0]

    def token(self) -> Any:
        return tuple(self.listing().items())

    def read(self, name: str) -> bytes | None:
        return self.read_version(name)[0]

    def read_version(self, name: str) -> tuple[bytes | None, str | None]:
        """The object and its version (its ETag); (None, None) if there is none."""
        with self._client("reading") as s3:
            try:
                got = s3.get_object(Bucket=self.bucket, Key=self._key(name))
            except s3.exceptions.NoSuchKey:
                return None, None
            return got["Body"].read(), got["ETag"]

    def swap(self, name: str, data: bytes | None, expect: str | None) -> str | None:
        """Write ``data`` (delete for None) only if the object's ETag is still ``expect`` (None:
        no object): S3's conditional put (``If-Match`` / ``If-None-Match: *``) and conditional
        delete (``If-Match``). Returns the new ETag, or raises StoreConflict."""
        from botocore.exceptions import ClientError

        key = self._key(name)
        with self._client("writing to") as s3:
            try:
                if data is not None:
                    condition = {"IfMatch": expect} if expect else {"IfNoneMatch": "*"}
                    put = s3.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=data,
                        ContentType="application/yaml",
                        **condition,
                    )
                    return put["ETag"]
                if expect:
                    s3.delete_object(Bucket=self.bucket, Key=key, IfMatch=expect)
                elif self.read_version(name)[1] is not None:
                    raise _conflict(self.where(name))
                return None
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                code = exc.response.get("Error", {}).get("Code")
                if status in (404, 409, 412) or code in ("NoSuchKey", "PreconditionFailed"):
                    raise _conflict(self.where(name)) from None
                raise

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
        from exosphere_dagster.entry.clusters.mirror import mirror

        if self._mirror is None:
            try:
                self._mirror = mirror(self, self.cache_folder())
            except StoreError as exc:  # never mirrored and unreachable: an empty location
                self.unreachable = str(exc)
                self._mirror = self.cache_folder()
            except OSError as exc:  # the cache folder itself (full disk, no permission)
                self.unreachable = f"cannot mirror {self.url} into {self.cache_folder()}: {exc}"
                self._mirror = self.cache_folder()
        return self._mirror

    def shown_as(self, file: str) -> str:
        """A mirrored file's path as the object it came from (for error messages)."""
        cache = str(self.cache_folder())
        if file.startswith(cache + os.sep):
            return self.where(Path(file).relative_to(cache).as_posix())
        return file


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
