"""Speech mixed with noise at a stated signal-to-noise ratio, or played in a simulated room, for
robustness measurements.

SNR here is the speech's *active* power (20 ms frames within ``floor_db`` of its loudest frame,
so a short word in a 1 s clip is not diluted by the pause around it) over the noise's mean power,
in dB. Training's mel-domain mixing (``augment.SequenceBuilder``, ``augment.snr_db``) uses the
same definition on mel frames.

A room is a synthetic impulse response: the direct sound, then Gaussian noise under an envelope
that falls 60 dB in the reverberation time RT60 (Polack's model of late reverberation), scaled to
a stated direct-to-reverberant ratio. Training approximates the same model on mel power frames
(``augment.reverb_kernel``); this is the waveform version, to measure against.
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


def room_impulse_response(rt60_s: float, drr_db: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room response: 1 at lag 0, then a noise tail decaying 60 dB in ``rt60_s`` whose
    energy is ``drr_db`` below the direct sound's."""
    if rt60_s <= 0:
        raise ValueError(f"reverberation time must be positive, got {rt60_s} s")
    n = max(2, int(rt60_s * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * 10 ** (-3.0 * t / rt60_s)  # amplitude: -60 dB of power at rt60
    tail[0] = 0.0
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail ** 2))
    tail[0] = 1.0
    return tail


def reverberate(audio: np.ndarray, rir: np.ndarray, length: int | None = None) -> np.ndarray:
    """``audio`` convolved with ``rir``, cut to its own length (what a clip recorded in that room
    holds) or to at most ``length`` samples (a word whose echo rings on past the clip)."""
    a = np.asarray(audio, dtype=np.float64)
    if a.size == 0 or rir.size == 0:
        return np.zeros(0, dtype=audio.dtype)
    n = a.size + rir.size - 1  # the full linear convolution, by FFT (NumPy's: the base install has no scipy)
    nfft = 1 << (n - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(a, nfft) * np.fft.rfft(np.asarray(rir, dtype=np.float64), nfft), nfft)[:n]
    return out[: audio.size if length is None else length].astype(audio.dtype, copy=False)
