"""A tiny Speech Commands v0.02 root built from the six clips in tests/data, for fast training tests.

``make_tiny_dataset(root)`` writes six variants (shifted, scaled, lightly noised copies, one
speaker each) of ``yes``, ``no``, ``stop`` (commands) and ``bed``, ``marvin`` (auxiliary words →
``_unknown_``), a few seconds of generated background noise, and split lists: speakers 0-3
train, 4 validation, 5 test. ``TINY_CONFIG`` is the matching recipe (``configs/tiny.yaml``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = Path(__file__).resolve().parent / "data"
TINY_CONFIG = REPO / "configs" / "tiny.yaml"
SOURCES = {
    "yes": "yes/0ea0e2f4_nohash_0.wav",
    "no": "no/03401e93_nohash_0.wav",
    "stop": "stop/0fa1e7a9_nohash_0.wav",
    "bed": "bed/0c2d2ffa_nohash_1.wav",
    "marvin": "marvin/4954abe8_nohash_0.wav",
}
N_PER_WORD = 6
SPLIT_OF_SPEAKER = ["training"] * 4 + ["validation", "testing"]


def speaker(i: int) -> str:
    return f"{0xabc00000 + i:08x}"


def make_tiny_dataset(root: str | Path, noise_seconds: float = 3.0) -> Path:
    """Write the tiny dataset under ``root`` and return ``root``."""
    import soundfile as sf

    root = Path(root)
    rng = np.random.default_rng(1234)
    val, test = [], []
    for word, rel in SOURCES.items():
        audio, sr = sf.read(str(TEST_DATA / rel), dtype="float32")
        assert sr == 16000
        (root / word).mkdir(parents=True, exist_ok=True)
        for i in range(N_PER_WORD):
            shift = int(rng.integers(-1600, 1600))
            x = np.roll(np.pad(audio, (0, max(0, 16000 - audio.size))), shift) * (0.5 + 0.15 * i)
            x = x + rng.normal(0, 0.002, x.size).astype(np.float32)
            name = f"{word}/{speaker(i)}_nohash_0.wav"
            sf.write(str(root / name), np.clip(x, -1, 1), 16000, subtype="PCM_16")
            {"validation": val, "testing": test}.get(SPLIT_OF_SPEAKER[i], []).append(name)
    (root / "validation_list.txt").write_text("".join(n + "\n" for n in val))
    (root / "testing_list.txt").write_text("".join(n + "\n" for n in test))
    bg = root / "_background_noise_"
    bg.mkdir(exist_ok=True)
    noise = rng.normal(0, 0.1, int(noise_seconds * 16000)).astype(np.float32)
    sf.write(str(bg / "white_noise.wav"), np.clip(noise, -1, 1), 16000, subtype="PCM_16")
    return root
