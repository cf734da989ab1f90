"""MFCC front end (torchaudio) for training and offline evaluation; the normaliser and the streaming
front end (``voice_gru.stream_features``, NumPy: the live path imports no torch) are re-exported here.

Frame ``i`` covers samples ``[i*hop, i*hop + win)`` (no centring, no padding), so a stream fed in
chunks yields exactly the frames of the whole signal. The log is ``log(mel + offset)`` per frame,
never clamped relative to the signal's maximum (torchaudio's default ``top_db`` would make a frame
depend on the whole file, which a stream cannot know).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from voice_gru.config import FeatureConfig
from voice_gru.stream_features import Normalizer, StreamingMFCC, num_frames

__all__ = ["FrontEnd", "Normalizer", "StreamingMFCC", "front_end", "mel_power", "mfcc", "mfcc_from_mel", "num_frames"]


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
    """Float samples as a tensor; integer PCM is refused (int16 read as floats is 32768 times too loud)."""
    dtype = audio.dtype if isinstance(audio, (np.ndarray, torch.Tensor)) else np.asarray(audio).dtype
    if not (dtype.is_floating_point if isinstance(dtype, torch.dtype) else np.issubdtype(dtype, np.floating)):
        raise ValueError(f"audio of {dtype}: the front end takes float samples in [-1, 1] "
                         "(voice_gru.audio.load_audio reads files so)")
    if isinstance(audio, torch.Tensor):  # float64 (soundfile's default, through torch.from_numpy) meets float32 weights
        return audio.float()
    return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))


@torch.no_grad()
def mel_power(audio: np.ndarray | torch.Tensor, cfg: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """Mel power spectrogram ``(..., frames, n_mels)`` of 16 kHz mono clips ``(..., samples)`` (leading axes: a batch)."""
    return front_end(cfg).mel(_as_tensor(audio))


@torch.no_grad()
def mfcc(audio: np.ndarray | torch.Tensor, cfg: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """MFCC frames ``(..., frames, n_mfcc)`` of 16 kHz mono clips ``(..., samples)`` (the offline path; leading axes:
    a batch of clips, never channels of one)."""
    return front_end(cfg)(_as_tensor(audio))


def mfcc_from_mel(mel: torch.Tensor, cfg: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """MFCC from mel power, so augmentation can work on cached mel spectra."""
    return front_end(cfg).mfcc_from_mel(mel)
