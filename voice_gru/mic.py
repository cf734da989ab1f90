"""Microphone input: device listing and a stream of 16 kHz mono float32 chunks.

``sounddevice`` (and so the PortAudio library) is imported lazily, inside the functions, so that
the rest of the package works on a machine without audio. Every way of having no usable device
becomes one :class:`~voice_gru.errors.AudioDeviceError` with a message a person can act on:

- PortAudio missing (``OSError: PortAudio library not found`` on ``import sounddevice``),
- no input device at all (no sound card and no PulseAudio server reachable),
- an unknown or ambiguous device name or index,
- a device that cannot be opened (``PortAudioError``) or that disappears mid-stream.

The audio callback does as little as possible: it copies the block into a bounded queue (dropping
the oldest block when the consumer falls behind) and counts overflows. Downmixing and resampling
to 16 kHz happen in :meth:`MicrophoneStream.read`, on the consumer's thread, with a streaming
resampler that keeps its state across chunks.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from voice_gru.audio import Downmix
from voice_gru.audio import logger as audio_logger
from voice_gru.errors import AudioDeviceError, DeviceUnavailableError

TARGET_RATE = 16000
"""Sample rate of the chunks :meth:`MicrophoneStream.read` returns."""

_HINT = "list devices with `voice-gru devices`"


def _open_hint() -> str:
    """What to check when a device does not open; a PULSE_SOURCE the sound server does not know fails as an ALSA error
    that never names it."""
    source = os.environ.get("PULSE_SOURCE")
    return _HINT + (f"; PULSE_SOURCE={source} chooses the PulseAudio source: is that its name? (`pactl list short "
                    "sources` lists them)" if source else "")
NO_DEVICE_MESSAGE = (
    "no audio input device found; is a sound card or PulseAudio running? " + _HINT
)


@dataclass(frozen=True)
class InputDevice:
    """One audio input device as PortAudio reports it."""

    index: int
    name: str
    hostapi: str
    channels: int
    default_samplerate: float

    def __str__(self) -> str:
        return f"{self.index} {self.name!r}"


def _sounddevice() -> Any:
    """Import sounddevice, turning a missing PortAudio library into an AudioDeviceError."""
    try:
        import sounddevice
    except OSError as exc:  # raised by sounddevice when libportaudio cannot be found
        raise AudioDeviceError(
            f"cannot use audio input: {exc} (install it with `apt-get install libportaudio2` "
            "or run scripts/setup.sh)"
        ) from exc
    except ImportError as exc:
        raise AudioDeviceError(
            f"cannot use audio input: the sounddevice package is not installed ({exc})"
        ) from exc
    return sounddevice


def list_input_devices() -> list[InputDevice]:
    """Every device with at least one input channel, in PortAudio's order (empty if none).

    PortAudio scans devices once, when sounddevice is imported; a server started later is only
    seen by a new process (or after ``sounddevice._terminate(); sounddevice._initialize()``).
    """
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
    except sd.PortAudioError as exc:
        raise DeviceUnavailableError(f"cannot list audio devices: {exc}") from exc
    out = []
    for d in devices:
        if int(d["max_input_channels"]) <= 0:
            continue
        try:
            api = str(hostapis[int(d["hostapi"])]["name"])
        except (IndexError, KeyError, TypeError):
            api = "?"
        out.append(
            InputDevice(
                index=int(d["index"]),
                name=str(d["name"]),
                hostapi=api,
                channels=int(d["max_input_channels"]),
                default_samplerate=float(d["default_samplerate"]),
            )
        )
    return out


def rescan_devices() -> None:
    """Make PortAudio enumerate the devices again (a microphone plugged back in, a sound server restarted).
    PortAudio's own terminate and initialise, as sounddevice's author advises: it stops every other audio stream
    this process has open (``rescan_for`` does it only when it can find the device)."""
    sd = _sounddevice()
    try:
        sd._terminate()
    except sd.PortAudioError:
        pass  # not initialised: an earlier rescan's initialise failed, and this one must still try it
    try:
        sd._initialize()
    except sd.PortAudioError as exc:
        raise DeviceUnavailableError(f"cannot scan audio devices again: {_one_line(exc)}") from exc


# run by probe_device in a new process: exit 0 when the device resolves, 3 with the reason on stdout when not
_PROBE = """import sys
from voice_gru.errors import AudioDeviceError
from voice_gru.mic import resolve_device
try:
    resolve_device(sys.argv[1] or None)
except AudioDeviceError as exc:
    print(exc)
    sys.exit(3)
"""
_PROBE_TIMEOUT_S = 15.0


def probe_device(spec: str | int | InputDevice | None = None) -> bool:
    """Whether a new process, its PortAudio scanning the devices afresh, finds ``spec``; raises AudioDeviceError
    with that process's reason when it does not. Nothing in this process is touched. False when no answer came
    (no process could be started, it failed otherwise or took over 15 s): then nobody knows."""
    if getattr(sys, "frozen", False):  # a bundled app's executable is the app itself, not a Python to run -c
        return False
    arg = "" if spec is None else str(spec.index if isinstance(spec, InputDevice) else spec)
    env = dict(os.environ)
    # the package this process runs, even where it is not installed (a source checkout on sys.path)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    try:
        # cwd: `python -c` puts its working folder first on the module path, and a dataclasses.py in the folder
        # listen runs in would be run by the probe
        done = subprocess.run([sys.executable, "-c", _PROBE, arg], capture_output=True, text=True, env=env,
                              timeout=_PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL, cwd=root)
    except (OSError, subprocess.SubprocessError):
        return False
    if done.returncode == 3:
        raise DeviceUnavailableError(" ".join(done.stdout.split()) or f"audio input device {arg or 'default'} not found")
    return done.returncode == 0


def rescan_for(spec: str | int | InputDevice | None = None) -> None:
    """Scan PortAudio's devices again in this process (``rescan_devices``) only once a new process finds ``spec``,
    raising its AudioDeviceError until then: the rescan stops every other audio stream of this process, so a
    microphone waited for stops them once, when it is back, not at every look. Without an answer from the probe it
    rescans anyway."""
    probe_device(spec)
    rescan_devices()


def default_input_index() -> int | None:
    """PortAudio's default input device index, or None when there is none."""
    sd = _sounddevice()
    try:
        idx = sd.default.device[0]
    except Exception:  # noqa: BLE001 - sounddevice raises various errors when there is none
        return None
    if isinstance(idx, str):
        try:
            idx = sd.query_devices(idx, kind="input")["index"]
        except (ValueError, sd.PortAudioError):
            return None
    if idx is None or int(idx) < 0:
        return None
    return int(idx)


def format_devices(devices: Sequence[InputDevice], default: int | None = -1) -> str:
    """A text table of input devices; the default input is marked with ``*``.

    ``default`` is the index to mark; the default ``-1`` asks PortAudio (never raising).
    """
    if not devices:
        return "no audio input device found; is a sound card or PulseAudio running?"
    if default == -1:
        try:
            default = default_input_index()
        except AudioDeviceError:
            default = None
    name_w = max(4, *(len(d.name) for d in devices))
    api_w = max(8, *(len(d.hostapi) for d in devices))
    lines = [
        f"  {'index':>5}  {'name':<{name_w}}  {'host api':<{api_w}}  {'channels':>8}  {'rate (Hz)':>9}",
    ]
    for d in devices:
        mark = "*" if d.index == default else " "
        lines.append(
            f"{mark} {d.index:>5}  {d.name:<{name_w}}  {d.hostapi:<{api_w}}  "
            f"{d.channels:>8}  {d.default_samplerate:>9.0f}"
        )
    if default is not None and any(d.index == default for d in devices):
        lines.append("* default input")
    return "\n".join(lines)


def pulse_sources(timeout_s: float = 3.0) -> list[str]:
    """The source names a PulseAudio or PipeWire server offers (``pactl list short sources``; none where there is no
    ``pactl`` or no server): behind PortAudio's one ``pulse`` device, only ``PULSE_SOURCE`` chooses among them."""
    try:
        out = subprocess.run(["pactl", "list", "short", "sources"], capture_output=True, text=True, timeout=timeout_s,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return [cols[1] for line in out.stdout.splitlines() if len(cols := line.split("\t")) > 1]


def format_pulse_sources(sources: Sequence[str]) -> str:
    """How to choose among a sound server's sources, for ``voice-gru devices``."""
    return ("sound server sources (one is chosen by name: PULSE_SOURCE=NAME voice-gru listen --device pulse):\n"
            + "\n".join(f"  {name}" for name in sources))


def _describe(devices: Sequence[InputDevice]) -> str:
    return ", ".join(f"{d.index} {d.name!r}" for d in devices)


def resolve_device(spec: str | int | InputDevice | None = None) -> InputDevice:
    """The input device that ``spec`` names.

    ``None`` (or an empty string) means the default input; an int or a string of digits is a
    device index; any other string is matched against device names, case-insensitively: an exact
    name wins, otherwise it must be a substring of exactly one name. Raises AudioDeviceError when
    there is no input device at all, or when ``spec`` is unknown or ambiguous.
    """
    if isinstance(spec, InputDevice):
        return spec
    devices = list_input_devices()
    if not devices:
        raise DeviceUnavailableError(NO_DEVICE_MESSAGE)
    known = f"input devices: {_describe(devices)}; {_HINT}"
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        idx = default_input_index()
        for d in devices:
            if d.index == idx:
                return d
        return devices[0]  # no default input set: the first input device
    if isinstance(spec, bool):
        raise AudioDeviceError(f"invalid audio input device {spec!r}; {known}")
    if isinstance(spec, (int, np.integer)) or (isinstance(spec, str) and spec.strip().isdigit()):
        idx = int(spec)
        for d in devices:
            if d.index == idx:
                return d
        raise DeviceUnavailableError(f"no audio input device with index {idx}; {known}")
    if not isinstance(spec, str):
        raise AudioDeviceError(f"invalid audio input device {spec!r}; {known}")
    want = spec.strip().lower()
    exact = [d for d in devices if d.name.lower() == want]
    if len(exact) == 1:
        return exact[0]
    matches = exact or [d for d in devices if want in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DeviceUnavailableError(f"no audio input device matches {spec!r}; {known}")
    raise AudioDeviceError(
        f"audio input device {spec!r} is ambiguous: it matches {_describe(matches)}; "
        f"give the index instead; {_HINT}"
    )


class StreamingResampler:
    """Downmix blocks to mono (``audio.Downmix``) and resample them to ``out_rate``, keeping state across blocks.

    Feeding a signal block by block gives the same samples (up to float rounding) as resampling
    it in one go, so block boundaries leave no clicks. Uses ``soxr.ResampleStream``, which emits
    output in steps of its own: 50 ms blocks at 44.1 kHz come out as ~540 or ~1080 samples
    (800 on average), with ~25 ms of filter delay at the default "HQ" quality.
    """

    def __init__(self, in_rate: float, out_rate: int = TARGET_RATE, quality: str = "HQ") -> None:
        self.in_rate = float(in_rate)
        self.out_rate = int(out_rate)
        self._downmix = Downmix(self.in_rate, on_cancel=audio_logger.warning)
        self._stream = None
        if self.in_rate != self.out_rate:
            import soxr

            self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality=quality)

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample one block, shape ``(frames,)`` or ``(frames, channels)``; returns ``(n,)`` float32."""
        x = np.ascontiguousarray(self._downmix(block), dtype=np.float32)
        if self._stream is None:
            return x.copy()
        return np.asarray(self._stream.resample_chunk(x, last=last), dtype=np.float32)

    def flush(self) -> np.ndarray:
        """The samples still held inside the resampler (call once at the end of a signal)."""
        return self(np.zeros(0, dtype=np.float32), last=True)

    def reset(self) -> None:
        """Forget the past: the next block starts a new signal."""
        self._downmix = Downmix(self.in_rate, on_cancel=self._downmix.on_cancel)
        if self._stream is not None:
            self._stream.clear()


class MicrophoneStream:
    """A live input stream delivering 16 kHz mono float32 chunks.

    >>> with MicrophoneStream("pulse") as mic:      # doctest: +SKIP
    ...     chunk = mic.read(timeout=3.0)           # ~block_ms of audio, or None on timeout

    The device is opened at its default sample rate with ``min(channels, 2)`` channels and a block
    of about ``block_ms`` milliseconds. At most ``max_blocks`` blocks wait in the queue; when the
    reader falls behind the oldest block is dropped and counted in :attr:`dropped_blocks`.
    PortAudio input overflows are counted in :attr:`overflows`. Note that a PulseAudio device
    delivers its first block only 1.5-2 s after the stream opens.
    """

    def __init__(
        self,
        device: str | int | InputDevice | None = None,
        *,
        block_ms: float = 50.0,
        max_blocks: int = 100,
        out_rate: int = TARGET_RATE,
    ) -> None:
        if block_ms <= 0:
            raise ValueError(f"block_ms must be positive, got {block_ms}")
        if max_blocks < 1:
            raise ValueError(f"max_blocks must be at least 1, got {max_blocks}")
        self._device = resolve_device(device)
        self._samplerate = int(round(self._device.default_samplerate)) or 48000
        self._channels = max(1, min(int(self._device.channels), 2))
        self._blocksize = max(1, int(round(self._samplerate * block_ms / 1000.0)))
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=max_blocks)
        self._resampler = StreamingResampler(self._samplerate, out_rate)
        self._out_rate = int(out_rate)
        self._overflows = 0
        self._dropped = 0
        self._stream: Any = None
        self._finished = threading.Event()
        self._lock = threading.Lock()

    # --- properties -------------------------------------------------------------------------
    @property
    def device(self) -> InputDevice:
        """The device being captured."""
        return self._device

    @property
    def samplerate(self) -> int:
        """The device's capture rate in Hz (chunks from :meth:`read` are at :attr:`out_rate`)."""
        return self._samplerate

    @property
    def out_rate(self) -> int:
        """Sample rate of the chunks :meth:`read` returns (16 kHz)."""
        return self._out_rate

    @property
    def channels(self) -> int:
        """Channels captured from the device (downmixed to mono by :meth:`read`)."""
        return self._channels

    @property
    def blocksize(self) -> int:
        """Frames per captured block, at :attr:`samplerate`."""
        return self._blocksize

    @property
    def overflows(self) -> int:
        """Blocks PortAudio flagged with an input overflow (audio lost before the callback)."""
        return self._overflows

    @property
    def dropped_blocks(self) -> int:
        """Blocks dropped because the queue was full (the reader fell behind)."""
        return self._dropped

    @property
    def is_open(self) -> bool:
        """Whether the input stream is open (``open`` called, ``close`` not yet)."""
        return self._stream is not None

    # --- life cycle -------------------------------------------------------------------------
    def open(self) -> "MicrophoneStream":
        """Open and start the input stream; raises AudioDeviceError if the device can't be opened."""
        if self._stream is not None:
            return self
        sd = _sounddevice()
        self._finished.clear()
        self._resampler.reset()
        while True:  # blocks captured before a close() are not the new stream's audio
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        try:
            stream = sd.InputStream(
                device=self._device.index,
                channels=self._channels,
                samplerate=self._samplerate,
                blocksize=self._blocksize,
                dtype="float32",
                callback=self._callback,
                finished_callback=self._finished.set,
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceUnavailableError(
                f"cannot open audio input device {self._device}: {_one_line(exc)}; {_open_hint()}"
            ) from exc
        try:
            stream.start()
        except sd.PortAudioError as exc:
            stream.close(ignore_errors=True)
            raise DeviceUnavailableError(
                f"cannot start audio input device {self._device}: {_one_line(exc)}; {_open_hint()}"
            ) from exc
        self._stream = stream
        return self

    def close(self) -> None:
        """Stop and close the stream; safe to call more than once."""
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.close(ignore_errors=True)
        except Exception:  # noqa: BLE001 - closing must never raise (e.g. device already gone)
            pass

    def __enter__(self) -> "MicrophoneStream":
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # --- audio thread -------------------------------------------------------------------------
    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio's callback: copy the block into the queue; never blocks, never raises."""
        if status is not None and getattr(status, "input_overflow", False):
            self._overflows += 1
        block = np.array(indata, dtype=np.float32, copy=True)
        while True:
            try:
                self._queue.put_nowait(block)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()  # drop the oldest: keep latency bounded
                    self._dropped += 1
                except queue.Empty:
                    pass

    # --- consumer -----------------------------------------------------------------------------
    def read(self, timeout: float | None = None) -> np.ndarray | None:
        """The next chunk as 16 kHz mono float32, or None if no audio came within ``timeout`` s.

        ``timeout=None`` waits indefinitely. Blocks already captured are returned even after the
        device stopped; after that, a stream that ended (device unplugged, server gone) raises
        AudioDeviceError.
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            block = self._next_block(deadline)
            if block is None:
                return None
            out = self._resampler(block)
            if out.size:
                return out

    def _next_block(self, deadline: float | None) -> np.ndarray | None:
        while True:
            try:
                return self._queue.get_nowait()
            except queue.Empty:
                pass
            self._check_alive()
            wait = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if wait <= 0:
                return None
            try:
                return self._queue.get(timeout=wait)
            except queue.Empty:
                continue

    def _check_alive(self) -> None:
        stream = self._stream
        if stream is None:
            raise AudioDeviceError(f"audio input device {self._device} is not open")
        active = True
        error = ""
        try:
            active = bool(stream.active)
        except Exception as exc:  # noqa: BLE001 - PortAudioError from a vanished device
            active, error = False, f": {_one_line(exc)}"
        if self._finished.is_set() or not active:
            raise DeviceUnavailableError(
                f"audio input device {self._device} stopped delivering audio "
                f"(disconnected, or its sound server went away){error}; {_HINT}"
            )



# what ALSA and PortAudio print on the process's stderr themselves when a sound server is gone
_LIBRARY_NOISE = re.compile(r"ALSA lib |Expression '.*' failed in '|Cannot connect to server socket|"
                            r"jack server is not running|JackShmReadWritePtr")


@contextlib.contextmanager
def library_noise_muted() -> Iterator[None]:
    """While inside, the lines ALSA and PortAudio write on stderr themselves (``ALSA lib pulse.c:242:(pulse_connect)
    PulseAudio: Unable to connect``, ``Expression '...' failed in 'src/hostapi/alsa/pa_linux_alsa.c'``) are left
    out: each retry of a lost microphone printed six of them around the one line that says what happens. The
    descriptor is the process's: anything else written to it meanwhile (another thread's warning) is passed on
    after, late; programs that actions start write elsewhere (``actions._run_process``)."""
    try:
        sys.stderr.flush()
        tmp = tempfile.TemporaryFile()
    except (OSError, ValueError):  # no temporary file to be had: the lines are printed, as before
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 to redirect
        tmp.close()
        yield
        return
    with tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and not _LIBRARY_NOISE.match(line)]
            if kept:
                os.write(2, ("\n".join(kept) + "\n").encode("utf-8", "replace"))


class Microphones:
    """Every microphone one listening session opens (``listen --reconnect`` opens another after a loss): the
    next one opened, their lost-audio totals, all of them closed at once."""

    def __init__(self, device: str | int | InputDevice | None = None, *, block_ms: float = 50.0,
                 out_rate: int = TARGET_RATE) -> None:
        self._device, self._block_ms, self._out_rate = device, block_ms, out_rate
        self.opened: list[MicrophoneStream] = []

    def open(self) -> MicrophoneStream:
        """Open the device (again) and keep the stream."""
        self.opened.append(MicrophoneStream(self._device, block_ms=self._block_ms, out_rate=self._out_rate).open())
        return self.opened[-1]

    @property
    def overflows(self) -> int:
        """PortAudio input overflows over every stream opened."""
        return sum(m.overflows for m in self.opened)

    @property
    def dropped_blocks(self) -> int:
        """Blocks dropped because the reader fell behind, over every stream opened."""
        return sum(m.dropped_blocks for m in self.opened)

    def close(self) -> None:
        """Close every stream opened."""
        for m in self.opened:
            m.close()

def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
