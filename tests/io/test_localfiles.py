"""Local files: errors are StorageErrors naming the URI, modes follow the umask, renames are
made durable, and the lock files of compare-and-swap writes stay out of listings."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsg_ray.io import localfiles
from fsg_ray.io.storage import NotFound, Storage, StorageError, atomic_write_bytes


@pytest.fixture
def umask() -> Iterator[None]:
    """Restores the process umask (and forgets the cached file mode) after the test."""
    old = os.umask(0o022)
    os.umask(old)
    localfiles.file_mode.cache_clear()
    try:
        yield
    finally:
        os.umask(old)
        localfiles.file_mode.cache_clear()


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_new_files_get_the_umask_mode(tmp_path: Path, umask: None, mask: int, mode: int) -> None:
    """A registry written by the trainer must be readable by a server running as another user."""
    os.umask(mask)
    storage = Storage()
    written = [
        storage.write_bytes(str(tmp_path / "a.bin"), b"a"),
        storage.write_bytes_if_absent(str(tmp_path / "b.bin"), b"b"),
        storage.write_if_match(str(tmp_path / "c.bin"), b"c", None),
        str(atomic_write_bytes(tmp_path / "d.bin", b"d")),
    ]
    for path in written:
        assert stat.S_IMODE(os.stat(path).st_mode) == mode, path


def test_the_folder_is_fsynced_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    fsync = os.fsync

    def record(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(localfiles.os, "fsync", record)
    target = tmp_path / "sub" / "f.bin"
    Storage().write_bytes(str(target), b"x")
    assert synced[-1] == str(target.parent), "the folder holding the new name, last"
    assert any(p.startswith(str(target.parent / ".f.bin.")) for p in synced), "the data first"


def test_local_errors_are_storage_errors_naming_the_uri(tmp_path: Path) -> None:
    storage = Storage()
    (tmp_path / "plain").write_bytes(b"not a folder")
    below_a_file = str(tmp_path / "plain" / "out" / "a.png")
    for call in (
        lambda: storage.write_bytes(below_a_file, b"x"),
        lambda: storage.write_bytes_if_absent(below_a_file, b"x"),
        lambda: storage.write_if_match(below_a_file, b"x", None),
        lambda: storage.read_bytes(str(tmp_path)),  # a folder
        lambda: atomic_write_bytes(below_a_file, b"x"),
    ):
        with pytest.raises(StorageError, match="plain|" + str(tmp_path)):
            call()
    with pytest.raises(NotFound, match="nope.bin: no such file"):
        storage.read_bytes(str(tmp_path / "nope.bin"))


def test_lock_files_and_temporaries_are_not_listed(tmp_path: Path) -> None:
    storage = Storage()
    uri = str(tmp_path / "index.json")
    storage.write_if_match(uri, b"1", None)
    _, tag = storage.read_with_etag(uri)
    storage.write_if_match(uri, b"2", tag)
    assert (tmp_path / ".index.json.lock").exists()
    assert storage.list_files(str(tmp_path)) == [uri]
