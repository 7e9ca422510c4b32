"""The errors of :mod:`fsg_ray.io.storage`, and which S3 failures are worth a retry.

Transient: connection failures, timeouts, 5xx, throttling. Permanent: no such bucket or key,
access denied, bad request, a failed precondition. Every error raised names the URI.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import botocore.exceptions

from fsg_ray.io import localfiles

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


class Conflict(StorageError):
    """A conditional write lost a race: the file exists, or changed since it was read."""


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


def permanent(uri: str, exc: Exception) -> Exception:
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
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return ObjectChanged(f"{uri}: overwritten while being read ({exc})")
        return StorageError(f"{uri}: {exc}")
    if isinstance(exc, (OSError, botocore.exceptions.BotoCoreError)):
        return StorageError(f"{uri}: {exc}")
    return exc


@contextlib.contextmanager
def local_errors(uri: str, action: str = "") -> Iterator[None]:
    """Raises a local ``OSError`` as :class:`StorageError` (:class:`NotFound` for a missing
    file) naming the URI and, where given, the action ("cannot write …": the OS's own words
    for a file where a folder should be, "File exists", say nothing of a write)."""
    try:
        yield
    except (StorageError, localfiles.Exists, localfiles.TagMismatch):
        raise
    except FileNotFoundError as e:
        raise NotFound(f"{uri}: no such file") from e
    except OSError as e:
        what = f"cannot {action} {uri}" if action else uri
        raise StorageError(f"{what}: {e.strerror or e}") from e
