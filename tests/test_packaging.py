"""The package as `pip install .` installs it, away from the clone: what it ships and that its commands find it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of this clone's files (setuptools builds in the source's build/ folder and ships what
    an earlier build left there) with the environment's own setuptools: no network, no build isolation."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("needs the clone's git to list its files")
    source = tmp_path_factory.mktemp("source")
    for name in listed.stdout.splitlines():
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(out), str(source)], capture_output=True, text=True, timeout=300)
    if build.returncode != 0:
        pytest.skip(f"no wheel could be built here: {build.stderr.strip().splitlines()[-1:]}")
    return next(out.glob("voice_gru-*.whl"))


@pytest.mark.slow
def test_the_wheel_ships_the_model_the_example_and_the_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"voice_gru/configs/{p.name}" for p in (REPO / "configs").iterdir() if p.suffix in (".yaml", ".service")}
    assert {"voice_gru/models/default.pt", "voice_gru/assets/example.wav", "voice_gru/assets/example.json",
            "voice_gru/configs/assistant.yaml", "voice_gru/configs/default.yaml"} <= names
    assert shipped <= names


@pytest.mark.slow
def test_an_installed_package_runs_the_demo_with_its_actions_and_finds_its_recipes(wheel, tmp_path):
    """Installed with `pip install .`, `voice-gru demo` fired no action, unsaid (its assistant file lived only in the
    clone), and `train --config configs/default.yaml` said the file was not found."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import voice_gru; print(voice_gru.__file__)"], cwd=away, env=env,
                           capture_output=True, text=True, check=True)
    assert where.stdout.strip().startswith(str(site))  # the installed copy, not the clone's
    demo = subprocess.run([sys.executable, "-m", "voice_gru", "demo"], cwd=away, env=env, capture_output=True,
                          text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    assert "-> would turn the volume down" in demo.stdout and "actions: 3 done" in demo.stdout, demo.stdout
    assert str(site / "voice_gru" / "configs" / "assistant.yaml") in demo.stdout  # its `next:` line
    recipe = subprocess.run([sys.executable, "-m", "voice_gru", "train", "--config", "configs/default.yaml",
                             "--data-dir", str(away / "none"), "--out", str(away / "run")], cwd=away, env=env,
                            capture_output=True, text=True, timeout=300)
    assert f"using voice-gru's own, {site / 'voice_gru' / 'configs' / 'default.yaml'}" in recipe.stderr
    assert "none" in recipe.stderr.splitlines()[-1] and "config file not found" not in recipe.stderr
