"""Static checks as tests, so CI runs them: ruff (lint) and mypy (types), configured in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing(tmp_path):
    out = _run(["ruff", "check", "--no-cache", "--output-format", "concise", "."])
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_mypy_finds_nothing(tmp_path):
    out = _run(["mypy", "--cache-dir", str(tmp_path / "mypy_cache")])
    assert out.returncode == 0, out.stdout + out.stderr
