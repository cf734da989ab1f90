"""Audio in: any file soundfile reads -> 16 kHz mono float32 in [-1, 1]."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from voice_gru.errors import AudioFormatError

SAMPLE_RATE = 16000


def resample(audio: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling of a 1-D float32 signal (soxr, through librosa's dependency)."""
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(audio.astype(np.float32, copy=False), orig_sr, target_sr, quality="HQ").astype(
        np.float32, copy=False
    )


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average channels of a (frames, channels) array; pass 1-D arrays through."""
    if audio.ndim == 1:
        return audio
    return audio.mean(axis=1, dtype=np.float32)


def _open_checked(path: Path):
    """An open ``soundfile.SoundFile`` after the checks that need no decoding; bad input raises AudioFormatError."""
    import soundfile as sf

    if not path.exists():
        raise AudioFormatError(f"{path}: file not found")
    if path.is_dir():
        raise AudioFormatError(f"{path}: is a directory, not an audio file")
    if not path.is_file():  # a pipe or a device: no length to check, no seeking to decode
        raise AudioFormatError(f"{path}: not a regular file (for audio on a pipe use listen --input -)")
    if path.stat().st_size == 0:
        raise AudioFormatError(f"{path}: file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioFormatError(f"{path}: permission denied")
    try:
        f = sf.SoundFile(str(path))
    except sf.LibsndfileError as exc:
        raise AudioFormatError(f"{path}: not a readable audio file ({_short(exc)})") from None
    except (RuntimeError, ValueError, OSError) as exc:
        raise AudioFormatError(f"{path}: cannot decode audio ({_short(exc)})") from None
    if is_truncated_wav(path):
        f.close()
        raise AudioFormatError(f"{path}: truncated (the file is shorter than its header says)")
    return f


def _header_frames(f) -> int:
    """Frames the file's header promises (0 when it does not say)."""
    return f.frames if 0 < f.frames < 2**62 else 0


def _checked_samples(path: Path, data: np.ndarray, offset_s: float = 0.0) -> np.ndarray:
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        where = f" from {offset_s:.1f} s" if offset_s > 0 else ""
        raise AudioFormatError(f"{path}: contains {bad} NaN/inf samples{where}")
    return data


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono float32 at ``sample_rate``; bad input raises AudioFormatError."""
    path = Path(path)
    with _open_checked(path) as f:
        sr = f.samplerate
        expected = _header_frames(f)
        try:
            data = f.read(dtype="float32", always_2d=True)
        except (RuntimeError, ValueError, OSError) as exc:
            raise AudioFormatError(f"{path}: cannot decode audio ({_short(exc)})") from None
    if data.shape[0] == 0:
        raise AudioFormatError(f"{path}: audio has zero length (no samples)")
    if data.shape[0] < expected:
        raise AudioFormatError(f"{path}: truncated (the file is shorter than its header says)")
    audio = resample(to_mono(_checked_samples(path, data)), sr, sample_rate)
    return np.clip(audio, -1.0, 1.0)


def audio_blocks(path: str | Path, sample_rate: int = SAMPLE_RATE, block_seconds: float = 1.0) -> Iterator[np.ndarray]:
    """A recording as consecutive mono float32 blocks at ``sample_rate``, decoded and resampled piece
    by piece, so memory does not grow with its length (hours of audio through ``listen --input``).

    What can be checked without decoding is checked before this returns; a bad sample further in
    raises AudioFormatError when its block is reached. For a file at ``sample_rate`` the samples
    are those of ``load_audio``; other rates go through the streaming resampler the microphone uses.
    """
    from voice_gru.mic import StreamingResampler

    path = Path(path)
    f = _open_checked(path)
    if f.frames == 0:
        f.close()
        raise AudioFormatError(f"{path}: audio has zero length (no samples)")

    def blocks() -> Iterator[np.ndarray]:
        resample_block = StreamingResampler(f.samplerate, sample_rate)
        expected = _header_frames(f)
        done = 0
        with f:
            step = max(1, int(f.samplerate * block_seconds))
            while True:
                try:
                    data = f.read(step, dtype="float32", always_2d=True)
                except (RuntimeError, ValueError, OSError) as exc:
                    raise AudioFormatError(f"{path}: cannot decode audio ({_short(exc)})") from None
                if data.shape[0] == 0:
                    break
                out = resample_block(_checked_samples(path, data, done / f.samplerate))
                done += data.shape[0]
                if out.size:
                    yield np.clip(out, -1.0, 1.0)
        tail = resample_block.flush()
        if tail.size:
            yield np.clip(tail, -1.0, 1.0)
        if done < expected:
            raise AudioFormatError(f"{path}: truncated (the file is shorter than its header says)")

    return blocks()


def is_truncated_wav(path: str | Path) -> bool:
    """True when a RIFF/WAVE file's data chunk is shorter than its header says."""
    import struct

    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        size = Path(path).stat().st_size
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return False
            cid, clen = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                return f.tell() + clen > size
            f.seek(clen + (clen & 1), 1)


def _short(exc: BaseException) -> str:
    """First line of an exception message."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def save_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV atomically (temp file + rename)."""
    import soundfile as sf

    from voice_gru.fileio import atomic_path

    with atomic_path(path, suffix=".wav") as tmp:
        sf.write(str(tmp), np.clip(audio, -1, 1), sample_rate, subtype="PCM_16")
