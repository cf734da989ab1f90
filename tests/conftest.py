"""Shared fixtures: where the Speech Commands subset lives, the small clips in tests/data, caches.

The shared dataset is found at ``<repo>/../shared/speech_commands`` (override with the environment
variable ``VOICE_GRU_DATA``). It is read-only in CI: every cache a test makes goes under tmp_path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest_plugins = ["pulse"]  # the pulse_mic fixture (tests/pulse.py)

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = Path(__file__).resolve().parent / "data"
SHARED_DATA = Path(os.environ.get("VOICE_GRU_DATA") or REPO.parent / "shared" / "speech_commands")

# The clips copied into tests/data (see tests/data/README.md), relative to a dataset root.
CLIPS = {
    "yes": "yes/0ea0e2f4_nohash_0.wav",
    "no": "no/03401e93_nohash_0.wav",
    "stop": "stop/0fa1e7a9_nohash_0.wav",
    "go": "go/37e8db82_nohash_1.wav",  # 13375 samples (shorter than 1 s)
    "bed": "bed/0c2d2ffa_nohash_1.wav",  # an auxiliary word: _unknown_ in the 12-class task
    "marvin": "marvin/4954abe8_nohash_0.wav",  # 9387 samples
}


def have_shared_data() -> bool:
    return (SHARED_DATA / "counts.json").is_file() and (SHARED_DATA / "yes").is_dir()


needs_shared_data = pytest.mark.skipif(
    not have_shared_data(),
    reason=f"Speech Commands subset not found at {SHARED_DATA} (set VOICE_GRU_DATA to its folder)",
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared Speech Commands root; skips the test when it is absent."""
    if not have_shared_data():
        pytest.skip(f"Speech Commands subset not found at {SHARED_DATA} (set VOICE_GRU_DATA to its folder)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def clip_paths() -> dict[str, Path]:
    """Paths of the real clips in tests/data, by word."""
    paths = {w: TEST_DATA / rel for w, rel in CLIPS.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    assert not missing, f"test clips missing: {missing}"
    return paths


@pytest.fixture(scope="session")
def speech_signal(clip_paths) -> np.ndarray:
    """About 2.3 s of real speech at 16 kHz: the test clips back to back (float32, mono)."""
    from voice_gru.audio import load_audio

    parts = [load_audio(clip_paths[w]) for w in ("yes", "go", "marvin", "stop")]
    audio = np.concatenate(parts)[:36800]
    assert audio.size == 36800
    return audio


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Point $XDG_CACHE_HOME at a temporary folder so no test writes to ~/.cache or ../shared."""
    cache = tmp_path_factory.mktemp("xdg_cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    yield
    # One test's clip caches reach 300 MB: kept to the end of the session they add up to ~0.6 GB
    shutil.rmtree(cache, ignore_errors=True)
