"""Posteriors -> Command events: the unknown-word veto, smoothing, per-command thresholds, minimum duration, cooldown."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Collection, Mapping, Sequence

import numpy as np

from voice_gru.config import OFF, DecisionConfig
from voice_gru.errors import ConfigError, is_whole
from voice_gru.kernels import check_kernel, compiled_kernels

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


@dataclass(frozen=True)
class Command:
    """A detected command: its label, smoothed score and the stream time (s) of the detection."""

    label: str
    score: float
    t: float

    def to_dict(self) -> dict:
        """The event as JSON values (``t`` to the millisecond, ``score`` to 4 decimals)."""
        return {"t": round(self.t, 3), "label": self.label, "score": round(self.score, 4)}


def clock(t: float) -> str:
    """Stream time in seconds as H:MM:SS.s (rounded to the tenth first: 59.96 s is 0:01:00.0, not 0:00:60.0)."""
    tenths = round(t * 10)
    return f"{tenths // 36000}:{tenths % 36000 // 600:02d}:{tenths % 600 / 10:04.1f}"


BACKGROUND = ("_silence_", "_unknown_")


def unknown_veto(posteriors: np.ndarray, unknown: int, commands: Sequence[int], level: float, n: int,
                 before: np.ndarray | None = None) -> np.ndarray:
    """``posteriors`` ``(frames, classes)`` with the ``commands``' mass moved to class ``unknown`` on every frame
    where ``unknown``'s posterior reached ``level`` within the last ``n`` frames, that frame included
    (``before``: ``unknown``'s posteriors on the frames before the first, oldest first; only the last ``n - 1`` count)."""
    p = np.asarray(posteriors, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"unknown_veto: posteriors must be (frames, classes), got shape {p.shape}")
    n_classes = p.shape[1]
    cols = np.asarray(commands)
    for what, idx in (("unknown", np.asarray([unknown])), ("commands", cols)):
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu") or ((idx < 0) | (idx >= n_classes)).any():
            raise ValueError(f"unknown_veto: {what} {idx.tolist()} must be class indices below {n_classes}")
    cols = cols.astype(np.int64)
    if unknown in cols:
        raise ValueError(f"unknown_veto: class {unknown} is both the unknown class and a command")
    if not is_whole(n):
        raise ValueError(f"unknown_veto: n must be a whole number of frames, at least 1, got {n!r}")
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or math.isnan(level):
        raise ValueError(f"unknown_veto: level must be a posterior (a number), got {level!r}")
    return _veto(p, unknown, cols, level, n, before)


def _veto(p: np.ndarray, unknown: int, cols: np.ndarray, level: float, n: int, before: np.ndarray | None) -> np.ndarray:
    """``unknown_veto`` on checked arguments (the Detector checks its own once, not every chunk)."""
    prev = np.zeros(0)
    if before is not None and n > 1:
        prev = np.asarray(before, dtype=np.float64)[-(n - 1):]
    flags = np.concatenate((prev, p[:, unknown])) >= level
    # a frame is vetoed when any of its last n flags is set: a running count differenced over n
    count = np.concatenate(([0], np.cumsum(flags)))
    end = np.arange(len(prev) + 1, len(flags) + 1)
    veto = count[end] - count[np.maximum(end - n, 0)] > 0
    if not veto.any():
        return p
    out = p.copy()
    rows = np.flatnonzero(veto)
    out[rows, unknown] += out[np.ix_(rows, cols)].sum(1)
    out[np.ix_(rows, cols)] = 0.0
    return out


def veto_frames(cfg: DecisionConfig, frame_seconds: float = 0.01) -> int:
    """The veto's window in frames (0: the veto is off)."""
    return 0 if cfg.unknown_veto > 1.0 else max(1, int(round(cfg.unknown_veto_ms / 1000 / frame_seconds)))


def apply_unknown_veto(posteriors: np.ndarray, labels: Sequence[str], cfg: DecisionConfig,
                       frame_seconds: float = 0.01) -> np.ndarray:
    """A whole stream's posteriors as the ``Detector`` smooths them: ``unknown_veto`` with ``cfg``'s settings
    (unchanged where the veto is off or the labels have no ``_unknown_``)."""
    n = veto_frames(cfg, frame_seconds)
    if n == 0 or "_unknown_" not in labels:
        return np.asarray(posteriors, dtype=np.float64)
    commands = [i for i, lab in enumerate(labels) if lab not in BACKGROUND]
    return unknown_veto(posteriors, list(labels).index("_unknown_"), commands, cfg.unknown_veto, n)


def only_commands(thresholds: Mapping[str, float], commands: Collection[str] | None) -> dict[str, float]:
    """``thresholds`` with every label outside ``commands`` above any posterior (``OFF``); None: all kept."""
    return {c: (v if commands is None or c in commands else OFF) for c, v in thresholds.items()}


def effective_thresholds(labels: Sequence[str], cfg: DecisionConfig,
                         calibrated: Mapping[str, float] | None = None,
                         override: float | Mapping[str, float] | None = None) -> dict[str, float]:
    """Per-command thresholds: command-line override > model's calibrated values > config."""
    out = {}
    for lab in labels:
        if lab in BACKGROUND:
            continue
        thr = cfg.thresholds.get(lab, cfg.threshold)
        if calibrated and lab in calibrated:
            thr = float(calibrated[lab])
        if isinstance(override, Mapping):
            thr = float(override.get(lab, thr))
        elif override is not None:
            thr = float(override)
        out[lab] = thr
    return out


class Detector:
    """Posterior frames in, ``Command`` events out.

    Where ``_unknown_`` reached ``unknown_veto`` within the last ``unknown_veto_ms``, the commands' posteriors
    go to ``_unknown_`` (``unknown_veto``); posteriors are then averaged over the last ``smooth_ms``; a
    command fires when it is the top smoothed class and stays at or above its threshold for
    ``min_duration_ms``; after a firing,
    nothing fires for ``cooldown_ms``, and the same command fires again only after its score has
    dropped below ``rearm_ratio`` times its threshold (one utterance, one event). ``_silence_`` and
    ``_unknown_`` never fire.
    """

    def __init__(self, labels: Sequence[str], cfg: DecisionConfig = DecisionConfig(),
                 thresholds: Mapping[str, float] | None = None, frame_seconds: float = 0.01,
                 first_frame_end: float = 0.03, kernel: str = "numba") -> None:
        """``kernel``: a chunk's smoothing and firing rule as one compiled call (``numba``,
        ``voice_gru.jit_kernels.detector_chunk``) or as NumPy calls (``numpy``; also where numba cannot load)."""
        check_kernel(kernel, "detector")
        self.labels = list(labels)
        if not isinstance(cfg, DecisionConfig):
            raise ConfigError(f"Detector: cfg {cfg!r} is not a voice_gru.config.DecisionConfig")
        if not (isinstance(frame_seconds, (int, float)) and 0 < frame_seconds < math.inf):
            raise ConfigError(f"Detector: frame_seconds {frame_seconds!r} must be a positive number of seconds")
        self.cfg = cfg
        self.thresholds = dict(thresholds) if thresholds is not None else effective_thresholds(labels, cfg)
        for lab, value in self.thresholds.items():  # an unknown name would be ignored, a string compared as text
            if lab not in self.labels or isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not value >= 0:
                raise ConfigError(f"Detector: threshold {lab}={value!r}: thresholds map the model's labels "
                                  f"({', '.join(self.labels)}) to posteriors (above 1: never fires)")
        self.frame_seconds = frame_seconds
        self.first_frame_end = first_frame_end
        self.n_smooth = max(1, int(round(cfg.smooth_ms / 1000 / frame_seconds)))
        self.n_min = max(1, int(round(cfg.min_duration_ms / 1000 / frame_seconds)))
        self.n_cool = int(round(cfg.cooldown_ms / 1000 / frame_seconds))
        self.n_veto = veto_frames(cfg, frame_seconds) if "_unknown_" in self.labels else 0
        self._unknown = self.labels.index("_unknown_") if self.n_veto else -1
        self._commands = np.array([i for i, lab in enumerate(self.labels) if lab not in BACKGROUND], dtype=np.int64)
        # background classes never fire, whatever a caller's thresholds mapping holds
        self._thr = np.array([np.inf if lab in BACKGROUND else float(self.thresholds.get(lab, np.inf))
                              for lab in self.labels])
        self._rearm = self._thr * cfg.rearm_ratio
        # per 100 ms chunk ~30 µs of NumPy calls alone, ~90 µs beside the network (caches cold); compiled: a few
        self._jit = compiled_kernels() if kernel == "numba" else None
        self.kernel = "numba" if self._jit is not None else "numpy"
        self.reset()

    def reset(self) -> None:
        """Forget history."""
        C = len(self.labels)
        self._hist = np.zeros((self.n_smooth - 1, C))  # the last posterior rows (the first _k of them)
        self._k = 0
        self._st = np.array([-1, 0, -1, 0], dtype=np.int64)  # run label, run length, cooldown end, frames seen
        self._armed = np.ones(C, dtype=bool)
        self.smoothed = np.zeros(C)
        self._unknown_hist = np.zeros(0)  # _unknown_'s last n_veto - 1 posteriors

    @property
    def n(self) -> int:
        """Frames consumed so far."""
        return int(self._st[3])

    def time_of(self, frame: int) -> float:
        """Stream time (s) when frame ``frame`` is complete."""
        # to the microsecond: 14.21 s, not 14.209999999999999 (frame counts times 0.01 are rarely exact)
        return round(self.first_frame_end + frame * self.frame_seconds, 6)

    def update(self, posteriors: ArrayLike) -> list[Command]:
        """Consume ``(frames, classes)`` posteriors (or one frame's ``(classes,)``); return the commands that fired."""
        p = np.asarray(posteriors, dtype=np.float64)
        if p.shape == (len(self.labels),):  # one frame
            p = p[None]
        if p.ndim != 2 or p.shape[1] != len(self.labels):
            raise ValueError(f"posteriors of shape {p.shape}: expected (frames, {len(self.labels)}) for labels {self.labels}")
        if p.shape[0] == 0:
            return []
        if not np.isfinite(p).all():  # an inf would fire a background class with score inf, a NaN nothing
            raise ValueError("Detector.update: posteriors hold NaN or infinite values")
        if self.n_veto:
            raw = p[:, self._unknown]
            p = _veto(p, self._unknown, self._commands, self.cfg.unknown_veto, self.n_veto, self._unknown_hist)
            if self.n_veto > 1:
                self._unknown_hist = np.concatenate((self._unknown_hist, raw))[-(self.n_veto - 1):]
        if self._jit is None:
            return self._update_numpy(p)
        smoothed = np.empty(p.shape[1])
        events = np.empty((p.shape[0], 2), np.int64)
        scores = np.empty(p.shape[0])
        ne, self._k = self._jit.detector_chunk(np.ascontiguousarray(p), self._hist, self._k, self._thr, self._rearm,
                                               self._armed, self._st, self.n_min, self.n_cool, smoothed, events, scores)
        self.smoothed = smoothed
        return [Command(self.labels[int(k)], float(sc), self.time_of(int(fr))) for (fr, k), sc in zip(events[:ne], scores[:ne])]

    def _update_numpy(self, p: np.ndarray) -> list[Command]:
        """``update`` in NumPy calls (the reference the compiled kernel is tested against)."""
        # the chunk's moving averages at once (per frame, the arithmetic costs less than NumPy's calls);
        # each window summed afresh, so no rounding accumulates over hours
        n, k = self.n_smooth, self._k
        rows = np.concatenate((self._hist[:k], p))
        padded = np.concatenate((np.zeros((n - 1 - k, rows.shape[1])), rows)) if k < n - 1 else rows
        s0, s1 = padded.strides  # overlapping windows of the contiguous rows (sliding_window_view costs ~40 µs)
        sums = np.ndarray((p.shape[0], n, padded.shape[1]), padded.dtype, padded, 0, (s0, s0, s1)).sum(1)
        smoothed = sums / np.minimum(np.arange(k + 1, k + p.shape[0] + 1), n)[:, None]
        self._k = min(n - 1, rows.shape[0])
        self._hist[:self._k] = rows[rows.shape[0] - self._k:]
        self.smoothed = smoothed[-1]
        tops = smoothed.argmax(1)
        over = (smoothed[np.arange(len(tops)), tops] >= self._thr[tops]).tolist()
        below = smoothed < self._rearm
        run_label, run, cool_until, frame = (int(v) for v in self._st)
        if run == 0 and not any(over):  # nothing can fire or start a run (most chunks): no per-frame loop
            self._armed |= below.any(0)
            self._st[3] = frame + len(over)
            return []
        events = []
        for t, top in enumerate(tops.tolist()):
            # a command that fired re-arms only once its score falls well below its threshold,
            # so one long, slowly fading or hovering utterance cannot fire twice after the cooldown
            self._armed |= below[t]
            if over[t] and self._armed[top]:
                run = run + 1 if top == run_label else 1
                run_label = top
            else:
                run, run_label = 0, -1
            if run >= self.n_min and frame > cool_until:
                events.append(Command(self.labels[top], float(smoothed[t, top]), self.time_of(frame)))
                cool_until = frame + self.n_cool
                self._armed[top] = False
                run, run_label = 0, -1
            frame += 1
        self._st[:] = (run_label, run, cool_until, frame)
        return events
