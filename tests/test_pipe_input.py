"""`listen --input -`: 16-bit PCM on standard input, raw or WAV (what arecord, sox and ffmpeg write to a
pipe), goes through the same path as a file: the decoded samples against the int16 values, 48 kHz
stereo against soxr's one-shot resampling, WAV headers written by libsndfile, and the commands heard
against `--input FILE`."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr

from tiny_data import REPO
from voice_gru.errors import AudioFormatError
from voice_gru.live import pipe_chunks, sniff_wav_header

EXAMPLE = REPO / "voice_gru" / "assets" / "example.wav"
SCRIPT = REPO / ".venv" / "bin" / "voice-gru"


def test_16k_mono_pipe_gives_the_samples_in_chunks():
    pcm = (np.arange(-4000, 4000, 3) * 4).astype("<i2")
    partial = []
    chunks = list(pipe_chunks(io.BytesIO(pcm.tobytes() + b"\x01"), 16000, 1, chunk_ms=100, on_partial=partial.append))
    assert [c.size for c in chunks[:-1]] == [1600] * (len(chunks) - 1)  # 100 ms each, the rest last
    np.testing.assert_array_equal(np.concatenate(chunks), pcm.astype(np.float32) / 32768)
    assert partial == [1]  # the odd byte is reported, not silently dropped

    # a pipe no longer than the bytes read to look for a header: those samples are the whole recording
    header = sniff_wav_header(io.BytesIO(pcm[:6].tobytes()))
    got = list(pipe_chunks(io.BytesIO(b""), 16000, 1, head=header.head))
    np.testing.assert_array_equal(np.concatenate(got), pcm[:6].astype(np.float32) / 32768)


def test_48k_stereo_pipe_is_downmixed_and_resampled_like_one_shot_soxr():
    t = np.arange(48000) / 48000
    left = 0.3 * np.sin(2 * np.pi * 440 * t)
    right = 0.2 * np.sin(2 * np.pi * 1000 * t)
    stereo = np.round(np.stack([left, right], 1) * 32767).astype("<i2")
    got = np.concatenate(list(pipe_chunks(io.BytesIO(stereo.tobytes()), 48000, 2, chunk_ms=50)))
    mono = stereo.astype(np.float32).mean(1) / 32768
    want = soxr.resample(mono, 48000, 16000, quality="HQ")
    assert abs(got.size - want.size) <= 2
    n = min(got.size, want.size)
    np.testing.assert_allclose(got[:n], want[:n], atol=2e-4)


def _wav_bytes(audio: np.ndarray, rate: int, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,channels", [("WAV", 1), ("WAV", 2), ("WAVEX", 3)])
def test_a_wav_header_on_the_pipe_gives_its_rate_and_channels(fmt, channels):
    rng = np.random.default_rng(0)
    audio = (rng.uniform(-0.5, 0.5, (22050, channels))).astype(np.float32)
    stream = io.BytesIO(_wav_bytes(audio, 44100, fmt))
    header = sniff_wav_header(stream)
    assert (header.rate, header.channels, header.head) == (44100, channels, b"")
    got = np.concatenate(list(pipe_chunks(stream, header.rate, header.channels, head=header.head)))
    pcm = np.frombuffer(_wav_bytes(audio, 44100, fmt), dtype="<i2")[-audio.size:].reshape(-1, channels)
    want = soxr.resample(pcm.astype(np.float32).mean(1) / 32768, 44100, 16000, quality="HQ")
    n = min(got.size, want.size)
    assert abs(got.size - want.size) <= 2
    np.testing.assert_allclose(got[:n], want[:n], atol=2e-4)


def test_raw_pcm_passes_the_sniffing_untouched():
    pcm = np.arange(-3000, 3000, 7).astype("<i2")
    stream = io.BytesIO(pcm.tobytes())
    header = sniff_wav_header(stream)
    assert header.rate is None and len(header.head) == 12
    got = np.concatenate(list(pipe_chunks(stream, head=header.head)))
    np.testing.assert_array_equal(got, pcm.astype(np.float32) / 32768)


@pytest.mark.parametrize("subtype,needle", [("PCM_24", "24-bit PCM"), ("FLOAT", "32-bit float samples")])
def test_wav_that_is_not_16_bit_pcm_is_refused_by_name(subtype, needle):
    data = _wav_bytes(np.zeros(1600, np.float32), 16000, "WAV", subtype)
    with pytest.raises(AudioFormatError, match=needle):
        sniff_wav_header(io.BytesIO(data))


def test_wav_header_with_no_channels_is_called_broken():
    import struct

    data = bytearray(_wav_bytes(np.zeros(1600, np.float32), 16000, "WAV", "PCM_16"))
    data[22:24] = struct.pack("<H", 0)  # the fmt chunk's channel count
    with pytest.raises(AudioFormatError, match=r"WAV header says 0 channel\(s\) at 16000 Hz: a broken header"):
        sniff_wav_header(io.BytesIO(bytes(data)))


@pytest.mark.parametrize("fmt,subtype,name", [("FLAC", "PCM_16", "FLAC"), ("OGG", "VORBIS", "Ogg"),
                                               # headers with 16-bit PCM behind them: were read as noise
                                               ("AU", "PCM_16", "AU"), ("RF64", "PCM_16", "RF64 WAV"),
                                               ("W64", "PCM_16", "Wave64"), ("NIST", "PCM_16", "NIST SPHERE")])
def test_compressed_audio_on_the_pipe_is_refused_by_name(fmt, subtype, name):
    """Read as raw PCM it would be a run on noise that seems to work."""
    data = _wav_bytes(np.zeros(1600, np.float32), 16000, fmt, subtype)
    with pytest.raises(AudioFormatError, match=f"standard input: {name} data"):
        sniff_wav_header(io.BytesIO(data))


def _events(args, stdin=None):
    out = subprocess.run([str(SCRIPT), "listen", "--no-view", *args], input=stdin, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    return out


@pytest.mark.skipif(not SCRIPT.is_file(), reason="needs the installed voice-gru command (scripts/setup.sh)")
def test_listen_from_a_pipe_hears_what_the_file_path_hears(tmp_path):
    audio, sr = sf.read(EXAMPLE, dtype="float32")
    assert sr == 16000
    ref = tmp_path / "file.jsonl"
    _events(["--input", str(EXAMPLE), "--events", str(ref)])
    want = [json.loads(line) for line in ref.read_text().splitlines()]
    assert len(want) >= 3

    pcm16 = np.round(audio * 32767).astype("<i2").tobytes()
    got16 = tmp_path / "pipe16.jsonl"
    out = _events(["--input", "-", "--events", str(got16)], stdin=pcm16)
    assert b"16000 Hz, 1 channel(s)" in out.stdout
    assert [json.loads(line) for line in got16.read_text().splitlines()] == want  # the same samples, the same path

    hi = soxr.resample(audio, 16000, 48000, quality="HQ")
    pcm48 = np.round(np.stack([hi, hi], 1) * 32767).clip(-32768, 32767).astype("<i2").tobytes()
    got48 = tmp_path / "pipe48.jsonl"
    said = _events(["--input", "-", "--input-rate", "48000", "--input-channels", "2", "--events", str(got48)],
                   stdin=pcm48).stdout.decode()
    heard = [json.loads(line) for line in got48.read_text().splitlines()]
    assert [e["label"] for e in heard] == [e["label"] for e in want]
    for h, w in zip(heard, want):
        assert abs(h["t"] - w["t"]) <= 0.05  # the resampler's delay is a few ms
    assert "48000 Hz, 2 channel(s) (stream mode)" in said  # as told: nothing assumed
    # raw 48 kHz read as the 16 kHz mono no header contradicts: 6x slow, nothing heard, and no word of why
    mono48 = np.round(hi * 32767).clip(-32768, 32767).astype("<i2").tobytes()
    out = _events(["--input", "-"], stdin=pcm48)
    assert b"16000 Hz, 1 channel(s) (no header says otherwise; for other raw audio: --input-rate HZ --input-channels N)" \
        in out.stdout
    out = _events(["--input", "-"], stdin=mono48)
    assert b"or raw PCM recorded at a higher rate than the 16000 Hz assumed: --input-rate" in out.stderr, out.stderr


@pytest.mark.skipif(not SCRIPT.is_file(), reason="needs the installed voice-gru command (scripts/setup.sh)")
def test_a_recording_piped_in_is_no_echo_of_an_audible_action(tmp_path):
    """Echo suppression took any pipe for a microphone and timed its window by the clock: a recording piped in runs
    ~150 times faster, so every command after a `say` was "ignored: the assistant was speaking"."""
    assistant = tmp_path / "a.yaml"
    player = "import time; time.sleep(2)"
    assistant.write_text(f"actions:\n  down: {{run: [{sys.executable!r}, -c, {player!r}], audible: true}}\n"
                         "  up: {print: 'UP {t}'}\n")
    got = tmp_path / "pipe.jsonl"
    _events(["--input", "-", "--assistant", str(assistant), "--events", str(got)], stdin=EXAMPLE.read_bytes())
    heard = [json.loads(line) for line in got.read_text().splitlines()]
    assert [e["label"] for e in heard] == ["down", "up", "down"] and not any("ignored" in e for e in heard)


def test_audio_ahead_of_the_clock_is_not_live():
    import time

    from voice_gru.live import PACE_SLACK_S, ListenStats

    stats = ListenStats()
    assert not stats.keeps_real_time()  # nothing heard yet
    stats.started, stats.seconds = time.monotonic() - 10.0, 10.0  # a microphone: as many seconds as have passed
    assert stats.keeps_real_time()
    stats.seconds = 10.0 + PACE_SLACK_S + 1  # a recording piped in: ahead
    assert not stats.keeps_real_time()
    # a live microphone whose clock runs 0.1% fast, an hour into listening (a fixed slack ran out after 50 min)
    stats.started, stats.seconds = time.monotonic() - 3600.0, 3600.0 * 1.001
    assert stats.keeps_real_time()
    stats.seconds = 3600.0 * 1.5  # a recording piped in an hour ago (it would have ended long before)
    assert not stats.keeps_real_time()


@pytest.mark.skipif(not SCRIPT.is_file(), reason="needs the installed voice-gru command (scripts/setup.sh)")
def test_an_empty_pipe_is_one_clear_error():
    out = subprocess.run([str(SCRIPT), "listen", "--no-view", "--input", "-"], input=b"", capture_output=True, timeout=60)
    assert out.returncode != 0
    err = out.stderr.decode().strip().splitlines()
    assert "Traceback" not in out.stderr.decode()
    assert err[-1].startswith("voice-gru: error: standard input") and "before any audio" in err[-1]


@pytest.mark.skipif(not SCRIPT.is_file(), reason="needs the installed voice-gru command (scripts/setup.sh)")
def test_listen_reads_a_wav_pipe_and_refuses_contradicting_flags(tmp_path):
    audio, _ = sf.read(EXAMPLE, dtype="float32")
    wav = _wav_bytes(np.stack([audio, audio], 1), 16000)
    ref, got = tmp_path / "file.jsonl", tmp_path / "wav.jsonl"
    _events(["--input", str(EXAMPLE), "--events", str(ref)])
    out = _events(["--input", "-", "--events", str(got)], stdin=wav)
    assert b"WAV (16-bit PCM) from standard input: 16000 Hz, 2 channel(s)" in out.stdout
    want = [json.loads(line) for line in ref.read_text().splitlines()]
    heard = [json.loads(line) for line in got.read_text().splitlines()]
    assert [e["label"] for e in heard] == [e["label"] for e in want]
    bad = subprocess.run([str(SCRIPT), "listen", "--no-view", "--input", "-", "--input-rate", "48000"], input=wav,
                         capture_output=True, timeout=60)
    assert bad.returncode != 0
    assert bad.stderr.decode().strip().splitlines()[-1].startswith("voice-gru: error: --input-rate 48000")


def test_riff_data_that_is_not_wave_is_refused():
    with pytest.raises(AudioFormatError, match="standard input: RIFF 'AVI ' data, not WAVE"):
        sniff_wav_header(io.BytesIO(b"RIFF\x10\x00\x00\x00AVI LIST" + bytes(64)))


@pytest.mark.parametrize("make, name", [
    # libsndfile writes MPEG frames with no ID3 tag before them: no magic, only frame headers that repeat
    (lambda: _wav_bytes((np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32), 16000, "MP3",
                        "MPEG_LAYER_III"), "MPEG audio \\(MP3\\)"),
    (lambda: b"\x00\x00\x00\x20ftypM4A " + bytes(100), "MP4/M4A"),
    (lambda: b"\x1a\x45\xdf\xa3" + bytes(100), "Matroska/WebM"),
    (lambda: (b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(9)) * 8, "AAC \\(ADTS\\)"),
])
def test_compressed_streams_without_magic_are_refused_by_name(make, name):
    """They were read as raw PCM: 40 s of noise at full scale, 0 commands, exit 0."""
    with pytest.raises(AudioFormatError, match=f"standard input: {name} data"):
        sniff_wav_header(io.BytesIO(make()))


@pytest.mark.parametrize("first", [-1, -3073, -2, -32768])
def test_raw_pcm_starting_like_a_frame_header_is_still_raw(first):
    """-1 is bytes FF FF and -3073 is FF F3 (an MP3 frame's first bytes): raw PCM, since nothing repeats."""
    rng = np.random.default_rng(0)
    pcm = np.concatenate([[first], rng.integers(-3000, 3000, 8000)]).astype("<i2")
    stream = io.BytesIO(pcm.tobytes())
    header = sniff_wav_header(stream)
    assert header.rate is None
    np.testing.assert_array_equal(np.concatenate(list(pipe_chunks(stream, head=header.head))), pcm / np.float32(32768))
    silence = np.full(8000, -1, "<i2")  # a quiet recorder's stream of -1s
    assert sniff_wav_header(io.BytesIO(silence.tobytes())).rate is None


def test_quiet_hiss_starting_with_minus_one_is_raw_pcm():
    """A microphone's hiss (-64 dBFS) whose first sample is -1: 12% of such streams were refused as MP3, since bytes
    like a frame header's first three recur by chance in 4 KiB; a real stream's next frame is where its length says."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        pcm = np.round(rng.normal(0, 20, 2064)).astype("<i2")
        pcm[0] = -1
        assert sniff_wav_header(io.BytesIO(pcm.tobytes())).rate is None


def test_a_wav_pipe_stops_at_its_data_chunks_end():
    """Chunks after the samples (a tag) were played as 3.8 s of full-scale noise; a stand-in size reads on."""
    import struct

    audio = (np.sin(np.arange(16000) * 0.05) * 0.3).astype(np.float32)
    tagged = _wav_bytes(audio, 16000) + b"id3 " + struct.pack("<I", 4000) + bytes([0x7F]) * 4000
    stream = io.BytesIO(tagged)
    header = sniff_wav_header(stream)
    assert header.size == 32000
    got = np.concatenate(list(pipe_chunks(stream, header.rate, header.channels, head=header.head, size=header.size)))
    assert got.size == 16000 and np.abs(got).max() < 0.31
    unknown = bytearray(_wav_bytes(audio, 16000))
    unknown[40:44] = struct.pack("<I", 0xFFFFFFFF)  # what a writer to a pipe puts there
    assert sniff_wav_header(io.BytesIO(bytes(unknown))).size is None


def test_a_wav_pipe_that_ends_before_its_header_said_is_heard_and_said():
    """The same bytes as a file are a warning there ("truncated"); on a pipe they were heard without a word."""
    audio = (np.sin(np.arange(32000) * 0.05) * 0.3).astype(np.float32)
    stream = io.BytesIO(_wav_bytes(audio, 16000)[:44 + 16000])  # the header, then half a second of its two
    header = sniff_wav_header(stream)
    said: list[str] = []
    got = np.concatenate(list(pipe_chunks(stream, header.rate, header.channels, head=header.head, size=header.size,
                                          on_short=said.append)))
    assert got.size == 8000 and said == ["standard input ended after 0.5 s, before the 2.0 s its WAV header announced "
                                         "(a recorder that was stopped?): what came is heard"]
    whole = io.BytesIO(_wav_bytes(audio, 16000))
    header = sniff_wav_header(whole)
    list(pipe_chunks(whole, header.rate, header.channels, head=header.head, size=header.size, on_short=said.append))
    assert len(said) == 1  # a whole one says nothing
