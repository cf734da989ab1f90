"""The live path behind one object, for your own programs: audio in, commands out.

``CommandSpotter`` composes what ``voice-gru listen`` runs — streaming front end and GRU
(``stream.Recognizer``), the decision layer (``decision.Detector``) with the model's calibrated
thresholds or an operating point chosen in false accepts per hour — and accepts audio as it comes
from any source: any sample rate, int16 or float, mono or interleaved channels, chunks of any size::

    from voice_gru import CommandSpotter

    spotter = CommandSpotter(false_accepts_per_hour=5, sample_rate=48000)
    for chunk in my_audio_source():          # e.g. (480, 2) int16 blocks
        for cmd in spotter.process(chunk):
            print(cmd.label, cmd.score, cmd.t)

or straight from a microphone: ``for cmd in CommandSpotter().listen(): ...``.
"""

from __future__ import annotations

import logging
import numbers
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from voice_gru.config import DecisionConfig
from voice_gru.decision import BACKGROUND, Command, Detector, effective_thresholds
from voice_gru.errors import AudioFormatError, ConfigError
from voice_gru.checkpoint_data import CheckpointData, read_checkpoint_data
from voice_gru.stream import Recognizer

logger = logging.getLogger(__name__)


def as_float_mono(audio: np.ndarray) -> np.ndarray:
    """Samples ``(n,)`` or ``(n, channels)``, float or integer PCM, as float32 mono in [-1, 1]."""
    x = np.asarray(audio)
    if x.ndim not in (1, 2):
        raise AudioFormatError(f"audio chunk of shape {x.shape}: expected (samples,) or (samples, channels)")
    if x.dtype == np.uint8:  # 8-bit PCM is unsigned, centred on 128
        x = (x.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(x.dtype, np.signedinteger):
        x = x.astype(np.float32) / float(-np.iinfo(x.dtype).min)
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32, copy=False)
    else:
        raise AudioFormatError(f"audio chunk of dtype {x.dtype}: expected float or signed integer PCM samples")
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    return np.ascontiguousarray(x, dtype=np.float32)


def _checked_override(threshold: float | Mapping[str, float] | None, labels) -> float | dict[str, float] | None:
    """A ``threshold`` argument checked: posteriors in [0, 1] (or calibration's ``OFF``, which
    switches a command off), command names the model knows."""
    from voice_gru.calibrate import OFF

    if threshold is None:
        return None
    values = dict(threshold) if isinstance(threshold, Mapping) else {"": threshold}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= OFF:
            raise ConfigError(f"threshold {value!r}{' for ' + name if name else ''}: thresholds are posteriors between 0 and 1")
        if name and (name not in labels or name in BACKGROUND):
            commands = [lab for lab in labels if lab not in BACKGROUND]
            raise ConfigError(f"threshold for '{name}': not a command of this model ({', '.join(commands)})")
    return {k: float(v) for k, v in values.items()} if isinstance(threshold, Mapping) else float(threshold)


class CommandSpotter:
    """Audio chunks in, ``Command`` events out: exactly the path ``voice-gru listen`` runs.

    ``model``: a checkpoint path (read without importing torch), a loaded ``Checkpoint`` or ``CheckpointData`` (None: the shipped model).
    Sensitivity: ``false_accepts_per_hour`` (the model's calibrated operating point for at most that
    many false triggers per hour on new speakers) and/or ``threshold`` (the smoothed posterior a
    command must reach, one number or ``{"stop": 0.9, ...}``; higher means fewer false triggers and
    more misses). Both: a mapping adjusts single commands of the point (one number and a point
    conflict). Neither: the model's own calibrated thresholds.
    ``sample_rate``: the rate of the audio given to ``process`` (resampled in code).
    ``decision``: smoothing / minimum duration / cooldown (None: the model's calibrated settings).
    """

    def __init__(self, model: str | Path | CheckpointData | Any = None, *, false_accepts_per_hour: float | None = None,
                 threshold: float | Mapping[str, float] | None = None, sample_rate: int = 16000,
                 decision: DecisionConfig | None = None, mode: str = "stream", refresh_s: float | None = 3.0) -> None:
        from voice_gru.calibrate import operating_point
        from voice_gru.mic import StreamingResampler
        from voice_gru.streams import decision_of

        if false_accepts_per_hour is not None and threshold is not None and not isinstance(threshold, Mapping):
            raise ConfigError("give threshold or false_accepts_per_hour, not both "
                              "(a {command: value} mapping may adjust single commands of a point)")
        if sample_rate <= 0:
            raise ConfigError(f"sample_rate {sample_rate}: must be positive")
        # read without torch; a loaded voice_gru.model.Checkpoint gives its arrays
        self.ckpt = read_checkpoint_data(model) if model is None or isinstance(model, (str, Path)) else model.data()
        self.labels = list(self.ckpt.labels)
        self.operating_point = operating_point(self.ckpt, false_accepts_per_hour) if false_accepts_per_hour is not None else None
        override = _checked_override(threshold, self.labels)
        if self.operating_point:
            override = {**self.operating_point["thresholds"], **(override or {})}  # type: ignore[dict-item]
        self.decision = decision_of(self.ckpt, decision)
        self.thresholds = effective_thresholds(self.labels, self.decision, self.ckpt.thresholds, override)
        f = self.ckpt.features
        self.sample_rate = int(sample_rate)
        self.recognizer = Recognizer(self.ckpt, mode=mode, refresh_s=refresh_s)
        self.detector = Detector(self.labels, self.decision, self.thresholds, f.hop_ms / 1000, f.win_length / f.sample_rate)
        self._resampler = StreamingResampler(self.sample_rate, f.sample_rate) if self.sample_rate != f.sample_rate else None
        self.posteriors = np.zeros((0, len(self.labels)), dtype=np.float32)
        self.lost_blocks = 0  # microphone blocks lost during the last listen()

    def process(self, audio: np.ndarray) -> list[Command]:
        """Feed a chunk at ``sample_rate``; return the commands it completes (``t``: seconds since the start)."""
        x = as_float_mono(audio)
        if self._resampler is not None:
            x = self._resampler(x)
        return self._process_model_rate(x)

    def _process_model_rate(self, x: np.ndarray) -> list[Command]:
        self.posteriors = self.recognizer.push(x)
        return self.detector.update(self.posteriors)

    @property
    def scores(self) -> dict[str, float]:
        """Each class's smoothed posterior at the latest frame (what the thresholds are compared with)."""
        return {lab: float(s) for lab, s in zip(self.labels, self.detector.smoothed)}

    def reset(self) -> None:
        """Start a new stream: forget audio, GRU state and decision history."""
        self.recognizer.reset()
        self.detector.reset()
        if self._resampler is not None:
            self._resampler.reset()
        self.posteriors = np.zeros((0, len(self.labels)), dtype=np.float32)

    def listen(self, device: str | int | None = None, seconds: float | None = None,
               block_ms: float = 100.0) -> Iterator[Command]:
        """Commands from a microphone (``device`` as ``voice-gru devices`` lists it; None: the default),
        for ``seconds`` of audio or until the caller stops iterating. The device is opened at its own
        rate and converted in ``mic.MicrophoneStream``, so ``sample_rate`` does not apply here.
        Audio the microphone loses (input overflows, blocks dropped because the caller fell behind) is
        logged as a warning when it happens and counted in ``lost_blocks``."""
        from voice_gru.live import mic_chunks
        from voice_gru.mic import MicrophoneStream

        samples = 0
        self.lost_blocks = 0
        with MicrophoneStream(device, block_ms=block_ms, out_rate=self.ckpt.features.sample_rate) as mic:
            for chunk in mic_chunks(mic):
                lost = mic.overflows + mic.dropped_blocks
                if lost > self.lost_blocks:
                    logger.warning("microphone %s: %d block(s) of %g ms lost so far (input overflows: %d, dropped "
                                   "because commands were not read fast enough: %d)", device if device is not None
                                   else "default", lost, block_ms, mic.overflows, mic.dropped_blocks)
                    self.lost_blocks = lost
                yield from self._process_model_rate(chunk)
                samples += chunk.size
                if seconds is not None and samples >= seconds * self.ckpt.features.sample_rate:
                    return
