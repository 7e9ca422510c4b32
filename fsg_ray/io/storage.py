"""Where fsg-ray keeps files: one URI type for local paths, ``file://`` and ``s3://``.

Every write is atomic: a reader never sees half a file, and a killed job leaves either the
old object or the new one.

* Local: data goes to a temporary file in the same folder (``.<name>.<random>.tmp``), is
  flushed to disk, then renamed over the target, and the folder is flushed too
  (:mod:`fsg_ray.io.localfiles`). Files are created with the umask's mode (0644 by default).
* S3: an object becomes visible only when a single ``PutObject`` or a
  ``CompleteMultipartUpload`` succeeds. Writes go through boto3 because pyarrow cannot abort an
  upload: closing its output stream, even while an exception unwinds a ``with`` block or from
  the destructor, *completes* the upload and publishes a truncated object. Here an error
  aborts the multipart upload instead.

Reads, listings and existence checks on S3 go through ``pyarrow.fs.S3FileSystem``, which Ray
Data also takes (see :meth:`Storage.filesystem`). Both clients get the endpoint from
:class:`StorageOptions` only: pyarrow ignores ``AWS_ENDPOINT_URL`` and a Ray worker on another
node does not inherit the driver's environment, so the driver reads it once
(:meth:`StorageOptions.from_env`) and ships the options as ``asdict(options)``. Credentials come
from the standard AWS chain on each process.

**Conditional writes** let several processes share one object safely:
:meth:`Storage.write_bytes_if_absent` creates a file only if none exists (S3
``If-None-Match: *``, local ``link``, which fails like ``O_CREAT|O_EXCL``), and
:meth:`Storage.write_if_match` replaces one only if it is still the version
:meth:`Storage.read_with_etag` read (S3 ``If-Match`` on its ETag; locally a compare under a
``flock``). A lost race raises :class:`Conflict`. The S3 service must honour these headers:
AWS S3 does since 2024 (MinIO too); a store that ignores them makes them plain writes.

Each S3 request is retried on transient errors (connection failures, timeouts, 5xx, throttling)
with exponential backoff; the SDKs' own retries are off so that every retry is logged here.
Permanent errors (no such bucket or key, access denied, bad request) fail at once. Every error,
local ones included (a full disk, a read-only folder), is a :class:`StorageError` naming the
URI.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions
import pyarrow.fs as pafs

from fsg_ray.config import StorageOptions
from fsg_ray.io import localfiles
from fsg_ray.io.storage_errors import (  # noqa: F401 - StorageError etc. are imported from here
    Conflict,
    NotFound,
    ObjectChanged,
    StorageError,
    is_transient,
    local_errors,
    permanent,
)
from fsg_ray.io.uri import (
    Uri,
    join,
    parse_uri,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Bytes per multipart part and per streamed read. S3 needs parts of >= 5 MiB (except the last);
# a write smaller than one part is a single PutObject.
CHUNK_BYTES = 8 * 1024 * 1024
#: Bytes per ranged GET of an S3 read.
READ_CHUNK_BYTES = CHUNK_BYTES
#: Whole-file reads of an S3 object overwritten meanwhile start over this many times.
READ_ATTEMPTS = 5


@dataclass(frozen=True)
class FileInfo:
    """What a listing tells about a file.

    Attributes:
        uri: The file.
        size: Its size in bytes.
        mtime_ns: Its modification time (S3: when the object was last written).
    """

    uri: str
    size: int
    mtime_ns: int

    @property
    def identity(self) -> str:
        """``<size>-<mtime_ns>``: changes when the file is replaced, even under the same name."""
        return f"{self.size}-{self.mtime_ns}"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Writes ``data`` to a local ``path`` atomically, creating parent folders; returns the path.

    For URIs (``s3://``, ``file://``) use :meth:`Storage.write_bytes`.
    """
    with local_errors(os.fspath(path)):
        return localfiles.write(Path(path), (data,))


class Storage:
    """Lists, reads, writes (atomically), checks and copies files by URI.

    Holds one pyarrow S3 filesystem and one boto3 client, made on first use. Safe to share
    between threads; pickles as its options, so it can be captured by Ray tasks.

    Args:
        options: Endpoint, region and retry policy; defaults to AWS with default retries.
    """

    def __init__(self, options: StorageOptions | None = None) -> None:
        self.options = options or StorageOptions()
        self._known_buckets: set[str] = set()

    def __reduce__(self) -> tuple[type[Storage], tuple[StorageOptions]]:
        return Storage, (self.options,)

    def filesystem(self, uri: Uri) -> tuple[pafs.FileSystem, str]:
        """Returns a pyarrow filesystem and the path inside it, e.g. for Ray Data readers."""
        loc = parse_uri(uri)
        if loc.bucket is None:
            return pafs.LocalFileSystem(), loc.path
        return self._s3fs, f"{loc.bucket}/{loc.path}".rstrip("/")

    def list_files(self, prefix: Uri, suffixes: Iterable[str] | None = None) -> list[str]:
        """Lists the files below a folder or key prefix, recursively, as sorted URIs.

        Skips S3 "directory marker" objects (keys ending in ``/``) and our own local
        temporaries and lock files. A prefix with nothing below it gives ``[]``; a missing
        bucket raises.

        Args:
            prefix: Folder to list; results keep its form (path, ``file://`` or ``s3://``).
            suffixes: Keep only names ending in one of these, case-insensitively (``.jpg``).
        """
        return [info.uri for info in self.list_info(prefix, suffixes)]

    def list_info(self, prefix: Uri, suffixes: Iterable[str] | None = None) -> list[FileInfo]:
        """:meth:`list_files` with each file's size and modification time, from one listing."""
        loc = parse_uri(prefix)
        text = os.fspath(prefix)
        if loc.bucket:
            found = self._list_s3(loc.bucket, text)
        else:
            with local_errors(text):
                found = localfiles.list_info(loc.path)
        ends = tuple(s.lower() for s in suffixes) if suffixes is not None else None
        infos = (FileInfo(join(prefix, n), size, mtime) for n, size, mtime in found)
        return sorted(
            (i for i in infos if ends is None or i.uri.lower().endswith(ends)), key=lambda i: i.uri
        )

    def stat(self, uri: Uri) -> FileInfo:
        """A file's size and modification time (one request on S3).

        Raises:
            NotFound: There is no such file (or bucket).
        """
        loc, text = parse_uri(uri), os.fspath(uri)
        if loc.bucket is None:
            with local_errors(text):
                st = os.stat(loc.path)
            return FileInfo(text, st.st_size, st.st_mtime_ns)
        fs, path = self.filesystem(uri)
        info = self._retry(text, lambda: fs.get_file_info(path))
        if info.type != pafs.FileType.File:
            self._check_bucket(loc.bucket, text)
            raise NotFound(f"{text}: no such key")
        return FileInfo(text, int(info.size), int(info.mtime_ns or 0))

    def delete(self, uri: Uri) -> None:
        """Deletes a file; a file that is already gone is no error."""
        loc, text = parse_uri(uri), os.fspath(uri)
        if loc.bucket is None:
            with local_errors(text), contextlib.suppress(FileNotFoundError):
                os.unlink(loc.path)
            return
        self._retry(text, lambda: self._s3.delete_object(Bucket=loc.bucket, Key=loc.path))

    def exists(self, uri: Uri) -> bool:
        """Whether a file (not a folder) exists at ``uri``; a missing bucket raises NotFound."""
        loc = parse_uri(uri)
        if loc.bucket is None:
            return Path(loc.path).is_file()
        fs, path = self.filesystem(uri)
        info = self._retry(os.fspath(uri), lambda: fs.get_file_info(path))
        if info.type == pafs.FileType.NotFound:
            self._check_bucket(loc.bucket, os.fspath(uri))
        return bool(info.type == pafs.FileType.File)

    def read_bytes(self, uri: Uri) -> bytes:
        """Reads a whole file: one version of it, even while it is being overwritten.

        Raises:
            NotFound: If the file, key or bucket does not exist.
            StorageError: On other failures, after retries if they were transient.
        """
        loc = parse_uri(uri)
        if loc.bucket is None:
            return b"".join(self.read_chunks(uri))
        return self._read_s3(loc.bucket, loc.path, os.fspath(uri))[0]

    def read_chunks(self, uri: Uri) -> Iterator[bytes]:
        """Streams a file in chunks of at most :data:`CHUNK_BYTES`; each S3 read is retried.

        Opens the file before returning, so NotFound is raised here, not on iteration.
        """
        loc, text = parse_uri(uri), os.fspath(uri)
        if loc.bucket is None:
            with local_errors(text):
                file = open(loc.path, "rb")  # noqa: SIM115 - closed by _chunks
            return _chunks(text, file, lambda: file.read(CHUNK_BYTES))
        return self._s3_chunks(loc.bucket, loc.path, text)

    def read_with_etag(self, uri: Uri) -> tuple[bytes, str]:
        """Reads a whole file and the tag of that version of it, for :meth:`write_if_match`.

        The tag is opaque: the S3 ETag, or a hash of a local file's content.

        Raises:
            NotFound: If the file, key or bucket does not exist.
            StorageError: On other failures, after retries if they were transient.
        """
        loc, text = parse_uri(uri), os.fspath(uri)
        if loc.bucket is None:
            data = self.read_bytes(uri)
            return data, localfiles.content_tag(data)
        return self._read_s3(loc.bucket, loc.path, text)

    def write_bytes(self, uri: Uri, data: bytes) -> str:
        """Writes ``data`` atomically, replacing any old file; returns the URI."""
        return self.write_chunks(uri, (data,))

    def write_chunks(self, uri: Uri, chunks: Iterable[bytes]) -> str:
        """Writes a stream of chunks atomically; returns the URI.

        If ``chunks`` raises, or a request fails, nothing becomes visible: the old file (if
        any) stays, the local temporary is deleted and the S3 multipart upload is aborted.
        """
        loc, text = parse_uri(uri), os.fspath(uri)
        if loc.bucket is None:
            with local_errors(text, "write"):
                localfiles.write(Path(loc.path), chunks)
        else:
            self._write_s3(loc.bucket, loc.path, text, chunks)
        return text

    def write_bytes_if_absent(self, uri: Uri, data: bytes) -> str:
        """Writes ``data`` atomically, only if no file exists at ``uri``; returns the URI.

        Of several writers racing to create one name, exactly one wins.

        Raises:
            Conflict: A file exists at ``uri``; it is left as it was.
        """
        loc, text = parse_uri(uri), os.fspath(uri)
        if loc.bucket is not None:
            self._write_s3(loc.bucket, loc.path, text, (data,), {"IfNoneMatch": "*"})
            return text
        with local_errors(text, "write"):
            try:
                localfiles.write_if_absent(Path(loc.path), data)
            except localfiles.Exists as e:
                raise Conflict(f"{text}: exists already (written by another writer)") from e
        return text

    def write_if_match(self, uri: Uri, data: bytes, etag: str | None) -> str:
        """Replaces a file atomically if it is still the version read; returns the URI.

        Args:
            uri: The file.
            data: Its new content.
            etag: The tag :meth:`read_with_etag` gave, or None to create a file that must not
                exist yet.

        Raises:
            Conflict: The file changed, was created or deleted since; it is left as it was.
        """
        loc, text = parse_uri(uri), os.fspath(uri)
        if loc.bucket is not None:
            condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
            self._write_s3(loc.bucket, loc.path, text, (data,), condition)
            return text
        with local_errors(text):
            try:
                localfiles.write_if_tag(Path(loc.path), data, etag)
            except (localfiles.Exists, localfiles.TagMismatch) as e:
                raise Conflict(f"{text}: changed by another writer since it was read") from e
        return text

    def copy(self, src: Uri, dst: Uri) -> str:
        """Copies a file between any two URIs (local or S3) atomically, streaming; returns dst."""
        return self.write_chunks(dst, self.read_chunks(src))

    def _timeouts(self, connect: str, read: str) -> dict[str, float]:
        """The options' timeout under a client's two keyword names; none when unset."""
        t = self.options.timeout_s
        return {} if t is None else {connect: t, read: t}

    @cached_property
    def _s3fs(self) -> pafs.S3FileSystem:
        endpoint = self.options.endpoint_url
        scheme, _, host = endpoint.partition("://") if endpoint else ("https", "", "")
        return pafs.S3FileSystem(
            region=self.options.region,
            endpoint_override=host.rstrip("/") or None,
            scheme=scheme,
            # One attempt per call: _retry does the retrying, and logs it.
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
            **self._timeouts("connect_timeout", "request_timeout"),
        )

    @cached_property
    def _s3(self) -> Any:
        config = botocore.config.Config(
            retries={"total_max_attempts": 1},
            # Only options.endpoint_url counts, as for pyarrow (boto3 would read the env/profile).
            ignore_configured_endpoint_urls=True,
            # boto3 >= 1.36 adds CRC checksums by default, which many S3-compatible stores reject.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            **self._timeouts("connect_timeout", "read_timeout"),
        )
        # A private session: boto3's default session is global and not thread-safe.
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.options.endpoint_url,
            region_name=self.options.region,
            config=config,
        )

    def _list_s3(self, bucket: str, uri: str) -> list[tuple[str, int, int]]:
        """(key relative to ``uri``, size, mtime_ns) below ``uri``, without directory markers."""
        fs, base = self.filesystem(uri)
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        infos = self._retry(uri, lambda: fs.get_file_info(selector))
        if not infos:  # pyarrow lists a missing bucket as empty
            self._check_bucket(bucket, uri)
        return [
            (i.path[len(base) + 1 :], int(i.size), int(i.mtime_ns or 0))
            for i in infos
            if i.type == pafs.FileType.File
        ]

    def _read_s3(self, bucket: str, key: str, uri: str) -> tuple[bytes, str]:
        """The whole object and its ETag; read again if it is overwritten meanwhile."""
        for attempt in range(1, READ_ATTEMPTS + 1):
            first = self._get_first(bucket, key, uri)
            size = int(first["ContentRange"].rpartition("/")[2]) if "ContentRange" in first else 0
            try:
                return b"".join(self._s3_ranges(bucket, key, uri, first, size)), first["ETag"]
            except ObjectChanged:
                if attempt == READ_ATTEMPTS:
                    raise
                logger.info("%s: overwritten while being read, reading it again", uri)
        raise AssertionError("unreachable")

    def _s3_chunks(self, bucket: str, key: str, uri: str) -> Iterator[bytes]:
        """The object in ranged GETs, each retried, all pinned to one version by its ETag.

        The first GET is made before returning (so NotFound is raised here); its reply gives
        the size and ETag. pyarrow's input stream read whatever object was there at each
        read: a concurrent overwrite gave a truncated or zero-padded mix of two versions.
        """
        first = self._get_first(bucket, key, uri)
        size = int(first["ContentRange"].rpartition("/")[2]) if "ContentRange" in first else 0
        return self._s3_ranges(bucket, key, uri, first, size)

    def _get_first(self, bucket: str, key: str, uri: str) -> dict[str, Any]:
        byte_range = f"bytes=0-{READ_CHUNK_BYTES - 1}"
        try:
            return self._retry(uri, functools.partial(self._get_s3, bucket, key, byte_range))
        except NotFound:
            self._check_bucket(bucket, uri)
            raise
        except StorageError as exc:
            if "InvalidRange" not in str(exc):
                raise
            # S3 refuses any range of an empty object; fetch it whole (it is empty).
            return self._retry(uri, functools.partial(self._get_s3, bucket, key, None))

    def _s3_ranges(
        self, bucket: str, key: str, uri: str, first: dict[str, Any], size: int
    ) -> Iterator[bytes]:
        yield first["data"]
        for start in range(READ_CHUNK_BYTES, size, READ_CHUNK_BYTES):
            byte_range = f"bytes={start}-{min(start + READ_CHUNK_BYTES, size) - 1}"
            get = functools.partial(self._get_s3, bucket, key, byte_range, first["ETag"])
            yield self._retry(uri, get)["data"]

    def _get_s3(
        self, bucket: str, key: str, byte_range: str | None, etag: str | None = None
    ) -> dict[str, Any]:
        """One GET, body included (a connection lost mid-body is retried with the request)."""
        kwargs = {"Range": byte_range} if byte_range else {}
        reply = self._s3.get_object(
            Bucket=bucket, Key=key, **kwargs, **({"IfMatch": etag} if etag else {})
        )
        return {**reply, "data": bytes(reply["Body"].read())}

    def _write_s3(
        self,
        bucket: str,
        key: str,
        uri: str,
        chunks: Iterable[bytes],
        condition: dict[str, str] | None = None,
    ) -> None:
        """One PutObject for less than two parts, else a multipart upload, aborted on error.

        ``condition`` (``IfMatch``/``IfNoneMatch``) goes on the request that makes the object
        visible; failing it raises :class:`Conflict`.
        """
        parts = _rechunk(chunks, CHUNK_BYTES)
        first = next(parts, b"")
        second = next(parts, None)
        condition = condition or {}
        if second is None:
            put = functools.partial(self._s3.put_object, Bucket=bucket, Key=key, Body=first)
            self._conditional(uri, condition, lambda: put(**condition))
            return
        created = self._retry(uri, lambda: self._s3.create_multipart_upload(Bucket=bucket, Key=key))
        upload = {"Bucket": bucket, "Key": key, "UploadId": created["UploadId"]}
        try:
            done = [self._upload_part(upload, uri, n, p) for n, p in enumerate((first, second), 1)]
            done += [self._upload_part(upload, uri, n, p) for n, p in enumerate(parts, 3)]
            self._complete(upload, uri, done, condition)
        except BaseException:
            self._abort(upload, uri)
            raise

    def _conditional(self, uri: str, condition: dict[str, str], request: Callable[[], T]) -> T:
        """:meth:`_retry` for a request carrying ``condition``: a failed condition is a
        :class:`Conflict`, and so is a missing key under ``IfMatch`` (it was deleted)."""
        try:
            return self._retry(uri, request)
        except ObjectChanged as e:
            raise Conflict(f"{uri}: changed or created by another writer") from e
        except NotFound as e:
            if "IfMatch" not in condition:
                raise
            raise Conflict(f"{uri}: deleted by another writer since it was read") from e

    def _complete(
        self,
        upload: dict[str, str],
        uri: str,
        parts: list[dict[str, Any]],
        condition: dict[str, str],
    ) -> None:
        """Completes a multipart upload; a retried complete that fails is checked, not trusted.

        If a first CompleteMultipartUpload succeeded but its reply was lost, the retry fails
        (NoSuchUpload, or a failed condition against our own object): the object is then looked
        at, and the write succeeded if it is ours (its multipart ETag).
        """
        tries = 0

        def complete() -> Any:
            nonlocal tries
            tries += 1
            return self._s3.complete_multipart_upload(
                **upload, MultipartUpload={"Parts": parts}, **condition
            )

        try:
            self._conditional(uri, condition, complete)
        except StorageError:
            if tries > 1 and self._is_upload(upload, uri, parts):
                logger.info("%s: a retried complete found its upload done", uri)
                return
            raise

    def _is_upload(self, upload: dict[str, str], uri: str, parts: list[dict[str, Any]]) -> bool:
        """Whether the object at the upload's key is the one these parts make (by ETag)."""
        try:
            head = self._retry(
                uri, lambda: self._s3.head_object(Bucket=upload["Bucket"], Key=upload["Key"])
            )
        except StorageError:
            return False
        return bool(head.get("ETag") == multipart_etag([p["ETag"] for p in parts]))

    def _upload_part(
        self, upload: dict[str, str], uri: str, number: int, body: bytes
    ) -> dict[str, Any]:
        reply = self._retry(
            uri, lambda: self._s3.upload_part(**upload, PartNumber=number, Body=body)
        )
        return {"PartNumber": number, "ETag": reply["ETag"]}

    def _abort(self, upload: dict[str, str], uri: str) -> None:
        """Aborts a multipart upload; a failure here is logged, not raised over the cause."""
        try:
            self._retry(uri, lambda: self._s3.abort_multipart_upload(**upload))
        except StorageError:
            logger.exception("%s: could not abort multipart upload %s", uri, upload["UploadId"])

    def _check_bucket(self, bucket: str, uri: str) -> None:
        """Raises NotFound if ``bucket`` does not exist; remembers buckets that do."""
        if bucket in self._known_buckets:
            return
        info = self._retry(uri, lambda: self._s3fs.get_file_info(bucket))
        if info.type == pafs.FileType.NotFound:
            raise NotFound(f"{uri}: no such bucket {bucket!r}")
        self._known_buckets.add(bucket)

    def _retry(self, uri: str, request: Callable[[], T]) -> T:
        """Runs one S3 request, retrying transient errors with exponential backoff and jitter.

        Raises:
            NotFound: At once, for a missing key or bucket.
            StorageError: At once for other S3 errors, or once the retries are spent.
        """
        attempts, attempt = self.options.retries + 1, 1
        while True:
            try:
                return request()
            except Exception as exc:
                if not is_transient(exc):
                    error = permanent(uri, exc)
                    if error is exc:
                        raise
                    raise error from exc
                if attempt == attempts:
                    raise StorageError(f"{uri}: gave up after {attempts} attempts: {exc}") from exc
                delay = self.options.backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
                logger.warning(
                    "%s: transient S3 error (attempt %d of %d), retrying in %.2f s: %s",
                    uri,
                    attempt,
                    attempts,
                    delay,
                    exc,
                )
                time.sleep(delay)
                attempt += 1


def multipart_etag(part_etags: Iterable[str]) -> str:
    """The ETag S3 gives an object made of parts with these ETags: MD5 of their MD5s, ``-N``.

    (For objects without server-side KMS encryption, whose part ETags are their MD5s.)
    """
    digests = [bytes.fromhex(e.strip('"')) for e in part_etags]
    return f'"{hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"'


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Regroups a byte stream into pieces of exactly ``size`` bytes, the last one shorter."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def _chunks(
    uri: str, stream: contextlib.AbstractContextManager[Any], read: Callable[[], bytes]
) -> Iterator[bytes]:
    """Yields ``read()`` until it returns nothing, then closes ``stream``; errors name ``uri``."""
    with stream:
        while True:
            with local_errors(uri):
                chunk = read()
            if not chunk:
                return
            yield chunk
