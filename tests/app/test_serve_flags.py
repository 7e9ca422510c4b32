"""``fsg serve`` fails closed before Ray starts: no key on a reachable address is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsg_ray.app.cmd_serve import _loopback
from fsg_ray.app.main import main


def test_no_key_on_a_non_loopback_host_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FSG_API_KEY", raising=False)
    assert main(["serve", "--registry", str(tmp_path), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "FSG_API_KEY is not set" in err and "--allow-anonymous" in err


def test_loopback_hosts() -> None:
    assert _loopback("127.0.0.1") and _loopback("::1") and _loopback("localhost")
    assert not _loopback("0.0.0.0") and not _loopback("10.0.0.5") and not _loopback("shop.lan")
