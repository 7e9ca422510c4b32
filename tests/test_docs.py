"""The README and docs/ stay true to the tree: links resolve, the README stays short, and it
shows the exact test command that CI runs."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
#: Files whose comments name modules: job entry points, configs and cluster manifests.
CONFIG_FILES = sorted(
    [
        *ROOT.glob("jobs/**/*.y*ml"),
        *ROOT.glob("jobs/*.py"),
        *ROOT.glob("k8s/*"),
        ROOT / "cluster.yaml",
    ]
)
MAX_README_LINES = 220

FENCE = re.compile(r"^```.*?^```", re.S | re.M)  # code blocks: commands, not links
INLINE_LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target)
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)  # [label]: target
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:


def relative_links(page: Path) -> list[str]:
    """The targets of a page's Markdown links that point inside the repository."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    targets = INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)
    return [t for t in targets if not EXTERNAL.match(t)]


def link_problem(page: Path, target: str) -> str | None:
    """Why a relative link is broken, or None when it names an existing path in the repo."""
    if "#" in target:  # anchors break silently when a heading is reworded
        return "has an anchor; link the page and name the section in words"
    path = (page.parent / target).resolve()
    if not path.is_relative_to(ROOT):
        return "points outside the repository"
    if not path.exists():
        return "points to nothing"
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(page: Path) -> None:
    broken = [
        f"{target}: {why}"
        for target in relative_links(page)
        if (why := link_problem(page, target)) is not None
    ]
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(ROOT / t).resolve() for t in relative_links(README)}
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_readme_is_short() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move detail into docs/"


def ci_test_command() -> str:
    """The one command line of ``.ci/run`` that runs pytest."""
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [
        line.strip() for line in script if "-m pytest" in line and not line.lstrip().startswith("#")
    ]
    assert len(commands) == 1, f".ci/run should run pytest on exactly one line: {commands}"
    return commands[0]


def test_readme_shows_the_command_ci_runs() -> None:
    command = ci_test_command()
    readme_lines = [line.strip() for line in README.read_text(encoding="utf-8").splitlines()]
    assert command in readme_lines, f"README.md lacks the exact test command of .ci/run: {command}"


PATH_MENTION = re.compile(r"\bfsg_ray(?:/[A-Za-z0-9_]+)+(?:\.[a-z]+)?")
DOTTED_MENTION = re.compile(r"\bfsg_ray(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def resolves(dotted: str) -> bool:
    """Whether ``fsg_ray.a.b.c`` names a module, or an attribute of the longest module prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


@pytest.mark.parametrize("page", PAGES + CONFIG_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_paths_and_names_in_the_docs_exist(page: Path) -> None:
    """A module moved or renamed leaves no stale ``fsg_ray/...`` path or ``fsg_ray.x.y`` name
    in the prose or code blocks."""
    text = page.read_text(encoding="utf-8")
    stale = [p for p in set(PATH_MENTION.findall(text)) if not (ROOT / p).exists()]
    stale += [d for d in set(DOTTED_MENTION.findall(text)) if not resolves(d)]
    assert not stale, f"{page.relative_to(ROOT)} names what does not exist: {sorted(stale)}"
