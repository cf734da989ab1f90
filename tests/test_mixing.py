"""Speech and noise mixed at a stated SNR, and rooms (``voice_gru.mixing``), checked against powers computed
by hand and the reverberation time read back with Schroeder's backward integration."""

from __future__ import annotations

import numpy as np
import pytest

from voice_gru.mixing import active_power, mix_at_snr, mix_random, noise_segment, reverberate, room_impulse_response


def burst(amplitude: float = 0.3, n: int = 16000, on: tuple[int, int] = (4800, 9600)) -> np.ndarray:
    """A 1 kHz tone between two frame-aligned sample positions, zeros elsewhere."""
    t = np.arange(n) / 16000
    a = np.zeros(n)
    a[on[0]:on[1]] = amplitude * np.sin(2 * np.pi * 1000 * t[on[0]:on[1]])
    return a


def test_active_power_ignores_the_pause_around_a_word():
    a = burst(0.3)
    assert active_power(a) == pytest.approx(0.3 ** 2 / 2, rel=1e-3)  # a sine's power, zeros left out
    assert np.mean(a ** 2) == pytest.approx(0.3 ** 2 / 2 * 0.3, rel=1e-3)  # the plain mean would be 70% lower
    assert active_power(np.zeros(16000)) == 0.0


@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 30.0])
def test_mix_reaches_the_requested_snr(snr):
    speech = burst(0.2)
    noise = np.random.default_rng(1).normal(0, 0.05, speech.size)
    mixed = mix_at_snr(speech, noise, snr)
    added = mixed - speech
    k = np.std(added) / np.std(noise)
    np.testing.assert_allclose(added, k * noise, atol=1e-12)  # the noise itself, only scaled
    measured = 10 * np.log10((0.2 ** 2 / 2) / np.mean(added ** 2))
    assert measured == pytest.approx(snr, abs=0.02)


def test_silent_speech_or_noise_is_left_alone():
    speech = burst()
    np.testing.assert_array_equal(mix_at_snr(speech, np.zeros_like(speech), 0.0), speech)
    np.testing.assert_array_equal(mix_at_snr(np.zeros(100), np.ones(100), 0.0), np.zeros(100))
    with pytest.raises(ValueError, match="samples"):
        mix_at_snr(speech, np.ones(10), 0.0)


def test_noise_segment_loops_short_recordings_and_is_seeded():
    noise = np.arange(1000, dtype=np.float64)
    seg = noise_segment(noise, 2500, np.random.default_rng(0))
    assert seg.size == 2500
    assert np.all(np.diff(seg)[np.diff(seg) != 1] == -999)  # only wraps from the end back to the start
    again = noise_segment(noise, 2500, np.random.default_rng(0))
    np.testing.assert_array_equal(seg, again)
    with pytest.raises(ValueError, match="empty"):
        noise_segment(np.zeros(0), 10, np.random.default_rng(0))


def test_mix_random_draws_from_the_given_recordings():
    speech = burst(0.2).astype(np.float32)
    noises = [np.full(20000, 0.1), np.full(20000, -0.1)]
    out = mix_random(speech, noises, 10.0, np.random.default_rng(5))
    assert out.dtype == np.float32
    added = out.astype(np.float64) - speech
    assert np.allclose(added, added[0], atol=1e-6)  # a constant stretch of one of the two
    assert 10 * np.log10(active_power(speech) / np.mean(added ** 2)) == pytest.approx(10.0, abs=0.01)


def schroeder_rt60(rir: np.ndarray, sample_rate: int) -> float:
    """RT60 from the energy decay curve's fall from -5 to -25 dB (T20), extrapolated to 60 dB (ISO 3382)."""
    edc = np.cumsum(rir[::-1] ** 2)[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    i5, i25 = np.argmax(edc_db <= -5), np.argmax(edc_db <= -25)
    return 3.0 * (i25 - i5) / sample_rate


@pytest.mark.parametrize("rt60,drr", [(0.3, 0.0), (0.6, 6.0), (1.0, 10.0)])
def test_room_response_has_the_stated_reverberation_time_and_drr(rt60, drr):
    rir = room_impulse_response(rt60, drr, 16000, np.random.default_rng(0))
    assert rir[0] == 1.0
    assert 10 * np.log10(1.0 / np.sum(rir[1:] ** 2)) == pytest.approx(drr, abs=1e-9)
    late = np.delete(rir, 0)  # the direct sound is not part of the decay
    assert schroeder_rt60(late, 16000) == pytest.approx(rt60, rel=0.1)


def test_room_response_rejects_a_nonpositive_time():
    with pytest.raises(ValueError, match="reverberation time"):
        room_impulse_response(0.0, 3.0, 16000, np.random.default_rng(0))


def test_reverberate_is_the_convolution_cut_to_the_clip():
    rir = room_impulse_response(0.2, 3.0, 16000, np.random.default_rng(1))
    a = burst(0.3).astype(np.float32)
    out = reverberate(a, rir)
    assert out.dtype == np.float32 and out.shape == a.shape
    np.testing.assert_allclose(out, np.convolve(a.astype(np.float64), rir)[: a.size], atol=1e-6)
    assert np.abs(out[:4800]).max() < 1e-9  # nothing before the word arrives (FFT rounding aside)
    assert np.abs(out[9600:]).max() > 0.01  # the room rings on after it
    longer = reverberate(a, rir, length=a.size + 1000)  # the echo past the clip's end, as far as asked
    np.testing.assert_allclose(longer, np.convolve(a.astype(np.float64), rir)[: a.size + 1000], atol=1e-6)
    assert reverberate(a[:0], rir).size == 0
