"""MFCC front end: agreement with librosa and with an inline numpy reference, the frame
convention, the streaming front end (equal to the offline one at every chunk size), Normalizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voice_gru.config import FeatureConfig
from voice_gru.errors import AudioFormatError
from voice_gru.features import (
    FrontEnd,
    Normalizer,
    StreamingMFCC,
    front_end,
    mel_power,
    mfcc,
    mfcc_from_mel,
    num_frames,
)

from voice_gru.stream_features import dct_matrix, hann_window  # noqa: E402

CFG = FeatureConfig()
PAD = (CFG.n_fft - CFG.win_length) // 2  # 16: where torch.stft/librosa put a 480 window in 512


def test_front_end_uses_htk_mel_no_norm_periodic_hann():
    """What the librosa comparison below has to match (torchaudio's MelSpectrogram defaults)."""
    fe = front_end(CFG)
    assert isinstance(fe, FrontEnd)
    assert fe.melspec.mel_scale.mel_scale == "htk"
    assert fe.melspec.mel_scale.norm is None
    assert fe.melspec.spectrogram.center is False
    w = fe.melspec.spectrogram.window.double().numpy()
    n = np.arange(CFG.win_length)
    np.testing.assert_allclose(w, 0.5 - 0.5 * np.cos(2 * np.pi * n / CFG.win_length), atol=1e-6)  # periodic


# ---------------------------------------------------------------- frame convention and counts


@pytest.mark.parametrize("n, frames", [(0, 0), (479, 0), (480, 1), (500, 1), (639, 1), (640, 2), (16000, 98), (36800, 228)])
def test_frame_count(n, frames):
    assert num_frames(n, CFG) == frames
    audio = np.random.default_rng(n).uniform(-0.5, 0.5, n).astype(np.float32)
    assert tuple(mfcc(audio).shape) == (frames, CFG.n_mfcc)
    assert tuple(mel_power(audio).shape) == (frames, CFG.n_mels)


def test_one_second_is_98_frames():
    assert num_frames(16000, CFG) == 98
    assert mfcc(np.zeros(16000, dtype=np.float32)).shape == (98, 40)


def test_frame_i_covers_samples_i_hop_to_i_hop_plus_win():
    """An impulse at sample s reaches exactly the frames whose window covers s (Hann's first
    coefficient is 0, so s = i*hop is excluded)."""
    s = 1000
    x = np.zeros(3200, dtype=np.float32)
    x[s] = 1.0
    energy = mel_power(x).sum(dim=1).numpy()
    hit = set(np.nonzero(energy > 1e-12)[0].tolist())
    expected = {i for i in range(num_frames(x.size, CFG)) if i * CFG.hop_length < s <= i * CFG.hop_length + CFG.win_length - 1}
    assert hit == expected == {4, 5, 6}


def test_batched_equals_single():
    rng = np.random.default_rng(3)
    batch = rng.uniform(-0.3, 0.3, (3, 8000)).astype(np.float32)
    together = mel_power(torch.from_numpy(batch))
    assert together.shape == (3, num_frames(8000, CFG), CFG.n_mels)
    for b in range(3):
        torch.testing.assert_close(together[b], mel_power(batch[b]), rtol=1e-5, atol=1e-7)


def test_mfcc_from_mel_matches_mfcc(speech_signal):
    torch.testing.assert_close(mfcc_from_mel(mel_power(speech_signal)), mfcc(speech_signal), rtol=0, atol=1e-5)


def test_silence_gives_finite_floor():
    out = mfcc(np.zeros(4000, dtype=np.float32))
    assert torch.isfinite(out).all()
    # log(offset) in every band: only c0 is non-zero, = sqrt(n_mels) * log(1e-6)
    assert out[:, 0].allclose(torch.tensor(np.sqrt(CFG.n_mels) * np.log(CFG.log_offset), dtype=out.dtype))
    assert out[:, 1:].abs().max() < 1e-4


# ---------------------------------------------------------------- independent references


def htk_mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular filters on the HTK mel scale, peak 1, no area normalisation: (n_freqs, n_mels)."""
    def hz2mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel2hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = mel2hz(np.linspace(hz2mel(fmin), hz2mel(fmax), n_mels + 2))
    fb = np.zeros((freqs.size, n_mels))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        rising = (freqs - lo) / (mid - lo)
        falling = (hi - freqs) / (hi - mid)
        fb[:, m] = np.maximum(0.0, np.minimum(rising, falling))
    return fb


def dct2_ortho(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II as an (n_out, n_in) matrix."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    mat = np.sqrt(2.0 / n_in) * np.cos(np.pi * k * (2 * n + 1) / (2 * n_in))
    mat[0] /= np.sqrt(2.0)
    return mat


def numpy_reference(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mel power, MFCC) with frame i = samples [i*hop, i*hop + win), periodic Hann, |rfft(512)|^2."""
    win, hop = CFG.win_length, CFG.hop_length
    x = audio.astype(np.float64)
    n = num_frames(x.size, CFG)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    frames = np.stack([x[i * hop:i * hop + win] * window for i in range(n)])
    power = np.abs(np.fft.rfft(frames, n=CFG.n_fft, axis=1)) ** 2
    mel = power @ htk_mel_filterbank(CFG.sample_rate, CFG.n_fft, CFG.n_mels, CFG.f_min, CFG.f_max)
    mf = np.log(mel + CFG.log_offset) @ dct2_ortho(CFG.n_mels, CFG.n_mfcc).T
    return mel, mf


def test_matches_inline_numpy_reference(speech_signal):
    ref_mel, ref_mfcc = numpy_reference(speech_signal)
    ours_mel = mel_power(speech_signal).double().numpy()
    ours = mfcc(speech_signal).double().numpy()
    assert ours.shape == ref_mfcc.shape == (228, 40)
    big = ref_mel > 1e-6 * ref_mel.max()
    assert big.mean() > 0.5
    assert (np.abs(ours_mel - ref_mel)[big] / ref_mel[big]).max() < 1e-3
    assert np.abs(ours - ref_mfcc).max() < 1e-2


@pytest.mark.slow  # the first librosa call in a fresh environment compiles numba code (~20-40 s)
def test_matches_librosa(clip_paths, speech_signal):
    librosa = pytest.importorskip("librosa")
    from voice_gru.audio import load_audio

    for audio in (load_audio(clip_paths["stop"]), speech_signal):
        # librosa (like torch.stft) with center=False puts the 480-sample window in the middle of
        # each 512-sample FFT frame, i.e. at samples [i*hop + 16, i*hop + 496). Our frame i covers
        # [i*hop, i*hop + 480) (the documented convention), so librosa gets the same 16 zeros on
        # each side; the zeros fall under the window's zero padding and change no value.
        padded = np.pad(audio, (PAD, CFG.n_fft - CFG.win_length - PAD))
        mel = librosa.feature.melspectrogram(
            y=padded, sr=16000, n_fft=512, win_length=480, hop_length=160, n_mels=40, fmin=20, fmax=7600,
            center=False, power=2.0, htk=True, norm=None, window="hann",  # periodic Hann (fftbins=True)
        )
        ref = librosa.feature.mfcc(S=np.log(mel + 1e-6), n_mfcc=40, dct_type=2, norm="ortho")
        ours_mel = mel_power(audio).numpy().T
        ours = mfcc(audio).numpy().T
        assert ours.shape == ref.shape == (40, num_frames(audio.size, CFG))
        big = mel > 1e-6 * mel.max()
        assert big.mean() > 0.5
        assert (np.abs(ours_mel - mel)[big] / mel[big]).max() < 1e-3
        assert np.abs(ours - ref).max() < 1e-2


# ---------------------------------------------------------------- streaming front end


# The streaming front end computes in float64 (NumPy); the offline path is float32 up to the mel
# spectrum. On frames of near digital silence log(mel + 1e-6) magnifies float32 rounding to ~2e-5
# (c0 ~ -40 .. 90); a float64 textbook reference is checked below.
STREAM_TOL = 5e-5


def stream(audio: np.ndarray, sizes, kernel: str = "numba") -> tuple[torch.Tensor, StreamingMFCC]:
    fe = StreamingMFCC(CFG, kernel)
    assert fe.kernel == kernel
    out, pos = [], 0
    for size in sizes:
        if pos >= audio.size:
            break
        chunk = audio[pos:pos + size]
        pos += chunk.size
        frames = fe.push(chunk)
        assert frames.ndim == 2 and frames.shape[1] == CFG.n_mfcc
        assert fe.frames_out == num_frames(pos, CFG)  # every complete frame is out, no more
        out.append(frames)
    assert pos == audio.size
    return torch.from_numpy(np.concatenate(out)), fe


@pytest.fixture(scope="module")
def offline(speech_signal):
    return mfcc(speech_signal)


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
@pytest.mark.parametrize("size", [1, 7, 160, 161, 441, 1600, 16000, 36800, 50000])
def test_streaming_equals_offline(speech_signal, offline, size, kernel):
    got, fe = stream(speech_signal, iter(lambda: size, None), kernel)
    assert got.shape == offline.shape == (num_frames(speech_signal.size, CFG), CFG.n_mfcc)
    assert (got - offline).abs().max().item() <= STREAM_TOL
    assert fe.samples_in == speech_signal.size


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
def test_streaming_equals_float64_textbook_mfcc(speech_signal, kernel):
    """Periodic Hann window, |rFFT|², HTK mel filters, log, orthonormal DCT-II, all in float64."""
    import scipy.fft
    import torchaudio

    win, hop, n_fft = CFG.win_length, CFG.hop_length, CFG.n_fft
    x = speech_signal.astype(np.float64)
    n = num_frames(x.size, CFG)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    frames = np.stack([x[i * hop:i * hop + win] * window for i in range(n)])
    power = np.abs(np.fft.rfft(frames, n=n_fft)) ** 2
    fb = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, CFG.f_min, CFG.f_max, CFG.n_mels, CFG.sample_rate,
                                               norm=None, mel_scale="htk").double().numpy()
    ref = scipy.fft.dct(np.log(power @ fb + CFG.log_offset), type=2, norm="ortho", axis=-1)[:, :CFG.n_mfcc]
    got, _ = stream(speech_signal, iter(lambda: 441, None), kernel)
    # the front end's DCT matrix and window are torchaudio's float32 ones (rounded by ~2e-6):
    # over 40 log-mel terms of magnitude up to ~14 that is ~5e-5; an algorithmic slip is far larger
    assert np.abs(got.numpy() - ref).max() <= 1e-4


def test_streaming_constants_are_torchaudios():
    """The live path's window, mel filters and DCT (NumPy, no torch) against torchaudio's, which the
    offline path and so the training features use, and the filters against librosa's in float64."""
    import librosa
    import torchaudio

    from voice_gru.stream_features import dct_matrix, hann_window, mel_filters

    assert np.abs(hann_window(CFG.win_length) - torch.hann_window(CFG.win_length).numpy()).max() <= 6e-8  # 1 ulp
    dct = torchaudio.functional.create_dct(CFG.n_mfcc, CFG.n_mels, norm="ortho").numpy()
    assert dct_matrix(CFG.n_mfcc, CFG.n_mels).shape == dct.shape
    assert np.abs(dct_matrix(CFG.n_mfcc, CFG.n_mels) - dct).max() <= 3e-8  # float32 rounding, 1-2 ulp
    fb = mel_filters(CFG)
    ref = librosa.filters.mel(sr=CFG.sample_rate, n_fft=CFG.n_fft, n_mels=CFG.n_mels, fmin=CFG.f_min, fmax=CFG.f_max,
                              htk=True, norm=None, dtype=np.float64).T
    assert fb.shape == ref.shape and np.abs(fb - ref).max() <= 1e-12
    ta = torchaudio.functional.melscale_fbanks(CFG.n_fft // 2 + 1, CFG.f_min, CFG.f_max, CFG.n_mels, CFG.sample_rate,
                                               norm=None, mel_scale="htk").numpy()
    assert np.abs(fb - ta).max() <= 5e-6  # torchaudio's float32 arithmetic


@pytest.mark.parametrize("seed", [0, 1])
def test_streaming_random_chunk_sizes(speech_signal, offline, seed):
    rng = np.random.default_rng(seed)
    sizes = [int(s) for s in rng.integers(0, 900, size=400)]  # includes empty chunks
    sizes.append(speech_signal.size)
    got, _ = stream(speech_signal, sizes)
    assert got.shape == offline.shape
    assert (got - offline).abs().max().item() <= STREAM_TOL


def test_streaming_reset(speech_signal, offline):
    fe = StreamingMFCC(CFG)
    fe.push(speech_signal[:12345])
    fe.push(np.full(77, 0.9, dtype=np.float32))
    fe.reset()
    assert fe.frames_out == 0 and fe.samples_in == 0
    got = torch.from_numpy(np.concatenate([fe.push(speech_signal[i:i + 1000]) for i in range(0, speech_signal.size, 1000)]))
    assert got.shape == offline.shape
    assert (got - offline).abs().max().item() <= STREAM_TOL


def test_streaming_accepts_float64_and_2d():
    x = np.random.default_rng(5).uniform(-0.5, 0.5, 4000)
    fe = StreamingMFCC(CFG)
    got = torch.from_numpy(np.concatenate([fe.push(x[:1500].reshape(-1, 1)), fe.push(x[1500:])]))
    assert (got - mfcc(x.astype(np.float32))).abs().max().item() <= STREAM_TOL
    assert fe.push(np.zeros(0)).shape == (0, CFG.n_mfcc)
    # stereo flattened would be read as twice the audio, int16 unscaled as 32768 times too loud
    for bad in (np.zeros((400, 2)), np.zeros(400, np.int16), np.zeros((2, 2, 100))):
        with pytest.raises(AudioFormatError, match="mono float"):
            fe.push(bad)
    # float64 tensors (soundfile's default dtype, through torch.from_numpy) met float32 weights: a RuntimeError
    wide = torch.from_numpy(x.astype(np.float64))
    assert (mfcc(wide) - mfcc(x.astype(np.float32))).abs().max().item() <= 1e-5
    # one NaN poisoned the network for seconds; int16 values cast to float are far beyond ±1
    for bad, what in ((np.array([0.1, np.nan]), "samples that are not finite"),
                      (np.full(400, 12000.0), "a sample of 12000")):
        with pytest.raises(AudioFormatError, match=f"audio chunk with {what}"):
            fe.push(bad)


# ---------------------------------------------------------------- normaliser


def test_normalizer_fit_matches_numpy():
    rng = np.random.default_rng(11)
    data = rng.normal(loc=np.arange(40) - 20.0, scale=np.linspace(0.5, 5.0, 40), size=(5, 300, 40))
    norm = Normalizer.fit(torch.from_numpy(data).float())
    flat = data.astype(np.float32).reshape(-1, 40).astype(np.float64)
    np.testing.assert_allclose(norm.mean, flat.mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(norm.std, flat.std(0, ddof=1), rtol=1e-6)
    out = norm(torch.from_numpy(data).float())
    assert out.shape == (5, 300, 40) and out.dtype == torch.float32
    flat_out = out.reshape(-1, 40).double()
    assert flat_out.mean(0).abs().max() < 1e-4
    assert (flat_out.std(0) - 1).abs().max() < 1e-4


def test_normalizer_constant_coefficient_does_not_blow_up():
    frames = torch.randn(100, 3)
    frames[:, 1] = 7.0
    norm = Normalizer.fit(frames)
    assert norm.std[1] >= 1e-3
    assert torch.isfinite(norm(frames)).all()


def test_normalizer_round_trip():
    norm = Normalizer.fit(torch.randn(50, 40) * 3 + 1)
    d = norm.to_dict()
    assert set(d) == {"mean", "std"} and len(d["mean"]) == 40
    import json

    back = Normalizer.from_dict(json.loads(json.dumps(d)))
    assert back == norm


def test_normalizer_on_real_features(speech_signal):
    feats = mfcc(speech_signal)
    norm = Normalizer.fit(feats)
    out = norm(feats)
    assert out.mean(0).abs().max() < 1e-4
    assert (out.std(0) - 1).abs().max() < 1e-3


@pytest.mark.parametrize("audio", [np.zeros(16000, np.int16), torch.zeros(16000, dtype=torch.int16), [0] * 400])
def test_integer_samples_are_refused_not_read_as_32768_times_louder(audio):
    for fn in (mfcc, mel_power):
        with pytest.raises(ValueError, match="int.*the front end takes float samples in \\[-1, 1\\]"):
            fn(audio)


def test_leading_axes_are_a_batch_of_clips():
    clips = np.random.default_rng(0).standard_normal((2, 8000)).astype(np.float32) * 0.1
    torch.testing.assert_close(mfcc(clips)[1], mfcc(clips[1]))  # (2, N) is two clips, as the docstring says


@pytest.mark.parametrize("call, message", [
    (lambda: hann_window(0), "hann_window: length must be a positive whole number, got 0"),
    (lambda: hann_window(400.0), "hann_window: length must be a positive whole number, got 400.0"),
    (lambda: dct_matrix(0, 0), "dct_matrix: n_mfcc must be a positive whole number, got 0"),
    (lambda: dct_matrix(13, -1), "dct_matrix: n_mels must be a positive whole number, got -1"),
])
def test_window_and_dct_sizes_are_checked(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


def test_dc_blocker_is_the_one_pole_recursion_whatever_the_chunking():
    from voice_gru.stream_features import DC_POLE, DCBlocker

    x = (np.random.default_rng(0).standard_normal(40000) * 0.1 + 0.2).astype(np.float32)  # a 0.2 offset
    ref, xp, yp = np.empty(x.size), float(x[0]), 0.0
    for i, v in enumerate(x.astype(np.float64)):  # y[n] = x[n] - x[n-1] + pole y[n-1], the first sample its own past
        yp = v - xp + DC_POLE * yp
        xp, ref[i] = v, yp
    block = DCBlocker()
    whole = block(x)
    np.testing.assert_allclose(whole, ref, atol=1e-6)
    block.reset()
    np.testing.assert_allclose(np.concatenate([block(x[i:i + 777]) for i in range(0, x.size, 777)]), whole, atol=1e-6)
    assert abs(float(whole[8000:].mean())) < 2e-3  # the offset gone after 0.5 s (time constant 62.5 ms)
    tone = np.sin(2 * np.pi * 20 * np.arange(48000) / 16000).astype(np.float32)  # the lowest mel band's edge
    kept = block(tone)  # (state carried over from x: settled within the first second)
    assert np.abs(kept[16000:]).max() == pytest.approx(1.0, abs=0.01)  # -0.07 dB at 20 Hz


def test_streaming_mfcc_with_dc_removed_is_the_filtered_audios_mfcc():
    from voice_gru.stream_features import DCBlocker

    x = (np.random.default_rng(1).standard_normal(16000) * 0.1 + 0.1).astype(np.float32)
    live = StreamingMFCC(CFG, remove_dc=True)
    frames = np.concatenate([live.push(x[i:i + 1600]) for i in range(0, x.size, 1600)])
    np.testing.assert_allclose(frames, mfcc(DCBlocker()(x)).numpy(), atol=5e-5)
