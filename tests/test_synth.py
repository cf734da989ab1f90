"""espeak-ng unknown words: determinism and the cache."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from voice_gru import COMMANDS, synth
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


def test_words_espeak_says_alike_are_left_out_near_ones_stay(tmp_path, monkeypatch):
    """An own command "see": the vocabulary's "sea" would be the same sound labelled `_unknown_`; "bad" for "bed" is
    a different word a model must tell apart, so it stays (espeak-ng's own phonemes decide)."""
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    assert synth.homophones(synth.VOCABULARY, ["see", "bed", "sun"], exe) == {"see", "sea", "sun", "son"}
    assert synth.homophones(synth.VOCABULARY, list(COMMANDS), exe) == set()  # written without theirs
    monkeypatch.setattr(synth, "VOCABULARY", ("sea", "bad", "son", "see"))
    said: list[str] = []
    run = synth.subprocess.run

    def spy(argv, **kwargs):
        if "-w" in argv:
            said.append(argv[-1])
        return run(argv, **kwargs)

    monkeypatch.setattr(synth.subprocess, "run", spy)
    synthesize_unknown(12, tmp_path, seed=0, progress=False, exclude=["See", "bed"])
    assert set(said) == {"bad", "son"}


def test_own_words_need_espeak_even_for_a_cached_set(tmp_path, monkeypatch):
    """Which words sound like an own command is espeak-ng's to say: without it a set cached by a version that did
    not leave homophones out would be used as it is."""
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(synth.DatasetError, match=r"own command words \(see\) needs espeak-ng"):
        synthesize_unknown(3, tmp_path, seed=7, exclude=["yes", "See"])
