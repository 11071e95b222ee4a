"""The distribution and the package it installs: ``firefly_tasks/__init__.py``, pyproject.toml."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import firefly_tasks

ROOT = Path(__file__).resolve().parent.parent


def test_the_version_is_written_once_in_the_package_and_read_by_the_distribution() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    assert importlib.metadata.version("django-firefly") == firefly_tasks.__version__
