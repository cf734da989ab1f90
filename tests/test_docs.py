"""The documented way to rebuild the shipped model matches the shipped checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voice_gru.config import load_config
from voice_gru.model import Ensemble, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "voice_gru" / "models" / "default.pt"


def _ensemble_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if re.search(r"voice-gru ensemble \S", ln)]


def _members_recipe_path(ckpt) -> Path:
    """The recipe file the shipped members' runs name (its header holds the commands that built them)."""
    names = {m["config_name"] for m in ckpt.meta.get("ensemble_of") or []}
    assert len(names) == 1, names
    return ROOT / "configs" / f"{names.pop()}.yaml"


def _members_recipe(ckpt) -> str:
    return _members_recipe_path(ckpt).read_text()


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model voice_gru/models/default.pt is missing")
def test_reproduce_commands_use_the_shipped_combination():
    ckpt = load_checkpoint(MODEL)
    assert isinstance(ckpt.model, Ensemble)
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("### Reproduce the shipped model"):]  # the section, not a mention of it
    block = block[:block.index("```", block.index("```") + 3)]
    recipe = _members_recipe(ckpt)
    lines = _ensemble_lines(block) + _ensemble_lines(recipe)
    assert len(lines) == 2, lines
    for ln in lines:
        assert (f"--combine {ckpt.model.combine}" in ln) or (ckpt.model.combine == "mean" and "--combine" not in ln), ln


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model voice_gru/models/default.pt is missing")
def test_reproduce_commands_name_the_shipped_members_seeds():
    ckpt = load_checkpoint(MODEL)
    members = ckpt.meta.get("ensemble_of") or []
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("### Reproduce the shipped model"):]  # the section, not a mention of it
    block = block[:block.index("```", block.index("```") + 3)]
    recipe = _members_recipe(ckpt)
    seeds = sorted(m["seed"] for m in members)
    assert seeds, "the shipped ensemble records no member seeds"
    # each member: trained, then fine-tuned from that run with the same seed (configs/words_finetune.yaml)
    assert sorted(int(s) for s in re.findall(r"voice-gru train .*--seed (\d+)", block)) == sorted(seeds * 2)
    assert sorted(int(s) for s in re.findall(r"voice-gru train .*--seed (\d+)", recipe)) == sorted(seeds * 2)
    assert all("--init" in ln for ln in block.splitlines() if "words_finetune" in ln and "train" in ln)
    assert all("last.pt" in ln for ln in _ensemble_lines(block) + _ensemble_lines(recipe))


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model voice_gru/models/default.pt is missing")
def test_shipped_decision_settings_are_the_recipes():
    """The documented calibration (`calibrate --config` with the members' recipe) gives the shipped
    smoothing, minimum duration and cooldown, and the README states them."""
    ckpt = load_checkpoint(MODEL)
    decision = load_config(_members_recipe_path(ckpt)).decision
    for key in ("smooth_ms", "min_duration_ms", "cooldown_ms"):
        assert getattr(decision, key) == ckpt.decision[key], key
    readme = (ROOT / "README.md").read_text()
    assert f"posteriors are averaged over {ckpt.decision['smooth_ms']:g} ms" in readme
    assert (f"and above its threshold for {ckpt.decision['min_duration_ms']:g} ms (the shipped model's setting), then "
            f"nothing fires for {ckpt.decision['cooldown_ms']:g} ms") in readme
