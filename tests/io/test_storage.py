"""Storage on local folders and on a real S3 API (moto over HTTP), same tests for both."""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from s3_server import failing_server, moto_server_when

import fsg_ray.io.storage as storage_module
from fsg_ray.config import StorageOptions
from fsg_ray.io.storage import (
    CHUNK_BYTES,
    Conflict,
    NotFound,
    ObjectChanged,
    Storage,
    StorageError,
    atomic_write_bytes,
)
from fsg_ray.io.uri import join, parse_uri, relative

FAST = {"retries": 2, "backoff_s": 0.01}


@pytest.fixture(scope="module")
def storage(s3_server: str) -> Storage:
    return Storage(StorageOptions(endpoint_url=s3_server, region="us-east-1", **FAST))


@pytest.fixture(params=["path", "file-uri", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty folder, as a plain path, a ``file://`` URI or an S3 prefix."""
    if request.param == "s3":
        return join(request.getfixturevalue("s3_bucket"), "root")
    return str(tmp_path) if request.param == "path" else f"file://{tmp_path}"


def retry_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The retry messages that storage logged (the servers log every request too)."""
    return [r.getMessage() for r in caplog.records if r.name == "fsg_ray.io.storage"]


def failing_chunks(size: int) -> Iterator[bytes]:
    """Yields ``size`` bytes, then fails as a crashed producer would."""
    yield b"x" * size
    raise RuntimeError("producer died")


def test_atomic_write_creates_parents_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "f.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_write_read_round_trip_with_nested_keys(storage: Storage, root: str) -> None:
    uri = join(root, "a", "b/c.bin")
    assert storage.write_bytes(uri, b"\x00payload\xff") == uri
    assert storage.read_bytes(uri) == b"\x00payload\xff"
    storage.write_bytes(uri, b"")
    assert storage.read_bytes(uri) == b""


def test_list_returns_exactly_the_written_uris_sorted(storage: Storage, root: str) -> None:
    names = ["z.png", "a/2.JPG", "a/1.jpg", "a/b/c.txt", "b.png"]
    for name in names:
        storage.write_bytes(join(root, name), name.encode())
    assert storage.list_files(root) == sorted(join(root, n) for n in names)
    assert storage.list_files(root, suffixes=[".jpg", ".png"]) == [
        join(root, n) for n in ["a/1.jpg", "a/2.JPG", "b.png", "z.png"]
    ]
    below_a = [join(root, n) for n in ["a/1.jpg", "a/2.JPG", "a/b/c.txt"]]
    assert storage.list_files(join(root, "a/")) == below_a
    assert storage.list_files(join(root, "missing")) == []


def test_list_skips_local_temporaries(storage: Storage, tmp_path: Path) -> None:
    storage.write_bytes(tmp_path / "kept.png", b"1")
    (tmp_path / ".kept.png.abc123.tmp").write_bytes(b"left by a killed writer")
    assert storage.list_files(tmp_path) == [str(tmp_path / "kept.png")]


def test_list_skips_s3_directory_markers(storage: Storage, s3_bucket: str, s3_client: Any) -> None:
    bucket = parse_uri(s3_bucket).bucket
    s3_client.put_object(Bucket=bucket, Key="data/", Body=b"")
    s3_client.put_object(Bucket=bucket, Key="data/sub/", Body=b"")
    storage.write_bytes(f"{s3_bucket}/data/sub/x.png", b"1")
    assert storage.list_files(s3_bucket) == [f"{s3_bucket}/data/sub/x.png"]


def test_exists(storage: Storage, root: str) -> None:
    uri = join(root, "sub", "f.bin")
    assert not storage.exists(uri)
    storage.write_bytes(uri, b"1")
    assert storage.exists(uri)
    assert not storage.exists(join(root, "sub")), "a folder is not a file"


def test_join_and_relative() -> None:
    assert join("s3://b", "x/", "/y.png") == "s3://b/x/y.png"
    assert join("s3://b/data/", "x") == "s3://b/data/x"
    assert join("file:///", "tmp") == "file:///tmp"
    assert join("/data", "") == "/data"
    assert relative("s3://b/data/x/y.png", "s3://b/data/") == "x/y.png"
    assert relative("s3://b/x.png", "s3://b") == "x.png"
    assert relative("/data/x/y.png", "file:///data") == "x/y.png"
    for uri, prefix in [("s3://b/data2/x", "s3://b/data"), ("s3://c/data/x", "s3://b/data")]:
        with pytest.raises(ValueError, match="is not below"):
            relative(uri, prefix)


def test_parse_uri() -> None:
    assert parse_uri("s3://b/k/x.png") == ("s3", "b", "k/x.png")
    assert parse_uri("s3://b") == ("s3", "b", "")
    assert parse_uri("file:///tmp/x") == ("file", None, "/tmp/x")
    assert parse_uri(Path("rel/x")) == ("file", None, "rel/x")


@pytest.mark.parametrize("uri", ["gs://b/k", "http://host/k", "", "s3://", "file://host/x"])
def test_unsupported_uri_is_a_value_error_naming_it(storage: Storage, uri: str) -> None:
    with pytest.raises(ValueError, match=f"unsupported URI '{uri}'.*s3://bucket/key"):
        storage.read_bytes(uri)


def test_copy_between_local_and_s3_preserves_bytes(
    storage: Storage, s3_bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(CHUNK_BYTES + 12345)  # two chunks: a multipart upload on S3
    storage.write_bytes(tmp_path / "src.bin", data)
    storage.copy(tmp_path / "src.bin", f"{s3_bucket}/a/copy.bin")
    storage.copy(f"{s3_bucket}/a/copy.bin", f"{s3_bucket}/b/copy.bin")
    storage.copy(f"{s3_bucket}/b/copy.bin", f"file://{tmp_path}/back/copy.bin")
    assert (tmp_path / "back" / "copy.bin").read_bytes() == data
    assert storage.read_bytes(f"{s3_bucket}/a/copy.bin") == data


def test_large_s3_write_is_one_multipart_upload(
    storage: Storage, s3_bucket: str, s3_client: Any
) -> None:
    chunks = [b"%d" % i * 1000 for i in range(4000)]  # many small chunks, ~14 MiB in all
    storage.write_chunks(f"{s3_bucket}/big.bin", chunks)
    head = s3_client.head_object(Bucket=parse_uri(s3_bucket).bucket, Key="big.bin")
    assert head["ETag"].endswith('-2"'), "a 2-part multipart upload"
    assert storage.read_bytes(f"{s3_bucket}/big.bin") == b"".join(chunks)


# On S3, 10 bytes would be one PutObject; 2 parts start a multipart upload before the failure.
@pytest.mark.parametrize("size", [10, 2 * CHUNK_BYTES], ids=["small", "two-parts"])
def test_failed_write_leaves_nothing_visible(storage: Storage, root: str, size: int) -> None:
    old, new = join(root, "d", "old.bin"), join(root, "d", "new.bin")
    storage.write_bytes(old, b"old")
    for uri in (old, new):
        with pytest.raises(RuntimeError, match="producer died"):
            storage.write_chunks(uri, failing_chunks(size))
    assert storage.read_bytes(old) == b"old"
    assert not storage.exists(new)
    assert storage.list_files(root) == [old]
    if parse_uri(root).scheme == "file":
        assert sorted(p.name for p in Path(parse_uri(old).path).parent.iterdir()) == ["old.bin"]


def test_failed_multipart_upload_is_aborted(
    storage: Storage, s3_bucket: str, s3_client: Any
) -> None:
    with pytest.raises(RuntimeError):
        storage.write_chunks(f"{s3_bucket}/x.bin", failing_chunks(2 * CHUNK_BYTES))
    uploads = s3_client.list_multipart_uploads(Bucket=parse_uri(s3_bucket).bucket)
    assert uploads.get("Uploads", []) == []


def test_missing_key_is_not_found_naming_the_uri(storage: Storage, root: str) -> None:
    uri = join(root, "nope.bin")
    with pytest.raises(NotFound, match=f"{uri}: no such") as caught:
        storage.read_bytes(uri)
    assert isinstance(caught.value, FileNotFoundError)


@pytest.mark.parametrize("op", ["read", "write", "list", "exists", "copy"])
def test_missing_bucket_fails_fast_naming_the_uri(
    s3_server: str, op: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Any retry would sleep >= 5 s (backoff x a factor in [0.5, 1]), so a failure in under
    # 4 s is one without retries, with room for a loaded machine.
    storage = Storage(StorageOptions(endpoint_url=s3_server, retries=4, backoff_s=10.0))
    uri = "s3://no-such-bucket-here/k/x.bin"
    calls = {
        "read": lambda: storage.read_bytes(uri),
        "write": lambda: storage.write_bytes(uri, b"1"),
        "list": lambda: storage.list_files("s3://no-such-bucket-here/k"),
        "exists": lambda: storage.exists(uri),
        "copy": lambda: storage.copy(uri, uri + ".copy"),
    }
    start = time.monotonic()
    with pytest.raises(NotFound, match="s3://no-such-bucket-here/k.*no such bucket"):
        calls[op]()
    assert time.monotonic() - start < 4.0
    assert retry_logs(caplog) == []


class OnFirstRetry(logging.Handler):
    """Sets an event when storage logs its first retry."""

    def __init__(self, event: threading.Event) -> None:
        super().__init__()
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        self.event.set()


@pytest.mark.parametrize("op", ["write", "read"])
def test_transient_errors_are_retried_until_the_service_answers(
    storage: Storage, s3_bucket: str, op: str, caplog: pytest.LogCaptureFixture
) -> None:
    uri = f"{s3_bucket}/retried.bin"
    if op == "read":
        storage.write_bytes(uri, b"r")
    up = threading.Event()
    logger = logging.getLogger("fsg_ray.io.storage")
    logger.addHandler(handler := OnFirstRetry(up))
    # Connection refused until the first retry is logged; then the server starts.
    try:
        with moto_server_when(up) as url:
            late = Storage(StorageOptions(endpoint_url=url, retries=8, backoff_s=0.05))
            if op == "write":
                late.write_bytes(uri, b"r")
            assert late.read_bytes(uri) == b"r"
    finally:
        logger.removeHandler(handler)
    retries = retry_logs(caplog)
    assert retries, "the first attempt must have failed"
    assert all(f"{uri}: transient S3 error" in message for message in retries)


def test_retries_give_up_with_a_clear_message(
    s3_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    # s3_server for its fake credentials: without any, boto3 fails before sending a request.
    calls = {
        "s3://bkt/x.bin": lambda storage: storage.write_bytes("s3://bkt/x.bin", b"1"),  # boto3
        "s3://bkt/y.bin": lambda storage: storage.read_bytes("s3://bkt/y.bin"),  # pyarrow HEAD
        "s3://bkt/d": lambda storage: storage.list_files("s3://bkt/d"),  # pyarrow LIST
    }
    with failing_server(503, "SlowDown") as server:
        storage = Storage(StorageOptions(endpoint_url=server.url, **FAST))
        for uri, call in calls.items():
            with pytest.raises(
                StorageError, match=f"{uri}: gave up after 3 attempts.*(503|SlowDown|SLOW_DOWN)"
            ):
                call(storage)
    assert server.requests == 3 * len(calls)
    assert len(retry_logs(caplog)) == 2 * len(calls)


@pytest.mark.parametrize("status,code", [(403, "AccessDenied"), (400, "InvalidArgument")])
def test_permanent_errors_are_not_retried(s3_server: str, status: int, code: str) -> None:
    with failing_server(status, code) as server:
        storage = Storage(StorageOptions(endpoint_url=server.url, **FAST))
        with pytest.raises(StorageError, match=f"s3://bkt/x.bin: .*{code}"):
            storage.write_bytes("s3://bkt/x.bin", b"1")
        with pytest.raises(StorageError, match="s3://bkt/x.bin: "):
            storage.read_bytes("s3://bkt/x.bin")
    assert server.requests == 2


def test_options_round_trip_and_from_env() -> None:
    options = StorageOptions(endpoint_url="http://minio:9000", region="eu-west-1", retries=1)
    assert StorageOptions(**dataclasses.asdict(options)) == options
    env = {"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_S3": "http://s3:2"}
    assert StorageOptions.from_env(env | {"AWS_DEFAULT_REGION": "r1"}) == StorageOptions(
        endpoint_url="http://s3:2", region="r1"
    )
    assert StorageOptions.from_env({}) == StorageOptions()
    with pytest.raises(ValueError, match="endpoint_url"):
        StorageOptions(endpoint_url="minio:9000")
    with pytest.raises(ValueError, match="retries"):
        StorageOptions(retries=-1)


def test_storage_pickles_as_its_options(storage: Storage, s3_bucket: str) -> None:
    storage.write_bytes(f"{s3_bucket}/p.bin", b"p")  # builds the clients, which do not pickle
    clone = pickle.loads(pickle.dumps(storage))
    assert clone.options == storage.options
    assert clone.read_bytes(f"{s3_bucket}/p.bin") == b"p"


def test_s3_read_during_overwrites_is_one_whole_version(
    storage: Storage, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader never gets a mix of two versions (pyarrow's stream returned truncated or
    zero-padded bytes when the object was overwritten between its HEAD and its GETs)."""
    monkeypatch.setattr(storage_module, "READ_CHUNK_BYTES", 256)  # several ranged GETs a read
    uri = f"{s3_bucket}/overwritten.json"
    versions = [b"a" * 1000, b"b" * 300]
    storage.write_bytes(uri, versions[0])
    stop = threading.Event()

    def overwrite() -> None:
        for i in range(40):
            storage.write_bytes(uri, versions[i % 2 == 0])
        stop.set()

    seen, changed = {storage.read_bytes(uri)}, 0
    writer = threading.Thread(target=overwrite)
    writer.start()
    while not stop.is_set():
        try:
            seen.add(storage.read_bytes(uri))
        except ObjectChanged:
            changed += 1  # READ_ATTEMPTS overwrites in a row: an error, never torn bytes
    writer.join()
    assert seen <= set(versions) and seen
    chunks = storage.read_chunks(uri)
    first = next(chunks)
    storage.write_bytes(uri, b"c" * 500)
    with pytest.raises(ObjectChanged, match=f"{uri}: overwritten while being read"):
        list(chunks)
    assert len(first) == 256


def test_a_retried_complete_that_finds_its_upload_done_succeeds(
    storage: Storage, s3_bucket: str, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first CompleteMultipartUpload succeeds but its reply is lost; the retry is told
    NoSuchUpload (S3 forgets a completed upload). The object is there and is ours: success."""
    import botocore.exceptions

    client = storage._s3
    complete, calls = client.complete_multipart_upload, []

    def lost_reply(**kwargs: Any) -> Any:
        calls.append(kwargs["UploadId"])
        if len(calls) == 1:
            complete(**kwargs)
            raise botocore.exceptions.ConnectionClosedError(endpoint_url="http://s3")
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "NoSuchUpload", "Message": "gone"}}, "CompleteMultipartUpload"
        )

    monkeypatch.setattr(client, "complete_multipart_upload", lost_reply)
    data = os.urandom(2 * CHUNK_BYTES + 10)
    storage.write_bytes(f"{s3_bucket}/done.bin", data)
    assert len(calls) == 2
    assert storage.read_bytes(f"{s3_bucket}/done.bin") == data
    # A retry that finds another object there (not ours) still fails.
    calls.clear()

    def someone_else(**kwargs: Any) -> Any:
        calls.append(kwargs["UploadId"])
        if len(calls) == 1:
            raise botocore.exceptions.ConnectionClosedError(endpoint_url="http://s3")
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "NoSuchUpload", "Message": "gone"}}, "CompleteMultipartUpload"
        )

    monkeypatch.setattr(client, "complete_multipart_upload", someone_else)
    with pytest.raises(StorageError, match="NoSuchUpload"):
        storage.write_bytes(f"{s3_bucket}/done.bin", os.urandom(2 * CHUNK_BYTES + 10))
    assert storage.read_bytes(f"{s3_bucket}/done.bin") == data
    uploads = s3_client.list_multipart_uploads(Bucket=parse_uri(s3_bucket).bucket)
    assert uploads.get("Uploads", []) == []


def test_create_only_multipart_write_conflicts(storage: Storage, s3_bucket: str) -> None:
    uri, data = f"{s3_bucket}/once.bin", os.urandom(2 * CHUNK_BYTES + 10)
    storage.write_bytes_if_absent(uri, data)
    with pytest.raises(Conflict, match="once.bin: changed or created by another writer"):
        storage.write_bytes_if_absent(uri, b"x" * (2 * CHUNK_BYTES))
    assert storage.read_bytes(uri) == data


def test_list_info_stat_and_delete(storage: Storage, root: str) -> None:
    uri = join(root, "d", "a.jpg")
    storage.write_bytes(uri, b"12345")
    (listed,) = storage.list_info(root, [".jpg"])
    assert listed == storage.stat(uri) and (listed.uri, listed.size) == (uri, 5)
    assert listed.mtime_ns > 0 and listed.identity == f"5-{listed.mtime_ns}"
    with pytest.raises(NotFound, match="b.jpg"):
        storage.stat(join(root, "d", "b.jpg"))
    storage.delete(uri)
    storage.delete(uri)  # already gone: no error
    assert storage.list_files(root) == []
