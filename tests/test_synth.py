"""espeak-ng unknown words: determinism and the cache."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from voice_gru import synth
from voice_gru.synth import synthesize_unknown

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None and shutil.which("espeak") is None,
                                reason="espeak-ng is not installed (scripts/setup.sh installs it)")


def _digest(paths: list[str]) -> list[str]:
    return [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]


def test_same_seed_same_clips_and_cache_needs_no_espeak(tmp_path, monkeypatch):
    a = synthesize_unknown(3, tmp_path / "a", seed=7)
    b = synthesize_unknown(3, tmp_path / "b", seed=7)
    assert _digest(a) == _digest(b)
    assert _digest(synthesize_unknown(3, tmp_path / "c", seed=8)) != _digest(a)
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    assert synthesize_unknown(3, tmp_path / "a", seed=7) == a  # served from the cache
    with pytest.raises(synth.DatasetError, match="espeak-ng"):
        synthesize_unknown(3, tmp_path / "d", seed=7)


def test_two_trainings_filling_one_cache_at_once(tmp_path):
    """Ensemble members started together synthesise into the same folder: neither may read the
    other's half-written espeak output (it once ended a training with "truncated")."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(synthesize_unknown, 8, tmp_path / "shared", seed=3) for _ in range(2)]
        a, b = (r.result() for r in runs)
    alone = synthesize_unknown(8, tmp_path / "alone", seed=3)
    assert a == b
    assert _digest(a) == _digest(alone)
    assert sorted(f.name for f in (tmp_path / "shared" / "espeak-8-3").iterdir())[0] == "COMPLETE"
    assert not [f for f in (tmp_path / "shared" / "espeak-8-3").iterdir() if f.name.startswith(".")]


def test_quiet_synthesis_prints_nothing(tmp_path, capsys):
    """``train --quiet`` means no progress bars, the synthesis of unknown words included."""
    synthesize_unknown(2, tmp_path / "q", seed=1, progress=False)
    assert capsys.readouterr().err == ""
    synthesize_unknown(2, tmp_path / "p", seed=1)
    assert "synthesising unknown words" in capsys.readouterr().err


def test_dataset_words_each_word_n_times_in_its_own_cache(tmp_path):
    """``data.synthetic_dataset_words``: every word exactly n times, seeded, beside (not inside) the
    unknown-word cache, and each clip a one-second clip with a word in it."""
    import soundfile as sf

    from voice_gru.synth import synthesize_words

    pairs = synthesize_words(["five", "bird"], 2, tmp_path, seed=4)
    assert sorted(w for w, _ in pairs) == ["bird", "bird", "five", "five"]
    assert _digest([p for _, p in pairs]) == _digest([p for _, p in synthesize_words(["five", "bird"], 2,
                                                                                       tmp_path / "again", seed=4)])
    unknown = synthesize_unknown(2, tmp_path, seed=4)
    assert {Path(p).parent for _, p in pairs}.isdisjoint({Path(p).parent for p in unknown})
    for _, p in pairs:
        audio, rate = sf.read(p)
        assert rate == 16000 and audio.shape == (16000,)
        assert 0.03 < abs(audio).max() <= 1.0


def test_prepare_adds_each_dataset_word_as_unknown(tmp_path):
    from dataclasses import replace

    from tiny_data import TINY_CONFIG, make_tiny_dataset
    from voice_gru import UNKNOWN
    from voice_gru.config import load_config
    from voice_gru.data import WORDS_V2
    from voice_gru.train import prepare

    root = make_tiny_dataset(tmp_path / "speech_commands")
    cfg = load_config(TINY_CONFIG)
    plain = prepare(cfg, root, tmp_path / "cache", quiet=True)
    more = prepare(replace(cfg, data=replace(cfg.data, synthetic_dataset_words=1)), root, tmp_path / "cache", quiet=True)
    added = len(more.train.labels) - len(plain.train.labels)
    assert added == len(WORDS_V2) - 10  # every non-command word once, each as _unknown_
    assert (more.train.labels[-added:] == more.labels.index(UNKNOWN)).all()
