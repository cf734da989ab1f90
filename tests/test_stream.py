"""Streaming recognizer: equal to the offline model, chunk-size independent, refresh and window
semantics checked against independent computations, reset, timing; the listen loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # small ops are ~1000x slower with oversubscribed threads on a 2-core box

from voice_gru.config import DecisionConfig, FeatureConfig, ModelConfig  # noqa: E402
from voice_gru.data import task_labels  # noqa: E402
from voice_gru.decision import Detector  # noqa: E402
from voice_gru.errors import AudioFormatError, ConfigError  # noqa: E402
from voice_gru.features import Normalizer, mfcc  # noqa: E402
from voice_gru.model import Checkpoint, Ensemble, GRUClassifier, default_model_path, load_checkpoint  # noqa: E402
from voice_gru.stream import Recognizer  # noqa: E402

LABELS = tuple(task_labels("12"))
FC = FeatureConfig()
SR = FC.sample_rate
# A detector loose enough that the random-weight models below fire several times on 4 s of audio.
# fires often on an untrained model's posteriors (re-arming at the threshold), so event checks compare several events
LOOSE = DecisionConfig(smooth_ms=30.0, threshold=0.3, min_duration_ms=30.0, cooldown_ms=250.0, rearm_ratio=1.0)


@pytest.fixture(scope="module")
def clips(clip_paths) -> dict[str, np.ndarray]:
    from voice_gru.audio import load_audio

    return {w: load_audio(p) for w, p in clip_paths.items()}


@pytest.fixture(scope="module")
def normalizer(clips) -> Normalizer:
    return Normalizer.fit(torch.cat([mfcc(a, FC) for a in clips.values()]))


def _ckpt(normalizer: Normalizer, conv: int, seed: int) -> Checkpoint:
    torch.manual_seed(seed)
    model = GRUClassifier(FC.n_mfcc, len(LABELS), ModelConfig(conv_channels=conv, hidden=24, layers=2, dropout=0.2))
    with torch.no_grad():
        model.head.weight.mul_(15.0)  # peaky posteriors, so thresholds are crossed and events happen
        for layer in range(2):  # update gates biased open: a long memory, so a state reset shows
            getattr(model.gru, f"bias_ih_l{layer}")[24:48] += 3.0
    return Checkpoint(model.eval(), LABELS, FC, normalizer)


@pytest.fixture(scope="module")
def ckpts(normalizer) -> dict:
    out: dict = {0: _ckpt(normalizer, 0, seed=11), 16: _ckpt(normalizer, 16, seed=12)}
    out["ens"] = Checkpoint(Ensemble([out[0].model, out[16].model]).eval(), LABELS, FC, normalizer)
    return out


@pytest.fixture(scope="module")
def signal(clips) -> np.ndarray:
    """4 s of real words with short gaps, plus low noise."""
    rng = np.random.default_rng(5)
    gap = np.zeros(int(0.2 * SR), dtype=np.float32)
    parts = [gap, clips["yes"], gap, clips["no"], clips["stop"], gap, clips["go"]]
    audio = np.concatenate(parts)[: 4 * SR]
    audio = np.pad(audio, (0, 4 * SR - audio.size))
    return (audio + 0.003 * rng.standard_normal(audio.size)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# independent references


def features(ckpt: Checkpoint, audio: np.ndarray) -> torch.Tensor:
    return ckpt.normalizer(mfcc(audio, ckpt.features))


@torch.no_grad()
def ref_offline(ckpt: Checkpoint, audio: np.ndarray) -> torch.Tensor:
    return ckpt.model(features(ckpt, audio)[None])[0].softmax(-1)


@torch.no_grad()
def ref_refresh(ckpt: Checkpoint, x: torch.Tensor, period: int, frames) -> dict[int, torch.Tensor]:
    """Posterior at frame n: the model from zero state over the frames since the copy in use
    started. Copy 0 starts at 0 and is used up to frame P - 1; copy j >= 1 starts at j·P - P/2
    (warming up beside copy j - 1) and is used from j·P to (j + 1)·P - 1."""
    half = period // 2
    out = {}
    for n in frames:
        r = 0 if n < period else (n // period) * period - half
        out[n] = ckpt.model(x[r:n + 1][None])[0, -1].softmax(-1)
    return out


def push_all(rec: Recognizer, audio: np.ndarray, chunk: int) -> torch.Tensor:
    outs = [rec.push(audio[i:i + chunk]) for i in range(0, audio.size, chunk)]
    assert all(isinstance(o, np.ndarray) and o.dtype == np.float32 for o in outs)
    return torch.from_numpy(np.concatenate(outs))


def events_of(post: torch.Tensor) -> list:
    det = Detector(LABELS, LOOSE, frame_seconds=FC.hop_ms / 1000, first_frame_end=FC.win_length / SR)
    return det.update(post.numpy())


def assert_same_events(a: list, b: list) -> None:
    assert [(e.label, e.t) for e in a] == [(e.label, e.t) for e in b]
    assert all(abs(x.score - y.score) < 1e-5 for x, y in zip(a, b))


# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("conv", [0, 16, "ens"])
def test_stream_without_refresh_equals_offline(ckpts, signal, conv):
    ckpt = ckpts[conv]
    rec = Recognizer(ckpt, refresh_s=None)
    post = push_all(rec, signal, 1600)
    ref = ref_offline(ckpt, signal)
    assert post.shape == ref.shape == (398, len(LABELS))
    assert (post - ref).abs().max().item() <= 1e-4
    np.testing.assert_allclose(post.sum(-1).numpy(), 1.0, atol=1e-5)
    assert rec.n == 398


@pytest.mark.parametrize("kw", [dict(refresh_s=3.0), dict(refresh_s=None), dict(mode="window", window_s=0.5)],
                         ids=["refresh3", "norefresh", "window"])
def test_chunk_size_independence(ckpts, signal, kw):
    ckpt = ckpts[16]
    base = push_all(Recognizer(ckpt, **kw), signal, 16000)
    base_events = events_of(base)
    assert len(base_events) >= 2, "the test detector should fire on this signal, or the event check is empty"
    for chunk in (160, 441, 1600):
        post = push_all(Recognizer(ckpt, **kw), signal, chunk)
        assert post.shape == base.shape
        assert (post - base).abs().max().item() <= 1e-5, chunk
        assert_same_events(events_of(post), base_events)
    # one sample at a time, on a shorter recording (1.5 s) to keep it fast
    short = signal[: int(1.5 * SR)]
    base_s = push_all(Recognizer(ckpt, **kw), short, 16000)
    post = push_all(Recognizer(ckpt, **kw), short, 1)
    assert post.shape == base_s.shape == (148, len(LABELS))
    assert (post - base_s).abs().max().item() <= 1e-5
    assert_same_events(events_of(post), events_of(base_s))
    # and the prefix of the long run: later audio never changes earlier posteriors
    assert (base[:148] - base_s).abs().max().item() <= 1e-5


@pytest.mark.parametrize("conv", [0, 16, "ens"])
def test_refresh_semantics(ckpts, signal, conv):
    ckpt = ckpts[conv]
    audio = signal[: 2 * SR]
    rec = Recognizer(ckpt, refresh_s=0.5)
    assert rec.period == 50
    post = push_all(rec, audio, 441)
    x = features(ckpt, audio)
    assert post.shape[0] == x.shape[0] == 198
    # frames around every start of a new copy (24|25, 74|75, ...), every switch (49|50, ...) and a few others
    frames = sorted({0, 1, 10} | {k + d for k in range(25, 198, 25) for d in (-1, 0, 1) if k + d < 198} | {197})
    ref = ref_refresh(ckpt, x, 50, frames)
    for n in frames:
        assert (post[n] - ref[n]).abs().max().item() <= 1e-5, n
    # the refresh changes the posteriors (so the comparison above can tell the difference)
    full = ref_offline(ckpt, audio)
    assert (post[:50] - full[:50]).abs().max().item() <= 1e-5  # before the first switch: one copy from 0
    assert (post[60:] - full[60:]).abs().max().item() > 1e-3


def test_refresh_default_period(ckpts, signal):
    """refresh_s=3: copy 0 runs from the start up to frame 300, then copy 1 (started at 150) takes over."""
    ckpt = ckpts[16]
    post = push_all(Recognizer(ckpt, refresh_s=3.0), signal, 1600)
    x = features(ckpt, signal)
    full = ref_offline(ckpt, signal)
    assert (post[:300] - full[:300]).abs().max().item() <= 1e-4
    ref = ref_refresh(ckpt, x, 300, [299, 300, 301, 397])
    for n, r in ref.items():
        assert (post[n] - r).abs().max().item() <= 1e-5, n
    assert (post[300] - full[300]).abs().max().item() > 1e-4


@pytest.mark.parametrize("window_s,every", [(0.3, 1), (1.5, 1), (0.3, 4)])
def test_window_mode(ckpts, signal, window_s, every):
    ckpt = ckpts[16]
    audio = signal[: int(2.5 * SR)]
    rec = Recognizer(ckpt, mode="window", window_s=window_s, every=every)
    W = rec.window
    assert W == round(window_s * 100)
    post = push_all(rec, audio, 1000)
    x = features(ckpt, audio)
    assert post.shape[0] == x.shape[0]
    with torch.no_grad():
        for t in [0, 1, 2, 5, W - 1, W, W + 1, W + 7, x.shape[0] - 1]:
            s = (t // every) * every  # the last frame at which the window was rerun
            ref = ckpt.model(x[max(0, s - W + 1):s + 1][None])[0, -1].softmax(-1)
            assert (post[t] - ref).abs().max().item() <= 1e-5, t


@pytest.mark.parametrize("kw", [dict(refresh_s=0.7), dict(refresh_s=None), dict(mode="window", window_s=0.5)],
                         ids=["refresh", "norefresh", "window"])
def test_reset_gives_identical_second_pass(ckpts, signal, kw):
    rec = Recognizer(ckpts[16], **kw)
    audio = signal[: 2 * SR]
    first = push_all(rec, audio, 1234)
    rec.reset()
    assert rec.n == 0
    second = push_all(rec, audio, 1234)
    assert torch.equal(first, second)


def test_frame_time_and_small_pushes(ckpts):
    rec = Recognizer(ckpts[0])
    for i in (0, 1, 7, 100, 12345):
        assert rec.frame_time(i) == pytest.approx((i * 160 + 480) / 16000)
    assert rec.frame_seconds == pytest.approx(0.01)
    assert rec.push(np.zeros(0, dtype=np.float32)).shape == (0, len(LABELS))
    assert rec.push(np.zeros(479, dtype=np.float32)).shape == (0, len(LABELS))  # not yet one frame
    assert rec.push(np.zeros(1, dtype=np.float32)).shape == (1, len(LABELS))  # 480 samples: frame 0
    assert rec.push(np.zeros(159, dtype=np.float32)).shape == (0, len(LABELS))
    assert rec.push(np.zeros(321, dtype=np.float32)).shape == (3, len(LABELS))  # 960 samples: frames 1-3
    with pytest.raises(ConfigError, match="mode"):
        Recognizer(ckpts[0], mode="batch")
    for bad in (-3, 0.001, float("nan"), float("inf"), "3", True):  # a refresh every 2 frames never hears a word
        with pytest.raises(ConfigError, match="refresh_s"):
            Recognizer(ckpts[0], refresh_s=bad)
    for chunk in (np.zeros((480, 2), np.float32), np.zeros(480, np.int16)):  # stereo would be read as 960 samples
        with pytest.raises(AudioFormatError, match="front end takes mono float"):
            rec.push(chunk)


def test_listen_loop_matches_direct_pipeline(ckpts, signal, tmp_path):
    from voice_gru.audio import load_audio, save_wav
    from voice_gru.live import EventWriter, file_chunks, listen_loop
    from voice_gru.spotter import END_SILENCE_S, CommandSpotter

    wav = tmp_path / "s.wav"
    save_wav(wav, signal)
    audio = load_audio(wav)
    ckpt = ckpts[16]
    ended = np.concatenate([audio, np.zeros(int(END_SILENCE_S * 16000), np.float32)])  # the loop's end: silence after
    direct = events_of(push_all(Recognizer(ckpt, remove_dc=True), ended, ended.size))  # as the spotter runs it
    assert direct
    got = []
    writer = EventWriter(tmp_path / "ev" / "events.jsonl")
    stats = listen_loop(file_chunks(wav, chunk_ms=100), CommandSpotter(ckpt, decision=LOOSE),
                        lambda c: (got.append(c), writer.write(c)))
    writer.close()
    assert_same_events(got, direct)
    assert stats.events == got
    assert stats.seconds == pytest.approx(4.0)
    lines = (tmp_path / "ev" / "events.jsonl").read_text().splitlines()
    assert len(lines) == len(got)
    # max_seconds stops early
    stats2 = listen_loop(file_chunks(wav, chunk_ms=100), CommandSpotter(ckpt, decision=LOOSE),
                         lambda c: None, max_seconds=1.0)
    assert stats2.seconds == pytest.approx(1.0)
    # ... and what it stopped at is decided as at a file's end: --seconds equal to the file's length lost the
    # end-of-file decision (the silence after the last word)
    at_end: list = []
    listen_loop(file_chunks(wav, chunk_ms=100), CommandSpotter(ckpt, decision=LOOSE), at_end.append, max_seconds=4.0)
    assert_same_events(at_end, direct)
    cut = events_of(push_all(Recognizer(ckpt, remove_dc=True), np.concatenate(
        [audio[:16000], np.zeros(int(END_SILENCE_S * 16000), np.float32)]), 16000 + int(END_SILENCE_S * 16000)))
    assert_same_events(stats2.events, cut)


# --------------------------------------------------------------------------------------------
# with the shipped model: words are actually detected


def _trained() -> Checkpoint:
    path = default_model_path()
    if not Path(path).is_file():
        pytest.skip(f"no trained model at {path} (train one with `voice-gru train`)")
    return load_checkpoint(path)


def test_shipped_model_detects_words_in_a_stream(clips):
    ckpt = _trained()
    f = ckpt.features
    rng = np.random.default_rng(3)

    def quiet(seconds: float) -> np.ndarray:
        return (0.002 * rng.standard_normal(int(seconds * f.sample_rate))).astype(np.float32)

    for word in ("yes", "no", "stop"):
        audio = np.concatenate([quiet(0.5), clips[word], quiet(1.0)])
        rec = Recognizer(ckpt)
        det = Detector(ckpt.labels, frame_seconds=f.hop_ms / 1000, first_frame_end=f.win_length / f.sample_rate)
        events = det.update(push_all(rec, audio, 1600).numpy())
        assert events, f"no detection of '{word}'"
        assert events[0].label == word
        assert 0.5 < events[0].t < 2.5
    # low noise alone: nothing fires
    rec = Recognizer(ckpt)
    det = Detector(ckpt.labels)
    assert det.update(push_all(rec, quiet(5.0), 1600).numpy()) == []


def test_refresh_runs_two_copies_only_while_a_new_one_warms_up(ckpts, signal):
    """The second copy costs compute only in the half period before each switch."""
    rec = Recognizer(ckpts["ens"], refresh_s=0.5)
    batches = []
    step = rec.net.posteriors

    def counting(x, state):
        batches.append((x.shape[0], x.shape[1]))
        return step(x, state)

    rec.net.posteriors = counting
    push_all(rec, signal[: 2 * SR], 441)
    two = sum(t for b, t in batches if b == 2)
    one = sum(t for b, t in batches if b == 1)
    assert one + two == 198 and {b for b, _ in batches} == {1, 2}
    # frames 25-49, 75-99, 125-149, 175-197 run as a batch of two; the rest alone
    assert two == 25 * 3 + 23 and one == 198 - two


@pytest.mark.parametrize("mode", ["stream", "window"])
def test_numpy_blas_runs_on_the_calling_thread_while_the_recognizer_computes(ckpts, signal, mode):
    """OpenBLAS would spread the products over every core and leave its workers spinning: inside
    push the BLAS has one thread, outside it the process's own setting is back; None leaves it alone."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    for want, expect_inside in ((1, {1}), (None, {3})):
        rec = Recognizer(ckpts[16], mode=mode, blas_threads=want)
        seen = []
        step = rec.net.posteriors

        def spying(x, state, seen=seen, step=step):
            seen.append(blas_threads())
            return step(x, state)

        rec.net.posteriors = spying
        with threadpool_limits(3, user_api="blas"):
            if blas_threads() != {3}:
                pytest.skip("NumPy's BLAS here reports no thread count to change")
            push_all(rec, signal[:SR], 1600)
            assert seen and all(s == expect_inside for s in seen)
            assert blas_threads() == {3}
