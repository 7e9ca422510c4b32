"""The cluster files, checked offline: cluster.yaml against the schema shipped in the ``ray``
package, the KubeRay manifests against the entrypoints and configs they name, and a real
``ray job submit`` of the short catalogue to a Ray head started with ``ray start --head`` on
127.0.0.1."""

from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch
import yaml
from ray_head import BIN, ray_head

from fsg_ray.config import load_catalogue
from fsg_ray.io import registry
from fsg_ray.io.storage import Storage

ROOT = Path(__file__).resolve().parents[2]


def ray_schema() -> dict[str, Any]:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


# ---------------------------------------------------------------- cluster.yaml


def test_cluster_yaml_validates_against_rays_schema(cluster: dict[str, Any]) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    jsonschema.validate(cluster, ray_schema())
    validate_config(prepare_config(copy.deepcopy(cluster)))  # as `ray up` fills and checks it


@pytest.mark.parametrize(
    "path, value",
    [
        (("typo_key",), 1),
        (("available_node_types", "gpu_worker", "min_workers"), "zero"),
        (("max_workers",), -1),
    ],
)
def test_the_schema_check_catches_broken_configs(
    cluster: dict[str, Any], path: tuple[str, ...], value: Any
) -> None:
    broken = copy.deepcopy(cluster)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, ray_schema())


def test_cluster_yaml_has_the_promised_shape(cluster: dict[str, Any]) -> None:
    types = cluster["available_node_types"]
    assert types[cluster["head_node_type"]]["resources"] == {"CPU": 0}  # the head runs no tasks
    gpu = [t for t in types.values() if t["resources"].get("GPU")]
    cpu = [t for name, t in types.items() if name != "head" and not t["resources"].get("GPU")]
    assert gpu and all(t["resources"]["GPU"] == 1 for t in gpu)  # one GPU per style trainer
    assert cpu and all(t["resources"]["CPU"] > 0 for t in cpu)  # decoding
    for t in [*gpu, *cpu]:
        assert 0 <= t["min_workers"] <= t["max_workers"]
        assert "IamInstanceProfile" in t["node_config"]  # S3 through a role
    setup = " ".join(cluster["setup_commands"])
    assert "-c /home/ray/fsg-ray/constraints.txt" in setup and (ROOT / "constraints.txt").exists()
    assert cluster["file_mounts"] == {"/home/ray/fsg-ray": "."}
    assert "--dashboard-host=127.0.0.1" in " ".join(cluster["head_start_ray_commands"])


def test_no_credentials_in_the_cluster_files() -> None:
    text = "\n".join(p.read_text() for p in [ROOT / "cluster.yaml", *(ROOT / "k8s").glob("*")])
    for pattern in (r"AKIA[0-9A-Z]{16}", r"(?i)aws_secret_access_key", r"(?i)aws_access_key_id"):
        assert not re.search(pattern, text), pattern


# ---------------------------------------------------------------- jobs/ and k8s/


def manifests() -> dict[str, dict[str, Any]]:
    """The KubeRay manifests (k8s/ also holds the head's NetworkPolicy, tests/cluster/test_k8s)."""
    found = {p.name: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "k8s").glob("*.yaml"))}
    return {name: m for name, m in found.items() if m["apiVersion"] == "ray.io/v1"}


def entrypoint_files(command: str) -> list[Path]:
    """Files of this repository that a ``python jobs/x.py ARGS`` command names."""
    return [ROOT / a for a in shlex.split(command) if a.startswith(("jobs/", "fsg_ray/"))]


def test_kuberay_manifests_name_what_exists() -> None:
    found = manifests()
    kinds = sorted(m["kind"] for m in found.values())
    assert kinds == ["RayJob", "RayJob", "RayService"], found.keys()
    for name, m in found.items():
        assert m["apiVersion"] == "ray.io/v1", name
        if m["kind"] == "RayJob":
            files = entrypoint_files(m["spec"]["entrypoint"])
            assert files and all(f.is_file() for f in files), (name, files)
            cluster_spec = m["spec"]["rayClusterSpec"]
        else:
            serve = yaml.safe_load(m["spec"]["serveConfigV2"])
            mine = yaml.safe_load((ROOT / "jobs" / "serve_config.yaml").read_text())
            assert serve["applications"][0]["import_path"] == mine["applications"][0]["import_path"]
            cluster_spec = m["spec"]["rayClusterConfig"]
        head = cluster_spec["headGroupSpec"]
        assert head["rayStartParams"].get("num-cpus") == "0", name  # the head runs no tasks
        gpus = [
            c["resources"]["limits"].get("nvidia.com/gpu")
            for g in cluster_spec["workerGroupSpecs"]
            for c in g["template"]["spec"]["containers"]
        ]
        assert "1" in [str(g) for g in gpus], name  # a single-GPU worker group


def test_job_configs_load() -> None:
    """Every config that jobs/ and k8s/ name is valid: catalogues and restyle jobs."""
    from fsg_ray.app.cmd_restyle import restyle_options
    from fsg_ray.app.main import build_parser
    from fsg_ray.config import RestyleConfig

    named = {
        f for m in manifests().values() for f in entrypoint_files(m["spec"].get("entrypoint", ""))
    }
    configs = sorted((ROOT / "jobs" / "configs").glob("*.yaml"))
    assert {f for f in named if f.suffix == ".yaml"} <= set(configs)
    for config in configs:
        if config.name.startswith("restyle"):
            args = build_parser().parse_args(["restyle", "--config", str(config)])
            o = restyle_options(args)
            RestyleConfig(
                o["registry"],
                o["input"],
                o["output"],
                **{k: o[k] for k in ("masks", "format", "actors")},
            )
        else:
            assert load_catalogue(config).styles, config


def test_serve_config_passes_serves_schema_and_waits_for_the_proxy_as_fsg_serve() -> None:
    """`serve run`/`serve deploy` validate jobs/serve_config.yaml with Serve's own schema (an
    unknown top-level key fails them), and its controller gets fsg serve's proxy ready time."""
    from ray.serve.schema import ServeDeploySchema

    from fsg_ray.distributed import serve

    raw = yaml.safe_load((ROOT / "jobs" / "serve_config.yaml").read_text())
    parsed = ServeDeploySchema.model_validate(raw)
    assert parsed.controller_options is not None and parsed.controller_options.runtime_env
    env = parsed.controller_options.runtime_env["env_vars"]
    assert float(env["RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S"]) == serve.PROXY_READY_TIMEOUT_S


# ---------------------------------------------------------------- a real head and a job


@pytest.fixture(scope="module")
def head() -> Iterator[dict[str, str]]:
    """A Ray head on 127.0.0.1 (:func:`ray_head.ray_head`, token auth on); its client env."""
    with ray_head() as h:
        client = {**h.env, "RAY_API_SERVER_ADDRESS": h.dashboard}
        wait_for_jobs_api(client, h.proc)
        yield client


def wait_for_jobs_api(client: dict[str, str], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the Ray head exited"
        done = subprocess.run([str(BIN / "ray"), "job", "list"], env=client, capture_output=True)
        if done.returncode == 0:
            return
        time.sleep(3)
    raise TimeoutError("the Ray head's job API did not come up in 180 s")


@pytest.mark.slow
def test_job_submit_trains_the_short_catalogue(head: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "data"
    synth = [str(BIN / "fsg"), "data", "synth", "--out", str(data), "--n-full", "16"]
    subprocess.run([*synth, "--n-shop", "4", "--size", "128"], check=True, capture_output=True)
    config = tmp_path / "short.yaml"
    text = (ROOT / "jobs" / "configs" / "short_catalogue.yaml").read_text()
    config.write_text(text.replace("/tmp/fsg-short", str(tmp_path)))
    job = ["ray", "job", "submit", "--working-dir", str(ROOT), "--"]
    job += ["python", "jobs/train_catalogue.py", str(config)]
    done = subprocess.run(
        [str(BIN / job[0]), *job[1:]], env=head, capture_output=True, text=True, timeout=480
    )
    logs = done.stdout + done.stderr
    assert done.returncode == 0, logs[-4000:]
    # A progress line: every 10 s and at the last step, so on a fast machine only the last
    # one (of whichever phase ends the schedule) is printed.
    assert re.search(r"\[stripes\] (gan|global|patch) \d+/\d+ \| \d+/14 \|.*it/s \| ETA", logs)
    assert re.search(r"waves +published +14 ", logs)  # the summary table
    found = registry.list_styles(Storage(), str(tmp_path / "registry"))
    assert {s: i.current for s, i in found.items()} == {"stripes": "v1", "waves": "v1"}
    gen, _ = registry.load(Storage(), str(tmp_path / "registry"), "waves", torch.device("cpu"))
    with torch.no_grad():
        assert gen(torch.rand(1, 3, 40, 56)).shape == (1, 3, 40, 56)


def test_the_head_refuses_a_client_without_its_token(head: dict[str, str]) -> None:
    stranger = {k: v for k, v in head.items() if k != "RAY_AUTH_TOKEN"}
    stranger["RAY_AUTH_TOKEN"] = "0" * 32
    done = subprocess.run(
        [str(BIN / "ray"), "job", "list"], env=stranger, capture_output=True, text=True
    )
    said = done.stdout + done.stderr
    assert done.returncode != 0 and re.search(r"(?i)unauthori[sz]ed|authentication", said), said
