"""The input monitor: levels against hand-computed values, each warning once and only where it applies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from voice_gru.input_level import FLOOR_DB, InputMonitor, LevelLimits, chunk_levels, narrowband

SR = 16000


def _chunks(x: np.ndarray, n: int = 1600):
    return [x[i:i + n] for i in range(0, x.size, n)]


def _sine(amplitude: float, seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_levels_against_hand_computed_values():
    peak, rms, share = chunk_levels(_sine(0.5, 1.0))  # 440 Hz: whole periods in 1 s, so RMS = 0.5 / sqrt(2)
    assert peak == pytest.approx(20 * np.log10(0.5), abs=1e-3)  # -6.02
    assert rms == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=1e-3)  # -9.03
    assert share == 0.0
    assert chunk_levels(np.full(100, -0.1, np.float32))[:2] == pytest.approx((-20.0, -20.0), abs=1e-4)
    assert chunk_levels(np.zeros(10)) == (FLOOR_DB, FLOOR_DB, 0.0) == chunk_levels(np.zeros(0))
    assert chunk_levels(np.array([1.0, -1.0, 0.5, 0.0]), 0.999)[2] == 0.5


def test_digital_silence_warned_once_after_its_limit():
    said: list[str] = []
    mon = InputMonitor("mic 'x'", SR, warn=said.append, hint="(try --device)")
    for c in _chunks(np.zeros(int(1.9 * SR), np.float32)):
        assert mon.update(c) == []
    new = mon.update(np.zeros(1600, np.float32))  # 2.0 s
    assert len(new) == 1 and said == new
    assert "mic 'x'" in new[0] and "digital silence" in new[0] and new[0].endswith("(try --device)")
    for c in _chunks(np.zeros(5 * SR, np.float32)):
        mon.update(c)
    assert len(said) == 1
    assert "7.0 s of digital silence" in mon.summary() and "every sample 0" in mon.summary()


def test_digital_silence_interrupted_is_not_warned():
    mon = InputMonitor("in", SR)
    quiet = np.full(1600, 1e-4, np.float32)  # a real microphone's faintest hiss is not zeros
    for i in range(60):
        assert "digital silence" not in " ".join(mon.update(quiet if i % 15 == 14 else np.zeros(1600, np.float32)))
    assert mon.zero_samples == 56 * 1600
    # samples near a zero crossing (below 1e-6) are sound, not digital silence, however small the chunk
    tiny = InputMonitor("in", SR)
    for x in np.tile(np.array([1e-3, 5e-7, -1e-3, -2e-7], np.float32), 1000):
        tiny.update(np.array([x]))
    assert tiny.zero_samples == 0


def test_clipping_warned_once_with_its_time():
    said: list[str] = []
    mon = InputMonitor("rec.wav", SR, warn=said.append)
    mon.update(_sine(0.5, 1.0))  # 1 s clean
    loud = np.clip(_sine(3.0, 0.1), -1, 1)  # 3x over full scale: most samples at +-1
    new = mon.update(loud)
    assert len(new) == 1 and "rec.wav clips" in new[0] and "at 0:00:01.0" in new[0]
    mon.update(loud)
    assert len(said) == 1 and mon.clipped_chunks == 2
    # a single full-scale sample in a chunk (0.06%) is below the 1% that counts as clipping
    one = _sine(0.5, 0.1)
    one[10] = 1.0
    assert InputMonitor("x", SR).update(one) == []


def test_quiet_input_hinted_after_its_time_unless_anything_was_loud():
    lim = LevelLimits(quiet_s=3.0, quiet_dbfs=-50.0)
    said: list[str] = []
    mon = InputMonitor("in", SR, limits=lim, warn=said.append)
    for c in _chunks(_sine(10 ** (-60 / 20), 2.9)):
        mon.update(c)
    assert said == []
    mon.update(_sine(10 ** (-60 / 20), 0.1))
    assert len(said) == 1 and "nothing louder than -60 dBFS in the first 3 s" in said[0]
    loud_once = InputMonitor("in", SR, limits=lim)
    loud_once.update(_sine(1e-3, 1.0))
    loud_once.update(_sine(0.1, 0.1))  # -20 dBFS once
    assert all(loud_once.update(c) == [] for c in _chunks(_sine(1e-3, 5.0)))
    # a run that ends before the warning was due: said at its end (a 20 s try at -62 dBFS ended with no word of why)
    short = InputMonitor("in", SR, limits=lim)
    short.update(_sine(10 ** (-60 / 20), 2.0))
    at_end = short.end()
    assert len(at_end) == 1 and "nothing louder than -60 dBFS in its 2.0 s of in:" in at_end[0] and short.end() == []
    assert mon.end() == [] and loud_once.end() == []  # said already; loud enough
    silent = InputMonitor("in", SR, limits=lim)
    silent.update(np.zeros(SR, np.float32))
    assert silent.end() == []  # digital silence has its own warning


def test_a_dc_offset_is_not_taken_for_sound():
    """A cheap microphone's offset (~0.05) lifted the levels to -26 dBFS, hid a gain set far too low, and made the
    band check say "nothing above 3 kHz" (the DC line dwarfed the hiss): levels and band are judged without it, as
    the recognizer hears the audio; mains hum below 150 Hz is not counted in the band either."""
    lim = LevelLimits(quiet_s=3.0, quiet_dbfs=-50.0)
    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(12 * SR) * 10 ** (-80 / 20)).astype(np.float32)  # -80 dBFS RMS, full band
    words = _sine(10 ** (-60 / 20), 12.0, 1000.0) * (np.arange(12 * SR) % SR < SR // 2)  # quiet speech stand-in
    for offset, hum in ((0.05, 0.0), (0.0, 0.07)):
        said: list[str] = []
        mon = InputMonitor("mic", SR, limits=lim, warn=said.append)
        x = hiss + words.astype(np.float32) + offset + _sine(hum, 12.0, 50.0)
        for c in _chunks(x.astype(np.float32)):
            mon.update(c)
        assert not [m for m in said if "carried nothing above" in m], said
        if not hum:  # the offset hid this one (a hum is sound: it is heard)
            assert [m for m in said if m.startswith("nothing louder than -5")], said  # the words' peaks and hiss
            assert mon.loudest < -55 and mon.median_rms_dbfs() < -60


def test_summary_median_level_to_a_decibel():
    mon = InputMonitor("in", SR)
    mon.update(_sine(0.01, 0.3))  # the DC filter's settling time: not judged
    assert mon.summary() == ("input level: 0.30 s heard, too little to judge; 0 clipping chunk(s); 0.0 s of digital "
                             "silence")  # not "every sample 0"
    for amp_db in (-40, -30, -20):  # a sine's RMS is its amplitude over sqrt(2) (441 Hz: whole periods in a chunk)
        mon.update(_sine(10 ** (amp_db / 20) * np.sqrt(2), 0.1, 441.0))
    assert mon.median_rms_dbfs() == -30
    assert "loudest sample -17.0 dBFS, median -30 dBFS RMS; 0 clipping chunk(s); 0.0 s of digital silence" in mon.summary()
    # of 100 ms blocks, whatever the chunks: it was the median of chunk levels (-57 dBFS at --chunk-ms 100, -33 at 5000)
    x = np.concatenate([_sine(10 ** (-40 / 20) * np.sqrt(2), 0.3 + 0.1 * i, 441.0) if i % 3 else
                        _sine(10 ** (-10 / 20) * np.sqrt(2), 0.1, 441.0) for i in range(12)])
    medians = set()
    for n in (160, 1600, 4410, x.size):
        mon = InputMonitor("in", SR)
        for i in range(0, x.size, n):
            mon.update(x[i:i + n])
        medians.add(mon.median_rms_dbfs())
    assert medians == {-40}


@pytest.mark.slow
def test_listen_says_a_muted_input_in_one_line_and_carries_on(tmp_path):
    import soundfile as sf

    wav = tmp_path / "muted.wav"
    sf.write(wav, np.zeros(3 * SR, np.int16), SR)
    r = subprocess.run([sys.executable, "-m", "voice_gru.cli", "listen", "--input", str(wav), "--no-view"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and f"{wav} has sent only digital silence" in warnings[0]
    assert "Traceback" not in r.stderr
    assert "input level: every sample 0" in r.stdout and "3.0 s of digital silence" in r.stdout


def test_narrowband_is_said_below_the_models_rate_only():
    assert narrowband("mic", 16000) is None and narrowband("mic", 48000) is None
    msg = narrowband("x.wav", 8000)
    assert msg.startswith("x.wav is recorded at 8000 Hz: nothing above 4 kHz reaches the model")
    assert "11.025 kHz" in narrowband("y.wav", 22050, 44100)


@pytest.mark.parametrize("how", ["file", "pipe"])
def test_listen_warns_of_narrowband_input_and_hears_it_all_the_same(tmp_path, how):
    """Telephone-rate audio is resampled and heard, with one line saying what it lacks; 16 kHz says nothing."""
    import soundfile as sf

    from voice_gru.audio import load_audio, resample

    example = load_audio(Path(__file__).resolve().parents[1] / "voice_gru" / "assets" / "example.wav")
    for rate in (8000, 16000):
        x = (resample(example, SR, rate) * 32767).astype(np.int16)
        wav = tmp_path / f"example_{rate}.wav"
        sf.write(wav, x, rate)
        cmd = [sys.executable, "-m", "voice_gru.cli", "listen", "--no-view", "--input"]
        if how == "file":
            r = subprocess.run(cmd + [str(wav)], capture_output=True, text=True, timeout=120)
        else:
            r = subprocess.run(cmd + ["-", "--input-rate", str(rate)], input=x.tobytes(), capture_output=True,
                               timeout=120)
            r = subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(), r.stderr.decode())
        assert r.returncode == 0, r.stderr
        warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
        source = str(wav) if how == "file" else "standard input"
        if rate == 8000:
            assert warnings == [f"warning: {narrowband(source, 8000)}"]
            assert "command(s) in 20.0s of audio" in r.stdout
        else:
            assert warnings == []


def test_bandwidth_finds_where_a_resampled_recordings_band_ends():
    from voice_gru.audio import resample
    from voice_gru.input_level import BAND_FFT, bandwidth

    rng = np.random.default_rng(0)
    noise = rng.standard_normal(5 * SR).astype(np.float32) * 0.1

    def spectrum(x):
        frames = x[:x.size // BAND_FFT * BAND_FFT].reshape(-1, BAND_FFT) * np.hanning(BAND_FFT)
        return (np.abs(np.fft.rfft(frames, axis=1)) ** 2).sum(0)

    assert bandwidth(spectrum(noise), SR) is None  # the full band
    assert bandwidth(np.zeros(BAND_FFT // 2 + 1), SR) is None
    for rate, top in ((8000, 4000), (11025, 5500)):
        x = resample(resample(noise, SR, rate), rate, SR)
        assert top <= bandwidth(spectrum(x), SR) <= top + 750


@pytest.mark.parametrize("chunk", [320, 1600])  # 20 ms blocks: shorter than one spectrum frame (512)
def test_monitor_says_once_when_a_16k_input_carries_an_8k_band(chunk):
    from voice_gru.audio import resample

    rng = np.random.default_rng(1)
    x = resample(resample(rng.standard_normal(12 * SR).astype(np.float32) * 0.05, SR, 8000), 8000, SR)
    said: list[str] = []
    m = InputMonitor("mic", SR, warn=said.append)
    for i in range(0, x.size, chunk):
        m.update(x[i:i + chunk])
    assert len(said) == 1 and said[0].startswith("mic has carried nothing above 4") and "first 10 s of sound" in said[0]
    full = InputMonitor("mic", SR, warn=said.append)
    y = rng.standard_normal(12 * SR).astype(np.float32) * 0.05
    for i in range(0, y.size, 1600):
        full.update(y[i:i + 1600])
    assert len(said) == 1 and not full.band_judged  # judged full, and judged again later
    # a rate known from a header is said at once, and the band is not judged again
    known = InputMonitor("x.wav", SR, warn=said.append)
    assert known.known_rate(8000) == [narrowband("x.wav", 8000)] and known.band_judged
    assert known.known_rate(16000) == [] and len(said) == 2


def test_monitor_judges_the_band_again_later():
    """A source that turns narrowband after a while (a headset switching to its telephone profile) is said too,
    with when; the spectrum runs on band_s of sound at the start of every band_every_s, digital silence aside."""
    from voice_gru.audio import resample
    from voice_gru.input_level import LevelLimits

    rng = np.random.default_rng(2)
    wide = rng.standard_normal(7 * SR).astype(np.float32) * 0.05
    narrow = resample(resample(rng.standard_normal(8 * SR).astype(np.float32) * 0.05, SR, 8000), 8000, SR)
    x = np.concatenate([wide, np.zeros(SR, dtype=np.float32), narrow])  # 1 s of zeros: no warning of its own
    # windows of sound 0-2 s (wide), 6-8 s (wide, then narrow: wide), 12-14 s = audio 13-15 s (narrow)
    said: list[str] = []
    m = InputMonitor("mic", SR, LevelLimits(band_s=2.0, band_every_s=6.0), warn=said.append)
    for i in range(0, x.size, 1600):
        m.update(x[i:i + 1600])
        if i + 1600 < 15 * SR:
            assert said == [], i / SR
    assert len(said) == 1 and said[0].startswith("mic has carried nothing above 4")
    assert "in 2 s of sound up to 0:00:15.0" in said[0] and m.band_judged


def test_listen_warns_of_a_16k_file_that_carries_an_8k_band(tmp_path):
    """An 8 kHz recording resampled to 16 kHz before it reached us (a PulseAudio source, a converted file): no
    header says so; the spectrum does."""
    import soundfile as sf

    from voice_gru.audio import load_audio, resample

    example = load_audio(Path(__file__).resolve().parents[1] / "voice_gru" / "assets" / "example.wav")
    wav = tmp_path / "upsampled.wav"
    sf.write(wav, resample(resample(example, SR, 8000), 8000, SR), SR, subtype="PCM_16")
    r = subprocess.run([sys.executable, "-m", "voice_gru.cli", "listen", "--no-view", "--input", str(wav)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and f"{wav} has carried nothing above 4" in warnings[0]


def test_summary_before_any_audio_says_none_arrived():
    assert InputMonitor("mic", SR).summary() == "input level: no audio arrived"


def test_evaluate_stream_warns_of_narrowband_recordings(tmp_path, capsys):
    """By the header's rate where it is low, else by the content (a recording resampled up on its way here)."""
    import soundfile as sf

    from voice_gru.audio import load_audio, resample
    from voice_gru.cli import main

    example = load_audio(Path(__file__).resolve().parents[1] / "voice_gru" / "assets" / "example.wav")
    cases = {"full.wav": (example, SR), "low.wav": (resample(example, SR, 8000), 8000),
             "up.wav": (resample(resample(example, SR, 8000), 8000, SR), SR)}
    for name, (x, rate) in cases.items():
        sf.write(tmp_path / name, x, rate, subtype="PCM_16")
        assert main(["evaluate-stream", "--input", str(tmp_path / name), "--command-free"]) == 0
        warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
        if name == "full.wav":
            assert warnings == []
        elif name == "low.wav":
            assert warnings == [f"warning: {narrowband(str(tmp_path / name), 8000)}"]
        else:
            assert len(warnings) == 1 and f"{tmp_path / name} has carried nothing above 4" in warnings[0]
            assert "anywhere in it" in warnings[0]
