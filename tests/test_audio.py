"""Audio in: formats, downmix, resampling, and bad files that must fail with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from voice_gru.audio import (CANCEL_WINDOW_S, SAMPLE_RATE, Downmix, load_audio, load_recording, resample, save_wav,
                             to_mono)
from voice_gru.cli import main
from voice_gru.errors import AudioFormatError, VoiceGruError


def sine(freq: float, sr: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float64)


def peak_hz(audio: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Frequency of the largest FFT bin (Hann-windowed, zero-padded to 1 Hz bins or finer)."""
    n = max(audio.size, sr)
    spec = np.abs(np.fft.rfft(audio * np.hanning(audio.size), n=n))
    return float(np.fft.rfftfreq(n, 1 / sr)[np.argmax(spec)])


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def check_output(audio: np.ndarray) -> None:
    assert isinstance(audio, np.ndarray)
    assert audio.dtype == np.float32
    assert audio.ndim == 1
    assert np.isfinite(audio).all()
    assert audio.min() >= -1.0 and audio.max() <= 1.0


# ---------------------------------------------------------------- formats that must load


@pytest.mark.parametrize(
    "subtype, tol",
    [("PCM_U8", 1 / 64), ("PCM_16", 1e-4), ("PCM_24", 1e-6), ("PCM_32", 1e-7), ("FLOAT", 1e-7), ("DOUBLE", 1e-7)],
)
def test_wav_subtypes(tmp_path, subtype, tol):
    x = sine(440, SAMPLE_RATE)
    path = tmp_path / f"tone_{subtype}.wav"
    sf.write(path, x, SAMPLE_RATE, subtype=subtype)
    assert sf.info(path).subtype == subtype
    y = load_audio(path)
    check_output(y)
    assert y.shape == x.shape
    assert np.abs(y - x).max() < tol


def test_flac(tmp_path):
    x = sine(440, SAMPLE_RATE)
    path = tmp_path / "tone.flac"
    sf.write(path, x, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    y = load_audio(path)
    check_output(y)
    assert y.shape == x.shape and np.abs(y - x).max() < 1e-4


def test_ogg_vorbis(tmp_path):
    x = sine(440, SAMPLE_RATE)
    path = tmp_path / "tone.ogg"
    sf.write(path, x, SAMPLE_RATE, format="OGG", subtype="VORBIS")
    y = load_audio(path)
    check_output(y)
    assert abs(y.size - x.size) <= 1024  # lossy codecs may pad
    assert abs(peak_hz(y) - 440) <= 2
    assert rms(y) == pytest.approx(rms(x), rel=0.02)


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="this libsndfile has no MP3 support")
def test_mp3(tmp_path):
    x = sine(440, SAMPLE_RATE)
    path = tmp_path / "tone.mp3"
    sf.write(path, x, SAMPLE_RATE, format="MP3", subtype="MPEG_LAYER_III")
    y = load_audio(path)
    check_output(y)
    assert abs(y.size - x.size) <= 2304  # encoder delay/padding
    assert abs(peak_hz(y) - 440) <= 2
    assert rms(y) == pytest.approx(rms(x), rel=0.05)


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="this libsndfile has no MP3 support")
def test_mp3_read_in_blocks_is_the_one_call_decode(tmp_path, speech_signal, capfd):
    """Blocks cut MP3 frames: soundfile's seek around every read garbled the frame after a cut (by
    0.1 of full scale in 50 ms blocks) and libmpg123 printed "part2_3_length" lines."""
    from voice_gru.audio import audio_blocks

    sr = 44100
    path = tmp_path / "speech.mp3"
    sf.write(path, resample(np.tile(speech_signal, 3), SAMPLE_RATE, sr), sr, format="MP3", subtype="MPEG_LAYER_III")
    whole, _ = sf.read(path, dtype="float32")
    capfd.readouterr()
    blocks = np.concatenate(list(audio_blocks(path, sr, block_seconds=0.05)))
    assert blocks.shape == whole.shape
    np.testing.assert_allclose(blocks, np.clip(whole, -1, 1), rtol=0, atol=1e-6)
    assert "part2_3_length" not in capfd.readouterr().err


def read_counting_peak(read, path) -> tuple[np.ndarray, int]:
    """``read(path)`` and the most memory it held at once: numpy's buffers are traced by tracemalloc (counted, not
    timed)."""
    import tracemalloc

    tracemalloc.start()
    try:
        audio = read(path)
        return audio, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_load_audio_holds_one_copy_of_a_recording(tmp_path):
    """An hour at 16 kHz is 230 MB of float32: the sample check made a second (|x|), so evaluate-stream peaked at
    twice the recording."""
    path = tmp_path / "long.wav"
    sf.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, 20 * SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    audio, peak = read_counting_peak(load_audio, path)
    assert audio.nbytes == 20 * SAMPLE_RATE * 4
    assert peak < 1.2 * audio.nbytes, f"peak {peak / audio.nbytes:.2f} x the recording"


def test_load_recording_is_what_listen_hears_held_once(tmp_path, speech_signal):
    """evaluate-stream read a recording whole at its own rate (an hour at 48 kHz stereo: 1.4 GB, then its mono and
    the resampled copy, ~12 times the result at the peak) through one-shot resampling listen never uses."""
    from voice_gru.audio import audio_blocks

    x = resample(np.tile(speech_signal, 13), SAMPLE_RATE, 48000)  # 30 s
    path = tmp_path / "meeting.wav"
    sf.write(path, np.stack([x, 0.7 * x], axis=1), 48000, subtype="PCM_16")
    audio, peak = read_counting_peak(load_recording, path)
    np.testing.assert_array_equal(audio, np.concatenate(list(audio_blocks(path))))  # listen --input's samples
    assert audio.size == pytest.approx(x.size / 3, abs=2)
    # what more than the result is held: a block at the file's rate and the resampler's, whatever the length
    assert peak - audio.nbytes < 2 * 2**20, f"peak {peak / audio.nbytes:.2f} x the recording"
    with pytest.raises(AudioFormatError, match="meeting.wav: file is empty"):
        path.write_bytes(b"")
        load_recording(path)


def test_real_clip(clip_paths):
    """A Speech Commands clip: 16-bit PCM mono at 16 kHz, read exactly."""
    y = load_audio(clip_paths["yes"])
    check_output(y)
    raw, sr = sf.read(clip_paths["yes"], dtype="int16")
    assert sr == SAMPLE_RATE and y.shape == raw.shape == (16000,)
    np.testing.assert_array_equal(y, raw.astype(np.float32) / 32768)
    assert load_audio(clip_paths["go"]).shape == (13375,)  # short clips are not padded here


def test_stereo_downmix_is_channel_mean(tmp_path):
    rng = np.random.default_rng(1)
    left = 0.5 * sine(440, SAMPLE_RATE)
    right = 0.3 * rng.uniform(-1, 1, left.size)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    y = load_audio(path)
    check_output(y)
    np.testing.assert_allclose(y, ((left + right) / 2).astype(np.float32), atol=1e-6)


def test_multichannel_downmix(tmp_path):
    x = np.stack([np.full(1600, v) for v in (0.1, 0.2, 0.3, -0.6)], axis=1)
    path = tmp_path / "quad.wav"
    sf.write(path, x, SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), 0.0, atol=1e-7)


def test_to_mono_passes_1d_through():
    x = np.arange(5, dtype=np.float32)
    assert to_mono(x) is x
    np.testing.assert_allclose(to_mono(np.array([[1.0, 3.0], [0.0, -1.0]], dtype=np.float32)), [2.0, -0.5])


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resampling_keeps_frequency_and_level(tmp_path, sr):
    x = sine(440, sr, seconds=1.0, amp=0.5)
    path = tmp_path / f"tone_{sr}.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    y = load_audio(path)
    check_output(y)
    assert abs(y.size - SAMPLE_RATE) <= 1
    assert abs(peak_hz(y) - 440) <= 1.0
    mid = y[1600:-1600]  # away from the filter's edge transients
    assert rms(mid) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_resample_to_other_rate_and_identity():
    x = sine(1000, SAMPLE_RATE).astype(np.float32)
    assert resample(x, SAMPLE_RATE, SAMPLE_RATE) is x  # no copy, no work
    y = resample(x, SAMPLE_RATE, 8000)
    assert y.dtype == np.float32 and abs(y.size - 8000) <= 1
    assert abs(peak_hz(y, 8000) - 1000) <= 1.0


def test_load_at_other_sample_rate(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, sine(440, 44100), 44100, subtype="PCM_16")
    y = load_audio(path, sample_rate=8000)
    check_output(y)
    assert abs(y.size - 8000) <= 1 and abs(peak_hz(y, 8000) - 440) <= 1.0


def test_out_of_range_float_is_clipped(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(path, 1.5 * sine(440, SAMPLE_RATE, amp=1.0), SAMPLE_RATE, subtype="FLOAT")
    y = load_audio(path)
    check_output(y)
    assert y.max() == 1.0 and y.min() == -1.0


def test_save_wav_round_trip(tmp_path):
    x = sine(440, SAMPLE_RATE).astype(np.float32)
    path = tmp_path / "sub" / "out.wav"
    save_wav(path, x)
    assert sf.info(path).subtype == "PCM_16" and sf.info(path).samplerate == SAMPLE_RATE
    assert np.abs(load_audio(path) - x).max() < 1e-4
    assert [p.name for p in path.parent.iterdir()] == ["out.wav"]  # no temp file left behind


# ---------------------------------------------------------------- bad input


def expect_error(path, *reason_words: str) -> str:
    with pytest.raises(AudioFormatError) as err:
        load_audio(path)
    msg = str(err.value)
    assert str(path) in msg, msg
    for word in reason_words:
        assert word in msg.lower(), msg
    assert "\n" not in msg
    assert isinstance(err.value, VoiceGruError)
    return msg


def test_missing_file(tmp_path):
    expect_error(tmp_path / "missing.wav", "not found")


def test_directory(tmp_path):
    d = tmp_path / "folder.wav"
    d.mkdir()
    expect_error(d, "directory")


def test_a_pipe_is_not_taken_for_an_empty_file(tmp_path):
    fifo = tmp_path / "live.wav"
    os.mkfifo(fifo)
    assert "pipe" in expect_error(fifo, "not a regular file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    expect_error(path, "empty")


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    expect_error(path, "not a readable audio file")


def test_riff_header_only_garbage(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(40))
    expect_error(path)


@pytest.mark.parametrize("cut", [1, 1000, 16000])
def test_truncated_wav(tmp_path, cut):
    path = tmp_path / "truncated.wav"
    sf.write(path, sine(440, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    data = path.read_bytes()
    assert len(data) == 44 + 32000
    path.write_bytes(data[:-cut])  # the header still promises 32000 bytes of data
    expect_error(path, "truncated")


@pytest.mark.parametrize("fmt, suffix", [("AIFF", "aiff"), ("AU", "au")])
def test_truncated_aiff_and_au(tmp_path, fmt, suffix):
    """libsndfile lowers their frame count to what is on disk: two thirds of a clip were classified unsaid."""
    whole = tmp_path / f"whole.{suffix}"
    audio = sine(440, SAMPLE_RATE)
    sf.write(whole, audio, SAMPLE_RATE, format=fmt, subtype="PCM_16")
    np.testing.assert_allclose(load_audio(whole), audio, atol=1e-4)  # whole: read as it is
    data = whole.read_bytes()
    for cut in (1, len(data) // 3):
        path = tmp_path / f"cut{cut}.{suffix}"
        path.write_bytes(data[:-cut])
        expect_error(path, "truncated")


def test_zero_length_wav(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SAMPLE_RATE, subtype="PCM_16")
    assert sf.info(path).frames == 0 and path.stat().st_size > 0
    expect_error(path, "zero length")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = sine(440, SAMPLE_RATE).astype(np.float32)
    x[[10, 5000]] = bad
    path = tmp_path / "nonfinite.wav"
    sf.write(path, x, SAMPLE_RATE, subtype="FLOAT")
    msg = expect_error(path, "nan/inf")
    assert "2 " in msg  # how many


def test_cli_error_is_one_line_without_traceback(tmp_path, capsys):
    missing = tmp_path / "no_such_dataset"
    rc = main(["data", "stats", "--data-dir", str(missing)])
    out, err = capsys.readouterr()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("voice-gru: error: ")
    assert str(missing) in lines[0]
    assert "Traceback" not in err + out


def test_file_chunks_are_the_loaded_samples_read_piece_by_piece(tmp_path):
    from voice_gru.live import file_chunks

    rng = np.random.default_rng(0)
    audio = rng.uniform(-0.5, 0.5, 16000 * 3 + 123).astype(np.float32)
    save_wav(tmp_path / "a.wav", audio)
    want = load_audio(tmp_path / "a.wav")
    chunks = list(file_chunks(tmp_path / "a.wav", chunk_ms=100))
    assert [c.size for c in chunks] == [1600] * (want.size // 1600) + [want.size % 1600]
    np.testing.assert_array_equal(np.concatenate(chunks), want)  # at 16 kHz: the very same samples


def test_file_chunks_resample_like_the_one_shot_loader(tmp_path):
    from voice_gru.live import file_chunks

    t = np.arange(44100 * 3) / 44100
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 300 * t), 0.2 * np.sin(2 * np.pi * 2000 * t)], 1)
    sf.write(tmp_path / "b.wav", stereo, 44100, subtype="FLOAT")
    want = load_audio(tmp_path / "b.wav")
    got = np.concatenate(list(file_chunks(tmp_path / "b.wav", chunk_ms=100)))
    assert abs(got.size - want.size) <= 2
    n = min(got.size, want.size)
    np.testing.assert_allclose(got[:n], want[:n], atol=1e-6)


def test_file_chunks_report_bad_files_up_front_and_bad_samples_where_they_are(tmp_path):
    from voice_gru.live import file_chunks

    wav = tmp_path / "cut.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    wav.write_bytes(wav.read_bytes()[:-5000])
    with pytest.raises(AudioFormatError, match="truncated"):
        file_chunks(wav)  # before a single chunk is asked for
    audio = np.zeros(16000 * 4, np.float32)
    audio[int(2.5 * 16000)] = np.nan
    sf.write(tmp_path / "nan.wav", audio, 16000, subtype="FLOAT")
    it = file_chunks(tmp_path / "nan.wav", chunk_ms=100)
    got = []
    with pytest.raises(AudioFormatError, match=r"nan.wav: contains 1 NaN/inf samples from 2.0 s"):
        for c in it:
            got.append(c)
    assert len(got) == 20  # the two good seconds were heard before the bad block
    # listen --input asks for damage to be told: the stretch is heard as silence, said once with where it starts
    audio[int(3.2 * 16000):int(3.3 * 16000)] = np.inf
    audio[:16000] = sine(440, 16000, amp=0.5)[:16000]
    sf.write(tmp_path / "nan.wav", audio, 16000, subtype="FLOAT")
    said: list[str] = []
    heard = np.concatenate(list(file_chunks(tmp_path / "nan.wav", chunk_ms=100, on_damage=said.append)))
    assert said == [f"{tmp_path / 'nan.wav'}: 1 damaged samples (NaN, inf or beyond ±16) from 2.0 s: heard as silence",
                    f"{tmp_path / 'nan.wav'}: 1601 damaged samples in all were heard as silence"]
    assert heard.size == audio.size and np.isfinite(heard).all()
    np.testing.assert_allclose(heard[:16000], audio[:16000], atol=1e-6)  # the good samples as they were
    assert not heard[16000:].any()
    # random bytes over a stretch decode as huge finite floats more often than as NaN: they ended the run there
    audio[int(3.2 * 16000):int(3.3 * 16000)] = 7.9e36
    audio[int(3.5 * 16000)] = -40.0
    sf.write(tmp_path / "nan.wav", audio, 16000, subtype="FLOAT")
    said.clear()
    heard = np.concatenate(list(file_chunks(tmp_path / "nan.wav", chunk_ms=100, on_damage=said.append)))
    assert said[-1] == f"{tmp_path / 'nan.wav'}: 1602 damaged samples in all were heard as silence"
    assert heard.size == audio.size and not heard[16000:].any()
    # before the file has sounded like float audio they still mean integer PCM stored as float: in the first block,
    # and after a first second of silence or of quiet room noise in 16-bit units (±10), which was heard as silence
    for start in (np.zeros(0), np.zeros(16000), np.random.default_rng(0).uniform(-10, 10, 16000)):
        sf.write(tmp_path / "int.wav", np.concatenate([start, np.full(16000, 1000.0)]).astype(np.float32), 16000,
                 subtype="FLOAT")
        with pytest.raises(AudioFormatError, match="looks like integer PCM stored as float"):
            list(file_chunks(tmp_path / "int.wav", chunk_ms=100, on_damage=said.append))


# ---------------------------------------------------------------- placeholder sizes (WAVs written to a pipe)


def patched_wav(tmp_path, name: str, subtype: str = "PCM_16", channels: int = 1, riff: int | None = None,
                data: int | None = None, cut: int = 0):
    """A tone written by soundfile, then the same file with its RIFF and/or data size fields overwritten."""
    import struct

    x = np.stack([sine(440, SAMPLE_RATE, amp=0.5 / (c + 1)) for c in range(channels)], axis=1)
    original = tmp_path / f"{name}_original.wav"
    sf.write(original, x, SAMPLE_RATE, subtype=subtype)
    raw = bytearray(original.read_bytes())
    at = raw.index(b"data")
    if riff is not None:
        raw[4:8] = struct.pack("<I", riff)
    if data is not None:
        raw[at + 4:at + 8] = struct.pack("<I", data)
    patched = tmp_path / f"{name}.wav"
    patched.write_bytes(bytes(raw[:len(raw) - cut]))
    return original, patched


def blocks_of(path) -> np.ndarray:
    from voice_gru.audio import audio_blocks

    return np.concatenate(list(audio_blocks(path, block_seconds=0.3)))


@pytest.mark.parametrize("riff", [None, 0xFFFFFFFF, 0x7FFFFFFF, 0])
@pytest.mark.parametrize("data", [0xFFFFFFFF, 0x7FFFFFFF, 0])
def test_placeholder_data_size_reads_to_the_end(tmp_path, riff, data):
    original, patched = patched_wav(tmp_path, "piped", riff=riff, data=data)
    want = load_audio(original)
    np.testing.assert_array_equal(load_audio(patched), want)
    np.testing.assert_array_equal(blocks_of(patched), want)  # listen --input reads it piece by piece
    np.testing.assert_array_equal(load_recording(patched), want)  # evaluate-stream: the header's 0 sizes nothing


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_32", "FLOAT", "DOUBLE"])
@pytest.mark.parametrize("channels", [1, 2, 3])  # 3: ffmpeg writes WAVE_FORMAT_EXTENSIBLE
def test_zero_data_size_is_decoded_like_libsndfile_decodes_the_whole_file(tmp_path, subtype, channels):
    original, patched = patched_wav(tmp_path, "killed", subtype, channels, riff=0, data=0)
    assert sf.info(patched).frames == 0  # libsndfile alone would read nothing
    want = load_audio(original)
    np.testing.assert_array_equal(load_audio(patched), want)
    np.testing.assert_array_equal(blocks_of(patched), want)


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
@pytest.mark.parametrize("pad", [b"", b"\x00"])  # the last chunk odd-sized, with and without its pad byte
def test_zero_data_size_stops_before_metadata_written_after_the_samples(tmp_path, subtype, pad):
    original, patched = patched_wav(tmp_path, "killed_list", subtype, riff=0, data=0)
    raw = patched.read_bytes()
    patched.write_bytes(raw + b"LIST\x1b\x00\x00\x00INFOISFT\x0f\x00\x00\x00Lavf58.76.100x\x00\x00"
                        + b"id3 \x05\x00\x00\x00ID3\x03\x00" + pad)
    want = load_audio(original)
    np.testing.assert_array_equal(load_audio(patched), want)
    np.testing.assert_array_equal(blocks_of(patched), want)


@pytest.mark.parametrize("n", [15999, 16000])
def test_zero_data_size_8bit_mono_pad_byte_before_metadata_is_no_sample(tmp_path, n):
    """Odd-sized data is padded with a zero byte before the next chunk: in 8-bit mono it is one byte too many."""
    original = tmp_path / "u8.wav"
    sf.write(original, sine(440, SAMPLE_RATE, amp=0.5)[:n], SAMPLE_RATE, subtype="PCM_U8")
    raw = bytearray(original.read_bytes())
    at = raw.index(b"data")
    assert len(raw) - (at + 8) == n + n % 2  # libsndfile wrote the pad byte
    raw[at + 4:at + 8] = bytes(4)
    patched = tmp_path / "u8_killed.wav"
    patched.write_bytes(bytes(raw) + b"LIST\x0b\x00\x00\x00INFOISFTab\x00\x00")
    want = load_audio(original)
    assert want.size == n
    np.testing.assert_array_equal(load_audio(patched), want)
    np.testing.assert_array_equal(blocks_of(patched), want)


def test_zero_data_size_in_a_format_read_only_by_libsndfile_is_one_clear_error(tmp_path):
    _, patched = patched_wav(tmp_path, "killed24", "PCM_24", data=0)
    msg = expect_error(patched, "data size is 0", "24-bit")
    assert "--ignore-length" in msg


def test_empty_data_chunk_followed_by_metadata_is_zero_length(tmp_path):
    path = tmp_path / "zero_with_list.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SAMPLE_RATE, subtype="PCM_16")
    raw = path.read_bytes()
    path.write_bytes(raw + b"LIST\x0b\x00\x00\x00INFOISFTab\x00\x00")  # odd size, with its pad byte
    expect_error(path, "zero length")


@pytest.mark.parametrize("riff, data, cut", [(0xFFFFFFFF, None, 1000), (None, 0x7FFFFFFE, 0), (None, 32002, 0)])
def test_a_size_that_is_no_placeholder_is_still_truncation(tmp_path, riff, data, cut):
    _, patched = patched_wav(tmp_path, "cut", riff=riff, data=data, cut=cut)
    expect_error(patched, "truncated")
    with pytest.raises(AudioFormatError, match="truncated"):
        blocks_of(patched)


# ---------------------------------------------------------------- float files holding integer-scaled values


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_float_wav_with_integer_scaled_samples_is_refused(tmp_path, subtype):
    from voice_gru.live import file_chunks

    path = tmp_path / "int_as_float.wav"
    sf.write(path, np.round(20000 * sine(440, SAMPLE_RATE, amp=1.0)), SAMPLE_RATE, subtype=subtype)
    msg = expect_error(path, "float samples reach 20000", "[-1, 1]", "integer pcm", "rescale")
    assert "from " not in msg  # load_audio reads it all at once
    with pytest.raises(AudioFormatError, match=r"int_as_float.wav: float samples reach 2\d{4}"):
        list(file_chunks(path))  # listen --input


def test_float_wav_limit_is_the_spotters(tmp_path):
    from voice_gru.spotter import FLOAT_LIMIT

    x = sine(440, SAMPLE_RATE, amp=1.0)
    sf.write(tmp_path / "at.wav", FLOAT_LIMIT * x / np.abs(x).max(), SAMPLE_RATE, subtype="FLOAT")
    check_output(load_audio(tmp_path / "at.wav"))
    sf.write(tmp_path / "over.wav", 1.01 * FLOAT_LIMIT * x / np.abs(x).max(), SAMPLE_RATE, subtype="FLOAT")
    expect_error(tmp_path / "over.wav", "float samples reach")


def test_float_wav_slightly_over_full_scale_reads(tmp_path):
    x = sine(440, SAMPLE_RATE, amp=1.2)
    path = tmp_path / "hot.wav"
    sf.write(path, x, SAMPLE_RATE, subtype="FLOAT")
    y = load_audio(path)
    check_output(y)
    np.testing.assert_array_equal(y, np.clip(x.astype(np.float32), -1, 1))


@pytest.mark.parametrize("offset,value,says", [(22, 0, "0 channel(s) at 16000 Hz"), (24, 0, "1 channel(s) at 0 Hz")])
def test_wav_header_with_no_channels_or_no_rate_is_called_broken(tmp_path, offset, value, says):
    """libsndfile's own words for these are "Internal error : SF_INFO struct incomplete"."""
    import re
    import struct

    path = tmp_path / "broken.wav"
    save_wav(path, np.zeros(1600, np.float32), SAMPLE_RATE)
    data = bytearray(path.read_bytes())
    data[offset:offset + (2 if offset == 22 else 4)] = struct.pack("<H" if offset == 22 else "<I", value)
    path.write_bytes(bytes(data))
    with pytest.raises(AudioFormatError, match=re.escape(f"broken.wav: WAV header says {says}: a broken header")):
        load_audio(path)


def _stereo(right: np.ndarray, seconds: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    left = (np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE)) * 0.1).astype(np.float32)
    return left, np.stack([left, right if right.size else left], axis=1)


def test_an_inverted_channel_pair_is_heard_through_its_first_channel():
    """Two channels of one voice, one inverted (a laptop microphone pair wired so): their average is silence. After
    the first window of sound the first channel is used alone, said once; block by block the same as in one go."""
    left, _ = _stereo(np.zeros(0))
    inverted = np.stack([left, -0.98 * left], axis=1)
    said: list[str] = []
    mono = to_mono(inverted, SAMPLE_RATE, said.append)
    window = int(CANCEL_WINDOW_S * SAMPLE_RATE)
    np.testing.assert_allclose(mono[:window], inverted[:window].mean(axis=1), atol=1e-7)  # the average until judged
    np.testing.assert_array_equal(mono[window:], left[window:])
    assert len(said) == 1 and said[0].startswith("the two input channels cancel each other (their average is 40 dB "
                                                 "below them")
    blocks = Downmix(SAMPLE_RATE)
    np.testing.assert_array_equal(np.concatenate([blocks(inverted[i:i + 441]) for i in range(0, len(left), 441)]), mono)


@pytest.mark.parametrize("case", ["in phase", "uncorrelated", "quiet inverted", "four channels"])
def test_channels_that_do_not_cancel_are_averaged(case):
    left, _ = _stereo(np.zeros(0))
    other = {"in phase": 0.5 * left, "uncorrelated": _stereo(np.zeros(0), seed=1)[0],
             "quiet inverted": -left * 0.003, "four channels": left}[case]  # -50 dBFS and below says nothing
    x = np.stack([left * 0.003 if case == "quiet inverted" else left, other], axis=1)
    if case == "four channels":
        x = np.concatenate([x, -x], axis=1)
    said: list[str] = []
    np.testing.assert_allclose(to_mono(x, SAMPLE_RATE, said.append), x.mean(axis=1), atol=1e-7)
    assert said == []


def test_a_recording_cut_short_is_heard_as_far_as_it_goes_when_asked(tmp_path):
    """A recorder killed mid-file leaves a header that promises more: listen --input hears what is there (as the
    same bytes on a pipe are heard) and says so; without on_damage it is still an error."""
    from voice_gru.live import file_chunks

    audio = (np.sin(np.arange(48000) * 0.05) * 0.3).astype(np.float32)
    wav = tmp_path / "cut.wav"
    sf.write(wav, audio, 16000, subtype="PCM_16")
    wav.write_bytes(wav.read_bytes()[:-32000])  # the last second gone
    said: list[str] = []
    got = np.concatenate(list(file_chunks(wav, on_damage=said.append)))
    assert got.size == 32000 and said == [f"{wav}: truncated (the file is shorter than its header says): what it "
                                          "holds is heard"]
    np.testing.assert_allclose(got, audio[:32000], atol=1 / 32768)
    with pytest.raises(AudioFormatError, match="truncated"):
        file_chunks(wav)
    r = subprocess.run([sys.executable, "-m", "voice_gru.cli", "listen", "--input", str(wav)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "in 2.0s of audio" in r.stdout and "warning: " in r.stderr and "truncated" in r.stderr


def test_a_flac_cut_short_is_heard_as_far_as_it_goes_when_asked(tmp_path):
    """FLAC cut short was an error after the audio before the cut ("flac decoder lost sync") where a WAV is a warning:
    listen lost its last command and the 0.5 s after the end that decides it."""
    from voice_gru.live import file_chunks

    audio = (np.sin(np.arange(64000) * 0.05) * 0.3).astype(np.float32)
    flac = tmp_path / "cut.flac"
    sf.write(flac, audio, 16000)
    data = flac.read_bytes()
    flac.write_bytes(data[:len(data) // 2])
    said: list[str] = []
    got = np.concatenate(list(file_chunks(flac, on_damage=said.append)))
    assert len(said) == 1 and said[0].startswith(f"{flac}: cannot decode it after ") and "cut short?" in said[0]
    assert 24000 <= got.size <= 40000  # about half, to the block of 1024 samples the decoder lost sync in
    np.testing.assert_allclose(got, audio[:got.size], atol=1e-4)
    with pytest.raises(AudioFormatError, match="cannot decode audio"):
        load_recording(flac)  # evaluate-stream scores a whole recording: still an error there


@pytest.mark.parametrize("subtype", ["VORBIS", "OPUS"])
def test_an_ogg_file_cut_short_is_said_as_a_wav_is(tmp_path, subtype):
    """An Ogg file's header gives no length, and libsndfile read one cut short as far as it went without a word:
    a clip of half a word was scored, a killed recorder's file heard as whole."""
    from voice_gru.audio import is_truncated_ogg
    from voice_gru.live import file_chunks

    audio = np.random.default_rng(0).uniform(-0.3, 0.3, 8 * 16000).astype(np.float32)  # pages enough to cut between
    ogg = tmp_path / "a.ogg"
    sf.write(ogg, audio, 16000, format="OGG", subtype=subtype)
    assert not is_truncated_ogg(ogg) and load_audio(ogg).size == audio.size
    data = ogg.read_bytes()
    for cut in (len(data) // 2, len(data) - 1):  # in the middle; inside the last (end-of-stream) page
        ogg.write_bytes(data[:cut])
        assert is_truncated_ogg(ogg)
        # (libsndfile itself refuses some Opus files cut in their last page as malformed)
        with pytest.raises(AudioFormatError, match=r"a.ogg: (truncated \(its last Ogg page is incomplete|not a readable)"):
            load_audio(ogg)
    ogg.write_bytes(data[:len(data) // 2])
    said: list[str] = []
    got = np.concatenate(list(file_chunks(ogg, on_damage=said.append)))
    assert said == [f"{ogg}: truncated (its last Ogg page is incomplete, or not the stream's end): what it holds is heard"]
    assert 0.3 * audio.size < got.size < 0.7 * audio.size
    wav = tmp_path / "b.wav"
    sf.write(wav, audio, 16000)
    assert not is_truncated_ogg(wav)  # not Ogg: nothing to say
