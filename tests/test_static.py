"""Static checks as tests, so CI runs them: ruff (lint) and mypy (types), configured in pyproject.toml."""

from __future__ import annotations

import ast
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


def _public_functions(tree: ast.Module):
    """Module-level functions and the methods of public classes whose names do not start with '_'."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield "", node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield node.name + ".", sub


def test_public_functions_have_type_hints_and_a_docstring():
    """The code style's rule (public functions with type hints and a one-line docstring), kept by a test."""
    bad = []
    for path in sorted((REPO / "voice_gru").glob("*.py")):
        for owner, fn in _public_functions(ast.parse(path.read_text(encoding="utf-8"))):
            if fn.name.startswith("_") and fn.name != "__init__":
                continue
            a = fn.args
            unhinted = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, (a.vararg, a.kwarg)))
                        if x.annotation is None and x.arg not in ("self", "cls")]
            no_return = fn.returns is None and fn.name != "__init__"
            no_doc = ast.get_docstring(fn) is None and fn.name != "__init__"
            if unhinted or no_return or no_doc:
                bad.append(f"{path.name}:{fn.lineno} {owner}{fn.name}: " + ", ".join(
                    ([f"no type hint for {', '.join(unhinted)}"] if unhinted else []) + (["no return type"] if no_return
                    else []) + (["no docstring"] if no_doc else [])))
    assert not bad, "\n".join(bad)
