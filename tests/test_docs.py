"""The documented way to rebuild the shipped model matches the shipped checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voice_gru.model import Ensemble, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "voice_gru" / "models" / "default.pt"


def _ensemble_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if re.search(r"voice-gru ensemble \S", ln)]


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model voice_gru/models/default.pt is missing")
def test_reproduce_commands_use_the_shipped_combination():
    ckpt = load_checkpoint(MODEL)
    assert isinstance(ckpt.model, Ensemble)
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("Reproduce the shipped model"):]
    block = block[:block.index("```", block.index("```") + 3)]
    recipe = (ROOT / "configs" / "default.yaml").read_text()
    lines = _ensemble_lines(block) + _ensemble_lines(recipe)
    assert len(lines) == 2, lines
    for ln in lines:
        assert (f"--combine {ckpt.model.combine}" in ln) or (ckpt.model.combine == "mean" and "--combine" not in ln), ln


@pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model voice_gru/models/default.pt is missing")
def test_reproduce_commands_name_the_shipped_members_seeds():
    members = load_checkpoint(MODEL).meta.get("ensemble_of") or []
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("Reproduce the shipped model"):]
    block = block[:block.index("```", block.index("```") + 3)]
    recipe = (ROOT / "configs" / "default.yaml").read_text()
    seeds = sorted(m["seed"] for m in members)
    assert seeds, "the shipped ensemble records no member seeds"
    assert sorted(int(s) for s in re.findall(r"voice-gru train .*--seed (\d+)", block)) == seeds
    assert sorted(int(s) for s in re.findall(r"voice-gru train .*--seed (\d+)", recipe)) == seeds
