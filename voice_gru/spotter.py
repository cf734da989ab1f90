"""The live path behind one object, for your own programs: audio in, commands out.

``CommandSpotter`` composes what ``voice-gru listen`` runs — streaming front end and GRU
(``stream.Recognizer``), the decision layer (``decision.Detector``) with the model's calibrated
thresholds or an operating point chosen in false accepts per hour — and accepts audio as it comes
from any source: any sample rate, int16 or float, mono ``(samples,)`` or ``(samples, channels)`` (interleaved
bytes from a capture library: ``np.frombuffer(data, np.int16).reshape(-1, channels)``), chunks of any size::

    from voice_gru import CommandSpotter

    spotter = CommandSpotter(false_accepts_per_hour=5, sample_rate=48000)
    for chunk in my_audio_source():          # e.g. (480, 2) int16 blocks
        for cmd in spotter.process(chunk):
            print(cmd.label, cmd.score, cmd.t)

or straight from a microphone: ``for cmd in CommandSpotter().listen(): ...``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from voice_gru import commands_of
from voice_gru.audio import FLOAT_LIMIT, Downmix
from voice_gru.config import OFF, REFRESH_S, THRESHOLD_RANGE, DecisionConfig, threshold_ok
from voice_gru.decision import BACKGROUND, Command, Detector, effective_thresholds, only_commands
from voice_gru.errors import AudioFormatError, ConfigError
from voice_gru.input_level import narrowband
from voice_gru.checkpoint_data import CheckpointData, read_checkpoint_data
from voice_gru.stream import Recognizer

logger = logging.getLogger(__name__)


# float audio is in [-1, 1]; beyond this it is integer PCM cast to float (int16 values are up to 32768)
MAX_CHANNELS = 64  # more "channels" than this is a (channels, samples) array ...
FEW_CHANNELS = 8  # ... and so is more than this with fewer samples than channels
RATE_RANGE = (1000.0, 1_000_000.0)  # sample rates a resampler is asked to handle (beyond: a unit slip, or a hang)
PIECE_S = 10.0  # process() runs a long chunk in pieces of this many seconds: memory stays that of a chunk
# A word is decided ~0.15-0.3 s after it ends (smoothing, minimum duration, the network's own delay). A recording
# that stops sooner (a clip cut to its word) would leave it undecided: flush() runs this much digital silence after
# it, which the network knows from clips padded with zeros (validation clips alone, 2026-12-06: 203 of 340
# commands fired, 267 with 0.5 s after them; 0.3 s: 266, 1.0 s: 267).
END_SILENCE_S = 0.5


def _undecoded(audio: Any, x: np.ndarray) -> bool:
    """Bytes or text, not samples: a buffer of bytes is uint8 to NumPy (twice as many samples of noise, unsaid); a
    memoryview cast to its samples' type (``.cast("h")``) is samples."""
    return x.dtype.kind in "SUV" or isinstance(audio, (bytes, bytearray)) or (
        x.dtype == np.uint8 and not isinstance(audio, np.ndarray))


def check_layout(x: np.ndarray, channels: int | None = None) -> None:
    """Refuse an array that is no ``(samples,)`` or ``(samples, channels)`` block (``channels``: the stream's, as its
    earlier blocks had them: a short last block of many channels is one)."""
    if x.ndim not in (1, 2):
        raise AudioFormatError(f"audio chunk of shape {x.shape}: expected (samples,) or (samples, channels)")
    # a (2, 64) block (JACK's 64-frame periods, channels first) was heard as 64 channels of two samples
    if x.ndim == 2 and x.shape[1] != channels and not (
            1 <= x.shape[1] <= MAX_CHANNELS and (x.shape[1] <= FEW_CHANNELS or not 0 < x.shape[0] < x.shape[1])):
        raise AudioFormatError(f"audio chunk of shape {x.shape}: expected (samples, channels) with 1 to {MAX_CHANNELS} "
                               f"channels, at least as many samples as channels beyond {FEW_CHANNELS}"
                               + (" (a (channels, samples) array? transpose it)" if x.shape[1] else ""))


def as_float_mono(audio: np.ndarray, downmix: Downmix | None = None, offset: int = 0,
                  channels: int | None = None) -> np.ndarray:
    """Samples ``(n,)`` or ``(n, channels)``, float or integer PCM, as float32 mono in [-1, 1] (``downmix``: a
    stream's ``audio.Downmix``, which keeps to the first channel where the channels cancel; else their average;
    ``offset``: where ``audio`` starts in the caller's chunk, for the index an error names; ``channels``: the
    stream's channel count, as ``check_layout`` takes it)."""
    x = np.asarray(audio)
    if _undecoded(audio, x):
        raise AudioFormatError("audio chunk given as bytes or text: decode it first, e.g. np.frombuffer(data, np.int16) "
                               "(.reshape(-1, channels) for interleaved channels)")
    check_layout(x, channels)
    if x.dtype == np.uint8:  # 8-bit PCM is unsigned, centred on 128
        x = (x.astype(np.float32) - 128.0) / 128.0
    elif x.dtype == np.int64:  # what NumPy makes of a list of Python ints: its scale says nothing of the PCM format
        raise AudioFormatError("audio chunk of dtype int64 (a list of Python ints?): give int16/int32 PCM or float samples")
    elif np.issubdtype(x.dtype, np.signedinteger):
        x = x.astype(np.float32) / float(-np.iinfo(x.dtype).min)
    elif np.issubdtype(x.dtype, np.floating):
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: reported just below
            x = x.astype(np.float32, copy=False)
        # NaN or inf when any sample is: one check for both; max and min, not abs(), which would copy the chunk
        peak = max(float(x.max()), -float(x.min())) if x.size else 0.0
        if not np.isfinite(peak):  # one NaN would poison the GRU state for seconds (or for ever without refresh)
            bad = np.flatnonzero(~np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1))
            raise AudioFormatError(f"audio chunk holds {bad.size} non-finite sample(s) (NaN or inf; first at index {bad[0] + offset}), "
                                   "float32 overflow included")
        if peak > FLOAT_LIMIT:
            raise AudioFormatError(f"float audio chunk reaches {peak:g}: float samples lie in [-1, 1] (integer PCM "
                                   "converted with astype(float)? pass the integer array itself, or divide by 32768)")
    else:
        raise AudioFormatError(f"audio chunk of dtype {x.dtype}: expected float or signed integer PCM samples")
    if x.ndim == 2:
        if downmix is not None:
            x = downmix(x)
        else:
            x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    return np.ascontiguousarray(x, dtype=np.float32)


def positive_number(value: Any, name: str, unit: str) -> float:
    """An argument that must be a positive finite number (not a bool, not a string), as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < float("inf"):
        raise ConfigError(f"{name} {value!r}: must be a positive number of {unit}")
    return float(value)


def _checked_override(threshold: float | Mapping[str, float] | None, labels) -> float | dict[str, float] | None:
    """A ``threshold`` argument checked: posteriors from ``MIN_THRESHOLD`` to 1 (or calibration's ``OFF``, which
    switches a command off), command names the model knows."""
    if threshold is None:
        return None
    values = dict(threshold) if isinstance(threshold, Mapping) else {"": threshold}
    for name, value in values.items():
        if not threshold_ok(float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else value):
            raise ConfigError(f"threshold {value!r}{' for ' + repr(name) if name else ''}: must be {THRESHOLD_RANGE}")
        if name and (name not in labels or name in BACKGROUND):
            commands = list(commands_of(labels))
            raise ConfigError(f"threshold for '{name}': not a command of this model ({', '.join(commands)})")
    return {k: float(v) for k, v in values.items()} if isinstance(threshold, Mapping) else float(threshold)


def checked_commands(chosen: Sequence[str], commands: Sequence[str], name: str = "commands") -> tuple[str, ...]:
    """``chosen`` checked against the model's commands (at least one, each known), in the model's order (``name``: what
    they are called in errors)."""
    if isinstance(chosen, str):
        chosen = [chosen]
    try:
        chosen = list(chosen)  # an iterator once: checking it must not use it up
    except TypeError:
        raise ConfigError(f"{name} {chosen!r}: expected command names, e.g. ['stop', 'go']") from None
    unknown = [c for c in chosen if c not in commands]
    if unknown:
        raise ConfigError(f"{name}: {', '.join(map(repr, unknown))}: not a command of this model ({', '.join(commands)})")
    if not chosen:
        raise ConfigError(f"{name}: none given (leave it out to listen for all of them)")
    return tuple(c for c in commands if c in set(chosen))


def command_subset(chosen: Sequence[str] | None, labels: Sequence[str],
                   name: str = "commands") -> tuple[str, ...] | None:
    """``chosen`` checked against a model's commands (``labels`` less the background classes); None where it
    names all of them or nothing was chosen (every command can fire)."""
    every = commands_of(labels)
    if chosen is None:
        return None
    subset = checked_commands(chosen, every, name)
    return subset if len(subset) < len(every) else None


class CommandSpotter:
    """Audio chunks in, ``Command`` events out: exactly the path ``voice-gru listen`` runs.

    ``model``: a checkpoint path (read without importing torch), a loaded ``Checkpoint`` or ``CheckpointData`` (None: the shipped model).
    Sensitivity: ``false_accepts_per_hour`` (the model's calibrated operating point for at most that
    many false triggers per hour on new speakers) and/or ``threshold`` (the smoothed posterior a
    command must reach, one number or ``{"stop": 0.9, ...}``; higher means fewer false triggers and
    more misses). Both: a mapping adjusts single commands of the point (one number and a point
    conflict). Neither: the model's own calibrated thresholds.
    ``sample_rate``: the rate of the audio given to ``process`` (resampled in code).
    ``decision``: smoothing / minimum duration / cooldown (None: the model's calibrated settings; a
    ``DecisionConfig`` replaces them all, so change one with ``dataclasses.replace(spotter.decision, ...)``; its
    ``threshold``/``thresholds`` only apply to a model without calibrated thresholds, else a warning is logged).
    ``commands``: only these commands can fire (None: all); the others' thresholds are off (a ``threshold`` given
    for one of them included), so their false triggers go with them. With ``false_accepts_per_hour`` the point is chosen for them: the most sensitive
    one whose false accepts expected from these commands alone are within the rate.
    ``flush()`` at the end of a recording runs the last few milliseconds the resampler still holds, then
    ``END_SILENCE_S`` of silence, so that a command at its very end is decided (its ``t`` may lie past the end).
    """

    def __init__(self, model: str | Path | CheckpointData | Any = None, *, false_accepts_per_hour: float | None = None,
                 threshold: float | Mapping[str, float] | None = None, sample_rate: int = 16000,
                 decision: DecisionConfig | None = None, mode: str = "stream", refresh_s: float | None = REFRESH_S,
                 commands: Sequence[str] | None = None) -> None:
        from voice_gru.calibrate import operating_point
        from voice_gru.mic import StreamingResampler
        from voice_gru.streams import decision_of

        if false_accepts_per_hour is not None and threshold is not None and not isinstance(threshold, Mapping):
            raise ConfigError("give threshold or false_accepts_per_hour, not both "
                              "(a {command: value} mapping may adjust single commands of a point)")
        rate = positive_number(sample_rate, "sample_rate", "samples per second")  # fractional rates resample as given
        if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
            raise ConfigError(f"sample_rate {sample_rate!r}: must be from {RATE_RANGE[0]:g} to {RATE_RANGE[1]:g} samples "
                              "per second")
        if false_accepts_per_hour is not None:  # a NumPy number as a float: operating_point takes Python numbers
            false_accepts_per_hour = positive_number(false_accepts_per_hour, "false_accepts_per_hour", "false accepts per hour")
        if decision is not None and not isinstance(decision, DecisionConfig):
            raise ConfigError(f"decision {decision!r}: expected a voice_gru.config.DecisionConfig "
                              "(to change one setting: dataclasses.replace(CommandSpotter().decision, cooldown_ms=500))")
        if not (model is None or isinstance(model, (str, Path)) or hasattr(model, "data")):
            raise ConfigError(f"model {model!r}: expected a checkpoint path, a Checkpoint or CheckpointData (None: the shipped model)")
        # read without torch; a loaded voice_gru.model.Checkpoint gives its arrays
        self.ckpt = read_checkpoint_data(model) if model is None or isinstance(model, (str, Path)) else model.data()
        self.labels = list(self.ckpt.labels)
        chosen = command_subset(commands, self.labels)  # only these fire, and a point is chosen for them
        self.commands = chosen or commands_of(self.labels)
        self.operating_point = (operating_point(self.ckpt, false_accepts_per_hour, chosen, name="false_accepts_per_hour")
                                if false_accepts_per_hour is not None else None)
        override = _checked_override(threshold, self.labels)
        if self.operating_point and chosen is None and self.operating_point["target_fa_per_hour"] != false_accepts_per_hour:
            logger.info("false_accepts_per_hour=%g: the model's calibrated point for %g per hour (the most recall "
                        "among its points at or below it)", false_accepts_per_hour, self.operating_point["target_fa_per_hour"])
        if self.operating_point:
            override = {**self.operating_point["thresholds"], **(override if isinstance(override, dict) else {})}  # a number was refused above
        self.decision = decision_of(self.ckpt, decision)
        if decision is not None and self.ckpt.thresholds and (
                decision.thresholds or decision.threshold != DecisionConfig.threshold):
            logger.warning("decision: its threshold(s) are not used: the model's calibrated thresholds come first "
                           "(threshold= or false_accepts_per_hour= change them)")
        self.thresholds = effective_thresholds(self.labels, self.decision, self.ckpt.thresholds, override)
        if chosen is not None:
            self.thresholds = only_commands(self.thresholds, self.commands)
        if all(self.thresholds.get(c, 0.0) >= OFF for c in self.commands):  # as the command line refuses it
            whose = (f"threshold {threshold!r}" if threshold is not None else
                     f"false_accepts_per_hour {false_accepts_per_hour!r}" if self.operating_point else
                     "the model's calibrated thresholds")
            raise ConfigError(f"{whose}: switch off every command that can fire ({', '.join(self.commands)}: a "
                              f"threshold of {OFF:g} is off): nothing would ever fire")
        f = self.ckpt.features
        self.sample_rate = int(rate) if rate.is_integer() else rate
        self.recognizer = Recognizer(self.ckpt, mode=mode, refresh_s=refresh_s, remove_dc=True)  # a microphone's offset
        self.detector = Detector(self.labels, self.decision, self.thresholds, f.hop_ms / 1000, f.win_length / f.sample_rate)
        self._resampler = StreamingResampler(self.sample_rate, f.sample_rate) if self.sample_rate != f.sample_rate else None
        self._downmix = Downmix(self.sample_rate, on_cancel=logger.warning)
        self._channels: int | None = None  # the stream's, from its blocks so far
        self.posteriors = np.zeros((0, len(self.labels)), dtype=np.float32)
        self.lost_blocks = 0  # microphone blocks lost during the last listen()
        self._busy = threading.Lock()
        self._inside = ""  # the call holding _busy
        if self.sample_rate < f.sample_rate:
            logger.warning(narrowband("the audio", int(self.sample_rate), f.sample_rate))

    def __reduce__(self) -> Any:
        # copy.copy shared the stream's state with the copy, pickle failed on a module deep inside
        raise TypeError("a CommandSpotter is one running stream and is not copied or pickled: make one in each process "
                        "(a checkpoint read once with voice_gru.checkpoint_data.read_checkpoint_data can be given to each)")

    @contextlib.contextmanager
    def _one_caller(self, what: str) -> Iterator[None]:
        """One stream has one order of chunks: two threads at once would interleave them (and its compiled
        state is not made for that), so the second is refused."""
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(f"CommandSpotter.{what} called while {self._inside} runs (in another thread, or in this "
                               "one around a listen() loop): one spotter is one stream; give each audio source its own "
                               "spotter")
        self._inside = f"CommandSpotter.{what}"
        try:
            yield
        finally:
            self._busy.release()

    def process(self, audio: np.ndarray) -> list[Command]:
        """Feed a chunk at ``sample_rate``; return the commands it completes (``t``: seconds since the start)."""
        with self._one_caller("process"):
            return self._process(audio)

    def _process(self, audio: np.ndarray) -> list[Command]:
        x = np.asarray(audio)
        if _undecoded(audio, x):  # refused before the pieces below make it an array
            as_float_mono(audio)
        check_layout(x, self._channels)  # the whole chunk's: its last piece may be shorter than its channels
        channels = x.shape[1] if x.ndim == 2 else None
        step = max(1, int(PIECE_S * self.sample_rate))  # an hour in one call: the same commands, the memory of 10 s
        pieces: Iterator[np.ndarray]
        if len(x) <= step:
            pieces = iter([as_float_mono(x, self._downmix, channels=channels)])
        else:  # every piece checked before any is heard: a refused chunk leaves the stream as it was
            for i in range(0, len(x), step):
                as_float_mono(x[i:i + step], offset=i, channels=channels)
            pieces = (as_float_mono(x[i:i + step], self._downmix, channels=channels) for i in range(0, len(x), step))
        if channels is not None and len(x):
            self._channels = channels
        commands: list[Command] = []
        posteriors = []
        for piece in pieces:
            if self._resampler is not None:  # its ringing may take a square wave of 15 past the front end's 16
                piece = np.clip(self._resampler(piece), -FLOAT_LIMIT, FLOAT_LIMIT)
            commands += self._process_model_rate(piece)
            posteriors.append(self.posteriors)
        self.posteriors = np.concatenate(posteriors) if len(posteriors) > 1 else posteriors[0]
        return commands

    def flush(self) -> list[Command]:
        """End of the stream: run the audio still held inside the resampler (~25 ms at 44.1 kHz) and
        ``END_SILENCE_S`` of silence after it; return the commands they complete (``posteriors``: their frames).
        The next ``process`` starts a new stream's resampling, but its ``t`` goes on counting after the silence
        added here: ``reset()`` starts a new stream at 0."""
        with self._one_caller("flush"):
            x = np.zeros(0, np.float32)
            if self._resampler is not None:
                x = np.clip(self._resampler.flush(), -FLOAT_LIMIT, FLOAT_LIMIT)  # its ringing, as in process()
                self._resampler.reset()
            return self._end_of_stream(x)

    def _end_of_stream(self, held: np.ndarray | None = None) -> list[Command]:
        """The commands that ``held`` (model-rate audio still to run) and ``END_SILENCE_S`` of silence after it
        complete."""
        silence = np.zeros(int(END_SILENCE_S * self.ckpt.features.sample_rate), np.float32)
        return self._process_model_rate(silence if held is None else np.concatenate([held, silence]))

    def _process_model_rate(self, x: np.ndarray) -> list[Command]:
        self.posteriors = self.recognizer.push(x)
        return self.detector.update(self.posteriors)

    @property
    def scores(self) -> dict[str, float]:
        """Each class's smoothed posterior at the latest frame (what the thresholds are compared with)."""
        return {lab: float(s) for lab, s in zip(self.labels, self.detector.smoothed)}

    def reset(self) -> None:
        """Start a new stream: forget audio, GRU state and decision history."""
        with self._one_caller("reset"):
            self.recognizer.reset()
            self.detector.reset()
            if self._resampler is not None:
                self._resampler.reset()
            self._downmix = Downmix(self.sample_rate, on_cancel=logger.warning)
            self._channels = None
            self.posteriors = np.zeros((0, len(self.labels)), dtype=np.float32)

    def listen(self, device: str | int | None = None, seconds: float | None = None,
               block_ms: float = 100.0, reconnect: bool = False) -> Iterator[Command]:
        """Commands from a microphone (``device`` as ``voice-gru devices`` lists it; None: the default),
        for ``seconds`` of audio or until the caller stops iterating. The device is opened at its own
        rate and converted in ``mic.MicrophoneStream``, so ``sample_rate`` does not apply here.
        Audio the microphone loses (input overflows, blocks dropped because the caller fell behind) is
        logged as a warning when it happens and counted in ``lost_blocks``. ``reconnect``: a microphone that stops
        delivering audio is waited for (logged) instead of raising ``AudioDeviceError`` (``listen --reconnect``);
        once a new process finds it, PortAudio's devices are scanned again, which stops every other audio stream of
        the program (once, when it is back: ``mic.rescan_for``)."""
        from voice_gru.live import LossWatch, mic_chunks, reconnecting_mic_chunks
        from voice_gru.mic import Microphones, MicrophoneStream, rescan_for

        if seconds is not None:  # checked before the microphone opens (at the first iteration: this is a generator)
            positive_number(seconds, "seconds", "seconds of audio")
        positive_number(block_ms, "block_ms", "milliseconds")
        rate = self.ckpt.features.sample_rate
        mics = Microphones(device, block_ms=block_ms, out_rate=rate)

        def opened(m: MicrophoneStream) -> MicrophoneStream:
            low = narrowband(f"microphone {m.device.name!r}", int(m.samplerate), rate)
            if low:  # as `listen` says it: an 8 kHz device loses a quarter of the commands
                logger.warning(low)
            return m

        def back(m: MicrophoneStream, away: float) -> None:
            logger.info("microphone %s is back after %.0f s", m.device.name, away)

        samples = 0
        with self._one_caller("listen"):  # held until the caller's loop ends (the generator is closed)
            self.lost_blocks = 0
            try:
                mic = opened(mics.open())
                losses = LossWatch(mics, block_ms, logger.warning, "default" if device is None else str(device))
                chunks = (reconnecting_mic_chunks(mic, lambda: opened(mics.open()), on_lost=lambda why: logger.warning("%s; waiting for it", why),
                                                  on_back=back, rescan=lambda: rescan_for(device),
                                                  on_retry_error=lambda why: logger.warning("still waiting: %s", why),
                                                  on_gap=logger.warning)
                          if reconnect else mic_chunks(mic, on_gap=logger.warning))
                for chunk in chunks:
                    losses.check()
                    self.lost_blocks = losses.total
                    if seconds is not None:  # a block that runs past it is cut, as `listen --seconds` cuts it
                        chunk = chunk[:max(1, math.ceil(seconds * rate - samples))]
                    yield from self._process_model_rate(chunk)
                    samples += chunk.size
                    if seconds is not None and samples >= seconds * rate:
                        yield from self._end_of_stream()  # its last word decided as at a recording's end
                        return
            finally:
                mics.close()
