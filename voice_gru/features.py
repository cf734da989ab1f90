"""MFCC front end (torchaudio), per-coefficient normaliser, and the streaming front end.

Frame ``i`` covers samples ``[i*hop, i*hop + win)`` (no centring, no padding), so a stream fed in
chunks yields exactly the frames of the whole signal. The log is ``log(mel + offset)`` per frame,
never clamped relative to the signal's maximum (torchaudio's default ``top_db`` would make a frame
depend on the whole file, which a stream cannot know).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from voice_gru.config import FeatureConfig
from voice_gru.kernels import check_kernel, compiled_kernels


class FrontEnd(torch.nn.Module):
    """Mel power spectrogram and MFCC for one ``FeatureConfig`` (no state beyond constants)."""

    dct: torch.Tensor  # buffer (n_mels, n_mfcc)

    def __init__(self, cfg: FeatureConfig) -> None:
        super().__init__()
        import torchaudio

        self.cfg = cfg
        self.melspec = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate,
            n_fft=cfg.n_fft,
            win_length=cfg.win_length,
            hop_length=cfg.hop_length,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            n_mels=cfg.n_mels,
            power=2.0,
            center=False,
        )
        dct = torchaudio.functional.create_dct(cfg.n_mfcc, cfg.n_mels, norm="ortho")
        self.register_buffer("dct", dct)  # (n_mels, n_mfcc)

    def mel(self, audio: torch.Tensor) -> torch.Tensor:
        """Mel power of ``(..., samples)`` audio as ``(..., frames, n_mels)``."""
        if audio.shape[-1] < self.cfg.win_length:
            return audio.new_zeros(*audio.shape[:-1], 0, self.cfg.n_mels)
        # torch.stft frames span n_fft samples with the win_length window centred inside them (zero
        # tails). Pad by those tails so frame i's window covers exactly [i*hop, i*hop + win): the
        # frame count is then num_frames(), and the values are unchanged (padding meets zeros).
        left = max(0, (self.cfg.n_fft - self.cfg.win_length) // 2)
        right = max(0, self.cfg.n_fft - self.cfg.win_length - left)
        if left or right:
            audio = torch.nn.functional.pad(audio, (left, right))
        return self.melspec(audio).transpose(-1, -2)

    def mfcc_from_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """MFCC ``(..., frames, n_mfcc)`` from mel power ``(..., frames, n_mels)``."""
        # Log and DCT in float64: a float32 matmul sums in an order that depends on the number of
        # frames, which moves c0 (|c0| up to ~90) by up to ~2e-5 between a stream and a whole file.
        wide = torch.float32 if mel.device.type == "mps" else torch.float64  # MPS has no float64
        out = torch.log(mel.to(wide) + self.cfg.log_offset) @ self.dct.to(wide)
        return out.to(mel.dtype)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """MFCC frames ``(..., frames, n_mfcc)`` of ``(..., samples)`` audio."""
        return self.mfcc_from_mel(self.mel(audio))


@functools.lru_cache(maxsize=8)
def front_end(cfg: FeatureConfig) -> FrontEnd:
    """The (immutable) front end for a config, built once per process."""
    return FrontEnd(cfg).eval()


def _as_tensor(audio: np.ndarray | torch.Tensor) -> torch.Tensor:
    return audio if isinstance(audio, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))


def num_frames(n_samples: int, cfg: FeatureConfig) -> int:
    """Number of complete frames in ``n_samples`` of audio."""
    if n_samples < cfg.win_length:
        return 0
    return 1 + (n_samples - cfg.win_length) // cfg.hop_length


@torch.no_grad()
def mel_power(audio: np.ndarray | torch.Tensor, cfg: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """Mel power spectrogram ``(frames, n_mels)`` of 16 kHz mono audio."""
    return front_end(cfg).mel(_as_tensor(audio))


@torch.no_grad()
def mfcc(audio: np.ndarray | torch.Tensor, cfg: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """MFCC frames ``(frames, n_mfcc)`` of 16 kHz mono audio (the offline path)."""
    return front_end(cfg)(_as_tensor(audio))


def mfcc_from_mel(mel: torch.Tensor, cfg: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """MFCC from mel power, so augmentation can work on cached mel spectra."""
    return front_end(cfg).mfcc_from_mel(mel)


@dataclass(frozen=True)
class Normalizer:
    """Per-coefficient mean/std computed on training data; saved inside checkpoints."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, frames: torch.Tensor) -> "Normalizer":
        """Statistics of ``(N, n_mfcc)`` (or ``(..., n_mfcc)``) frames."""
        flat = frames.reshape(-1, frames.shape[-1]).double()
        mean = flat.mean(0)
        std = flat.std(0).clamp_min(1e-3)
        return cls(tuple(mean.tolist()), tuple(std.tolist()))

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised frames, same shape."""
        mean = torch.tensor(self.mean, dtype=frames.dtype, device=frames.device)
        std = torch.tensor(self.std, dtype=frames.dtype, device=frames.device)
        return (frames - mean) / std

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        return cls(tuple(float(x) for x in d["mean"]), tuple(float(x) for x in d["std"]))


class StreamingMFCC:
    """Push audio chunks of any size; get exactly the offline MFCC frames for the audio so far.

    The arithmetic is the offline path's (``FrontEnd``: the same window, mel filters and DCT)
    done in NumPy float64: for the ~10 frames of a 100 ms chunk PyTorch's per-call overhead cost
    several times the arithmetic. Tests hold the frames within 5e-5 of ``mfcc`` (float32 up to the
    mel spectrum: near-silent frames magnify its rounding) and within 1e-4 of a float64 textbook MFCC.
    """

    def __init__(self, cfg: FeatureConfig = FeatureConfig(), kernel: str = "numba") -> None:
        """``kernel``: after the FFT, one compiled call (``numba``: ``voice_gru.jit_kernels.mel_log_dct``)
        or NumPy calls (``numpy``; also where numba cannot load)."""
        check_kernel(kernel, "front-end")
        self.cfg = cfg
        fe = front_end(cfg)
        spec = fe.melspec.spectrogram
        if spec.power != 2.0 or spec.normalized or spec.center:
            raise ValueError("StreamingMFCC mirrors an unnormalised, uncentred power spectrogram only")
        self._window = spec.window.double().numpy()  # (win_length,): inside the n_fft frame, as torch.stft
        self._fb = fe.melspec.mel_scale.fb.double().numpy()  # (n_fft // 2 + 1, n_mels)
        self._dct = np.ascontiguousarray(fe.dct.double().numpy())  # (n_mels, n_mfcc); torch gives it transposed
        nz = self._fb != 0  # each mel filter's non-zero bins, one range (a triangle)
        self._lo = np.where(nz.any(0), nz.argmax(0), 0).astype(np.int64)
        self._hi = np.where(nz.any(0), nz.shape[0] - nz[::-1].argmax(0), 0).astype(np.int64)
        self._jit = compiled_kernels() if kernel == "numba" else None
        self.kernel = "numba" if self._jit is not None else "numpy"
        self._buf = np.zeros(0, dtype=np.float32)
        self.frames_out = 0
        self.samples_in = 0

    def reset(self) -> None:
        """Forget buffered audio and counters."""
        self._buf = np.zeros(0, dtype=np.float32)
        self.frames_out = 0
        self.samples_in = 0

    def push(self, chunk: np.ndarray) -> torch.Tensor:
        """Append a chunk of 16 kHz mono float32; return the new frames ``(n, n_mfcc)``."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        self.samples_in += chunk.size
        self._buf = np.concatenate([self._buf, chunk]) if self._buf.size else chunk.copy()
        n = num_frames(self._buf.size, self.cfg)
        if n == 0:
            return torch.zeros(0, self.cfg.n_mfcc)
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
        return torch.from_numpy(out)
