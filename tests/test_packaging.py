"""Packaging: every package-data pattern of pyproject.toml matches files that exist."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def test_package_data_patterns_match_real_files():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = cfg["tool"]["setuptools"]["package-data"]
    for package, patterns in package_data.items():
        base = ROOT / "src" / package.replace(".", "/")
        for pattern in patterns:
            files = [p for p in base.glob(pattern) if p.is_file()]
            assert files, f"package-data {package}:{pattern} matches no file (stale entry)"


def test_py_typed_marker_ships():
    # PEP 561: the marker tells type checkers the package's annotations are meant to be used
    assert (ROOT / "src" / "pixsearch" / "py.typed").is_file()
