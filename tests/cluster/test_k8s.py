"""The KubeRay manifests, checked for structure with our own rules (no KubeRay CRD schema is
available offline here): the dashboard on KubeRay's default address, the API key required."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

K8S = Path(__file__).parents[2] / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))


def walk(node: Any) -> list[Any]:
    """Every mapping and list below ``node``."""
    found = [node]
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        found += walk(child)
    return found


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_dashboard_is_not_bound_to_localhost(path: Path) -> None:
    """KubeRay's submitter and controller reach the dashboard through the head Service."""
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] in ("RayJob", "RayService")
    for node in walk(doc):
        if isinstance(node, dict) and "dashboard-host" in node:
            assert node["dashboard-host"] not in ("127.0.0.1", "localhost"), path.name


def test_the_api_key_secret_is_required_on_every_serve_pod() -> None:
    doc = yaml.safe_load((K8S / "serve-rayservice.yaml").read_text())
    refs = [
        n["valueFrom"]["secretKeyRef"]
        for n in walk(doc)
        if isinstance(n, dict) and n.get("name") == "FSG_API_KEY" and "valueFrom" in n
    ]
    assert len(refs) == 2 and all(not r.get("optional", False) for r in refs)


def test_the_image_build_context_leaves_out_the_checkout_clutter() -> None:
    """The Dockerfile copies the build context (``COPY .``): git history, virtual envs and demo
    outputs must not ship in the image."""
    ignored = set((K8S.parent / ".dockerignore").read_text().split())
    assert {".git", ".venv", "demo-out", "eval-out", "*.egg-info"} <= ignored
    kept = {"fsg_ray", "jobs", "pyproject.toml", "constraints.txt", "README.md"}
    assert not kept & ignored  # pip install -e . needs these
