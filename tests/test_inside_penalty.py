"""The inside-word cap (``train.inside_unknown_weight``, and ``after_unknown_weight`` for the frames after
other words): the penalty against a hand-computed value, its settings' errors, and tiny runs that end
less sure of a command inside other words, and after them."""

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
    ({"after_unknown_weight": -0.5}, "after_unknown_weight = -0.5: must be at least 0"),
])
def test_bad_settings_name_the_key(change, says):
    with pytest.raises(ConfigError, match=says):
        TrainConfig(**change)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "speech_commands")


class TinyRuns:
    """Tiny runs of one seed that differ only in the cap's settings, each trained when first asked for,
    and the training split's other words ("bed", "marvin") they are judged on, loaded once."""

    def __init__(self, root: Path, base: Path) -> None:
        cfg = load_config(TINY_CONFIG)
        self.cfg = replace(cfg, train=replace(cfg.train, epochs=30))
        self.root, self.base, self.cache = root, base, base / "cache"
        self._done: set[str] = set()
        self._mels: torch.Tensor | None = None

    def run(self, name: str, **train_changes) -> Path:
        if name not in self._done:
            train(replace(self.cfg, train=replace(self.cfg.train, **train_changes)), self.root, self.base / name,
                  cache=self.cache, quiet=True, threads=1)
            self._done.add(name)
        return self.base / name

    def other_words(self) -> torch.Tensor:
        if self._mels is None:
            clips = [c for c in scan_dataset(self.root) if c.split == "training" and c.word in ("bed", "marvin")]
            self._mels, _ = load_clip_mels([c.path for c in clips], self.cfg.features, self.cfg.data.clip_seconds, 1.0,
                                           self.cache, progress=False)
        return self._mels

    def top_command(self, run: Path, where: str) -> float:
        """Mean top command posterior on the other words: ``inside`` between their first and last loud
        frame, ``after`` on the 20 frames from 3 after the last one (where training labels them ``_unknown_``)."""
        mels = self.other_words()
        ck = load_checkpoint(run / "last.pt")
        commands = [i for i, w in enumerate(ck.labels) if not w.startswith("_")]
        with torch.no_grad():
            post = ck.model(eval_features(mels, self.cfg.features, ck.normalizer)).softmax(-1)[..., commands].amax(-1)
        tops = []
        for k, m in enumerate(mels):
            first, last = speech_bounds(m)
            frames = slice(first, last + 1) if where == "inside" else slice(last + 3, last + 23)
            tops.append(float(post[k, frames].mean()))
        return float(np.mean(tops))


@pytest.fixture(scope="module")
def tiny_runs(tiny_root, tmp_path_factory) -> TinyRuns:
    return TinyRuns(tiny_root, tmp_path_factory.mktemp("runs"))


@pytest.mark.slow
def test_a_capped_run_is_less_sure_of_commands_inside_other_words(tiny_runs):
    """Same seed and data; only the cap differs. Inside the training split's other words the capped
    run's top command posterior must average at least 30% below the uncapped run's (a cap far below
    1/12, so it acts on every frame there)."""
    plain = tiny_runs.top_command(tiny_runs.run("plain"), "inside")
    cap = tiny_runs.top_command(tiny_runs.run("capped", inside_unknown_weight=20.0, inside_cap=0.02), "inside")
    assert cap < 0.7 * plain, (cap, plain)  # measured: 0.07 against 0.14


@pytest.mark.slow
def test_the_cap_after_other_words_acts_after_them(tiny_runs):
    """Only the cap after other words (``after_unknown_weight``; none inside them): after the words
    its top command posterior must average at least 30% below the uncapped run's."""
    after_only = tiny_runs.run("after_only", after_unknown_weight=20.0, inside_cap=0.02)
    plain, capped = (tiny_runs.top_command(r, "after") for r in (tiny_runs.run("plain"), after_only))
    assert capped < 0.7 * plain, (capped, plain)  # measured: 0.05 against 0.12
