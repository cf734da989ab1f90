"""CommandSpotter, the Python API over the live path: input formats, sensitivity settings, and the
shipped model on the bundled recording (known words) at 16 kHz and as 48 kHz stereo int16."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tiny_data import TEST_DATA
from voice_gru import AudioFormatError, ConfigError
from voice_gru.audio import load_audio
from voice_gru.cli import main
from voice_gru.decision import Detector
from voice_gru.stream import Recognizer
from voice_gru.spotter import END_SILENCE_S, CommandSpotter, as_float_mono


ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "voice_gru" / "assets" / "example.wav"
MODEL = ROOT / "voice_gru" / "models" / "default.pt"
needs_model = pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model voice_gru/models/default.pt is missing")


def test_as_float_mono_scales_and_downmixes():
    ints = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    np.testing.assert_allclose(as_float_mono(ints), [0.0, 0.5, -1.0, 32767 / 32768])
    np.testing.assert_allclose(as_float_mono(np.array([128, 192, 0], dtype=np.uint8)), [0.0, 0.5, -1.0])
    np.testing.assert_allclose(as_float_mono(np.array([1 << 30], dtype=np.int32)), [0.5])
    stereo = np.array([[0.2, 0.4], [-1.0, 1.0]], dtype=np.float64)
    out = as_float_mono(stereo)
    assert out.dtype == np.float32 and out.shape == (2,)
    np.testing.assert_allclose(out, [0.3, 0.0], atol=1e-7)
    np.testing.assert_array_equal(as_float_mono(np.ones((3, 1), np.float32)), np.ones(3, np.float32))


def test_bytes_are_refused_with_the_way_to_decode_them():
    with pytest.raises(AudioFormatError, match=r"bytes or text: decode it first, e.g. np.frombuffer\(data, np.int16\)"):
        as_float_mono(b"\x00\x01" * 800)


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 2), np.float32), np.array(["a", "b"]), np.zeros(3, np.complex64),
                                 np.zeros((1600, 0), np.float32), np.zeros((1, 1600), np.int16),
                                 np.zeros((2, 64), np.float32)])  # channels first, 64-frame periods: 64 "channels"
def test_as_float_mono_rejects_what_is_not_audio(bad):
    with pytest.raises(AudioFormatError, match="audio chunk"):
        as_float_mono(bad)


@pytest.mark.parametrize("bad, reason", [
    (np.array([0.1, np.nan, 0.2], np.float32), "non-finite"),      # would poison the GRU state silently
    (np.array([0.0, 1e39]), "non-finite"),                          # float64 that overflows float32
    (np.array([[0.0, 0.0], [np.inf, 0.0]]), "first at index 1"),
    (np.array([0, 12000, -32768], np.int16).astype(np.float32), "pass the integer array itself"),  # int16 scale as float
    (np.array([0, 12000, -3000]), "int64"),                         # a list of Python ints: no PCM scale
])
def test_as_float_mono_rejects_samples_it_would_misread(bad, reason):
    with pytest.raises(AudioFormatError, match=reason):
        as_float_mono(bad)
    as_float_mono(np.array([1.5, -2.0], np.float32))  # a little over full scale is still audio


@pytest.mark.parametrize("kwargs, reason", [
    ({"sample_rate": 0}, "sample_rate"), ({"sample_rate": float("nan")}, "sample_rate"), ({"sample_rate": "16000"}, "sample_rate"),
    ({"sample_rate": True}, "sample_rate"), ({"mode": "batch"}, "mode"), ({"refresh_s": -3}, "refresh_s"),
    ({"decision": {"smooth_ms": 100}}, "DecisionConfig"), ({"model": 123}, "checkpoint path"),
    ({"false_accepts_per_hour": -1}, "positive number"), ({"false_accepts_per_hour": "5"}, "positive number"),
    ({"false_accepts_per_hour": float("nan")}, "positive number"),
])
@needs_model
def test_bad_settings_are_one_config_error(kwargs, reason):
    with pytest.raises(ConfigError, match=reason):
        CommandSpotter(**kwargs)


def _example() -> tuple[np.ndarray, dict]:
    from voice_gru.audio import load_audio

    return load_audio(EXAMPLE), json.loads(EXAMPLE.with_suffix(".json").read_text())


def _run(spotter: CommandSpotter, audio: np.ndarray, chunk: int) -> list:
    return [cmd for i in range(0, len(audio), chunk) for cmd in spotter.process(audio[i:i + chunk])]


def _event_at(truth: dict, t: float) -> int | None:
    """Which of the recording's words has a clip containing ``t`` or ending at most 1 s before it."""
    for i, ev in enumerate(truth["events"]):
        if ev["start"] <= t <= ev["end"] + 1.0:
            return i
    return None


@pytest.fixture(scope="module")
def spotter16() -> CommandSpotter:
    if not MODEL.is_file():
        pytest.skip("the shipped model voice_gru/models/default.pt is missing")
    return CommandSpotter()


@needs_model
def test_shipped_model_finds_the_example_words(spotter16):
    audio, truth = _example()
    spotter16.reset()
    got = _run(spotter16, audio, 1600)
    commands = [ev["label"] for ev in truth["events"] if ev["label"] not in ("_unknown_", "_silence_")]
    # the bundled recording's own label file says what was said; every detection must be one of those words
    assert len(got) >= 3, got
    said = [_event_at(truth, c.t) for c in got]
    assert all(i is not None and truth["events"][i]["label"] == c.label for i, c in zip(said, got)), \
        [(c.label, round(c.t, 2)) for c in got]
    assert len(set(said)) == len(got) <= len(commands)  # no word fired twice
    scores = spotter16.scores
    assert list(scores) == spotter16.labels and sum(scores.values()) == pytest.approx(1.0, abs=1e-4)


@needs_model
def test_same_commands_as_listen_and_after_reset(spotter16):
    from voice_gru.streams import evaluate_stream

    audio, truth = _example()
    spotter16.reset()
    first = _run(spotter16, audio, 1600)
    spotter16.reset()
    again = _run(spotter16, audio, 4000)  # chunking does not matter either
    assert [(c.label, c.t) for c in again] == [(c.label, c.t) for c in first]
    ref = evaluate_stream(spotter16.ckpt, audio, truth)  # what `voice-gru listen --input` fires
    assert [(e["label"], e["t"]) for e in ref["events"]] == [(c.label, round(c.t, 4)) for c in first]
    spotter16.reset()
    whole = spotter16.process(audio)  # one call, run in PIECE_S pieces inside: the same commands and posteriors
    assert [(c.label, c.t) for c in whole] == [(c.label, c.t) for c in first]
    f = spotter16.ckpt.features
    assert len(spotter16.posteriors) == 1 + (len(audio) - f.win_length) // f.hop_length  # every frame's, not a piece's


@needs_model
def test_48k_stereo_int16_gives_the_same_commands(spotter16):
    import librosa

    audio, _ = _example()
    spotter16.reset()
    ref = _run(spotter16, audio, 1600)
    hi = librosa.resample(audio, orig_sr=16000, target_sr=48000, res_type="soxr_hq")
    stereo = np.stack([1.2 * hi, 0.8 * hi], axis=1)  # louder left, quieter right: the downmix is the original
    pcm = np.round(np.clip(stereo, -1, 1) * 32767).astype(np.int16)
    spotter = CommandSpotter(spotter16.ckpt, sample_rate=48000)
    got = _run(spotter, pcm, 1234)  # odd-sized blocks
    assert [c.label for c in got] == [c.label for c in ref]
    # int16 rounding and two resamplings, a few ms of filter delay: the same words at the same moments
    assert all(abs(a.t - b.t) <= 0.05 for a, b in zip(got, ref)), [(a.t, b.t) for a, b in zip(got, ref)]


@needs_model
def test_flush_runs_the_audio_the_resampler_holds(spotter16):
    audio, _ = _example()
    spotter16.reset()
    spotter16.process(audio)
    frames16 = spotter16.recognizer.n
    spotter = CommandSpotter(spotter16.ckpt, sample_rate=44100.0)
    assert spotter.sample_rate == 44100 and isinstance(spotter.sample_rate, int)
    x = np.interp(np.arange(round(audio.size * 44100 / 16000)) * 16000 / 44100, np.arange(audio.size), audio)
    spotter.process(x.astype(np.float32))
    held = frames16 - spotter.recognizer.n
    assert held > 0  # the resampler's filter delay: ~25 ms not yet out
    spotter.flush()
    pad = round(END_SILENCE_S * 100)  # frames of the silence after it
    assert abs(spotter.recognizer.n - (frames16 + pad)) <= 1 and len(spotter.posteriors) in (held + pad, held + pad + 1)
    assert spotter.flush() == [] and CommandSpotter(spotter16.ckpt).flush() == []


@needs_model
def test_a_command_at_the_very_end_of_a_recording_is_decided_by_flush(spotter16, capsys):
    """tests/data's "no" clip ends 0.1 s after its word, before the detector decides: only the silence flush()
    runs after it finishes the decision (listen --input does so when its input ends)."""
    clip = load_audio(TEST_DATA / "no" / "03401e93_nohash_0.wav", 16000)
    spotter16.reset()
    assert spotter16.process(clip) == []
    end = spotter16.flush()
    assert [c.label for c in end] == ["no"] and clip.size / 16000 < end[0].t <= clip.size / 16000 + END_SILENCE_S
    assert main(["listen", "--input", str(TEST_DATA / "no" / "03401e93_nohash_0.wav")]) == 0
    assert re.search(r"\n +[\d.]+s +no +score", capsys.readouterr().out)


@needs_model
def test_sensitivity_settings(spotter16):
    ckpt = spotter16.ckpt
    assert spotter16.thresholds == {k: pytest.approx(v) for k, v in ckpt.thresholds.items()}
    points = ckpt.meta["calibration"]["operating_points"]
    five = max((p for p in points if p["target_fa_per_hour"] <= 5), key=lambda p: p["recall"])
    s5 = CommandSpotter(ckpt, false_accepts_per_hour=5)
    assert s5.thresholds == {k: pytest.approx(v) for k, v in five["thresholds"].items()}
    assert s5.operating_point["target_fa_per_hour"] <= 5
    assert set(CommandSpotter(ckpt, threshold=0.8).thresholds.values()) == {0.8}
    one = CommandSpotter(ckpt, threshold={"stop": 0.99}).thresholds
    assert one["stop"] == 0.99 and one["go"] == pytest.approx(ckpt.thresholds["go"])
    with pytest.raises(ConfigError, match="not both"):
        CommandSpotter(ckpt, threshold=0.5, false_accepts_per_hour=1)
    # a mapping adjusts single commands of a point; the others keep the point's values
    adjusted = CommandSpotter(ckpt, threshold={"stop": 0.99}, false_accepts_per_hour=5).thresholds
    assert adjusted == {k: pytest.approx(0.99 if k == "stop" else v) for k, v in five["thresholds"].items()}
    with pytest.raises(ConfigError, match=r"threshold 90: must be a posterior from 0.01 to 1 \(1.01: off\)"):
        CommandSpotter(ckpt, threshold=90)
    # at 0 a command fired once a stream: it re-arms only below half its threshold
    for low in (0, 0.0, 0.001, {"stop": 0}):
        with pytest.raises(ConfigError, match="must be a posterior from 0.01 to 1"):
            CommandSpotter(ckpt, threshold=low)
    assert CommandSpotter(ckpt, threshold=0.01).thresholds["stop"] == 0.01
    with pytest.raises(ConfigError, match="'jump': not a command"):
        CommandSpotter(ckpt, threshold={"jump": 0.5})
    with pytest.raises(ConfigError, match="not a command"):
        CommandSpotter(ckpt, threshold={"_unknown_": 0.5})
    with pytest.raises(ConfigError, match="sample_rate"):
        CommandSpotter(ckpt, sample_rate=0)
    for absurd in (1e14, 1e-3, 5e-324):  # the resampler hung, ran out of memory or crashed on these
        with pytest.raises(ConfigError, match=r"sample_rate .*: must be from 1000 to 1e\+06 samples per second"):
            CommandSpotter(ckpt, sample_rate=absurd)


@needs_model
def test_one_spotter_refuses_a_second_thread(spotter16):
    """Two threads feeding one spotter corrupted its compiled state and aborted the process."""
    audio, _ = _example()
    inside, release = threading.Event(), threading.Event()
    spotter = CommandSpotter(spotter16.ckpt)
    first = spotter.recognizer.push

    def slow_push(x):  # holds the first caller inside process() while the second arrives
        inside.set()
        release.wait(10)
        return first(x)

    spotter.recognizer.push = slow_push
    worker = threading.Thread(target=spotter.process, args=(audio[:1600],))
    worker.start()
    assert inside.wait(10)
    for call in (lambda: spotter.process(audio[:1600]), spotter.reset, spotter.flush):
        with pytest.raises(RuntimeError, match="called while CommandSpotter.process runs .*: one spotter is one stream"):
            call()
    release.set()
    worker.join(10)
    spotter.recognizer.push = first
    spotter.reset()
    fresh = CommandSpotter(spotter16.ckpt)
    assert [c.label for c in _run(spotter, audio, 1600)] == [c.label for c in _run(fresh, audio, 1600)]

@needs_model
def test_a_threshold_above_every_posterior_never_fires(spotter16):
    audio, _ = _example()
    quiet = CommandSpotter(spotter16.ckpt, threshold=1.0)
    assert _run(quiet, audio, 1600) == []


@needs_model
def test_only_the_chosen_commands_fire_and_at_the_same_moments(spotter16):
    audio, _ = _example()
    spotter16.reset()
    every = _run(spotter16, audio, 1600)
    assert {c.label for c in every} >= {"up", "down"}
    only_up = CommandSpotter(spotter16.ckpt, commands=["up", "stop"])
    assert only_up.commands == ("up", "stop")  # the model's order
    assert only_up.thresholds["up"] == spotter16.thresholds["up"] and only_up.thresholds["down"] > 1.0
    assert [(c.label, c.t) for c in _run(only_up, audio, 1600)] == [(c.label, c.t) for c in every if c.label == "up"]
    assert CommandSpotter(spotter16.ckpt, commands="up").commands == ("up",)
    for bad, reason in ((["up", "jump"], "commands: 'jump': not a command of this model"), ([], "commands: none given"),
                        (5, "commands 5: expected command names")):
        with pytest.raises(ConfigError, match=reason):
            CommandSpotter(spotter16.ckpt, commands=bad)
    # an iterator is read once: it was used up by the check and left every command listening, at the 100/h point
    once = CommandSpotter(spotter16.ckpt, commands=iter(["up", "stop"]), false_accepts_per_hour=1)
    assert once.commands == ("up", "stop")
    assert once.operating_point == CommandSpotter(spotter16.ckpt, commands=["up", "stop"],
                                                  false_accepts_per_hour=1).operating_point
    from voice_gru.calibrate import operating_point
    for bad, reason in (([], "commands: none given"), (["jump"], "commands: 'jump': not a command")):
        with pytest.raises(ConfigError, match=reason):
            operating_point(spotter16.ckpt, 1, bad)
    with pytest.raises(ConfigError, match=r"^false_accepts_per_hour 0.01: the lowest calibrated rate"):  # its own name
        CommandSpotter(spotter16.ckpt, false_accepts_per_hour=0.01)


@pytest.mark.slow
@pytest.mark.audio_stack
@needs_model
def test_listen_hears_the_fake_microphone(pulse_mic, spotter16):
    audio, _ = _example()
    spotter16.reset()
    expected = [c.label for c in _run(spotter16, audio, 1600)]
    spotter = CommandSpotter(spotter16.ckpt)
    got: list = []
    listener = threading.Thread(target=lambda: got.extend(spotter.listen("pulse", seconds=26)), daemon=True)
    listener.start()
    time.sleep(4.0)  # PulseAudio delivers the first block 1.5-2 s after the stream opens
    pulse_mic.play(EXAMPLE)
    listener.join(40)
    assert not listener.is_alive(), "listen() did not stop after its seconds of audio"
    assert [c.label for c in got] == expected


class _LossyMic:
    """Stands in for mic.MicrophoneStream: serves a recording in 100 ms blocks and reports losses."""

    def __init__(self, audio: np.ndarray, lost_at: dict[int, tuple[int, int]], rate: int = 16000) -> None:
        from voice_gru.mic import InputDevice

        self.blocks = [audio[i:i + 1600] for i in range(0, audio.size, 1600)]
        self.lost_at, self.i, self.overflows, self.dropped_blocks = lost_at, 0, 0, 0
        self.device, self.samplerate = InputDevice(0, "usb", "ALSA", 1, float(rate)), rate

    def __call__(self, device, block_ms, out_rate):
        return self

    def open(self):
        return self

    def close(self):
        pass

    def read(self, timeout):
        self.overflows, self.dropped_blocks = self.lost_at.get(self.i, (self.overflows, self.dropped_blocks))
        self.i += 1
        return self.blocks[self.i - 1] if self.i <= len(self.blocks) else np.zeros(1600, np.float32)


@needs_model
def test_listen_reports_lost_microphone_audio(spotter16, monkeypatch, caplog):
    audio, _ = _example()
    spotter16.reset()
    expected = [(c.label, c.t) for c in _run(spotter16, audio, 1600) + spotter16.flush()]  # seconds= ends as a file
    from voice_gru import mic

    monkeypatch.setattr(mic, "MicrophoneStream", _LossyMic(audio, {5: (1, 0), 40: (1, 2)}))
    spotter = CommandSpotter(spotter16.ckpt)
    with caplog.at_level("WARNING", logger="voice_gru.spotter"):
        got = [(c.label, c.t) for c in spotter.listen("usb", seconds=audio.size / 16000)]
    assert got == expected  # the counters only report; the audio the stand-in delivered is all heard
    assert spotter.lost_blocks == 3
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and warnings[0].startswith("microphone usb: 1 block(s) of 100 ms lost")
    assert "input overflows: 1, dropped because the audio was not taken fast enough: 2" in warnings[1]


@needs_model
def test_listen_for_some_seconds_ends_as_listen_seconds_does(spotter16, monkeypatch, caplog):
    """listen(seconds=S) returned at the first block past S: that block heard whole, and no silence after the last
    word to decide it (`listen --seconds` cuts the block and ends as a file does); an 8 kHz microphone went unsaid."""
    audio, _ = _example()
    from voice_gru import mic

    seconds = 14.35  # not a whole number of blocks; the recording's "up" ends just before (README: 14.13 s)
    fresh = CommandSpotter(spotter16.ckpt)
    cut = audio[:int(seconds * 16000)]
    expected = [(c.label, c.t) for c in _run(fresh, cut, 1600) + fresh.flush()]
    monkeypatch.setattr(mic, "MicrophoneStream", _LossyMic(audio, {}))
    spotter = CommandSpotter(spotter16.ckpt)
    assert [(c.label, c.t) for c in spotter.listen("usb", seconds=seconds)] == expected
    assert spotter.detector.n == fresh.detector.n  # the same frames: the last block cut at S
    monkeypatch.setattr(mic, "MicrophoneStream", _LossyMic(audio, {}, rate=8000))
    with caplog.at_level("WARNING", logger="voice_gru.spotter"):
        list(CommandSpotter(spotter16.ckpt).listen("usb", seconds=0.5))
    assert [r.getMessage() for r in caplog.records if "is recorded at 8000 Hz" in r.getMessage()]


@needs_model
def test_listen_holds_the_spotter_until_its_loop_ends(spotter16, monkeypatch):
    """process() or reset() while listen() ran was not refused: two threads doing it aborted the process (heap
    corruption), one thread mixed two streams."""
    audio, _ = _example()
    from voice_gru import mic

    monkeypatch.setattr(mic, "MicrophoneStream", _LossyMic(audio, {}))
    spotter = CommandSpotter(spotter16.ckpt)
    heard = spotter.listen("usb", seconds=audio.size / 16000)
    next(iter(heard), None)  # the loop has started (or ended: a generator holds it only while it runs)
    stream = spotter.listen("usb", seconds=1.0)
    for call in (lambda: spotter.process(audio[:1600]), spotter.reset, lambda: next(stream)):
        with pytest.raises(RuntimeError, match="called while CommandSpotter.listen runs"):
            call()
    heard.close()  # the caller's loop ends: the spotter is free again
    assert spotter.process(audio[:1600]) == []


@needs_model
def test_one_long_chunk_is_converted_piece_by_piece(spotter16):
    """An hour in one call held four copies of it (int16 -> float32, |x|, the downmix): memory grew with its length."""
    import tracemalloc

    audio, _ = _example()
    ints = (np.tile(audio, 6) * 32767).astype(np.int16)
    stereo = np.stack([ints, ints], axis=1)  # 2 minutes of 2-channel int16: 7.7 MB
    spotter = CommandSpotter(spotter16.ckpt)

    def peak_of(chunk: np.ndarray) -> tuple[int, list]:
        spotter.reset()
        tracemalloc.start()
        commands = spotter.process(chunk)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak, commands

    one_piece, _ = peak_of(stereo[:160_000])
    peak, got = peak_of(stereo)
    assert peak < one_piece + 2_000_000, (peak, one_piece)  # 12 pieces: was one piece + 3 copies of 7.7 MB
    fresh = CommandSpotter(spotter16.ckpt)
    assert [(c.label, c.t) for c in got] == [(c.label, c.t) for c in _run(fresh, stereo, 160000)]
    # a bad sample in a later piece refuses the whole chunk before any of it is heard, naming its place in the chunk
    bad = np.tile(audio, 2).astype(np.float32)
    bad[200_000] = np.nan
    spotter.reset()
    with pytest.raises(AudioFormatError, match="first at index 200000"):
        spotter.process(bad)
    assert spotter.detector.n == 0


@needs_model
def test_raw_bytes_given_to_process_are_refused(spotter16):
    """A bytearray became uint8 samples (noise) before the check for bytes could see it."""
    import array

    # a memoryview (a capture callback's buffer) was read as 8-bit PCM: twice as many samples of noise
    for raw in (b"\x00\x01" * 800, bytearray(b"\x00\x01" * 800), memoryview(b"\x00\x01" * 800),
                memoryview(bytearray(b"\x00\x01" * 800)), memoryview(b"\x00\x01" * 800).cast("c"),
                array.array("B", b"\x00\x01" * 800)):
        with pytest.raises(AudioFormatError, match="given as bytes or text: decode it first"):
            spotter16.process(raw)
    assert as_float_mono(np.zeros((4, 2), np.uint8) + 128).tolist() == [0.0] * 4  # uint8 PCM as an array is audio


def test_loud_float_audio_the_resampler_rings_past_the_limit_is_heard(spotter16):
    """A square wave of 15 at 44.1 kHz (within the 16 allowed) rang to 17.9 in the resampler: the front end refused
    the chunk after the resampler had taken it, and the silence after it too."""
    loud = CommandSpotter(spotter16.ckpt, sample_rate=44100)
    square = np.where(np.arange(44100) % 100 < 50, 15.0, -15.0).astype(np.float32)
    loud.process(square)
    loud.process(np.zeros(13230, np.float32))
    assert 120 <= loud.detector.n <= 128  # 1.3 s: ~128 frames less what the resampler still holds (it heard 8)
    loud.reset()
    loud.process(square)
    loud.flush()  # the tail the resampler held rang past the limit too: the last word's decision was lost
    assert loud.detector.n >= 140


def test_a_many_channel_streams_short_blocks_are_its_own(spotter16):
    """(samples, 16) blocks: a 10 s piece's 3-sample remainder, and a short last block, were refused as channels first."""
    rng = np.random.default_rng(0)
    whole = 0.01 * rng.standard_normal((160_003, 16)).astype(np.float32)
    spotter16.reset()
    spotter16.process(whole)  # 10 s pieces: the last is 3 samples of 16 channels
    assert spotter16.detector.n == 998  # (160,003 - 480) // 160 + 1 frames
    spotter16.process(whole[:5])  # the stream's last block
    spotter16.process(whole[:0])
    spotter16.reset()
    with pytest.raises(AudioFormatError, match=r"shape \(5, 16\).*transpose it"):  # a new stream: no channels known
        spotter16.process(whole[:5])
    spotter16.process(whole[:0])  # nothing to misread
    mono = spotter16.process(memoryview(np.zeros(1600, np.int16)).cast("B").cast("h"))  # int16 samples, zero-copy
    assert mono == [] and spotter16.detector.n == 8


def test_a_spotter_that_could_never_fire_is_refused(spotter16):
    """threshold=1.01 (off) for every command that can fire listened for nothing, as the command line refuses."""
    for kwargs in ({"threshold": 1.01}, {"commands": ["down"], "threshold": {"down": 1.01}},
                   {"threshold": dict.fromkeys(spotter16.commands, 1.01)}):
        with pytest.raises(ConfigError, match=r"^threshold .*: switch off every command that can fire"):
            CommandSpotter(spotter16.ckpt, **kwargs)
    assert CommandSpotter(spotter16.ckpt, commands=["down"], threshold={"up": 1.01}).thresholds["down"] < 1.0
    # off in the model's own calibration (no value met its budget): said so, not as a threshold nobody gave
    import dataclasses

    off = dataclasses.replace(spotter16.ckpt, thresholds={**spotter16.ckpt.thresholds, "stop": 1.01})
    with pytest.raises(ConfigError, match=r"^the model's calibrated thresholds: switch off every command that can "
                                          r"fire \(stop: a threshold of 1.01 is off\)"):
        CommandSpotter(off, commands=["stop"])


def test_api_odds_and_ends(spotter16, caplog):
    """A NumPy number as false_accepts_per_hour was refused as no number; a DecisionConfig's thresholds were silently
    not used; Recognizer(None) and GRUClassifier.step(x, None) raised AttributeError."""
    import dataclasses
    import logging

    from voice_gru.stream import Recognizer

    assert CommandSpotter(spotter16.ckpt, false_accepts_per_hour=np.float32(5.0)).thresholds == \
        CommandSpotter(spotter16.ckpt, false_accepts_per_hour=5).thresholds
    with caplog.at_level(logging.WARNING, logger="voice_gru.spotter"):
        CommandSpotter(spotter16.ckpt, decision=dataclasses.replace(spotter16.decision, thresholds={"stop": 0.2}))
    assert "its threshold(s) are not used" in caplog.text
    assert list(Recognizer(None).labels) == list(spotter16.labels)


@needs_model
def test_a_spotter_is_neither_copied_nor_pickled(spotter16):
    """copy.copy shared the stream's state with the copy; pickle failed deep inside with 'cannot pickle module'."""
    import copy
    import pickle

    for attempt in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError, match="is one running stream and is not copied or pickled"):
            attempt(spotter16)


@needs_model
def test_listen_reconnect_goes_on_where_the_microphone_left_off(spotter16, monkeypatch, caplog):
    """reconnect=True: the first microphone fails halfway; the one opened next delivers the rest, and the commands
    are those of the whole recording heard at once (one stream across the outage)."""
    from voice_gru import mic
    from voice_gru.errors import AudioDeviceError

    audio, _ = _example()
    spotter16.reset()
    expected = [(c.label, c.t) for c in _run(spotter16, audio, 1600) + spotter16.flush()]
    blocks = [audio[i:i + 1600] for i in range(0, audio.size, 1600)]
    halves = [blocks[:len(blocks) // 2], blocks[len(blocks) // 2:]]
    opened: list = []

    class HalfMic:
        def __init__(self, device, block_ms, out_rate):
            if len(opened) == 1:
                opened.append(None)  # the first try after the loss finds nothing
                raise AudioDeviceError("no device 'usb'")
            self.blocks, self.overflows, self.dropped_blocks = list(halves[len(opened) // 2]), 0, 0
            self.device, self.samplerate = mic.InputDevice(0, "usb", "ALSA", 1, 16000.0), 16000
            opened.append(self)

        def open(self):
            return self

        def close(self):
            pass

        def read(self, timeout):
            if self.blocks:
                return self.blocks.pop(0)
            if self is opened[0]:
                raise AudioDeviceError("audio input device usb stopped delivering audio")
            return np.zeros(1600, np.float32)

    monkeypatch.setattr(mic, "MicrophoneStream", HalfMic)
    monkeypatch.setattr(mic, "rescan_for", lambda device: None)
    spotter = CommandSpotter(spotter16.ckpt)
    with caplog.at_level("INFO", logger="voice_gru.spotter"):
        got = [(c.label, c.t) for c in spotter.listen("usb", seconds=audio.size / 16000, reconnect=True)]
    assert got == expected and len(opened) == 3
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "audio input device usb stopped delivering audio; waiting for it"
    assert messages[1].startswith("microphone usb is back after")
    with pytest.raises(AudioDeviceError, match="stopped delivering"):  # without reconnect: the error, as before
        opened.clear()
        list(CommandSpotter(spotter16.ckpt).listen("usb", seconds=audio.size / 16000))


@needs_model
def test_an_inverted_microphone_pair_still_hears_the_command(spotter16, tmp_path, capsys, caplog):
    """A stereo recording whose channels cancel (one inverted) was silence to the average: the first channel is
    heard instead, by CommandSpotter and by listen --input, which says so."""
    import soundfile as sf

    clip = load_audio(TEST_DATA / "stop" / "0fa1e7a9_nohash_0.wav", 16000)
    lead = (np.random.default_rng(0).standard_normal(4800) * 0.01).astype(np.float32)  # 0.3 s of room noise
    mono = np.concatenate([lead, clip])
    stereo = np.stack([mono, -mono], axis=1)
    assert not np.any(stereo.mean(axis=1))  # what averaging made of it
    spotter16.reset()
    assert [c.label for c in spotter16.process((stereo * 32767).astype(np.int16)) + spotter16.flush()] == ["stop"]
    path = tmp_path / "inverted.wav"
    sf.write(path, stereo, 16000, subtype="PCM_16")
    caplog.clear()
    assert main(["listen", "--input", str(path)]) == 0
    assert re.search(r"\n +[\d.]+s +stop +score", capsys.readouterr().out)
    said = [r.getMessage() for r in caplog.records if r.name == "voice_gru.audio"]  # stderr outside pytest
    assert len(said) == 1 and said[0].startswith("the two input channels cancel each other (their average is ")


@needs_model
def test_a_microphones_dc_offset_changes_no_command(spotter16):
    """tests/data's clips between bits of room noise, then the same with a 0.1 offset: without the live path's DC
    blocker the offset lost "no" (and moved the others by up to 40 ms); with it the commands are the same."""
    clips = [load_audio(p, 16000) for p in sorted(TEST_DATA.rglob("*.wav"))]
    rng = np.random.default_rng(0)
    x = np.concatenate([np.concatenate([(rng.standard_normal(8000) * 0.003).astype(np.float32), c]) for c in clips])
    heard = []
    for offset in (0.0, 0.1):
        spotter16.reset()
        heard.append([(c.label, c.t) for c in spotter16.process(x + offset) + spotter16.flush()])
    assert [label for label, _ in heard[0]] == ["no", "stop", "yes"] and heard[1] == heard[0]
    bare = Recognizer(spotter16.ckpt)  # without the blocker, as the live path was: the offset reaches the network
    detector = Detector(spotter16.labels, spotter16.decision, spotter16.thresholds)
    posts = bare.push(np.concatenate([x + 0.1, np.zeros(8000, np.float32)]))
    assert [c.label for c in detector.update(posts)] == ["stop", "yes"]
