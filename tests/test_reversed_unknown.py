"""Command clips played backwards as `_unknown_` (``data.reversed_unknown``): which clips, their
share of the sampling mass, the unchanged epoch length, and a clear error for a bad share."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tiny_data import TINY_CONFIG, make_tiny_dataset
from voice_gru import SILENCE, UNKNOWN
from voice_gru.cli import main
from voice_gru.config import load_config
from voice_gru.data import task_labels
from voice_gru.train import add_reversed_unknown, prepare


def test_reversed_rows_are_commands_backwards_with_their_share_of_unknown_mass():
    labels = task_labels("12")
    idx = {lab: i for i, lab in enumerate(labels)}
    targets = [idx["yes"], idx["no"], idx["on"], idx["stop"], idx[UNKNOWN], idx[UNKNOWN], idx[SILENCE]]
    bank = torch.arange(len(targets) * 4 * 3, dtype=torch.float32).reshape(len(targets), 4, 3)
    weights = np.array([1, 1, 1, 1, 2, 2, 1], dtype=np.float64)
    weights /= weights.sum()
    (b,), t, w = add_reversed_unknown([bank], targets, weights, labels, share=0.25)
    # yes and stop are reversed; no/on (each roughly the other backwards), unknown and silence are not
    assert b.shape == (9, 4, 3) and t == targets + [idx[UNKNOWN]] * 2
    assert torch.equal(b[7], bank[0].flip(0)) and torch.equal(b[8], bank[3].flip(0))
    assert torch.equal(b[:7], bank)
    assert w.sum() == pytest.approx(1.0)
    # _unknown_ keeps its mass (4/9); a quarter of it goes to the two reversed clips, evenly
    assert w[4:6].sum() + w[7:].sum() == pytest.approx(4 / 9)
    assert w[7] == pytest.approx(w[8]) and w[7:].sum() == pytest.approx(0.25 * 4 / 9)
    assert np.allclose(w[[0, 1, 2, 3, 6]], weights[[0, 1, 2, 3, 6]])


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "speech_commands")


def test_prepare_adds_reversed_clips_without_lengthening_an_epoch(tiny_root, tmp_path):
    cfg = load_config(TINY_CONFIG)
    plain = prepare(cfg, tiny_root, tmp_path / "cache", quiet=True)
    rev = prepare(replace(cfg, data=replace(cfg.data, reversed_unknown=0.3)), tiny_root, tmp_path / "cache", quiet=True)
    unk = plain.labels.index(UNKNOWN)
    n_cmd = sum(int(t) in {plain.labels.index(w) for w in ("yes", "stop")} for t in plain.train.labels)
    n = len(plain.train.labels)
    assert rev.epoch_size == plain.epoch_size == n
    assert len(rev.train.labels) == n + n_cmd and (rev.train.labels[n:] == unk).all()
    for speed in range(len(plain.train.mels)):
        assert torch.equal(rev.train.mels[speed][:n], plain.train.mels[speed])
    assert rev.train_weights[n:].sum() == pytest.approx(0.3 * plain.train_weights[plain.train.labels == unk].sum())


def test_bad_reversed_share_is_one_line(tiny_root, tmp_path, capsys):
    raw = yaml.safe_load(TINY_CONFIG.read_text())
    raw.setdefault("data", {})["reversed_unknown"] = 1.0
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    rc = main(["train", "--config", str(cfg), "--data-dir", str(tiny_root), "--out", str(tmp_path / "run"),
               "--cache-dir", str(tmp_path / "cache"), "--threads", "1", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "data.reversed_unknown = 1.0: must be at least 0 and below 1" in err, err
    assert not (tmp_path / "run").exists()
