"""Distillation from a teacher checkpoint (``train.teacher``): the loss against a hand-computed
KL divergence, the teacher's own normalisation, clear errors, and a tiny run pulled toward its teacher."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tiny_data import TINY_CONFIG, make_tiny_dataset
from voice_gru.augment import IGNORE, eval_features
from voice_gru.cli import main
from voice_gru.config import FeatureConfig, ModelConfig, load_config
from voice_gru.data import task_labels
from voice_gru.errors import ConfigError
from voice_gru.features import Normalizer
from voice_gru.model import Checkpoint, GRUClassifier, load_checkpoint, save_checkpoint
from voice_gru.train import distill_loss, load_teacher, train


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_distill_loss_is_the_weighted_kl_of_softened_posteriors():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(2, 1, 3, 4)) * 3
    y = torch.tensor([[2, 0, IGNORE]])  # a word frame (weight 1), a background frame (0.5), an ignored one
    temp = 2.0
    p, q = softmax(t[0] / temp), softmax(s[0] / temp)
    kl = (p * (np.log(p) - np.log(q))).sum(-1)
    want = (1.0 * kl[0] + 0.5 * kl[1]) / 1.5 * temp**2
    got = distill_loss(torch.tensor(s), torch.tensor(t), y, sil=0, bg_weight=0.5, temperature=temp)
    assert float(got) == pytest.approx(want, rel=1e-9)


def test_distill_loss_is_zero_at_the_teacher_and_pulls_toward_it():
    t = torch.randn(2, 5, 4)
    y = torch.tensor([[1] * 5, [0] * 5])
    assert float(distill_loss(t, t, y, 0, 0.5, 2.0)) == pytest.approx(0.0, abs=1e-12)
    s = torch.zeros_like(t, requires_grad=True)
    distill_loss(s, t, y, 0, 0.5, 1.0).backward()
    # gradient descent moves each frame's logits toward the teacher's ranking: largest step up at its top class
    step = -s.grad
    assert (step.argmax(-1) == t.argmax(-1)).all()


def make_teacher(path: Path, labels: list[str], norm: Normalizer, features: FeatureConfig = FeatureConfig()) -> GRUClassifier:
    torch.manual_seed(3)
    model = GRUClassifier(features.n_mfcc, len(labels), ModelConfig(hidden=8, layers=1, dropout=0.0)).eval()
    save_checkpoint(path, Checkpoint(model, tuple(labels), features, norm, "max", {}, {}, {}))
    return model


def test_teacher_gets_frames_in_its_own_normalisation(tmp_path):
    feats = FeatureConfig()
    labels = task_labels("12")
    rng = np.random.default_rng(1)
    teacher_norm, student_norm = (Normalizer(tuple(rng.normal(size=feats.n_mfcc).tolist()),
                                            tuple(rng.uniform(0.5, 3, feats.n_mfcc).tolist())) for _ in range(2))
    model = make_teacher(tmp_path / "t.pt", labels, teacher_norm, feats)
    raw = torch.randn(2, 30, feats.n_mfcc) * 4
    got = load_teacher(tmp_path / "t.pt", labels, feats, student_norm)(student_norm(raw))
    with torch.no_grad():
        want = model(teacher_norm(raw))
    assert torch.allclose(got, want, atol=1e-4)
    assert not got.requires_grad


def test_teacher_with_other_labels_or_features_is_a_clear_error(tmp_path):
    feats = FeatureConfig()
    norm = Normalizer((0.0,) * feats.n_mfcc, (1.0,) * feats.n_mfcc)
    make_teacher(tmp_path / "t.pt", task_labels("12"), norm, feats)
    with pytest.raises(ConfigError, match=r"train.teacher: .*t.pt: labels"):
        load_teacher(tmp_path / "t.pt", task_labels("35"), feats, norm)
    with pytest.raises(ConfigError, match=r"train.teacher: .*t.pt: feature settings differ"):
        load_teacher(tmp_path / "t.pt", task_labels("12"), replace(feats, n_fft=1024), norm)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "speech_commands")


@pytest.mark.parametrize("change, says", [
    ({"distill_weight": 1.5}, "train.distill_weight = 1.5: must be between 0 and 1"),
    ({"distill_temperature": 0}, "train.distill_temperature = 0.0: must be above 0"),
    ({"teacher": "no/such/model.pt"}, "train.teacher: no/such/model.pt: checkpoint file not found (looked for in the current folder, "),
])
def test_bad_distillation_settings_are_one_line(tiny_root, tmp_path, capsys, change, says):
    raw = yaml.safe_load(TINY_CONFIG.read_text())
    raw["train"].update(change)
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    rc = main(["train", "--config", str(cfg), "--data-dir", str(tiny_root), "--out", str(tmp_path / "run"),
               "--cache-dir", str(tmp_path / "cache"), "--threads", "1", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and says in err, err
    assert not (tmp_path / "run").exists()


def test_a_teacher_that_is_no_checkpoint_is_refused_before_the_features(tiny_root, tmp_path, capsys):
    (tmp_path / "notes.pt").write_text("not a model")
    raw = yaml.safe_load(TINY_CONFIG.read_text())
    raw["train"]["teacher"] = str(tmp_path / "notes.pt")
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    rc = main(["train", "--config", str(cfg), "--data-dir", str(tiny_root), "--out", str(tmp_path / "run"),
               "--cache-dir", str(tmp_path / "cache"), "--threads", "1", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and f"{tmp_path / 'notes.pt'}" in err, err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()  # before: after the features


@pytest.mark.slow
def test_student_ends_closer_to_its_teacher_than_without_it(tiny_root, tmp_path):
    """Same seed and data; only the distillation term differs: the student's validation posteriors
    must be nearer the teacher's (mean KL) than those of the run trained on labels alone."""
    cache = tmp_path / "cache"
    cfg = load_config(TINY_CONFIG)
    cfg = replace(cfg, train=replace(cfg.train, epochs=12))
    teacher_run = tmp_path / "teacher"
    train(replace(cfg, train=replace(cfg.train, seed=5)), tiny_root, teacher_run, cache=cache, quiet=True, threads=1)
    teacher_pt = str(teacher_run / "best.pt")
    alone = train(cfg, tiny_root, tmp_path / "alone", cache=cache, quiet=True, threads=1)
    student = train(replace(cfg, train=replace(cfg.train, teacher=teacher_pt, distill_weight=1.0)), tiny_root,
                    tmp_path / "student", cache=cache, quiet=True, threads=1)
    assert alone["epochs_done"] == student["epochs_done"] == 12

    from voice_gru.data import load_clip_mels, scan_dataset

    paths = [c.path for c in scan_dataset(tiny_root) if c.split == "validation"]
    mels, _ = load_clip_mels(paths, cfg.features, cfg.data.clip_seconds, 1.0, cache, progress=False)
    teacher = load_checkpoint(teacher_pt)

    def kl_to_teacher(run: Path) -> float:
        ck = load_checkpoint(run / "best.pt")
        ck.model.load_state_dict(torch.load(run / "state.pt", weights_only=True)["model"])  # the last epoch's weights
        assert ck.normalizer == teacher.normalizer  # same data, same statistics: the frames below are shared
        x = eval_features(mels, cfg.features, ck.normalizer)
        with torch.no_grad():
            lt, ls = teacher.model(x).log_softmax(-1), ck.model(x).log_softmax(-1)
        return float((lt.exp() * (lt - ls)).sum(-1).mean())

    assert kl_to_teacher(tmp_path / "student") < 0.5 * kl_to_teacher(tmp_path / "alone")
