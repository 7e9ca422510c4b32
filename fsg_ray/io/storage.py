"""Where fsg-ray keeps files: one URI type for local paths, ``file://`` and ``s3://``.

Every write is atomic: a reader never sees half a file, and a killed job leaves either the
old object or the new one.

* Local: data goes to a temporary file in the same folder (``.<name>.<random>.tmp``), is
  flushed to disk, then renamed over the target.
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

Each S3 request is retried on transient errors (connection failures, timeouts, 5xx, throttling)
with exponential backoff; the SDKs' own retries are off so that every retry is logged here.
Permanent errors (no such bucket or key, access denied, bad request) fail at once. Every error
names the URI.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions
import pyarrow.fs as pafs

from fsg_ray.config import StorageOptions

# The URI helpers live in fsg_ray.io.uri; re-exported here for older callers.
from fsg_ray.io.uri import (  # noqa: F401
    SUPPORTED,
    Location,
    Uri,
    absolute,
    join,
    parse_uri,
    relative,
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

# pyarrow raises a plain OSError whose text carries the AWS SDK error name and, for bodiless
# (HEAD) responses, the status: "AWS Error SLOW_DOWN during ..." or "AWS Error UNKNOWN (HTTP
# status 503) during ...". Connection refused/reset and curl timeouts are NETWORK_CONNECTION.
_PYARROW_ERROR = re.compile(r"AWS Error (\w+)(?: \(HTTP status (\d+)\))?")
_TRANSIENT_PYARROW = {
    "NETWORK_CONNECTION",
    "SLOW_DOWN",
    "THROTTLING",
    "SERVICE_UNAVAILABLE",
    "INTERNAL_FAILURE",
    "REQUEST_TIMEOUT",
}
_TRANSIENT_BOTO = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
}


class StorageError(OSError):
    """A storage operation failed; the message names the URI."""


class NotFound(StorageError, FileNotFoundError):
    """The key, file or bucket named by a URI does not exist."""


class ObjectChanged(StorageError):
    """An S3 object was overwritten while it was being read (its ETag changed)."""


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Writes ``data`` to a local ``path`` atomically, creating parent folders; returns the path.

    For URIs (``s3://``, ``file://``) use :meth:`Storage.write_bytes`.
    """
    return _write_local(Path(path), (data,))


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
        temporaries. A prefix with nothing below it gives ``[]``; a missing bucket raises.

        Args:
            prefix: Folder to list; results keep its form (path, ``file://`` or ``s3://``).
            suffixes: Keep only names ending in one of these, case-insensitively (``.jpg``).
        """
        loc = parse_uri(prefix)
        text = os.fspath(prefix)
        names = self._list_s3(loc.bucket, text) if loc.bucket else _list_local(loc.path)
        ends = tuple(s.lower() for s in suffixes) if suffixes is not None else None
        return sorted(join(prefix, n) for n in names if ends is None or n.lower().endswith(ends))

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
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return b"".join(self.read_chunks(uri))
            except ObjectChanged:
                if attempt == READ_ATTEMPTS:
                    raise
                logger.info("%s: overwritten while being read, reading it again", uri)
        raise AssertionError("unreachable")

    def read_chunks(self, uri: Uri) -> Iterator[bytes]:
        """Streams a file in chunks of at most :data:`CHUNK_BYTES`; each S3 read is retried.

        Opens the file before returning, so NotFound is raised here, not on iteration.
        """
        loc, text = parse_uri(uri), os.fspath(uri)
        if loc.bucket is None:
            try:
                file = open(loc.path, "rb")  # noqa: SIM115 - closed by _chunks
            except FileNotFoundError as exc:
                raise NotFound(f"{text}: no such file") from exc
            return _chunks(file, lambda: file.read(CHUNK_BYTES))
        return self._s3_chunks(loc.bucket, loc.path, text)

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
            _write_local(Path(loc.path), chunks)
        else:
            self._write_s3(loc.bucket, loc.path, text, chunks)
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

    def _list_s3(self, bucket: str, uri: str) -> list[str]:
        """Lists the keys below ``uri``, relative to it, without directory markers."""
        fs, base = self.filesystem(uri)
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        infos = self._retry(uri, lambda: fs.get_file_info(selector))
        if not infos:  # pyarrow lists a missing bucket as empty
            self._check_bucket(bucket, uri)
        return [i.path[len(base) + 1 :] for i in infos if i.type == pafs.FileType.File]

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

    def _write_s3(self, bucket: str, key: str, uri: str, chunks: Iterable[bytes]) -> None:
        """One PutObject for less than two parts, else a multipart upload, aborted on error."""
        parts = _rechunk(chunks, CHUNK_BYTES)
        first = next(parts, b"")
        second = next(parts, None)
        if second is None:
            self._retry(uri, lambda: self._s3.put_object(Bucket=bucket, Key=key, Body=first))
            return
        created = self._retry(uri, lambda: self._s3.create_multipart_upload(Bucket=bucket, Key=key))
        upload = {"Bucket": bucket, "Key": key, "UploadId": created["UploadId"]}
        try:
            done = [self._upload_part(upload, uri, n, p) for n, p in enumerate((first, second), 1)]
            done += [self._upload_part(upload, uri, n, p) for n, p in enumerate(parts, 3)]
            self._retry(
                uri,
                lambda: self._s3.complete_multipart_upload(
                    **upload, MultipartUpload={"Parts": done}
                ),
            )
        except BaseException:
            self._abort(upload, uri)
            raise

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
                    error = _permanent(uri, exc)
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


def is_transient(exc: BaseException) -> bool:
    """Whether an S3 error may go away on retry: connection failures, timeouts, 5xx, throttling."""
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return exc.response.get("Error", {}).get("Code") in _TRANSIENT_BOTO or _retryable(status)
    if isinstance(exc, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        return True
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    match = _PYARROW_ERROR.search(str(exc)) if type(exc) is OSError else None
    return match is not None and (match[1] in _TRANSIENT_PYARROW or _retryable(int(match[2] or 0)))


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def _permanent(uri: str, exc: Exception) -> Exception:
    """The error to raise for a non-transient failure: NotFound or StorageError naming ``uri``.

    Errors that did not come from storage (a bug, a bad argument) pass through unchanged.
    """
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"{uri}: no such key")
    if isinstance(exc, botocore.exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code")
        if code == "NoSuchBucket":
            return NotFound(f"{uri}: no such bucket ({exc})")
        if code in ("NoSuchKey", "404", "NotFound"):
            return NotFound(f"{uri}: no such key ({exc})")
        if code in ("PreconditionFailed", "412"):
            return ObjectChanged(f"{uri}: overwritten while being read ({exc})")
        return StorageError(f"{uri}: {exc}")
    if isinstance(exc, (OSError, botocore.exceptions.BotoCoreError)):
        return StorageError(f"{uri}: {exc}")
    return exc


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


def _is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`_write_local`'s temporaries."""
    return name.startswith(".") and name.endswith(".tmp")


def _list_local(folder: str) -> list[str]:
    root = Path(folder)
    files = (p for p in root.rglob("*") if p.is_file() and not _is_temporary(p.name))
    return [p.relative_to(root).as_posix() for p in files]


def _chunks(
    stream: contextlib.AbstractContextManager[Any], read: Callable[[], bytes]
) -> Iterator[bytes]:
    """Yields ``read()`` until it returns nothing, then closes ``stream``."""
    with stream:
        while chunk := read():
            yield chunk


def _write_local(target: Path, chunks: Iterable[bytes]) -> Path:
    """Writes chunks to a temporary file beside ``target``, fsyncs it and renames it over."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target
