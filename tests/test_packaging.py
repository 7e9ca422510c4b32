"""What pyproject.toml lets pip install: no torch that runs code from a crafted checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
# torch < 2.6 runs code from a crafted checkpoint even with weights_only=True (CVE-2025-32434);
# torchvision 0.21 is the release built for torch 2.6. boto3 1.36 sends PutObject's If-Match
# (the registry's compare-and-swap) and knows the checksum options io/storage.py sets.
FLOORS = {
    "torch": ("2.5.1", "2.6.0"),
    "torchvision": ("0.20.1", "0.21.0"),
    "boto3": ("1.35.0", "1.36.0"),
}


def requirements() -> dict[str, Requirement]:
    """The ``[project] dependencies`` (read by pattern: tomllib is not in Python 3.10)."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M)
    assert block, "pyproject.toml has no dependencies list"
    found = [Requirement(r) for r in re.findall(r'^\s*"([^"]+)"', block[1], re.M)]
    return {r.name: r for r in found}


def pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pairs = (line.split("==") for line in lines if "==" in line and not line.startswith("#"))
    return {name.strip().lower(): version.strip() for name, version in pairs}


def test_floors_refuse_unsafe_or_unsupported_versions() -> None:
    required, pinned = requirements(), pins()
    for name, (unsafe, safe) in FLOORS.items():
        spec = required[name].specifier
        assert not spec.contains(unsafe), f"{name} {spec} allows {unsafe}"
        assert spec.contains(safe), f"{name} {spec} refuses {safe}"
        assert spec.contains(pinned[name]), f"the tested {name}=={pinned[name]} is outside {spec}"
