"""Vocal tract length perturbation: the warp matrix against hand-computed band centres, and the
training batches it changes (commands warped, silence not)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from voice_gru.augment import ClipBank, SequenceBuilder, vtlp_matrix
from voice_gru.config import AugmentConfig, FeatureConfig
from voice_gru.features import Normalizer, front_end

FC = FeatureConfig()


def band_centres_hz(fc: FeatureConfig) -> np.ndarray:
    """HTK mel band centres, computed here from the textbook formula."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    m = np.linspace(mel(fc.f_min), mel(fc.f_max), fc.n_mels + 2)[1:-1]
    return 700 * (10 ** (m / 2595) - 1)


def test_identity_at_one():
    torch.testing.assert_close(vtlp_matrix(1.0, FC), torch.eye(FC.n_mels), atol=1e-6, rtol=0)


@pytest.mark.parametrize("alpha", [0.9, 0.95, 1.05, 1.1])
def test_peak_moves_to_the_band_of_alpha_times_its_frequency(alpha):
    W = vtlp_matrix(alpha, FC)
    assert (W >= 0).all()
    np.testing.assert_allclose(W.sum(0).numpy(), 1.0, atol=1e-6)  # each band: a convex mix of sources
    centres = band_centres_hz(FC)
    for j in range(5, FC.n_mels - 5):
        impulse = torch.zeros(FC.n_mels)
        impulse[j] = 1.0
        out = (impulse @ W).numpy()
        # a formant at f_j appears where the band centre is nearest alpha * f_j
        want = int(np.argmin(np.abs(centres - alpha * centres[j])))
        assert abs(int(np.argmax(out)) - want) <= 1, (alpha, j)
        assert np.sum(out * centres) / max(out.sum(), 1e-9) == pytest.approx(alpha * centres[j], rel=0.08)


def _builder(vtlp: tuple[float, float]) -> SequenceBuilder:
    F = 60
    word = torch.full((F, FC.n_mels), 1e-4)
    word[20:40, 15] = 1.0  # a steady "formant" in band 15
    silence = torch.full((F, FC.n_mels), 1e-4)
    silence[:, 15] = 1.0
    bank = ClipBank.build([torch.stack([word, silence])], [1, 0])
    aug = dataclasses.replace(AugmentConfig(), time_shift_ms=0, noise_prob=0.0, gain_db=(0.0, 0.0), freq_masks=0,
                              time_masks=0, context_prob=0.0, vtlp=vtlp)
    ident = Normalizer((0.0,) * FC.n_mfcc, (1.0,) * FC.n_mfcc)
    return SequenceBuilder(bank, [], FC, aug, ident, 0, tail_frames=10)


def _logmel(b: SequenceBuilder, idx) -> torch.Tensor:
    x, _ = b.batch(idx, np.random.default_rng(0), context_frames=0)
    return x.double() @ front_end(FC).dct.double().T  # the orthonormal DCT (40 of 40) inverts exactly


def test_batches_warp_commands_not_silence():
    centres = band_centres_hz(FC)
    want = int(np.argmin(np.abs(centres - 1.1 * centres[15])))
    assert want > 15
    warped = _logmel(_builder((1.1, 1.1)), [0, 1])
    plain = _logmel(_builder((1.0, 1.0)), [0, 1])
    assert int(plain[0, 30].argmax()) == 15
    assert abs(int(warped[0, 30].argmax()) - want) <= 1
    assert int(warped[1, 30].argmax()) == 15  # background noise keeps its spectrum
    with pytest.raises(AssertionError):
        torch.testing.assert_close(warped[0], plain[0])


def _noisy_builder(**aug_kw) -> SequenceBuilder:
    F = 60
    word = torch.full((F, FC.n_mels), 1e-6)
    word[20:40, 10:20] = 0.5  # a word of 20 frames, 5 power units per frame
    silence = torch.zeros(F, FC.n_mels)
    bank = ClipBank.build([torch.stack([word, silence])], [1, 0])
    noise = torch.full((500, FC.n_mels), 1e-3)  # flat noise: 0.04 power units per frame
    aug = dataclasses.replace(AugmentConfig(), time_shift_ms=0, gain_db=(0.0, 0.0), freq_masks=0, time_masks=0,
                              context_prob=0.0, **aug_kw)
    ident = Normalizer((0.0,) * FC.n_mfcc, (1.0,) * FC.n_mfcc)
    return SequenceBuilder(bank, [noise], FC, aug, ident, 0, tail_frames=10)


def _mel(b: SequenceBuilder, idx, seed: int = 0) -> torch.Tensor:
    x, _ = b.batch(idx, np.random.default_rng(seed), context_frames=0)
    return torch.exp(x.double() @ front_end(FC).dct.double().T) - FC.log_offset


@pytest.mark.parametrize("snr", [0.0, 7.5, 20.0])
def test_snr_mode_mixes_noise_at_the_drawn_snr(snr):
    clean = _mel(_noisy_builder(noise_prob=0.0), [0])[0]
    noisy = _mel(_noisy_builder(noise_prob=1.0, snr_prob=1.0, snr_db=(snr, snr)), [0])[0]
    added = (noisy - clean).sum(-1)  # noise power per frame
    speech = 20 * 10 * 0.5 / 20  # per active frame, by hand: 10 bands of 0.5
    assert float(added.std() / added.mean()) < 1e-3  # flat noise stays flat
    assert 10 * np.log10(speech / float(added.mean())) == pytest.approx(snr, abs=0.01)


def test_silence_gain_scales_the_noise_of_silence_examples():
    rng_seed = 0
    base = _mel(_noisy_builder(noise_prob=1.0), [1], rng_seed)[0].sum(-1).mean()
    loud = _mel(_noisy_builder(noise_prob=1.0, silence_gain_db=(20.0, 20.0)), [1], rng_seed)[0].sum(-1).mean()
    assert float(base) > 1e-3  # this seed draws a clearly non-zero silence volume
    assert float(loud / base) == pytest.approx(100.0, rel=1e-4)


def test_snr_settings_off_replay_the_old_random_stream():
    """Recipes that do not use the SNR settings draw exactly the random numbers they drew before."""
    plain = _noisy_builder(noise_prob=0.5)
    off = _noisy_builder(noise_prob=0.5, snr_prob=0.0, snr_db=(-5.0, 5.0), silence_gain_db=(0.0, 0.0))
    torch.testing.assert_close(_mel(plain, [0, 1, 0, 1], 7), _mel(off, [0, 1, 0, 1], 7))
