"""The layer rule (docs/architecture.md): each package imports only the layers below it.

Two checks. The static one reads every module's imports (top-level and inside functions) from
its source, so a forbidden import fails here even when it sits in a branch that no test runs.
The runtime one imports each Ray-free layer in a fresh interpreter and looks at
``sys.modules``: it also catches a forbidden package pulled in through a third-party module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fsg_ray"
HEAVY = ("ray", "boto3", "botocore", "pyarrow", "fastapi", "starlette")

#: Package -> import prefixes its modules must not use.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "config": (
        *HEAVY,
        "torch",
        "fsg_ray.core",
        "fsg_ray.io.storage",
        "fsg_ray.io.registry",
        "fsg_ray.distributed",
        "fsg_ray.app",
    ),
    "core": (*HEAVY, "fsg_ray.io", "fsg_ray.distributed", "fsg_ray.app"),
    "io": ("ray", "fastapi", "starlette", "fsg_ray.distributed", "fsg_ray.app"),
    "distributed": ("fsg_ray.app",),
    "app": (),
}
#: Modules held to more than their package's rule: Ray-free parts of the upper layers (they
#: run where no Ray is started), and compositing, which needs no torch.
EXTRA: dict[str, tuple[str, ...]] = {
    "fsg_ray.distributed.api": ("ray",),
    "fsg_ray.distributed.restyle_plan": ("ray",),
    "fsg_ray.app.evaluate": ("ray",),
    "fsg_ray.app.evaluate_styles": ("ray",),
    "fsg_ray.app.data": ("ray",),
    "fsg_ray.io.compositing": ("torch",),
}


def imported_names(source: str) -> set[str]:
    """Every module named by an ``import`` or ``from … import`` in ``source``, at any depth;
    ``from pkg import mod`` counts as ``pkg.mod`` too."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(module: str, source: str, forbidden: tuple[str, ...]) -> list[str]:
    """The imports of ``source`` that fall under one of the ``forbidden`` prefixes."""
    bad = {
        name
        for name in imported_names(source)
        for prefix in forbidden
        if name == prefix or name.startswith(prefix + ".")
    }
    return [f"{module} imports {name}" for name in sorted(bad)]


def modules(package: str) -> list[tuple[str, Path]]:
    folder = PACKAGE / package
    return [
        (f"fsg_ray.{'.'.join(p.relative_to(PACKAGE).with_suffix('').parts)}", p)
        for p in sorted(folder.rglob("*.py"))
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_each_package_imports_only_the_layers_below_it(package: str) -> None:
    found = modules(package)
    assert found, f"no modules in fsg_ray/{package}"
    bad = []
    for name, path in found:
        rule = FORBIDDEN[package] + EXTRA.get(name.removesuffix(".__init__"), ())
        bad += violations(name, path.read_text(encoding="utf-8"), rule)
    assert not bad, "layer rule broken:\n" + "\n".join(bad)


def test_the_rule_catches_a_forbidden_import_anywhere_in_a_module() -> None:
    source = "import torch\n\ndef f():\n    import boto3\n    from fsg_ray.io import storage\n"
    assert violations("fsg_ray.core.models", source, FORBIDDEN["core"]) == [
        "fsg_ray.core.models imports boto3",
        "fsg_ray.core.models imports fsg_ray.io",
        "fsg_ray.core.models imports fsg_ray.io.storage",
    ]
    assert violations("m", "import torchvision\nfrom fsg_ray import config\n", ("torch",)) == []


def test_every_module_lives_in_a_layer_package() -> None:
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"modules outside the layer packages: {loose}"
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} == set(FORBIDDEN)


@pytest.mark.parametrize(
    ("package", "absent"),
    [("config", (*HEAVY, "torch")), ("core", HEAVY), ("io", ("ray",))],
)
def test_ray_free_layers_load_no_forbidden_package(package: str, absent: tuple[str, ...]) -> None:
    names = [name.removesuffix(".__init__") for name, _ in modules(package)]
    code = (
        f"import sys, importlib\nfor m in {names!r}: importlib.import_module(m)\n"
        f"loaded = sorted(set({absent!r}) & set(sys.modules))\n"
        "assert not loaded, f'loaded: {loaded}'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
