"""The listening loop shared by the microphone and ``--input FILE``: audio -> ``CommandSpotter``
(recognizer + detector) -> events and actions, with an optional one-line live view on the terminal."""

from __future__ import annotations

import json
import math
import os
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Iterator, TextIO

import numpy as np

from voice_gru.decision import Command
from voice_gru.input_level import InputMonitor, chunk_levels
from voice_gru.spotter import CommandSpotter

if TYPE_CHECKING:
    from voice_gru.mic import MicrophoneStream

# a microphone silent this long has stopped delivering (PulseAudio's first block comes within ~2.5 s of opening)
GAP_S = 5.0


def file_chunks(path: str | Path, chunk_ms: float = 100.0, realtime: bool = False,
                sample_rate: int = 16000, on_damage: Callable[[str], object] | None = None) -> Iterator[np.ndarray]:
    """A recording as consecutive chunks of ``chunk_ms``, read piece by piece (memory stays flat
    for hours of audio); with ``realtime`` paced like a microphone.

    The file is opened and checked here, so a bad file is reported before anything starts listening.
    ``on_damage``: a file cut short is told to it and heard as far as it goes, damaged samples as silence
    (``audio.audio_blocks``).
    """
    from voice_gru.audio import audio_blocks

    n = max(1, int(round(sample_rate * chunk_ms / 1000)))
    return _paced(_rechunk(audio_blocks(path, sample_rate, on_damage=on_damage), n), realtime, sample_rate)


def _rechunk(blocks: Iterable[np.ndarray], n: int) -> Iterator[np.ndarray]:
    """Blocks of any size as chunks of exactly ``n`` samples (the last one shorter)."""
    buf = np.zeros(0, dtype=np.float32)
    for b in blocks:
        buf = np.concatenate([buf, b]) if buf.size else b
        whole = buf.size // n * n
        for i in range(0, whole, n):
            yield buf[i:i + n]
        buf = buf[whole:]
    if buf.size:
        yield buf


def _paced(chunks: Iterable[np.ndarray], realtime: bool, sample_rate: int) -> Iterator[np.ndarray]:
    t0 = time.monotonic()
    done = 0
    for c in chunks:
        if realtime:
            wait = t0 + done / sample_rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        done += c.size
        yield c


@dataclass(frozen=True)
class PipeHeader:
    """What the start of a pipe said about its audio: a WAV header's rate and channels, or nothing."""

    rate: int | None  # None: no WAV header, raw PCM
    channels: int | None
    head: bytes = b""  # bytes read while looking that are audio
    size: int | None = None  # the WAV data chunk's bytes, where its header says (None: to the end of the pipe)


_MPEG_KBPS = {  # bit rate index -> kbit/s, by (MPEG-1?, layer)
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version bits


def _frame_length(h: bytes) -> tuple[str, int] | None:
    """``(format, bytes)`` of the MPEG audio or ADTS frame whose header starts ``h``, None where it is none."""
    if len(h) < 7 or h[0] != 0xFF:
        return None
    if (h[1] & 0xF6) == 0xF0 and (h[2] >> 2) & 0xF < 13:  # ADTS: the length is a field of its own
        n = ((h[3] & 0x03) << 11) | (h[4] << 3) | (h[5] >> 5)
        return ("AAC (ADTS)", n) if n >= 7 else None
    version, layer_bits, index, rate_bits = (h[1] >> 3) & 3, (h[1] >> 1) & 3, h[2] >> 4, (h[2] >> 2) & 3
    if (h[1] & 0xE0) != 0xE0 or version == 1 or layer_bits == 0 or not 0 < index < 15 or rate_bits == 3:
        return None
    layer, mpeg1, pad = 4 - layer_bits, version == 3, (h[2] >> 1) & 1
    kbps, rate = _MPEG_KBPS[mpeg1, layer][index], _MPEG_RATES[version][rate_bits]
    if layer == 1:
        n = (12 * kbps * 1000 // rate + pad) * 4
    else:
        n = (144 if mpeg1 or layer == 2 else 72) * kbps * 1000 // rate + pad
    return "MPEG audio (MP3)", n


def _compressed(head: bytes) -> str | None:
    """The name of a compressed format whose stream starts with ``head`` (up to 4 KiB), None for anything else.
    MPEG audio and AAC have no magic of their own: a frame header, and the next ones where its length says (three
    frames in all, or as many as ``head`` holds); raw PCM that happens to hold header-like bytes does not chain so."""
    if head[4:8] == b"ftyp":
        return "MP4/M4A"
    for magic, name in ((b"\x1aE\xdf\xa3", "Matroska/WebM"), (b"#!AMR", "AMR"), (b"wvpk", "WavPack"),
                        (b"MAC ", "Monkey's Audio")):
        if head.startswith(magic):
            return name
    first = _frame_length(head)
    if first is None:
        return None
    pos, frames = 0, 0
    while pos + 7 <= len(head) and frames < 3:
        found = _frame_length(head[pos:pos + 7])
        if found is None or found[0] != first[0] or head[pos + 1] != head[1]:  # one stream: the same kind of frame
            return None
        pos, frames = pos + found[1], frames + 1
    return first[0] if frames >= 3 or (frames == 2 and pos >= len(head)) else None


def sniff_wav_header(stream: BinaryIO) -> PipeHeader:
    """Read a WAV header from the start of a pipe if there is one (``arecord``, ``sox -t wav -``,
    ``ffmpeg -f wav -`` write one), leaving the stream at its first sample; only 16-bit PCM is accepted."""
    from voice_gru.audio import PLACEHOLDER_SIZES, wav_format
    from voice_gru.errors import AudioFormatError

    head = stream.read(12)
    if head[:1] == b"\xff" and len(head) == 12:  # MPEG audio or AAC? Their frames say so only further on
        head += stream.read(4096 - 12)
    name = _compressed(head)
    if name is not None:
        raise AudioFormatError(f"standard input: {name} data; send 16-bit PCM, raw or WAV "
                               "(ffmpeg -i - -f s16le -ac 1 -ar 16000 -, or give the file itself to --input)")
    for magic, name in ((b"fLaC", "FLAC"), (b"OggS", "Ogg"), (b"ID3", "MP3"), (b"RIFX", "big-endian WAV"),
                        (b"FORM", "AIFF"), (b"caff", "CAF"), (b".snd", "AU"), (b"RF64", "RF64 WAV"),
                        (b"BW64", "BW64 WAV"), (b"riff", "Wave64"), (b"NIST_1A", "NIST SPHERE")):
        if head.startswith(magic):  # read as raw PCM it would be noise, and a run that "works"
            raise AudioFormatError(f"standard input: {name} data; send 16-bit PCM, raw or WAV "
                                   "(ffmpeg -i - -f s16le -ac 1 -ar 16000 -, or give the file itself to --input)")
    if len(head) == 12 and head[:4] == b"RIFF" and head[8:12] != b"WAVE":
        raise AudioFormatError(f"standard input: RIFF {head[8:12].decode('latin-1')!r} data, not WAVE; send 16-bit PCM, "
                               "raw or WAV (ffmpeg -i - -f s16le -ac 1 -ar 16000 -)")
    if len(head) < 12 or head[:4] != b"RIFF":
        return PipeHeader(None, None, head)
    fmt = None
    while True:
        chunk = stream.read(8)
        if len(chunk) < 8:
            raise AudioFormatError("standard input: the WAV header ends before its audio data")
        cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"data":  # its size is often a placeholder when streaming: then read to the end instead
            if fmt is None:
                raise AudioFormatError("standard input: WAV audio data before any format chunk")
            # chunks may follow the data (a tag, a cue list): not samples. Sizes near 2 or 4 GiB are a writer's
            # stand-in for "unknown" (arecord, ffmpeg and sox each have their own), and 0 with data after it
            placeholder = size in PLACEHOLDER_SIZES or size == 0 or size >= 0x7FFF0000
            return PipeHeader(fmt[0], fmt[1], size=None if placeholder else size)
        body = stream.read(size + (size & 1))
        if cid == b"fmt ":
            if len(body) < 16:
                raise AudioFormatError("standard input: WAV format chunk is cut short")
            f = wav_format(body)
            if f.broken():
                raise AudioFormatError(f"standard input: {f.broken()}")
            if f.tag != 1 or f.bits != 16:
                raise AudioFormatError(f"standard input: WAV with {f.bits}-bit {f.kind} samples; send 16-bit PCM "
                                       f"(sox: -b 16 -e signed, ffmpeg: -c:a pcm_s16le)")
            fmt = (f.rate, f.channels)


def pipe_chunks(stream: BinaryIO, in_rate: int = 16000, channels: int = 1, chunk_ms: float = 100.0,
                out_rate: int = 16000, on_partial: Callable[[int], None] | None = None,
                head: bytes = b"", size: int | None = None,
                on_short: Callable[[str], object] | None = None) -> Iterator[np.ndarray]:
    """Raw signed 16-bit little-endian PCM from a pipe (``arecord``, ``sox``, ``ffmpeg``) as mono
    ``out_rate`` chunks, until the pipe ends or ``size`` bytes are read (``head``: bytes of it already read).

    Interleaved channels are downmixed (``audio.Downmix``) and other rates resampled in code, as for a microphone. A
    trailing partial sample frame cannot be decoded; ``on_partial`` is told how many bytes it had. A pipe that ends
    before the ``size`` its WAV header announced (a recorder that was stopped) is told to ``on_short``, as a file
    cut short is.
    """
    from voice_gru.mic import StreamingResampler

    frame_bytes = 2 * channels
    want = max(1, int(round(in_rate * chunk_ms / 1000))) * frame_bytes
    resample = StreamingResampler(in_rate, out_rate)
    pending, left = head, size
    while True:
        data = stream.read(want if left is None else min(want, left))  # fewer than asked only at the pipe's end
        if left is not None:
            left -= len(data)
        buf = pending + data  # at the end too: a pipe shorter than the header sniff is all in ``head``
        usable = len(buf) - len(buf) % frame_bytes
        pending = buf[usable:]
        if usable:
            pcm = np.frombuffer(buf[:usable], dtype="<i2").astype(np.float32) / 32768.0
            out = resample(pcm.reshape(-1, channels))
            if out.size:
                yield out
        if not data:
            break
    tail = resample.flush()
    if tail.size:
        yield tail
    if pending and on_partial is not None:
        on_partial(len(pending))
    if size is not None and left and on_short is not None:
        heard, said = (size - left) // frame_bytes, size // frame_bytes
        on_short(f"standard input ended after {heard / in_rate:.1f} s, before the {said / in_rate:.1f} s its WAV header "
                 "announced (a recorder that was stopped?): what came is heard")


def stdin_chunks(stream: BinaryIO, rate: int | None = None, channels: int | None = None, chunk_ms: float = 100.0,
                 out_rate: int = 16000, on_partial: Callable[[int], None] | None = None,
                 on_rate: Callable[[int], object] | None = None,
                 on_short: Callable[[str], object] | None = None) -> tuple[Iterator[np.ndarray], str]:
    """Chunks from a pipe, WAV or raw (``rate``/``channels``: what the user said of raw PCM, None =
    16 kHz mono), and a line saying what is read; a WAV header that contradicts them is a ConfigError.
    ``on_rate`` is told the pipe's sample rate once it is known; ``on_short``, a WAV that ends before its header said."""
    from voice_gru.errors import ConfigError

    header = sniff_wav_header(stream)
    assumed = ""
    if header.rate is None or header.channels is None:
        hz, n_ch = (16000 if rate is None else rate), (1 if channels is None else channels)
        kind = "raw 16-bit PCM"
        if rate is None or channels is None:  # 48 kHz stereo read so was 6x slow, and heard nothing, unsaid
            assumed = " (no header says otherwise; for other raw audio: --input-rate HZ --input-channels N)"
    else:
        for flag, given, says in (("--input-rate", rate, header.rate), ("--input-channels", channels, header.channels)):
            if given is not None and given != says:
                raise ConfigError(f"{flag} {given}: standard input's WAV header says {header.rate} Hz, "
                                  f"{header.channels} channel(s)")
        hz, n_ch = header.rate, header.channels
        kind = "WAV (16-bit PCM)"
    if on_rate is not None:
        on_rate(hz)
    chunks = pipe_chunks(stream, hz, n_ch, chunk_ms, out_rate, on_partial, header.head, header.size, on_short)
    return chunks, f"reading {kind} from standard input: {hz} Hz, {n_ch} channel(s){assumed}"


def mic_chunks(mic: MicrophoneStream, stop: Callable[[], bool] = lambda: False,
               on_first: Callable[[], None] | None = None,
               on_gap: Callable[[str], None] | None = None, gap_s: float = GAP_S) -> Iterator[np.ndarray]:
    """Chunks from an open ``MicrophoneStream`` until ``stop()`` says so. ``on_gap(message)``: no audio has come for
    ``gap_s`` seconds (a sound server that stopped answering leaves the stream open and silent: nothing else
    said so), and again when it comes back."""
    first = True
    last, silent = time.monotonic(), False
    while not stop():
        chunk = mic.read(timeout=0.5)
        now = time.monotonic()
        if chunk is None or chunk.size == 0:
            if on_gap is not None and not silent and now - last >= gap_s:
                silent = True
                on_gap(f"no audio from the microphone for {now - last:.0f} s{' since it opened' if first else ''} "
                       "(is its sound server answering?); still waiting for it")
            continue
        if silent and on_gap is not None:
            on_gap(f"audio from the microphone again after {now - last:.0f} s without: what was said meanwhile "
                   "was not heard")
        last, silent = now, False
        if first and on_first is not None:
            on_first()
        first = False
        yield chunk


class LossWatch:
    """A listening session's lost microphone blocks (``mic.Microphones``' counters), said as the count grows:
    at the end of a run it was too late to say which commands may have been missed."""

    def __init__(self, mics: Any, block_ms: float, warn: Callable[[str], None], name: str = "") -> None:
        self.mics, self.block_ms, self.warn, self.name = mics, block_ms, warn, name
        self.total = 0

    def check(self) -> None:
        """Say the blocks lost since the last check, if any."""
        overflows, dropped = self.mics.overflows, self.mics.dropped_blocks
        if overflows + dropped > self.total:
            self.warn(f"microphone{' ' + self.name if self.name else ''}: {overflows + dropped} block(s) of "
                      f"{self.block_ms:g} ms lost so far (input overflows: {overflows}, dropped because the audio was "
                      f"not taken fast enough: {dropped})")
            self.total = overflows + dropped

    def watched(self, chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """``chunks``, with the losses said before each."""
        for chunk in chunks:
            self.check()
            yield chunk


def reconnecting_mic_chunks(mic: MicrophoneStream, reopen: Callable[[], Any],
                            stop: Callable[[], bool] = lambda: False,
                            on_first: Callable[[], None] | None = None,
                            on_lost: Callable[[str], None] | None = None,
                            on_back: Callable[[Any, float], None] | None = None,
                            retry_s: float = 2.0, rescan: Callable[[], None] | None = None,
                            sleep: Callable[[float], None] = time.sleep,
                            on_retry_error: Callable[[str], None] | None = None,
                            on_gap: Callable[[str], None] | None = None) -> Iterator[np.ndarray]:
    """Chunks from an open microphone until ``stop()``, as ``mic_chunks``; when it stops delivering audio (unplugged,
    its sound server restarted: ``AudioDeviceError``) it is closed, ``on_lost(reason)`` is called, and every
    ``retry_s`` ``reopen()`` is tried, then, if that fails, again after ``rescan()`` (the device list scanned anew),
    until a microphone opens: ``on_back(mic, seconds_away)``. A retry that fails otherwise than the one before is
    said through ``on_retry_error``. The chunks go on as one stream (the outage is not in it); the last microphone
    is closed at the end."""
    from voice_gru.errors import AudioDeviceError
    from voice_gru.mic import library_noise_muted

    said_first = False

    def first() -> None:
        nonlocal said_first
        said_first = True
        if on_first is not None:
            on_first()

    def attempt() -> Any:
        with library_noise_muted():  # every failed try printed six lines of ALSA's around the one that says it
            try:
                return reopen()
            except AudioDeviceError:
                if rescan is None:
                    raise
            rescan()  # a device that came back under another index, or a PortAudio that lost its server
            return reopen()

    try:
        while True:
            try:
                yield from mic_chunks(mic, stop, None if said_first else first, on_gap)
                return
            except AudioDeviceError as exc:
                with library_noise_muted():
                    mic.close()
                if on_lost is not None:
                    on_lost(str(exc))
            lost_at, last_error = time.monotonic(), ""
            while True:
                sleep(retry_s)
                if stop():
                    return
                try:
                    mic = attempt()
                    break
                except AudioDeviceError as exc:
                    if str(exc) != last_error and on_retry_error is not None:
                        on_retry_error(str(exc))
                    last_error = str(exc)
            if on_back is not None:
                on_back(mic, time.monotonic() - lost_at)
    finally:
        mic.close()


PACE_SLACK_S = 3.0  # audio ahead of the clock by more than this is not arriving live (a pipe buffers ~2 s) ...
PACE_DRIFT = 0.01  # ... plus this share of the time: a sound card's clock runs up to ~0.1% fast (a recording: ~150x)


@dataclass
class ListenStats:
    """What a listening session did."""

    seconds: float = 0.0
    events: list = field(default_factory=list)
    compute: float = 0.0  # seconds spent in recognizer + detector
    started: float | None = None  # time.monotonic() when the first chunk arrived

    def keeps_real_time(self, slack_s: float = PACE_SLACK_S) -> bool:
        """Whether the audio so far came at about the pace it was recorded (a microphone, a pipe from one), not
        ahead of the clock (a recording piped in)."""
        if self.started is None:
            return False
        elapsed = time.monotonic() - self.started
        return self.seconds <= elapsed * (1 + PACE_DRIFT) + slack_s

    @property
    def real_time_factor(self) -> float:
        """Compute seconds per second of audio (0 before any audio)."""
        return self.compute / self.seconds if self.seconds else 0.0


class LiveView:
    """A one-line status on a terminal: input level, top posteriors, last detections."""

    def __init__(self, labels: Iterable[str], out: TextIO = sys.stderr, every_s: float = 0.1) -> None:
        self.labels = list(labels)
        self.out = out
        self.every_s = every_s
        self._next = 0.0
        self.last: list[str] = []

    def event(self, cmd: Command) -> None:
        """Show ``cmd`` among the last three detections."""
        self.last = (self.last + [f"{cmd.label}@{cmd.t:.1f}s"])[-3:]

    def update(self, chunk: np.ndarray, smoothed: np.ndarray) -> None:
        """Redraw the line for the latest chunk and smoothed posteriors (at most once per ``every_s``)."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every_s
        db = chunk_levels(chunk)[1]
        bar = "#" * int(np.clip((db + 60) / 3, 0, 20))
        top = np.argsort(smoothed)[::-1][:3]
        tops = " ".join(f"{self.labels[i]} {smoothed[i]:.2f}" for i in top)
        self.out.write(f"\r\x1b[2Klevel {db:6.1f} dB {bar:<20} | {tops} | last: {' '.join(self.last) or '-'}")
        self.out.flush()

    def close(self) -> None:
        """Clear the line, so what is printed next starts on a clean one."""
        self.out.write("\r\x1b[2K")
        self.out.flush()


def listen_loop(chunks: Iterable[np.ndarray], spotter: CommandSpotter, on_command: Callable[[Command], None],
                view: LiveView | None = None, max_seconds: float | None = None,
                keep_posteriors: list | None = None, stats: ListenStats | None = None,
                monitor: InputMonitor | None = None) -> ListenStats:
    """Run audio chunks through a spotter, calling ``on_command`` for each event.

    ``keep_posteriors``: a list that receives each chunk's per-frame posteriors (for scoring).
    ``stats``: filled as the loop runs, so a caller whose loop ends in Ctrl-C still has the totals.
    ``monitor``: sees every chunk first (level, clipping, digital silence; it warns by itself).
    When ``chunks`` run out (the end of a recording) or ``max_seconds`` do, ``spotter.flush()`` decides a command
    said at the very end.
    """
    stats = ListenStats() if stats is None else stats
    sr = spotter.sample_rate
    samples = 0  # counted exactly: summing chunk durations in float drifts (10 x 0.1 s < 1.0 s)

    def take(events: list[Command]) -> None:
        if keep_posteriors is not None:
            keep_posteriors.append(spotter.posteriors)
        for ev in events:
            stats.events.append(ev)
            if view:
                view.event(ev)
            on_command(ev)

    try:
        for chunk in chunks:
            if stats.started is None:
                stats.started = time.monotonic()
            if max_seconds is not None:  # a chunk that runs past it (--chunk-ms 3000 --seconds 3 heard 6 s) is cut
                chunk = chunk[:max(1, math.ceil(max_seconds * sr - samples))]
            if monitor is not None:
                monitor.update(chunk)
            t0 = time.perf_counter()
            events = spotter.process(chunk)
            stats.compute += time.perf_counter() - t0
            samples += chunk.size
            stats.seconds = samples / sr
            take(events)
            if view:
                view.update(chunk, spotter.detector.smoothed)
            if max_seconds is not None and stats.seconds >= max_seconds:
                break
        # the input ended, or --seconds did (at a file's very end the two are one): a word said last is decided on
        # silence, not heard as audio
        take(spotter.flush())
    finally:
        if view:
            view.close()
    return stats


class EventWriter:
    """One JSON line per event, flushed as it happens. The file is replaced only when the first event
    arrives, or at the end of a run that completed without any: a run that fails before it starts
    (a bad input, no microphone) leaves an earlier run's events as they were. The file is locked while a run
    writes it: a second run on the same file (whose lines would interleave with the first's) is refused in one
    line, at its start when the file exists, else at its first event."""

    def __init__(self, path: str | Path) -> None:
        from voice_gru.fileio import descriptor, written_path

        self.path = written_path(path)
        self._fd: int | None = None  # written unbuffered: a line that fails leaves nothing behind to fail again
        self._good = 0  # bytes of whole lines written
        self._own = False  # opened (and emptied) by this writer, not a copy of an open descriptor
        self._lock: int | None = None
        if descriptor(self.path) is None and self.path.is_file():
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except OSError:  # unreadable: locked when it is opened for writing
                return
            self._lock = self._locked(fd)

    @classmethod
    def check(cls, path: str | Path) -> None:
        """Refuse, before a run starts, an events file another run is writing (the lock is released at once)."""
        cls(path).close(completed=False)

    def write(self, cmd: Command, ignored: str | None = None) -> None:
        """Append ``cmd`` as one JSON line, at once (the first replaces the file); ``ignored``: why the assistant ran
        no action for it (its ``"ignored"`` key). A line that cannot be written whole (a full disk) raises OSError and
        leaves nothing of itself in a regular file: later lines stay whole."""
        try:
            if self._fd is None:
                self._open()
            assert self._fd is not None
            line = (json.dumps({**cmd.to_dict(), **({"ignored": ignored} if ignored else {})}) + "\n").encode()
            data = memoryview(line)
            try:
                while data:
                    data = data[os.write(self._fd, data):]
            except OSError:
                self._cut_back()
                raise
            self._good += len(line)
        except OSError as exc:  # a full disk says "No space left on device" without saying where
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None

    def close(self, completed: bool = True) -> None:
        """Close; ``completed``: the run ended normally, so an empty file records that nothing fired."""
        try:
            if self._fd is None and completed:
                self._open()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        finally:
            if self._lock is not None:
                os.close(self._lock)
                self._lock = None

    def _cut_back(self) -> None:
        """Take back the part of a line a failed write left in a regular file (a pipe keeps what it got)."""
        if self._fd is None or not self._own:  # standard output appended to (>> log) is not ours to cut
            return
        try:
            os.ftruncate(self._fd, self._good)
            os.lseek(self._fd, self._good, os.SEEK_SET)
        except OSError:
            pass

    def _locked(self, fd: int) -> int:
        """``fd``, holding an exclusive lock on the events file (closed and refused if another run holds it)."""
        from voice_gru.fileio import lock_exclusive

        return lock_exclusive(fd, f"{self.path}: another run is writing its events to this file (their lines would "
                                  "mix); wait for it to end, or give another --events")

    def _open(self) -> None:
        from voice_gru.fileio import descriptor

        fd = descriptor(self.path)
        if fd is not None:  # standard output appended to (>> log) stays appended to
            self._fd = os.dup(fd)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # a regular file is locked before it is emptied; a device (/dev/null, /dev/full) is shared by every run
        if self._lock is None and (self.path.is_file() or not self.path.exists()):
            self._lock = self._locked(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o666))
        # O_BINARY: Windows opens in text mode otherwise, writing each "\n" as "\r\n" (the line count of _good off)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o666)
        self._own = True
