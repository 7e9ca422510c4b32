"""The KubeRay manifests, validated against the CRD schemas of a released KubeRay (shipped in
``schemas/``, see its README) as ``kubectl apply`` validates them (unknown fields refused);
Ray token auth from a Secret on every cluster; the dashboard on KubeRay's default address;
the API key required; and the head's NetworkPolicy, by structure and by who it lets in."""

from __future__ import annotations

import copy
import gzip
import hashlib
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).parents[2]
K8S = ROOT / "k8s"
SCHEMAS = Path(__file__).parent / "schemas"
DOCS = {p.name: yaml.safe_load(p.read_text()) for p in sorted(K8S.glob("*.yaml"))}
RAY = {name: d for name, d in DOCS.items() if d["kind"] in ("RayJob", "RayService")}
POLICIES = [d for d in DOCS.values() if d["kind"] == "NetworkPolicy"]
#: The Secret every cluster's token comes from, and the key KubeRay reads in it.
AUTH_SECRET, AUTH_KEY = "fsg-ray-auth", "auth_token"
#: KubeRay refuses authOptions.mode token below this Ray (its validation.go).
MIN_RAY_FOR_TOKEN = (2, 52, 0)
#: The label our Ray pod templates carry, which the NetworkPolicy selects on.
PART_OF = {"app.kubernetes.io/part-of": "fsg-ray"}


def walk(node: Any) -> list[Any]:
    """Every mapping and list below ``node``."""
    found = [node]
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        found += walk(child)
    return found


def cluster_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]
    return spec["rayClusterSpec"] if doc["kind"] == "RayJob" else spec["rayClusterConfig"]


# ---------------------------------------------------------------- the CRD schemas


@cache
def crd_schema(kind: str) -> dict[str, Any]:
    """The ``v1`` openAPIV3Schema of KubeRay's CRD for ``kind``, made strict."""
    path = SCHEMAS / f"ray.io_{kind.lower()}s.yaml.gz"
    crd = yaml.load(gzip.decompress(path.read_bytes()), Loader=yaml.CSafeLoader)
    assert crd["spec"]["names"]["kind"] == kind
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return strict(v1["schema"]["openAPIV3Schema"])


def strict(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` on every object that lists its
    properties and does not keep unknown fields: the API server's strict field validation
    (``kubectl apply``'s default) refuses a field the CRD does not name, and jsonschema
    alone would let a misspelt key through."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    keeps_unknown = schema.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in schema and "additionalProperties" not in schema and not keeps_unknown:
        out["additionalProperties"] = False
    return out


def crd_errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft4Validator(crd_schema(doc["kind"]))  # OpenAPI 3.0 ~ draft 4
    errors = validator.iter_errors(doc)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def test_the_schema_files_are_the_release_the_readme_names() -> None:
    """The README lists each file's sha256 (of the CRD as KubeRay ships it, uncompressed)."""
    readme = (SCHEMAS / "README.md").read_text()
    listed = dict(re.findall(r"`(ray\.io_\w+\.yaml)`: sha256 `([0-9a-f]{64})`", readme))
    shipped = {p.name.removesuffix(".gz"): p for p in SCHEMAS.glob("*.yaml.gz")}
    assert listed.keys() == shipped.keys() and len(listed) == 2
    for name, path in shipped.items():
        assert hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest() == listed[name]
    assert "v1.7.0" in readme


@pytest.mark.parametrize("name", RAY)
def test_manifest_validates_against_the_kuberay_crd(name: str) -> None:
    assert RAY[name]["apiVersion"] == "ray.io/v1"
    assert not crd_errors(RAY[name])


def _rename(key: str, to: str) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        spec = cluster_spec(doc)
        spec[to] = spec.pop(key)

    return edit


BREAKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "a misspelt key": _rename("authOptions", "authOption"),
    "a value outside an enum": lambda d: cluster_spec(d)["authOptions"].update(mode="tokens"),
    "a string for an integer": lambda d: cluster_spec(d)["workerGroupSpecs"][0].update(
        replicas="six"
    ),
    "an unknown container field": lambda d: cluster_spec(d)["headGroupSpec"]["template"]["spec"][
        "containers"
    ][0].update(imag="x"),
}


@pytest.mark.parametrize("name", RAY)
@pytest.mark.parametrize("why", BREAKS)
def test_the_crd_check_refuses_a_broken_manifest(name: str, why: str) -> None:
    broken = copy.deepcopy(RAY[name])
    BREAKS[why](broken)
    assert crd_errors(broken), why


# ---------------------------------------------------------------- what the manifests promise


@pytest.mark.parametrize("name", RAY)
def test_ray_token_auth_from_the_secret(name: str) -> None:
    spec = cluster_spec(RAY[name])
    assert spec["authOptions"] == {"mode": "token", "secretName": AUTH_SECRET}
    assert tuple(int(n) for n in spec["rayVersion"].split(".")) >= MIN_RAY_FOR_TOKEN
    # The Secret as docs/cluster.md has it created: the name and the key KubeRay reads.
    doc = (ROOT / "docs" / "cluster.md").read_text()
    assert f"kubectl create secret generic {AUTH_SECRET} --from-literal={AUTH_KEY}=" in doc


@pytest.mark.parametrize("name", RAY)
def test_dashboard_is_not_bound_to_localhost(name: str) -> None:
    """KubeRay's submitter and controller reach the dashboard through the head Service."""
    for node in walk(RAY[name]):
        if isinstance(node, dict) and "dashboard-host" in node:
            assert node["dashboard-host"] not in ("127.0.0.1", "localhost"), name


def test_the_api_key_secret_is_required_on_every_serve_pod() -> None:
    doc = RAY["serve-rayservice.yaml"]
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


# ---------------------------------------------------------------- the head's NetworkPolicy


@pytest.fixture
def policy() -> dict[str, Any]:
    assert len(POLICIES) == 1, "k8s/ should hold one NetworkPolicy, for the Ray heads"
    return POLICIES[0]


ALLOWED_KEYS = {
    "policy": {"apiVersion", "kind", "metadata", "spec"},
    "spec": {"podSelector", "policyTypes", "ingress", "egress"},
    "rule": {"from", "ports"},
    "peer": {"podSelector", "namespaceSelector", "ipBlock"},
    "selector": {"matchLabels", "matchExpressions"},
    "port": {"port", "protocol", "endPort"},
}


def test_the_network_policy_is_well_formed(policy: dict[str, Any]) -> None:
    """The fields networking.k8s.io/v1 has, with the types it wants (a minimal check: no
    NetworkPolicy schema is shipped)."""
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy.keys() <= ALLOWED_KEYS["policy"]
    assert isinstance(policy["metadata"]["name"], str)
    spec = policy["spec"]
    assert spec.keys() <= ALLOWED_KEYS["spec"] and spec["policyTypes"] == ["Ingress"]
    assert spec["podSelector"].keys() <= ALLOWED_KEYS["selector"]
    for rule in spec["ingress"]:
        assert rule.keys() <= ALLOWED_KEYS["rule"] and rule, rule
        for peer in rule.get("from", []):
            assert peer.keys() <= ALLOWED_KEYS["peer"] and peer, peer
            for selector in (peer.get("podSelector"), peer.get("namespaceSelector")):
                assert selector is None or selector.keys() <= ALLOWED_KEYS["selector"]
        for port in rule.get("ports", []):
            assert port.keys() <= ALLOWED_KEYS["port"] and isinstance(port["port"], int)
            assert port["protocol"] == "TCP"


def test_the_network_policy_selects_the_head_of_every_cluster(policy: dict[str, Any]) -> None:
    """Every Ray pod template carries the label the policy selects on; KubeRay adds
    ``ray.io/node-type: head`` to the head's."""
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector == {**PART_OF, "ray.io/node-type": "head"}
    for name, doc in RAY.items():
        spec = cluster_spec(doc)
        groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
        for group in groups:
            assert group["template"]["metadata"]["labels"].items() >= PART_OF.items(), name


def admits(policy: dict[str, Any], port: int, labels: dict[str, str], same_namespace: bool) -> bool:
    """Whether ``policy`` lets a pod with ``labels`` reach the head on ``port``."""
    for rule in policy["spec"]["ingress"]:
        ports = [p["port"] for p in rule.get("ports", [])]
        if ports and port not in ports:
            continue
        if "from" not in rule or any(_matches(p, labels, same_namespace) for p in rule["from"]):
            return True
    return False


def _matches(peer: dict[str, Any], labels: dict[str, str], same_namespace: bool) -> bool:
    if "namespaceSelector" not in peer and not same_namespace:
        return False  # a podSelector alone means the policy's own namespace
    if "namespaceSelector" in peer:
        assert peer["namespaceSelector"] == {}, "only 'any namespace' is modelled here"
    wanted = peer.get("podSelector", {}).get("matchLabels", {})
    return labels.items() >= wanted.items()


RAY_POD = {**PART_OF, "ray.io/node-type": "worker", "ray.io/is-ray-node": "yes"}
OPERATOR = {"app.kubernetes.io/name": "kuberay-operator"}
SUBMITTER = {"ray.io/originated-from-crd": "RayJob", "ray.io/originated-from-cr-name": "x"}
PROMETHEUS = {"app.kubernetes.io/name": "prometheus"}
STRANGER = {"app": "something-else"}


@pytest.mark.parametrize(
    "port, labels, same_namespace, admitted",
    [
        (6379, RAY_POD, True, True),  # GCS: our Ray pods only
        (6379, STRANGER, True, False),
        (6379, OPERATOR, False, False),
        (6379, SUBMITTER, True, False),
        (10001, RAY_POD, True, True),  # Ray client: the same
        (10001, STRANGER, True, False),
        (40123, RAY_POD, True, True),  # a worker or object manager port
        (40123, STRANGER, True, False),
        (8265, OPERATOR, False, True),  # dashboard: the operator, anywhere
        (8265, SUBMITTER, True, True),  # and a RayJob's submitter here
        (8265, SUBMITTER, False, False),  # not another namespace's
        (8265, STRANGER, True, False),
        (8000, STRANGER, False, True),  # Serve: anyone (the API checks its key)
        (8080, PROMETHEUS, False, True),  # metrics: Prometheus
        (8080, STRANGER, True, False),
    ],
)
def test_who_the_network_policy_lets_reach_the_head(
    policy: dict[str, Any], port: int, labels: dict[str, str], same_namespace: bool, admitted: bool
) -> None:
    assert admits(policy, port, labels, same_namespace) is admitted
