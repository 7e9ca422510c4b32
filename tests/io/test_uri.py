"""The one URI parser and the name pattern (fsg_ray/io/uri.py), shared by config and storage."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fsg_ray.io import registry, storage, uri


def test_storage_and_registry_use_the_one_parser_and_pattern() -> None:
    assert storage.parse_uri is uri.parse_uri and storage.join is uri.join
    assert registry.check_style("chinese_knot") == "chinese_knot"
    with pytest.raises(ValueError, match="bad style name 'A': use 1-64 characters"):
        registry.check_style("A")


@pytest.mark.parametrize(
    ("text", "below"),
    [("s3://b/p/out", True), ("s3://b/p", True), ("s3://b/px", False), ("s3://c/p/o", False)],
)
def test_is_below(text: str, below: bool) -> None:
    assert uri.is_below(text, "s3://b/p") is below


def test_a_manifest_is_named_by_its_suffix_in_any_case() -> None:
    assert uri.is_manifest("s3://b/list.CSV") and not uri.is_manifest("s3://b/photos/")


def test_uri_is_a_leaf_module() -> None:
    code = "import sys, fsg_ray.io.uri; assert not {'boto3', 'pyarrow', 'ray'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
