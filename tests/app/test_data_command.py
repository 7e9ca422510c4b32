"""``fsg data synth`` and ``fsg data inspect`` against local folders and the moto S3 server."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BAD_FULL, BAD_SHOP

from fsg_ray.app import data, options
from fsg_ray.config import StorageOptions
from fsg_ray.io import synthetic
from fsg_ray.io.storage import Storage
from fsg_ray.io.uri import join, relative


def fsg(*argv: str) -> int:
    """Runs ``fsg <argv>`` with only the data commands registered."""
    parser = argparse.ArgumentParser(prog="fsg")
    data.register(parser.add_subparsers(dest="command", required=True), options.parents())
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_synth_writes_the_dataset_to_s3_byte_for_byte(
    s3_server: str, s3_bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = join(s3_bucket, "synthetic")
    argv = ("--n-full", "2", "--n-shop", "1", "--size", "32", "--seed", "3")
    assert fsg("data", "synth", "--out", out, *argv, "--endpoint-url", s3_server) == 0
    local = synthetic.write_dataset(
        tmp_path, seed=3, n_full=2, n_shop=1, full_size=32, shop_size=32, style_size=32
    )
    storage = Storage(StorageOptions(endpoint_url=s3_server))
    files = storage.list_files(out)
    expected = sorted(r for rels in local.values() for r in rels)
    assert [relative(f, out) for f in files] == expected
    assert all(storage.read_bytes(join(out, r)) == (tmp_path / r).read_bytes() for r in expected)
    lines = capsys.readouterr().out.splitlines()
    assert f"     2  {out}/full" in lines and f"     6  {out}/styles" in lines


def test_synth_takes_the_endpoint_from_the_environment(
    s3_server: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    out = join(s3_bucket, "env")
    assert fsg("data", "synth", "--out", out, "--n-full", "1", "--n-shop", "0", "--size", "32") == 0
    assert Storage(StorageOptions(endpoint_url=s3_server)).exists(join(out, "full/000000.jpg"))


def test_inspect_counts_sizes_and_lists_bad_files(
    s3_server: str, data_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fsg("data", "inspect", data_bucket, "--endpoint-url", s3_server) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:6] == [
        f"{data_bucket}: 24 images in 4 folders (ignored 1 file without an image suffix)",
        "folder      images     bad",
        "full            14       5",
        "shop             5       1",
        "shop_masks       3       0",
        "styles           2       0",
    ]
    assert lines[6:9] == [
        "size of 18 good images (px):",
        "  width   min 24  median 48  max 96",
        "  height  min 32  median 48  max 64",
    ]
    assert lines[9] == "bad files: 6"
    bad = [line.strip().split(": ", 1) for line in lines[10:]]
    assert [relative(uri, data_bucket) for uri, _ in bad] == sorted(BAD_FULL + BAD_SHOP)
    assert dict(bad)[join(data_bucket, "full/empty.jpg")] == "empty file (0 bytes)"


def test_inspect_exit_status_is_0_when_clean_and_2_when_unreadable(
    data_root: Path, s3_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fsg("data", "inspect", str(data_root / "styles")) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "bad files: 0"
    assert fsg("data", "inspect", "s3://no-such-bucket/x", "--endpoint-url", s3_server) == 2
    assert "s3://no-such-bucket/x" in capsys.readouterr().err


def test_inspect_reads_manifests_with_masks(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        f"image,mask\n{data_root}/shop/000000.jpg,{data_root}/shop_masks/000000.png\n"
        f"{data_root}/shop/gone.jpg,\n"
    )
    assert fsg("data", "inspect", str(manifest)) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{manifest}: 3 images in 2 folders"
    assert out[-1].startswith(f"  {data_root}/shop/gone.jpg: unreadable (")


def test_copy_round_trips_a_folder_through_s3(
    s3_server: str, s3_bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    synthetic.write_dataset(src, n_full=1, n_shop=1, n_heldout=1, full_size=32, shop_size=32)
    (src / "deep" / "er").mkdir(parents=True)
    (src / "deep" / "er" / "notes.txt").write_bytes(b"not an image, copied all the same")
    wanted = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())
    bucket = join(s3_bucket, "copy")
    assert fsg("data", "copy", str(src), bucket, "--endpoint-url", s3_server) == 0
    assert f"copied {len(wanted)} files to {bucket}" in capsys.readouterr().out
    back = tmp_path / "back"
    assert fsg("data", "copy", bucket, str(back), "--endpoint-url", s3_server) == 0
    assert sorted(str(p.relative_to(back)) for p in back.rglob("*") if p.is_file()) == wanted
    assert all((back / r).read_bytes() == (src / r).read_bytes() for r in wanted)


def test_copy_of_nothing_or_a_missing_bucket_fails_clearly(
    s3_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="no files below"):
        fsg("data", "copy", str(tmp_path), str(tmp_path / "out"))
    missing = "s3://no-such-bucket-fsg/x"
    assert fsg("data", "copy", missing, str(tmp_path / "o"), "--endpoint-url", s3_server) == 2
    assert "no-such-bucket-fsg" in capsys.readouterr().err


def test_the_fsg_parser_and_the_data_commands_import_no_ray() -> None:
    """``fsg --help`` stays fast, and ``fsg data`` (synth, copy, inspect of a prefix) needs no
    Ray: the data module and every subcommand's parser load without it."""
    code = (
        "import sys, fsg_ray.app.data, fsg_ray.app.main as m; m.build_parser(); "
        "assert 'ray' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
