"""The one URI type of fsg-ray, and the names that go into URIs.

A URI is a local path, ``file:///abs/path`` or ``s3://bucket/key``; :func:`parse_uri` is the
only parser of that text. Style and catalogue names (:data:`NAME`) become folder names in
run and registry URIs, so they are checked by one pattern too.

A leaf module: standard library only, so that the config package (which may import nothing
else of ours) and the storage layer share it without pulling in boto3, pyarrow or Ray.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

Uri = str | os.PathLike[str]

#: The URI forms, as error messages name them.
SUPPORTED = "a local path, file:///abs/path or s3://bucket/key"
#: ``scheme://rest``: anything else is a local path.
SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)
#: A style or catalogue name (use with ``fullmatch``); it names folders in runs and registry.
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
#: :data:`NAME` in words, for error messages.
NAME_RULE = "1-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"
#: Suffixes of a manifest (a CSV or Parquet file listing inputs), as opposed to a prefix.
MANIFEST_SUFFIXES = (".csv", ".parquet")


class Location(NamedTuple):
    """A parsed URI.

    Attributes:
        scheme: ``"file"`` for local paths and ``file://`` URIs, else ``"s3"``.
        bucket: The S3 bucket; None for local paths.
        path: The local path as given, or the S3 key (``""`` for the bucket root).
    """

    scheme: str
    bucket: str | None
    path: str


def parse_uri(uri: Uri) -> Location:
    """Splits a URI into scheme, bucket and path; the text is taken literally (no %-decoding).

    Raises:
        ValueError: For an empty string, another scheme (``gs://``, ``http://``), a ``file://``
            URI with a host, or ``s3://`` without a bucket.
    """
    text = os.fspath(uri)
    match = SCHEME.match(text)
    if text and match is None:
        return Location("file", None, text)
    if match is not None:
        scheme, rest = match[1].lower(), match[2]
        if scheme == "file" and rest.startswith("/"):
            return Location("file", None, rest)
        bucket, _, key = rest.partition("/")
        if scheme == "s3" and bucket:
            return Location("s3", bucket, key)
    raise ValueError(f"unsupported URI {text!r}: expected {SUPPORTED}")


def absolute(uri: Uri) -> str:
    """``uri`` with a relative local path made absolute (against the working directory now).

    Ray workers run in folders of their own: a relative path sent to them names another file.
    ``file://`` and ``s3://`` URIs are returned as they are.
    """
    text = os.fspath(uri)
    return os.path.abspath(text) if SCHEME.match(text) is None and text else text


def join(base: Uri, *parts: str) -> str:
    """Appends ``/``-separated parts to a URI, keeping its form (path, ``file://``, ``s3://``)."""
    text = os.fspath(base)
    parse_uri(text)
    tail = "/".join(p.strip("/") for p in parts if p.strip("/"))
    if not tail:
        return text
    return (text if text.endswith("/") else text + "/") + tail


def relative(uri: Uri, prefix: Uri) -> str:
    """Returns the part of ``uri`` below ``prefix``, e.g. ``a/b.png``.

    Raises:
        ValueError: If ``uri`` is not below ``prefix`` (other scheme, bucket or folder).
    """
    loc, base = parse_uri(uri), parse_uri(prefix)
    head = base.path.rstrip("/")
    below = loc.path.startswith(head + "/") if head else bool(loc.path)
    if (loc.scheme, loc.bucket) != (base.scheme, base.bucket) or not below:
        raise ValueError(f"{os.fspath(uri)!r} is not below {os.fspath(prefix)!r}")
    return loc.path[len(head) :].lstrip("/")


def is_below(uri: Uri, prefix: Uri) -> bool:
    """Whether ``uri`` is ``prefix`` itself or below it."""
    try:
        relative(join(uri, "x"), prefix)
    except ValueError:
        return False
    return True


def is_manifest(uri: Uri) -> bool:
    """Whether ``uri`` names a manifest (by its suffix) rather than a prefix."""
    return os.fspath(uri).lower().endswith(MANIFEST_SUFFIXES)
