"""Audio in: any file soundfile reads -> 16 kHz mono float32 in [-1, 1]."""

from __future__ import annotations

import functools
import logging
import os
import struct
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np

from voice_gru.errors import AudioFormatError, first_line

SAMPLE_RATE = 16000
logger = logging.getLogger(__name__)
# float samples lie in [-1, 1]; a little over is clipping, far over is integer PCM stored as float
FLOAT_LIMIT = 16.0
SOUNDED_PEAK = 1e-3  # a block of float audio peaking above this (and within [-1, 1]) is sound, not silence

# data sizes a WAV writer leaves when it cannot go back to fill them in (output to a pipe, a recorder
# that was killed): the samples run to the end of the file (0 too, when bytes follow the chunk header)
PLACEHOLDER_SIZES = (0xFFFFFFFF, 0x7FFFFFFF)

# WAV (format tag, bits) -> (stored dtype, zero point, full scale): decoded as libsndfile decodes them
_HEADERLESS_FORMATS = {
    (1, 8): ("u1", 128.0, 128.0),
    (1, 16): ("<i2", 0.0, 32768.0),
    (1, 32): ("<i4", 0.0, 2.0**31),
    (3, 32): ("<f4", 0.0, 1.0),
    (3, 64): ("<f8", 0.0, 1.0),
}


def resample(audio: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling of a 1-D float32 signal (soxr)."""
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(audio.astype(np.float32, copy=False), orig_sr, target_sr, quality="HQ").astype(
        np.float32, copy=False
    )


# Channels whose average is this far below the channels themselves cancel each other: one of them is inverted (a
# laptop's microphone pair wired so is a known Linux quirk), and their average would be near silence. Uncorrelated
# channels average 3 dB down, one voice on both in phase 0 dB.
CANCEL_RATIO = 0.1  # -10 dB
CANCEL_WINDOW_S = 0.1  # judged on windows of this much audio (lost to the average until then; a wrong switch to one
                       # channel of a stereo source costs little) ...
CANCEL_FLOOR = 1e-5  # ... whose channels are above -50 dBFS mean square (a microphone's hiss says nothing)


class Downmix:
    """``(frames, channels)`` blocks to mono by their channels' average, block by block; where the two channels of a
    stereo input cancel (their average ``CANCEL_RATIO`` below them over a window of sound), from then on the first
    channel alone. ``on_cancel(message)`` is told once when that happens."""

    def __init__(self, sample_rate: float, on_cancel: Callable[[str], object] | None = None) -> None:
        self.window = max(1, int(CANCEL_WINDOW_S * sample_rate))
        self.on_cancel = on_cancel
        self.first_only = False
        self._filled = 0
        self._mix = self._each = 0.0  # energies over the window so far: of the average, of one channel (mean)

    def __call__(self, block: np.ndarray) -> np.ndarray:
        """One block as mono float32."""
        x = np.asarray(block, dtype=np.float32)
        if x.ndim == 1:
            return x
        if x.shape[1] == 1 or self.first_only:
            return np.ascontiguousarray(x[:, 0])
        if x.shape[1] != 2:  # the inverted pair is a stereo quirk; more channels are a mix of their own
            return x.mean(axis=1, dtype=np.float32)
        out, i = [], 0
        while i < len(x):  # window by window, so a whole file and its blocks switch at the same sample
            if self.first_only:
                out.append(np.ascontiguousarray(x[i:, 0]))
                break
            seg = x[i:i + self.window - self._filled]
            mix = seg.mean(axis=1, dtype=np.float32)
            out.append(mix)
            i += len(seg)
            self._mix += float(np.dot(mix, mix))
            self._each += float(np.einsum("ij,ij->", seg, seg)) / 2
            self._filled += len(seg)
            if self._filled == self.window:
                self._judge()
        return out[0] if len(out) == 1 else np.concatenate(out) if out else np.zeros(0, np.float32)

    def _judge(self) -> None:
        """At a window's end: switch to the first channel if the two cancelled over it; start the next window."""
        if self._each > CANCEL_FLOOR * self.window and self._mix < CANCEL_RATIO * self._each:
            self.first_only = True
            if self.on_cancel is not None:
                drop = 10 * np.log10(self._each / max(self._mix, 1e-30))
                self.on_cancel(f"the two input channels cancel each other (their average is {drop:.0f} dB below "
                               "them: one is inverted, as in some laptops' microphone pairs): using the first "
                               "channel alone")
        self._filled, self._mix, self._each = 0, 0.0, 0.0


def to_mono(audio: np.ndarray, sample_rate: float = SAMPLE_RATE,
            on_cancel: Callable[[str], object] | None = None) -> np.ndarray:
    """A ``(frames, channels)`` array as mono (``Downmix``: the channels' average, or the first channel where the
    average cancels); 1-D arrays pass through."""
    if audio.ndim == 1:
        return audio
    return Downmix(sample_rate, on_cancel)(audio)


@functools.cache
def _read_on_file() -> type:
    """``soundfile.SoundFile`` that reads straight on, block after block, without seeking between reads.

    soundfile keeps its position by a tell and a seek around every read. An MP3 decoder cannot seek
    to the middle of a frame without losing the frame's bit reservoir: read in 1 s blocks, each
    boundary could garble the frame after it (libmpg123's "part2_3_length" lines on stderr, up to
    0.005 of full scale off a one-call decode; 0.24 in 26 ms blocks). Not seekable, it makes no seeks.
    """
    import soundfile as sf

    class ReadOn(sf.SoundFile):
        def seekable(self) -> bool:
            return False

    return ReadOn


def _open_checked(path: Path, on_truncated: Callable[[str], object] | None = None, in_blocks: bool = False):
    """An open ``soundfile.SoundFile`` (or ``_HeaderlessWav``) after the checks that need no decoding; bad input
    raises AudioFormatError (a WAV shorter than its header says too, unless ``on_truncated`` is told instead).
    ``in_blocks``: to be read in pieces of a stated length (``_read_on_file``)."""
    import soundfile as sf

    if not path.exists():
        if path.is_symlink():
            raise AudioFormatError(f"{path}: a link that leads to no file (its target is missing, or links loop)")
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
        # bytes: libsndfile takes any name the file system does (soundfile encodes str strictly as UTF-8)
        f = (_read_on_file() if in_blocks else sf.SoundFile)(os.fsencode(path))
    except sf.LibsndfileError as exc:
        layout = _wav_layout(path)
        broken = wav_format(layout.fmt).broken() if layout is not None and len(layout.fmt) >= 16 else None
        if broken:  # libsndfile says "SF_INFO struct incomplete" here
            raise AudioFormatError(f"{path}: {broken}") from None
        # libsndfile's message repeats the name as bytes ("Error opening b'/x.wav': Format not recognised.")
        raise AudioFormatError(f"{path}: not a readable audio file ({exc.error_string})") from None
    except (RuntimeError, ValueError, OSError) as exc:
        raise AudioFormatError(f"{path}: cannot decode audio ({first_line(exc)})") from None
    cut = ("truncated (the file is shorter than its header says)" if is_truncated_wav(path) or (
        f.format in ("AIFF", "AU") and is_truncated_aiff_or_au(path)) else
           "truncated (its last Ogg page is incomplete, or not the stream's end)"
           if f.format == "OGG" and is_truncated_ogg(path) else None)
    if cut:
        if on_truncated is None:
            f.close()
            raise AudioFormatError(f"{path}: {cut}")
        on_truncated(f"{path}: {cut}: what it holds is heard")
    if f.frames == 0:  # libsndfile takes a data size of 0 at its word, even with samples after it
        tail = _data_to_end(path)
        if tail is not None:
            f.close()
            return tail
    return f


class WavFormat(NamedTuple):
    """A WAV format chunk's fields (the sub-format's tag for WAVE_FORMAT_EXTENSIBLE)."""

    tag: int  # 1: PCM, 3: float
    channels: int
    rate: int
    bits: int

    @property
    def kind(self) -> str:
        """The sample format's name for messages (``PCM``, ``float``, else its tag)."""
        return {1: "PCM", 3: "float"}.get(self.tag, f"format tag {self.tag}")

    def broken(self) -> str | None:
        """What is wrong with a header that has no channels or no sample rate (None: nothing)."""
        if self.channels < 1 or self.rate < 1:
            return (f"WAV header says {self.channels} channel(s) at {self.rate} Hz: a broken header "
                    "(at least one channel, a positive sample rate)")
        return None


def wav_format(body: bytes) -> WavFormat:
    """The fields of a format chunk's body (at least 16 bytes)."""
    tag, channels, rate = struct.unpack("<HHI", body[:8])
    bits = struct.unpack("<H", body[14:16])[0]
    if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's tag
        tag = struct.unpack("<H", body[24:26])[0]
    return WavFormat(tag, channels, rate, bits)


class _WavLayout(NamedTuple):
    """Where a RIFF/WAVE file's samples start, what size its header gives them, and its format chunk."""

    fmt: bytes  # the fmt chunk's first bytes (b"" when none comes before the data)
    start: int  # offset of the first data byte
    size: int  # the data chunk's size field, possibly a placeholder


def _wav_layout(path: str | Path) -> _WavLayout | None:
    """The data chunk of a RIFF/WAVE file (None: not a WAV, or no data chunk header in it)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        fmt = b""
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, clen = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                return _WavLayout(fmt, f.tell(), clen)
            body = f.read(min(clen, 40)) if cid == b"fmt " else b""  # 40: WAVE_FORMAT_EXTENSIBLE's whole body
            fmt = body or fmt
            f.seek(clen - len(body) + (clen & 1), 1)


def _only_chunks_follow(path: Path, pos: int, end: int) -> bool:
    """True when the bytes from ``pos`` to ``end`` are whole RIFF chunks (metadata after an empty data chunk)."""
    with open(path, "rb") as f:
        clen = 0
        while pos < end:
            f.seek(pos)
            head = f.read(8)
            if len(head) < 8 or not all(32 <= c < 127 for c in head[:4]):  # chunk ids are printable ASCII
                return False
            clen = struct.unpack("<I", head[4:])[0]
            pos += 8 + clen + (clen & 1)
        return pos - end <= (clen & 1)  # writers may leave out the last chunk's pad byte


# chunks writers put after the samples; the samples of a WAV with no data size end where a chain of these
# runs to the end of the file
_METADATA_CHUNKS = (b"LIST", b"id3 ", b"ID3 ", b"cue ", b"smpl", b"inst", b"bext", b"iXML", b"_PMX", b"JUNK",
                    b"PAD ", b"acid", b"DISP", b"plst", b"fact")
_METADATA_SEARCH = 1 << 23  # bytes from the end searched for them (8 MiB: embedded cover art fits)


def _samples_end(path: Path, start: int, end: int) -> int:
    """Where the samples of a WAV with a data size of 0 end: before the metadata chunks that run from there
    to the end of the file, if any (a chain of known ids whose sizes add up to the file's end exactly)."""
    lo = max(start, end - _METADATA_SEARCH)
    with open(path, "rb") as f:
        f.seek(lo)
        tail = f.read(end - lo)
    found = end
    for cid in _METADATA_CHUNKS:
        i = tail.find(cid)
        while i >= 0 and lo + i < found:
            if _only_chunks_follow(path, lo + i, end):
                found = lo + i
                break
            i = tail.find(cid, i + 1)
    return found


def _data_to_end(path: Path) -> _HeaderlessWav | None:
    """The samples of a WAV whose data size is 0 but whose samples follow it (None: no such samples)."""
    layout = _wav_layout(path)
    end = path.stat().st_size
    if layout is None or layout.size != 0 or layout.start >= end or _only_chunks_follow(path, layout.start, end):
        return None
    file_end, end = end, _samples_end(path, layout.start, end)
    if len(layout.fmt) < 16:
        raise AudioFormatError(f"{path}: WAV audio data before any format chunk")
    fmt = wav_format(layout.fmt)
    stored = _HEADERLESS_FORMATS.get((fmt.tag, fmt.bits))
    if stored is None or fmt.broken():
        raise AudioFormatError(f"{path}: WAV data size is 0 (an unfinished recording?) and its {fmt.bits}-bit "
                               f"{fmt.kind} samples cannot be read without it; fix the header with sox --ignore-length")
    if end < file_end and fmt.bits == 8 and fmt.channels == 1 and (end - layout.start) % 2 == 0:
        with open(path, "rb") as f:  # odd-sized data is padded to an even size with a zero byte before the next
            f.seek(end - 1)          # chunk; in unsigned 8-bit audio a real sample of 0 is full-scale negative
            if f.read(1) == b"\x00":
                end -= 1
    return _HeaderlessWav(path, layout.start, end, fmt.rate, fmt.channels, *stored)


class _HeaderlessWav:
    """The samples from ``start`` to ``end`` of a WAV file, read like a ``soundfile.SoundFile``."""

    def __init__(self, path: Path, start: int, end: int, samplerate: int, channels: int, dtype: str, zero: float,
                 scale: float) -> None:
        self.samplerate, self.channels = samplerate, channels
        self._dtype, self._zero, self._scale = np.dtype(dtype), np.float32(zero), np.float32(scale)
        self._frame_bytes = self._dtype.itemsize * channels
        self.frames = (end - start) // self._frame_bytes  # a trailing partial frame is dropped (a pad byte)
        self._left = self.frames
        self._file = open(path, "rb")
        self._file.seek(start)

    def read(self, frames: int = -1, dtype: str = "float32", always_2d: bool = False) -> np.ndarray:
        """The next ``frames`` frames (all that are left when negative) as floats in [-1, 1]."""
        n = self._left if frames < 0 else min(frames, self._left)
        raw = self._file.read(n * self._frame_bytes)
        n = len(raw) // self._frame_bytes
        self._left -= n
        x = np.frombuffer(raw, self._dtype, count=n * self.channels).reshape(n, self.channels)
        # libsndfile's order: to float32 first, then scale (exact: the scales are powers of two)
        x = (x.astype(np.float32) - self._zero) / self._scale
        x = x.astype(dtype, copy=False)
        return x if always_2d or self.channels > 1 else x[:, 0]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _HeaderlessWav:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _header_frames(f) -> int:
    """Frames the file's header promises (0 when it does not say)."""
    return f.frames if 0 < f.frames < 2**62 else 0


def _checked_samples(path: Path, data: np.ndarray, offset_s: float = 0.0) -> np.ndarray:
    """``data`` if every sample is finite and within float audio's scale; AudioFormatError otherwise."""
    # NaN or inf when any sample is, so one check for both; no |data| copy (an hour of audio is 230 MB)
    peak = max(float(data.max()), -float(data.min())) if data.size else 0.0
    where = f" from {offset_s:.1f} s" if offset_s > 0 else ""
    if not np.isfinite(peak):
        bad = int((~np.isfinite(data)).sum())
        raise AudioFormatError(f"{path}: contains {bad} NaN/inf samples{where}")
    if peak > FLOAT_LIMIT:  # integer PCM decodes within [-1, 1]: only float samples get here
        raise AudioFormatError(f"{path}: float samples reach {peak:g}{where}: float samples lie in [-1, 1]; this file "
                               "looks like integer PCM stored as float: rescale it (16-bit values: divide by 32768)")
    return data


def audio_problem(path: str | Path) -> str | None:
    """Why a file cannot be read as audio, from the checks that need no decoding (a truncated WAV included), or None."""
    try:
        with _open_checked(Path(path)) as f:  # a header of no samples: `data stats` counted it, `train` skipped it
            return f"{path}: audio has zero length (no samples)" if f.frames == 0 else None
    except AudioFormatError as exc:
        return str(exc)


def file_rate(path: str | Path) -> int:
    """An audio file's own sample rate (from its header); bad input raises AudioFormatError (a file cut short has one)."""
    with _open_checked(Path(path), on_truncated=lambda message: None) as f:
        return int(f.samplerate)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono float32 at ``sample_rate``; bad input raises AudioFormatError."""
    path = Path(path)
    with _open_checked(path) as f:
        sr = f.samplerate
        expected = _header_frames(f)
        try:
            data = f.read(dtype="float32", always_2d=True)
        except (RuntimeError, ValueError, OSError) as exc:
            raise AudioFormatError(f"{path}: cannot decode audio ({first_line(exc)})") from None
    if data.shape[0] == 0:
        raise AudioFormatError(f"{path}: audio has zero length (no samples)")
    if data.shape[0] < expected:
        raise AudioFormatError(f"{path}: truncated (the file is shorter than its header says)")
    audio = resample(to_mono(_checked_samples(path, data), sr, lambda msg: logger.warning("%s: %s", path, msg)), sr,
                     sample_rate)
    return np.clip(audio, -1.0, 1.0, out=audio)  # in place: no second copy of an hour-long recording


def audio_blocks(path: str | Path, sample_rate: int = SAMPLE_RATE, block_seconds: float = 1.0,
                 on_damage: Callable[[str], object] | None = None) -> Iterator[np.ndarray]:
    """A recording as consecutive mono float32 blocks at ``sample_rate``, decoded and resampled piece
    by piece, so memory does not grow with its length (hours of audio through ``listen --input``).

    What can be checked without decoding is checked before this returns; a bad sample further in
    raises AudioFormatError when its block is reached. For a file at ``sample_rate`` the samples
    are those of ``load_audio``; other rates go through the streaming resampler the microphone uses.
    ``on_damage``: a file shorter than its header says (a recorder that was killed) is told to it and read as
    far as it goes, as the same bytes on a pipe are, and NaN/inf samples or, after the first block, samples beyond
    ``FLOAT_LIMIT`` (a damaged stretch of a float file) are told to it and heard as silence; without it each is an
    AudioFormatError.
    """
    return _blocks_and_length(path, sample_rate, block_seconds, on_damage)[0]


def _blocks_and_length(path: str | Path, sample_rate: int, block_seconds: float = 1.0,
                       on_damage: Callable[[str], object] | None = None) -> tuple[Iterator[np.ndarray], int]:
    """``audio_blocks`` and the samples at ``sample_rate`` its file's header promises (0 when it does not say, or says
    more than any codec here packs into the file: 64 samples a byte)."""
    from voice_gru.mic import StreamingResampler

    path = Path(path)
    told: list[str] = []  # said once: by the header check, or at the end

    def tell(message: str) -> None:
        told.append(message)
        if on_damage is not None:
            on_damage(message)

    f = _open_checked(path, None if on_damage is None else tell, in_blocks=True)
    if f.frames == 0:
        f.close()
        raise AudioFormatError(f"{path}: audio has zero length (no samples)")

    def blocks() -> Iterator[np.ndarray]:
        resample_block = StreamingResampler(f.samplerate, sample_rate)
        expected = _header_frames(f)
        done, silenced, first_silenced = 0, 0, 0
        sounded_float = False
        with f:
            step = max(1, int(f.samplerate * block_seconds))
            while True:
                try:
                    data = f.read(step, dtype="float32", always_2d=True)
                except (RuntimeError, ValueError, OSError) as exc:
                    if on_damage is None or not done:
                        raise AudioFormatError(f"{path}: cannot decode audio ({first_line(exc)})") from None
                    if step > 1024:  # the block that failed is lost whole: go back and read up to the break in small ones
                        try:
                            f.seek(done)
                            step = 1024
                            continue
                        except (RuntimeError, ValueError, OSError):
                            pass
                    # a compressed file cut short (FLAC: "lost sync") is heard as far as it goes, as a WAV is
                    tell(f"{path}: cannot decode it after {done / f.samplerate:.1f} s ({first_line(exc)}): cut short? "
                         "what came before is heard")
                    break
                if data.shape[0] == 0:
                    break
                if on_damage is not None:
                    # a damaged stretch an hour in: said and heard as silence, not the end of the run. Random bytes
                    # decode as huge floats more often than as NaN: those count as damage only once the file has
                    # sounded like float audio (a block within [-1, 1], not silent); before, they say "integer PCM
                    # stored as float", which a file whose first second is quiet room noise or silence may be
                    bad = ~np.isfinite(data) | ((np.abs(data) > FLOAT_LIMIT) if sounded_float else False)
                    if bad.any():
                        data[bad] = 0.0
                        if not silenced:
                            first_silenced = int(bad.sum())
                            on_damage(f"{path}: {first_silenced} damaged samples (NaN, inf or beyond ±{FLOAT_LIMIT:g}) "
                                      f"from {done / f.samplerate:.1f} s: heard as silence")
                        silenced += int(bad.sum())
                    peak = float(np.abs(data).max(initial=0.0))
                    sounded_float = sounded_float or SOUNDED_PEAK < peak <= 1.0
                out = resample_block(_checked_samples(path, data, done / f.samplerate))
                done += data.shape[0]
                if out.size:
                    yield np.clip(out, -1.0, 1.0)
        tail = resample_block.flush()
        if tail.size:
            yield np.clip(tail, -1.0, 1.0)
        if on_damage is not None and silenced > first_silenced:
            on_damage(f"{path}: {silenced} damaged samples in all were heard as silence")
        if done < expected and not told:
            message = f"{path}: truncated (the file is shorter than its header says)"
            if on_damage is None:
                raise AudioFormatError(message)
            tell(f"{message}: {done / f.samplerate:.1f} s of it were heard")

    promised = _header_frames(f)
    if promised > 64 * path.stat().st_size:
        promised = 0
    return blocks(), int(np.ceil(promised * sample_rate / f.samplerate))


def load_recording(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A whole recording as ``listen --input`` hears it (``audio_blocks``' samples), held once at ``sample_rate``:
    an hour at 44.1 kHz stereo is never in memory at its own rate (1.3 GB as float32, then its mono, then the 0.23 GB
    kept). Bad input raises AudioFormatError, as ``load_audio`` does."""
    blocks, promised = _blocks_and_length(path, sample_rate)
    out, n = np.empty(promised + 1 if promised else 0, np.float32), 0
    for block in blocks:
        if n + block.size > out.size:  # the header said less (or nothing): grow by half
            out = np.concatenate([out[:n], np.empty(max(block.size, out.size // 2), np.float32)])
        out[n:n + block.size] = block
        n += block.size
    if n == 0:
        raise AudioFormatError(f"{path}: audio has zero length (no samples)")
    return out[:n]


def is_truncated_wav(path: str | Path) -> bool:
    """True when a RIFF/WAVE file's data chunk is shorter than its header says (a placeholder size says nothing)."""
    layout = _wav_layout(path)
    if layout is None or layout.size in PLACEHOLDER_SIZES:
        return False
    return layout.start + layout.size > Path(path).stat().st_size


def is_truncated_aiff_or_au(path: str | Path) -> bool:
    """True when an AIFF/AIFF-C file's sound data (SSND) or a Sun/NeXT .au file's data is shorter than its header
    says: libsndfile lowers the frame count to what is on disk and says nothing (an unknown .au size says nothing)."""
    with open(path, "rb") as fh:
        head = fh.read(24)
        size = fh.seek(0, os.SEEK_END)
        if head[:4] == b".snd" and len(head) >= 12:
            offset, length = struct.unpack(">II", head[4:12])
            return length != 0xFFFFFFFF and offset + length > size
        if head[:4] != b"FORM" or head[8:12] not in (b"AIFF", b"AIFC"):
            return False
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            kind, length = struct.unpack(">4sI", fh.read(8))
            if kind == b"SSND":
                return pos + 8 + length > size
            pos += 8 + length + (length & 1)  # chunks are padded to an even length
    return False


OGG_TAIL = 1 << 17  # bytes read from an Ogg file's end to find its last page (a page holds at most 65,307)


def is_truncated_ogg(path: str | Path) -> bool:
    """True when an Ogg file (Vorbis, Opus, FLAC in Ogg) ends without a whole end-of-stream page: its header gives no
    length, and libsndfile reads a file cut short as far as it goes without a word (a recorder that was killed)."""
    with open(path, "rb") as fh:
        if fh.read(4) != b"OggS":
            return False
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - OGG_TAIL))
        tail = fh.read()
    at = tail.rfind(b"OggS")
    while at >= 0:
        page = tail[at:]
        if len(page) >= 27 and page[4] == 0:  # version 0: a page header, not those bytes inside a packet
            segments = page[26]
            if len(page) < 27 + segments:
                return True
            length = 27 + segments + sum(page[27:27 + segments])
            return length != len(page) or not page[5] & 0x04
        at = tail.rfind(b"OggS", 0, at)
    return True


def save_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV atomically (temp file + rename)."""
    from voice_gru.fileio import atomic_path

    with atomic_path(path, suffix=".wav") as tmp:
        write_pcm16(tmp, audio, sample_rate)


def write_pcm16(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV in place (into a temp file the caller renames), samples clipped to [-1, 1]."""
    import soundfile as sf

    sf.write(str(path), np.clip(audio, -1, 1), sample_rate, subtype="PCM_16")
