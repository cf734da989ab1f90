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
