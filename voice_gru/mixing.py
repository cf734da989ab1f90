"""Speech and noise mixed at a stated signal-to-noise ratio, for robustness measurements.

SNR here is the speech's *active* power (20 ms frames within ``floor_db`` of its loudest frame,
so a short word in a 1 s clip is not diluted by the pause around it) over the noise's mean power,
in dB. Training's mel-domain mixing (``augment.SequenceBuilder``, ``augment.snr_db``) uses the
same definition on mel frames.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

FRAME = 320  # 20 ms at 16 kHz


def active_power(audio: np.ndarray, floor_db: float = 20.0, frame: int = FRAME) -> float:
    """Mean power of the frames of ``audio`` within ``floor_db`` of its loudest frame (0 if silent)."""
    a = np.asarray(audio, dtype=np.float64)
    n = max(1, a.size // frame)
    frames = np.resize(a, n * frame).reshape(n, frame) if a.size >= frame else a[None, :]
    energy = (frames ** 2).mean(axis=1)
    if energy.max() <= 0:
        return 0.0
    return float(energy[energy >= energy.max() * 10 ** (-floor_db / 10)].mean())


def noise_segment(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``noise`` from a random offset, looped when the recording is shorter."""
    if noise.size == 0:
        raise ValueError("noise recording is empty")
    if noise.size < n:
        noise = np.tile(noise, n // noise.size + 1)
    o = int(rng.integers(0, noise.size - n + 1))
    return noise[o:o + n]


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + k·noise`` (same length) with ``k`` set so that the mixture has SNR ``snr_db``."""
    if noise.shape != speech.shape:
        raise ValueError(f"noise has {noise.size} samples, speech {speech.size}")
    ps = active_power(speech)
    pn = float(np.mean(np.asarray(noise, dtype=np.float64) ** 2))
    if ps == 0.0 or pn == 0.0:
        return speech.copy()
    k = np.sqrt(ps / pn / 10 ** (snr_db / 10))
    return (speech + k * noise).astype(speech.dtype, copy=False)


def mix_random(speech: np.ndarray, noises: Sequence[np.ndarray], snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``speech`` mixed at ``snr_db`` with a random stretch of one of ``noises``."""
    noise = noises[int(rng.integers(len(noises)))]
    return mix_at_snr(speech, noise_segment(noise, speech.size, rng).astype(np.float64), snr_db)
