"""The inside-word cap (``train.inside_unknown_weight``): the penalty against a hand-computed value,
its settings' errors, and a tiny run that ends less sure of a command inside other words."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_data import TINY_CONFIG, make_tiny_dataset
from voice_gru.augment import eval_features, speech_bounds
from voice_gru.config import TrainConfig, load_config
from voice_gru.data import load_clip_mels, scan_dataset
from voice_gru.errors import ConfigError
from voice_gru.model import load_checkpoint
from voice_gru.train import inside_penalty, train


def test_penalty_is_the_mean_excess_of_the_top_command_over_the_cap():
    # classes: 0 silence, 1 unknown, 2 and 3 commands; two examples of three frames
    p = np.array([[[0.1, 0.1, 0.7, 0.1], [0.1, 0.1, 0.2, 0.6], [0.9, 0.05, 0.03, 0.02]],
                  [[0.2, 0.2, 0.3, 0.3], [0.1, 0.1, 0.1, 0.7], [0.0, 0.0, 0.0, 1.0]]])
    inside = torch.tensor([[True, True, True], [True, False, False]])
    got = inside_penalty(torch.log(torch.tensor(p)), inside, torch.tensor([2, 3]), cap=0.5)
    # example 0: excesses 0.2, 0.1, 0 over its 3 inside frames; example 1: 0 over its 1 (the 0.7 and 1.0
    # frames are outside); mean over the 2 examples
    assert float(got) == pytest.approx(((0.2 + 0.1 + 0.0) / 3 + 0.0) / 2)
    assert float(inside_penalty(torch.log(torch.tensor(p)), inside & False, torch.tensor([2, 3]), 0.5)) == 0.0


@pytest.mark.parametrize("change, says", [
    ({"inside_cap": 1.5}, "inside_cap = 1.5: must be between 0 and 1"),
    ({"inside_unknown_weight": -1.0}, "inside_unknown_weight = -1.0: must be at least 0"),
])
def test_bad_settings_name_the_key(change, says):
    with pytest.raises(ConfigError, match=says):
        TrainConfig(**change)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "speech_commands")


@pytest.mark.slow
def test_a_capped_run_is_less_sure_of_commands_inside_other_words(tiny_root, tmp_path):
    """Same seed and data; only the cap differs. Inside the training split's other words ("bed",
    "marvin": between their first and last loud frame) the capped run's top command posterior must
    average at least 30% below the uncapped run's (a cap far below 1/12, so it acts on every frame there)."""
    cache = tmp_path / "cache"
    cfg = load_config(TINY_CONFIG)
    cfg = replace(cfg, train=replace(cfg.train, epochs=30))
    train(cfg, tiny_root, tmp_path / "plain", cache=cache, quiet=True, threads=1)
    capped = replace(cfg, train=replace(cfg.train, inside_unknown_weight=20.0, inside_cap=0.02))
    train(capped, tiny_root, tmp_path / "capped", cache=cache, quiet=True, threads=1)

    clips = [c for c in scan_dataset(tiny_root) if c.split == "training" and c.word in ("bed", "marvin")]
    mels, _ = load_clip_mels([c.path for c in clips], cfg.features, cfg.data.clip_seconds, 1.0, cache, progress=False)

    def top_command_inside(run: Path) -> float:
        ck = load_checkpoint(run / "last.pt")
        commands = [i for i, w in enumerate(ck.labels) if not w.startswith("_")]
        with torch.no_grad():
            post = ck.model(eval_features(mels, cfg.features, ck.normalizer)).softmax(-1)[..., commands].amax(-1)
        tops = []
        for k, m in enumerate(mels):
            first, last = speech_bounds(m)
            tops.append(float(post[k, first:last + 1].mean()))
        return float(np.mean(tops))

    plain, cap = top_command_inside(tmp_path / "plain"), top_command_inside(tmp_path / "capped")
    assert cap < 0.7 * plain, (cap, plain)  # measured: 0.07 against 0.14
