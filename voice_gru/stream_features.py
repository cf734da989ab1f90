"""The streaming MFCC front end and the normaliser, in NumPy: the live path's features without torch.

``StreamingMFCC`` computes the offline front end's MFCC (``voice_gru.features.FrontEnd``, torchaudio)
chunk by chunk: the same periodic Hann window, HTK mel filters (no area normalisation) and
orthonormal DCT-II (``hann_window``, ``mel_filters``, ``dct_matrix``; tests hold them to torchaudio's).
The window and the DCT are rounded as torchaudio rounds them (float32): the DCT's float32 cosines are
up to ~1e-5 off, and exact ones would move the coefficients the models were trained on by ~4e-5.
The mel filters are exact (float64; torchaudio's float32 ones differ by < 4e-6, moving them < 4e-6).
``voice_gru.features`` re-exports ``Normalizer``, ``StreamingMFCC`` and ``num_frames``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from voice_gru.audio import FLOAT_LIMIT
from voice_gru.config import FeatureConfig
from voice_gru.errors import AudioFormatError, is_whole
from voice_gru.kernels import check_kernel, compiled_kernels

if TYPE_CHECKING:
    import torch


def num_frames(n_samples: int, cfg: FeatureConfig) -> int:
    """Number of complete frames in ``n_samples`` of audio."""
    if n_samples < cfg.win_length:
        return 0
    return 1 + (n_samples - cfg.win_length) // cfg.hop_length


def hann_window(length: int) -> np.ndarray:
    """Periodic Hann window as ``torch.hann_window(length)`` computes it (float32 arithmetic)."""
    if not is_whole(length):
        raise ValueError(f"hann_window: length must be a positive whole number, got {length!r}")
    f = np.float32
    return np.cos(np.arange(length, dtype=f) * f(2.0 * math.pi / length)) * f(-0.5) + f(0.5)


def mel_filters(cfg: FeatureConfig) -> np.ndarray:
    """Triangular HTK mel filters ``(n_fft // 2 + 1, n_mels)`` in float64 (torchaudio's ``melscale_fbanks``, ``norm=None``)."""
    freqs = np.linspace(0.0, cfg.sample_rate // 2, cfg.n_fft // 2 + 1)
    mel_lo, mel_hi = (2595.0 * np.log10(1.0 + f / 700.0) for f in (cfg.f_min, cfg.f_max))
    edges = 700.0 * (10.0 ** (np.linspace(mel_lo, mel_hi, cfg.n_mels + 2) / 2595.0) - 1.0)
    slopes = edges[None, :] - freqs[:, None]  # (bins, n_mels + 2)
    width = np.diff(edges)
    down = -slopes[:, :-2] / width[:-1]
    up = slopes[:, 2:] / width[1:]
    return np.maximum(0.0, np.minimum(down, up))


def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """Orthonormal DCT-II ``(n_mels, n_mfcc)`` (``mfcc = logmel @ dct``) as torchaudio's ``create_dct(norm="ortho")``
    computes it: float32 cosines of float32 arguments, up to ~1e-5 off the exact values, which the models learnt."""
    for name, v in (("n_mfcc", n_mfcc), ("n_mels", n_mels)):
        if not is_whole(v):
            raise ValueError(f"dct_matrix: {name} must be a positive whole number, got {v!r}")
    f = np.float32
    n = np.arange(n_mels, dtype=f)
    k = np.arange(n_mfcc, dtype=f)[:, None]
    dct = np.cos(f(math.pi / n_mels) * (n + f(0.5)) * k)
    dct[0] *= f(1.0 / math.sqrt(2.0))
    dct *= f(math.sqrt(2.0 / n_mels))
    return np.ascontiguousarray(dct.T)


@dataclass(frozen=True)
class Normalizer:
    """Per-coefficient mean/std computed on training data; saved inside checkpoints."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, frames: torch.Tensor) -> "Normalizer":
        """Statistics of ``(N, n_mfcc)`` (or ``(..., n_mfcc)``) frames (a torch tensor)."""
        flat = frames.reshape(-1, frames.shape[-1]).double()
        mean = flat.mean(0)
        std = flat.std(0).clamp_min(1e-3)
        return cls(tuple(mean.tolist()), tuple(std.tolist()))

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised frames (a torch tensor), same shape."""
        import torch

        mean = torch.tensor(self.mean, dtype=frames.dtype, device=frames.device)
        std = torch.tensor(self.std, dtype=frames.dtype, device=frames.device)
        return (frames - mean) / std

    def to_dict(self) -> dict:
        """Plain lists, as a checkpoint stores them."""
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        """Back from ``to_dict``'s form."""
        return cls(tuple(float(x) for x in d["mean"]), tuple(float(x) for x in d["std"]))


# A microphone's DC offset reaches the lowest mel bands through the window's leakage, and the models never learnt it:
# on the validation 10-minute stream an offset of 0.02 cost 5 of 113 commands, 0.05 cost 8. A one-pole DC blocker
# (-3 dB at 2.5 Hz, -0.07 dB at the lowest band's 20 Hz) gives them back and changes nothing else there (113 of 135,
# no false accept, latency within 1 ms; 2026-12-06).
DC_POLE = 0.999
_DC_BLOCK = 16000  # samples filtered in closed form at once: POLE ** -16000 ~ 9e6 stays well within float64


class DCBlocker:
    """``y[n] = x[n] - x[n-1] + DC_POLE * y[n-1]`` over a stream, chunk by chunk (the same samples whatever the
    chunking; the stream's first sample is its own predecessor, so a constant offset starts at 0)."""

    def __init__(self, pole: float = DC_POLE) -> None:
        self.pole = pole
        self._grow = pole ** -np.arange(_DC_BLOCK, dtype=np.float64)  # pole ** -k
        self.reset()

    def reset(self) -> None:
        """A new stream."""
        self._x: float | None = None
        self._y = 0.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The next chunk, filtered (float32)."""
        if x.size == 0:
            return x.astype(np.float32)
        x64 = x.astype(np.float64)
        if self._x is None:
            self._x = float(x64[0])
        out = np.empty_like(x64)
        for i in range(0, x64.size, _DC_BLOCK):
            seg = x64[i:i + _DC_BLOCK]
            grow = self._grow[:seg.size]
            # y[k] = pole ** k * (pole * y[-1] + sum_{j<=k} pole ** -j * d[j]): the recursion as one cumulative sum
            y = (self.pole * self._y + np.cumsum(np.diff(seg, prepend=self._x) * grow)) / grow
            out[i:i + seg.size] = y
            self._x, self._y = float(seg[-1]), float(y[-1])
        return out.astype(np.float32)


class StreamingMFCC:
    """Push audio chunks of any size; get exactly the offline MFCC frames for the audio so far.

    The arithmetic is the offline path's (``voice_gru.features.FrontEnd``: the same window, mel
    filters and DCT) done in NumPy float64: for the ~10 frames of a 100 ms chunk PyTorch's per-call
    overhead cost several times the arithmetic. Tests hold the frames within 5e-5 of ``mfcc`` (float32
    up to the mel spectrum: near-silent frames magnify its rounding) and within 1e-4 of a float64 textbook MFCC.
    """

    def __init__(self, cfg: FeatureConfig = FeatureConfig(), kernel: str = "numba", remove_dc: bool = False) -> None:
        """``kernel``: after the FFT, one compiled call (``numba``: ``voice_gru.jit_kernels.mel_log_dct``)
        or NumPy calls (``numpy``; also where numba cannot load). ``remove_dc``: the audio goes through a
        ``DCBlocker`` first (the live path; the frames are then those of the filtered audio)."""
        check_kernel(kernel, "front-end")
        self.cfg = cfg
        # float64 from here on; the window sits inside the n_fft frame, as in torch.stft
        self._window = hann_window(cfg.win_length).astype(np.float64)
        self._fb = mel_filters(cfg)  # (n_fft // 2 + 1, n_mels)
        self._dct = dct_matrix(cfg.n_mfcc, cfg.n_mels).astype(np.float64)  # (n_mels, n_mfcc), C order for the kernel
        nz = self._fb != 0  # each mel filter's non-zero bins, one range (a triangle)
        self._lo = np.where(nz.any(0), nz.argmax(0), 0).astype(np.int64)
        self._hi = np.where(nz.any(0), nz.shape[0] - nz[::-1].argmax(0), 0).astype(np.int64)
        self._jit = compiled_kernels() if kernel == "numba" else None
        self.kernel = "numba" if self._jit is not None else "numpy"
        self._buf = np.zeros(0, dtype=np.float32)
        self.frames_out = 0
        self.samples_in = 0
        self._dc = DCBlocker() if remove_dc else None

    def reset(self) -> None:
        """Forget buffered audio and counters."""
        if self._dc is not None:
            self._dc.reset()
        self._buf = np.zeros(0, dtype=np.float32)
        self.frames_out = 0
        self.samples_in = 0

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Append a chunk of 16 kHz mono float32; return the new frames ``(n, n_mfcc)`` (float32)."""
        chunk = np.asarray(chunk)
        if chunk.ndim == 2 and chunk.shape[1] == 1:  # one channel as a column
            chunk = chunk[:, 0]
        if chunk.ndim != 1 or not np.issubdtype(chunk.dtype, np.floating):
            # (n, 2) flattened would be twice as long, int16 unscaled 32768 times too loud: both silently wrong
            raise AudioFormatError(f"audio chunk of shape {chunk.shape} and dtype {chunk.dtype}: the front end takes mono "
                                   "float samples (samples,) in [-1, 1]; voice_gru.CommandSpotter converts other formats")
        chunk = chunk.astype(np.float32, copy=False)
        peak = float(np.abs(chunk).max()) if chunk.size else 0.0  # NaN or inf when any sample is: one pass for both
        if not np.isfinite(peak) or peak > FLOAT_LIMIT:
            # one NaN poisons the network's state for seconds; far beyond ±1 is integer PCM cast to float
            what = "samples that are not finite" if not np.isfinite(peak) else f"a sample of {peak:g}"
            raise AudioFormatError(f"audio chunk with {what}: the front end takes float samples in [-1, 1]; "
                                   "voice_gru.CommandSpotter converts other formats")
        self.samples_in += chunk.size
        if self._dc is not None:
            chunk = self._dc(chunk)
        self._buf = np.concatenate([self._buf, chunk]) if self._buf.size else chunk.copy()
        n = num_frames(self._buf.size, self.cfg)
        if n == 0:
            return np.zeros((0, self.cfg.n_mfcc), np.float32)
        hop, win = self.cfg.hop_length, self.cfg.win_length
        step = self._buf.strides[0]  # overlapping frames of the contiguous buffer (sliding_window_view costs ~40 µs)
        frames = np.ndarray((n, win), self._buf.dtype, self._buf, 0, (hop * step, step))
        # where the window sits inside the n_fft frame changes only the phase, not the power
        spec = np.fft.rfft(frames * self._window, n=self.cfg.n_fft)
        if self._jit is not None:
            out = np.empty((n, self._dct.shape[1]), np.float32)
            self._jit.mel_log_dct(spec, self._fb, self._lo, self._hi, self._dct, self.cfg.log_offset, out)
        else:
            power = spec.real ** 2 + spec.imag ** 2
            out = (np.log(power @ self._fb + self.cfg.log_offset) @ self._dct).astype(np.float32)
        self._buf = self._buf[n * hop:].copy()
        self.frames_out += n
        return out
