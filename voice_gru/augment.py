"""Training sequences built on cached mel spectra: shift, gain, noise, context, warping, SpecAugment.

Augmenting in the mel-power domain keeps the feature cache useful across epochs: mixing noise
``n`` at amplitude ``a`` into a clip ``x`` gives ``mel(x + a·n) ≈ mel(x) + a²·mel(n)`` (the cross
term averages out), a gain ``g`` scales power by ``g²``, a time shift moves frames, and a vocal
tract length perturbation (``vtlp_matrix``) moves spectral envelopes along frequency. A training
sequence is ``[context][clip][tail]`` with per-frame targets: background frames are ``_silence_``;
frames of a word up to just after its end are ignored (the model may fire early or late within
the word); the ``tail_frames`` frames after a word ends carry its label. This is what the model
sees when it runs on a stream with carried state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from voice_gru.config import AugmentConfig, FeatureConfig
from voice_gru.data import silence_volume
from voice_gru.features import Normalizer, front_end

IGNORE = -100
INSIDE_OTHER = -101  # a frame inside another word (``inside_index``): no label, but no confident command either


def speech_bounds(mel: torch.Tensor, floor_db: float = 25.0) -> tuple[int, int]:
    """First and last frame whose energy is within ``floor_db`` of the clip's loudest frame."""
    energy = 10 * torch.log10(mel.sum(-1) + 1e-10)
    loud = torch.nonzero(energy >= energy.max() - floor_db).flatten()
    if loud.numel() == 0:
        return 0, mel.shape[0] - 1
    return int(loud[0]), int(loud[-1])


def speech_power(mel: torch.Tensor, floor_db: float = 20.0) -> float:
    """Mean power of the frames of ``mel`` ``(T, mels)`` within ``floor_db`` of its loudest frame."""
    energy = mel.sum(-1)
    loud = energy[energy >= energy.max() * 10 ** (-floor_db / 10)]
    return float(loud.mean()) if loud.numel() else 0.0


def spec_augment(logmel: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """SpecAugment on log-mel ``(B, T, mels)``: frequency and time masks filled with each example's mean."""
    B, T, F = logmel.shape
    out = logmel.clone()
    fill = logmel.mean(dim=(1, 2), keepdim=True).expand_as(out)
    ar_f = torch.arange(F)
    ar_t = torch.arange(T)
    for _ in range(cfg.freq_masks):
        w = torch.randint(0, cfg.freq_mask_width + 1, (B, 1), generator=gen)
        s = (torch.rand(B, 1, generator=gen) * (F - w)).long()
        m = ((ar_f >= s) & (ar_f < s + w))[:, None, :].expand(B, T, F)
        out = torch.where(m, fill, out)
    for _ in range(cfg.time_masks):
        w = torch.randint(0, cfg.time_mask_width + 1, (B, 1), generator=gen)
        s = (torch.rand(B, 1, generator=gen) * (T - w)).long()
        m = ((ar_t >= s) & (ar_t < s + w))[:, :, None].expand(B, T, F)
        out = torch.where(m, fill, out)
    return out


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)  # HTK, as torchaudio's MelSpectrogram


def vtlp_matrix(alpha: float, feat: FeatureConfig) -> torch.Tensor:
    """``(n_mels, n_mels)`` matrix ``W`` such that ``mel @ W`` is the spectrum of a vocal tract
    ``alpha`` times shorter: band ``j`` (centre ``f_j``) takes the power found at ``f_j / alpha``,
    interpolated linearly between the two nearest band centres (clamped at the edges).

    Speed perturbation scales formants too but also pitch and duration; this changes only the
    spectral envelope, which is what differs most between speakers of one word.
    """
    n = feat.n_mels
    lo, hi = _hz_to_mel(np.array([feat.f_min, feat.f_max]))
    centres_mel = np.linspace(lo, hi, n + 2)[1:-1]
    centres_hz = 700.0 * (10 ** (centres_mel / 2595.0) - 1.0)
    pos = np.interp(_hz_to_mel(centres_hz / alpha), centres_mel, np.arange(n))  # fractional source band
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    w1 = pos - i0
    W = np.zeros((n, n))
    W[i0, np.arange(n)] += 1.0 - w1
    W[i1, np.arange(n)] += w1
    return torch.from_numpy(W.astype(np.float32))


def reverb_kernel(rt60_s: float, drr_db: float, hop_ms: float, frames: int) -> torch.Tensor:
    """Power envelope ``(frames,)`` of a room's impulse response per feature frame: the direct
    sound (1 at lag 0) and an exponential tail that falls 60 dB in ``rt60_s`` and holds
    ``1 / 10^(drr_db/10)`` of the direct energy in all.

    Convolving a clip's mel power with it along time is the statistical model of late
    reverberation (Polack): the fine structure of a real response averages out within a frame.
    """
    lags = torch.arange(frames, dtype=torch.float64)
    tail = 10.0 ** (-6.0 * lags * hop_ms / 1000.0 / rt60_s)
    tail[0] = 0.0
    total = float(tail.sum())
    h = tail * (10.0 ** (-drr_db / 10.0) / total if total > 0 else 0.0)
    h[0] = 1.0
    return h.float()


def reverberate(mel: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Mel power ``(T, mels)`` convolved causally along time with ``kernel`` (same length ``T`` out)."""
    T = mel.shape[0]
    x = mel.T.unsqueeze(1)  # (mels, 1, T)
    k = kernel.flip(0).view(1, 1, -1)
    out = torch.nn.functional.conv1d(torch.nn.functional.pad(x, (kernel.numel() - 1, 0)), k)
    return out.squeeze(1).T[:T]


def eq_curve(coefficients: np.ndarray, n_mels: int) -> torch.Tensor:
    """Power gains ``(n_mels,)`` of a smooth equaliser: ``10^(g/10)`` with
    ``g(j) = Σ_k c_k cos(π k j / (n_mels - 1))`` dB, ``k = 1..len(c)`` (a microphone's colouring)."""
    j = np.arange(n_mels) / max(n_mels - 1, 1)
    k = np.arange(1, len(coefficients) + 1)[:, None]
    g_db = (np.asarray(coefficients, dtype=np.float64)[:, None] * np.cos(np.pi * k * j)).sum(0)
    return torch.from_numpy((10 ** (g_db / 10)).astype(np.float32))


def lowpass_gains(cutoff_hz: float, feat: FeatureConfig, stop: float = 1e-8) -> torch.Tensor:
    """Power gains ``(n_mels,)`` of a channel that passes nothing above ``cutoff_hz``: each triangular mel band
    keeps the share of its weight below the cutoff (the rest at ``stop``, -80 dB: a resampled recording's band)."""
    lo, hi = _hz_to_mel(np.array([feat.f_min, feat.f_max]))
    edges = 700.0 * (10 ** (np.linspace(lo, hi, feat.n_mels + 2) / 2595.0) - 1.0)
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    c = np.clip(cutoff_hz, left, right)
    # area of the triangle left of c over its whole area, piecewise on its rising and falling halves
    rise = np.where(c <= centre, ((c - left) / (centre - left)) ** 2 * (centre - left) / 2, (centre - left) / 2)
    fall = np.where(c > centre, (right - centre) / 2 - ((right - c) / (right - centre)) ** 2 * (right - centre) / 2, 0.0)
    share = (rise + fall) / ((right - left) / 2)
    return torch.from_numpy((share + (1.0 - share) * stop).astype(np.float32))


@dataclass
class ClipBank:
    """Cached mel spectra of a split: ``mels[speed]`` is ``(N, frames, mels)``; bounds per clip."""

    mels: list[torch.Tensor]
    bounds: list[np.ndarray]  # per speed: (N, 2) first/last speech frame
    labels: np.ndarray  # (N,) class index

    @classmethod
    def build(cls, mels: list[torch.Tensor], labels: Sequence[int]) -> "ClipBank":
        """A bank of these mel spectra (per speed) and labels, with each clip's speech bounds found."""
        bounds = [np.array([speech_bounds(m) for m in ms], dtype=np.int64).reshape(-1, 2) for ms in mels]
        return cls(mels, bounds, np.asarray(labels, dtype=np.int64))


class SequenceBuilder:
    """Makes augmented training batches (features + per-frame targets) from a ClipBank and noise."""

    def __init__(
        self,
        bank: ClipBank,
        noise_mels: list[torch.Tensor],
        feat: FeatureConfig,
        aug: AugmentConfig,
        normalizer: Normalizer,
        silence_index: int | None,
        tail_frames: int,
        target: str = "frames",
        inside_index: int | None = None,
    ) -> None:
        self.bank = bank
        self.noise = [n for n in noise_mels if n.shape[0] > 0]
        self.feat = feat
        self.aug = aug
        self.norm = normalizer
        self.sil = silence_index
        self.tail_frames = tail_frames
        self.inside = inside_index  # the class (``_unknown_``) whose words' inner frames get ``INSIDE_OTHER``
        if target not in ("frames", "last"):
            raise ValueError(f"unknown training target '{target}' (expected 'frames' or 'last')")
        self.target = target
        self.clip_frames = bank.mels[0].shape[1]
        lo, hi = aug.vtlp
        # a fixed grid of warps (steps of 0.01) so each batch reuses precomputed matrices
        n_warps = max(1, int(round((hi - lo) / 0.01)) + 1)
        self.warps = [vtlp_matrix(a, feat) for a in np.linspace(lo, hi, n_warps)] if (lo, hi) != (1.0, 1.0) else []

    def _noise(self, T: int, rng: np.random.Generator) -> torch.Tensor:
        n = self.noise[int(rng.integers(len(self.noise)))]
        if n.shape[0] <= T:
            reps = T // n.shape[0] + 1
            n = n.repeat(reps, 1)
        o = int(rng.integers(0, n.shape[0] - T + 1))
        return n[o:o + T]

    def _place(self, mel, y, clip: int, pos: int, rng: np.random.Generator, speed: int) -> None:
        """Add clip ``clip`` at frame ``pos`` (may be partly outside) and write its targets."""
        T = mel.shape[0]
        F = self.clip_frames
        lab = int(self.bank.labels[clip])
        gain = 10 ** (rng.uniform(*self.aug.gain_db) / 20)
        src = self.bank.mels[speed][clip] * gain**2
        if self.warps and lab != self.sil:
            src = src @ self.warps[int(rng.integers(len(self.warps)))]
        if self.aug.reverb_prob > 0 and lab != self.sil and rng.random() < self.aug.reverb_prob:
            rt60 = rng.uniform(*self.aug.rt60_s)
            lags = max(1, min(F, int(rt60 * 1000 / self.feat.hop_ms)))  # a room under one hop: the direct sound only
            h = reverb_kernel(rt60, rng.uniform(*self.aug.drr_db), self.feat.hop_ms, lags)
            src = reverberate(src, h)
        a, b = max(pos, 0), min(pos + F, T)
        if a >= b:
            return
        mel[a:b] += src[a - pos:b - pos]
        if lab == self.sil:
            y[a:b] = lab
            return
        first, last = self.bank.bounds[speed][clip]
        on, off = pos + first, pos + last + 3
        y[max(a, on):min(T, off)] = INSIDE_OTHER if lab == self.inside else IGNORE
        y[max(0, off):min(T, off + self.tail_frames)] = lab
        if pos < 0 and on < 0:  # the word's start is cut off: its label would be a guess
            y[max(0, off):min(T, off + self.tail_frames)] = IGNORE

    def batch(self, idx: Sequence[int], rng: np.random.Generator,
              context_frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``(B, T, n_mfcc)`` (normalised) and targets ``(B, T)`` for clip indices ``idx``."""
        aug = self.aug
        B = len(idx)
        hop_s = self.feat.hop_ms / 1000
        if context_frames is None:
            lo, hi = (int(s / hop_s) for s in aug.context_seconds)
            context_frames = int(rng.integers(lo, hi + 1)) if rng.random() < 0.8 else 0
        tail = int(rng.integers(0, 31))
        C, F = context_frames, self.clip_frames
        T = C + F + tail
        shift_max = int(aug.time_shift_ms / self.feat.hop_ms)
        mel = torch.zeros(B, T, self.feat.n_mels)
        y = torch.full((B, T), self.sil if self.sil is not None else IGNORE, dtype=torch.long)
        n_speeds = len(self.bank.mels)
        for b, clip in enumerate(idx):
            if C > 0 and rng.random() < aug.context_prob:
                other = int(rng.integers(len(self.bank.labels)))
                if self.bank.labels[other] != self.sil:
                    self._place(mel[b], y[b], other, C - F - int(rng.integers(0, 30)), rng, int(rng.integers(n_speeds)))
            shift = int(rng.integers(-shift_max, shift_max + 1))
            pos = min(max(C + shift, 0), T - F) if C > 0 else max(0, min(shift, tail))
            self._place(mel[b], y[b], int(clip), pos, rng, int(rng.integers(n_speeds)))
            is_sil = self.bank.labels[clip] == self.sil
            if self.noise and (rng.random() < aug.noise_prob or is_sil):
                # draws only what a setting needs, so recipes without snr/silence gain replay exactly
                power = rng.uniform(*aug.noise_level) ** 2
                snr = None
                if is_sil:
                    power = silence_volume(rng) ** 2
                    if aug.silence_gain_db != (0.0, 0.0):
                        power *= 10 ** (rng.uniform(*aug.silence_gain_db) / 10)
                elif aug.snr_prob > 0 and rng.random() < aug.snr_prob:
                    snr = rng.uniform(*aug.snr_db)
                noise = self._noise(T, rng)
                if snr is not None:
                    power = speech_power(mel[b]) / (float(noise.sum(-1).mean()) + 1e-12) / 10 ** (snr / 10)
                mel[b] += noise * power
            if aug.eq_db > 0:  # the microphone colours everything it records, noise included
                mel[b] *= eq_curve(rng.uniform(-aug.eq_db, aug.eq_db, 3) / 2, self.feat.n_mels)
            if aug.lowpass_prob > 0 and rng.random() < aug.lowpass_prob:  # so is a narrowband channel
                mel[b] *= lowpass_gains(rng.uniform(*aug.lowpass_hz), self.feat)
        if self.target == "last":  # the classic clip classifier: one label, on the last frame
            y.fill_(IGNORE)
            y[:, -1] = torch.as_tensor(self.bank.labels[np.asarray(idx)])
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        fe = front_end(self.feat)
        logmel = torch.log(mel + self.feat.log_offset)
        logmel = spec_augment(logmel, aug, gen)
        return self.norm(logmel @ fe.dct), y


def eval_features(mels: torch.Tensor, feat: FeatureConfig, normalizer: Normalizer, tail_frames: int = 30) -> torch.Tensor:
    """Normalised MFCC of clean clips ``(N, F, mels)`` followed by ``tail_frames`` of digital silence."""
    fe = front_end(feat)
    pad = mels.new_zeros(mels.shape[0], tail_frames, mels.shape[2])
    return normalizer(fe.mfcc_from_mel(torch.cat([mels, pad], 1)))
