"""Training augmentation against hand-computed references: vocal tract length warps (band centres),
noise by SNR, room reverberation (an exponential power envelope, checked against scipy) and microphone
colouring (a smooth equaliser)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import scipy.signal

from voice_gru.augment import (IGNORE, INSIDE_OTHER, ClipBank, SequenceBuilder, eq_curve, lowpass_gains, reverb_kernel,
                               reverberate, vtlp_matrix)
from voice_gru.config import AugmentConfig, FeatureConfig
from voice_gru.features import Normalizer, front_end

FC = FeatureConfig()


def band_centres_hz(fc: FeatureConfig) -> np.ndarray:
    """HTK mel band centres, computed here from the textbook formula."""
    def mel(f):
        return 2595 * np.log10(1 + f / 700)

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


@pytest.mark.parametrize("rt60,drr", [(0.3, 0.0), (0.8, 10.0)])
def test_reverb_kernel_decays_60_db_in_rt60_and_holds_the_stated_tail_energy(rt60, drr):
    h = reverb_kernel(rt60, drr, hop_ms=10.0, frames=int(rt60 * 100)).double().numpy()
    assert h[0] == 1.0
    per_frame_db = 10 * np.log10(h[2:] / h[1:-1])
    np.testing.assert_allclose(per_frame_db, -60.0 * 0.010 / rt60, rtol=1e-4)
    assert 10 * np.log10(1.0 / h[1:].sum()) == pytest.approx(drr, abs=1e-4)


def test_reverberate_is_a_causal_convolution_along_time():
    rng = np.random.default_rng(0)
    mel = torch.from_numpy(rng.random((50, 4)).astype(np.float32))
    h = reverb_kernel(0.4, 5.0, 10.0, 40)
    want = scipy.signal.lfilter(h.double().numpy(), [1.0], mel.double().numpy(), axis=0)
    np.testing.assert_allclose(reverberate(mel, h).double().numpy(), want, rtol=1e-5, atol=1e-6)


def test_batches_reverberate_words_not_silence():
    dry = _mel(_noisy_builder(noise_prob=0.0), [0, 1])
    wet = _mel(_noisy_builder(noise_prob=0.0, reverb_prob=1.0, rt60_s=(0.5, 0.5), drr_db=(3.0, 3.0)), [0, 1])
    word_dry, word_wet = dry[0].sum(-1).numpy(), wet[0].sum(-1).numpy()
    assert word_wet[20] == pytest.approx(word_dry[20], rel=1e-4)  # the direct sound arrives first ...
    # ... then the room's energy builds up within the word and rings on after it, up to the clip's end (60 frames)
    h = 10.0 ** (-6.0 * np.arange(50) * 0.010 / 0.5)
    h[0] = 0.0
    h = h * 10 ** (-3.0 / 10) / h.sum()
    h[0] = 1.0
    want = scipy.signal.lfilter(h, [1.0], word_dry[:60])
    np.testing.assert_allclose(word_wet[:60], want, rtol=1e-4)
    assert word_wet[45] > 0.1 * word_dry[30]
    silence = _mel(_noisy_builder(noise_prob=0.0, reverb_prob=1.0), [1])  # background noise is already a room's
    torch.testing.assert_close(silence, _mel(_noisy_builder(noise_prob=0.0), [1]))
    # a room shorter than one hop is its direct sound (its kernel had no lag at all: an IndexError)
    tiny = _mel(_noisy_builder(noise_prob=0.0, reverb_prob=1.0, rt60_s=(0.005, 0.005), drr_db=(3.0, 3.0)), [0, 1])
    torch.testing.assert_close(tiny[0], dry[0])  # (the draws for the room shift the next example's)


def test_reverb_off_replays_the_old_random_stream():
    """Recipes without reverberation draw exactly the random numbers they drew before it existed."""
    plain = _noisy_builder(noise_prob=0.5)
    off = _noisy_builder(noise_prob=0.5, reverb_prob=0.0, rt60_s=(0.9, 1.0), drr_db=(-5.0, 0.0), eq_db=0.0,
                         lowpass_prob=0.0, lowpass_hz=(1000.0, 2000.0))
    torch.testing.assert_close(_mel(plain, [0, 1, 0, 1], 7), _mel(off, [0, 1, 0, 1], 7))


def test_eq_curve_by_hand():
    g = 10 * np.log10(eq_curve(np.array([3.0]), 5).numpy())
    np.testing.assert_allclose(g, [3.0, 3.0 * np.cos(np.pi / 4), 0.0, -3.0 * np.cos(np.pi / 4), -3.0], atol=1e-5)
    g = 10 * np.log10(eq_curve(np.array([0.0, 2.0]), 3).numpy())  # k = 2: up at both ends, down in the middle
    np.testing.assert_allclose(g, [2.0, -2.0, 2.0], atol=1e-5)


def test_lowpass_gains_against_the_mel_filterbank():
    """Each band keeps the share of its triangular filter's weight below the cutoff (torchaudio's HTK filterbank,
    integrated numerically), the rest at -80 dB."""
    import torchaudio

    fb = torchaudio.functional.melscale_fbanks(4097, FC.f_min, FC.f_max, FC.n_mels, 16000, norm=None, mel_scale="htk")
    freqs = np.linspace(0, 8000, 4097)
    for cutoff in (3400.0, 4000.0, 5500.0):
        want = (fb[freqs <= cutoff].sum(0) / fb.sum(0)).numpy()
        got = lowpass_gains(cutoff, FC).numpy()
        np.testing.assert_allclose(got, want + (1 - want) * 1e-8, atol=0.01)
    assert (lowpass_gains(FC.f_max + 1, FC).numpy() == 1).all()


def test_lowpass_takes_the_band_above_the_cutoff_from_whole_examples():
    plain = _mel(_noisy_builder(noise_prob=1.0), [1], 0)[0]
    narrow = _mel(_noisy_builder(noise_prob=1.0, lowpass_prob=1.0, lowpass_hz=(4000.0, 4000.0)), [1], 0)[0]
    torch.testing.assert_close(narrow, plain * lowpass_gains(4000.0, FC))  # noise included, every frame


def test_eq_colours_whole_examples_by_a_fixed_gain_per_band():
    # noise alone (seed 0 draws an audible level), then a word: the draws before the curve are the same
    plain = _mel(_noisy_builder(noise_prob=1.0), [1], 0)[0]
    coloured = _mel(_noisy_builder(noise_prob=1.0, eq_db=8.0), [1], 0)[0]
    ratio_db = 10 * np.log10((coloured / plain).numpy())
    np.testing.assert_allclose(ratio_db, np.broadcast_to(ratio_db[:1], ratio_db.shape), atol=1e-3)  # same gain every frame
    assert 0.5 < np.abs(ratio_db[0]).max() <= 1.5 * 8.0 + 1e-3  # three terms of at most eq_db / 2 each
    assert np.abs(np.diff(ratio_db[0])).max() < 1.5 * 8.0 * np.pi / 39 + 1e-3  # smooth across bands
    word = _mel(_noisy_builder(noise_prob=0.0, eq_db=8.0), [0], 0)[0][20:40, 10:20]
    word_db = 10 * np.log10((word / _mel(_noisy_builder(noise_prob=0.0), [0], 0)[0][20:40, 10:20]).numpy())
    np.testing.assert_allclose(word_db, np.broadcast_to(word_db[:1], word_db.shape), atol=1e-3)
    assert np.abs(word_db).max() > 0.1


def _two_word_builder(inside_index: int | None) -> SequenceBuilder:
    F = 60
    word = torch.full((F, FC.n_mels), 1e-6)
    word[20:40, 10:20] = 0.5  # speech on frames 20-39
    bank = ClipBank.build([torch.stack([word, word])], [1, 2])  # a command (1) and another word (2)
    aug = dataclasses.replace(AugmentConfig(), time_shift_ms=0, noise_prob=0.0, gain_db=(0.0, 0.0), freq_masks=0,
                              time_masks=0, context_prob=0.0)
    ident = Normalizer((0.0,) * FC.n_mfcc, (1.0,) * FC.n_mfcc)
    return SequenceBuilder(bank, [], FC, aug, ident, 0, tail_frames=10, inside_index=inside_index)


def test_inner_frames_of_other_words_are_marked_only_when_asked():
    _, y = _two_word_builder(2).batch([0, 1], np.random.default_rng(0), context_frames=0)
    _, y_off = _two_word_builder(None).batch([0, 1], np.random.default_rng(0), context_frames=0)
    # speech on frames 20..39; the label starts at the last one + 3 (augment._place)
    assert (y[0, 20:42] == IGNORE).all() and (y[0, 42:52] == 1).all()  # a command's inside stays unlabelled
    assert (y[1, 20:42] == INSIDE_OTHER).all() and (y[1, 42:52] == 2).all()
    assert (y_off[1, 20:42] == IGNORE).all()
    assert torch.equal(y.masked_fill(y == INSIDE_OTHER, IGNORE), y_off)
