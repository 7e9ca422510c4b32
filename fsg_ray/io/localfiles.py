"""Local-folder primitives under :mod:`fsg_ray.io.storage`: atomic, create-only and
compare-and-swap writes, and listings that skip our own temporaries.

* **Atomic write**: data goes to a temporary file in the same folder (``.<name>.<random>.tmp``),
  is fsynced, renamed over the target, and the folder is fsynced so that the rename itself
  survives a power cut.
* **Create-only write** (the local ``If-None-Match: *``): the fsynced temporary is hard-linked
  to the target name. ``link`` fails if the name exists, exactly like ``O_CREAT|O_EXCL``, but a
  reader never sees the file half-written.
* **Compare-and-swap** (the local ``If-Match``): under an exclusive ``flock`` of a lock file
  beside the target (``.<name>.lock``), the current content's tag is compared with the one the
  writer read, then the new content is written atomically. The kernel drops a ``flock`` when
  its holder dies, so a killed writer leaves no stale lock to time out.

New files get the mode ``open()`` would give them (0666 less the umask), not ``mkstemp``'s
0600: a ``fsg serve`` running as another user must be able to read the registry.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

#: Suffixes of the files this module keeps beside targets; listings skip them.
_TEMPORARY, _LOCK = ".tmp", ".lock"


class Exists(FileExistsError):
    """A create-only write found its target already there."""


class TagMismatch(OSError):
    """A compare-and-swap write found other content than the writer had read."""


def write(target: Path, chunks: Iterable[bytes]) -> Path:
    """Writes chunks to ``target`` atomically, replacing it, creating parent folders."""
    with _temporary(target, chunks) as tmp:
        os.replace(tmp, target)
    _fsync_folder(target.parent)
    return target


def write_if_absent(target: Path, data: bytes) -> Path:
    """Writes ``data`` to ``target`` atomically, only if no file has that name.

    Raises:
        Exists: The target exists (nothing was written).
    """
    with _temporary(target, (data,)) as tmp:
        try:
            os.link(tmp, target)
        except FileExistsError as e:
            raise Exists(f"{target}: exists") from e
    _fsync_folder(target.parent)
    return target


def write_if_tag(target: Path, data: bytes, tag: str | None) -> Path:
    """Replaces ``target`` by ``data`` atomically if its content still has ``tag``.

    Args:
        target: The file.
        data: The new content.
        tag: :func:`content_tag` of the content read before, or None: only if there is none.

    Raises:
        Exists: ``tag`` is None and the file exists.
        TagMismatch: The file's content changed since it was read (or it was deleted).
    """
    with _locked(target):
        try:
            current: str | None = content_tag(target.read_bytes())
        except FileNotFoundError:
            current = None
        if tag is None and current is not None:
            raise Exists(f"{target}: exists")
        if current != tag:
            raise TagMismatch(f"{target}: changed since it was read")
        return write(target, (data,))


def content_tag(data: bytes) -> str:
    """The local stand-in for an S3 ETag: a hash of the content."""
    return hashlib.sha256(data).hexdigest()[:32]


def is_own_file(name: str) -> bool:
    """Whether a file name is one of this module's temporaries or lock files."""
    return name.startswith(".") and name.endswith((_TEMPORARY, _LOCK))


def list_info(folder: str) -> list[tuple[str, int, int]]:
    """(path relative to ``folder``, size, mtime_ns) of every file below it, recursively,
    without our own temporaries and lock files."""
    root, found = Path(folder), []
    for path in root.rglob("*"):
        if is_own_file(path.name):
            continue
        try:
            st = path.stat()
        except FileNotFoundError:  # deleted since it was listed
            continue
        if stat.S_ISREG(st.st_mode):
            found.append((path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return found


@functools.cache
def file_mode() -> int:
    """0o666 less the process umask: the mode ``open()`` gives a new file.

    Read once: outside Linux's ``/proc`` the umask can only be read by setting it, which would
    race with other threads creating files.
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def _temporary(target: Path, chunks: Iterable[bytes]) -> Iterator[str]:
    """A fsynced temporary beside ``target`` holding the chunks; deleted on exit.

    After a rename it is gone already; after a link, deleting it leaves the target.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=_TEMPORARY, dir=target.parent)
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Holds an exclusive ``flock`` on ``target``'s lock file (threads and processes alike:
    each ``open`` is its own lock owner)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.parent / f".{target.name}{_LOCK}"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, file_mode())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays, as deleting it would race


def _fsync_folder(folder: Path) -> None:
    """Makes a rename or link in ``folder`` durable (its entry is in the folder's data)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
