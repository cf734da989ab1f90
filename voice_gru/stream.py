"""Streaming recognizer: audio chunks in, per-frame posteriors out, GRU state carried frame by frame.

Only new frames are computed: ``StreamingMFCC`` yields the frames the new audio completes and
the GRU continues from its carried state (``GRUClassifier.step``). A GRU that runs for hours sees
inputs unlike its training sequences (a few seconds long), so by default a fresh copy of the state
takes over every ``refresh_s`` seconds, after warming up beside the old one for the last
``refresh_s/2`` seconds before the switch: every frame's posterior comes from a copy with between
``refresh_s/2`` and ``1.5·refresh_s`` of context — always more than one word — and two copies run
only half of the time (a batch of two costs ~45% more than one copy). That keeps the model near
what it was trained on however long it listens.

``mode="window"`` is the reference: every ``every`` frames the model reruns from zero state on
the last ``window_s`` seconds of frames and reports the final frame (what a non-streaming
recognizer does); it costs ~``window`` times more compute per decision.

Both modes run the model through ``voice_gru.fastgru`` (``FastGRU``, or ``FastEnsemble``: the same weights and equations in
NumPy, built once per recognizer; a test holds it equal to ``GRUClassifier.step``): at 10 frames
per chunk PyTorch's per-operator overhead would cost more than the arithmetic. The front end after
the FFT and the network's products and recurrences run compiled (``kernel="numba"``,
``voice_gru.jit_kernels``) unless ``kernel="numpy"``. While it computes, NumPy's BLAS (all the NumPy
path's products, the compiled path's mel-band map) runs on the calling thread alone (``blas_threads``): OpenBLAS splits products above
~2.6·10⁵ multiply-adds over every core, and its idle workers then spin — measured on a 2-core
AMD EPYC: twice the CPU time alone, 3 times the wall-clock time beside one other busy process
(``scripts/bench_stream.py --load 1``).
"""

from __future__ import annotations

import numbers
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from voice_gru.checkpoint_data import CheckpointData, read_checkpoint_data
from voice_gru.config import REFRESH_S
from voice_gru.errors import ConfigError
from voice_gru.fastgru import fast_model
from voice_gru.stream_features import StreamingMFCC


class Recognizer:
    """Push audio chunks of any size; get the posteriors of the frames they complete."""

    def __init__(self, ckpt: Any, mode: str = "stream", refresh_s: float | None = REFRESH_S,
                 window_s: float = 1.5, every: int = 1, blas_threads: int | None = 1, kernel: str = "numba",
                 remove_dc: bool = False) -> None:
        """``remove_dc``: a ``DCBlocker`` before the features (what ``CommandSpotter`` hears live audio with);
        without it the posteriors are the offline model's on the same audio."""
        if mode not in ("stream", "window"):
            raise ConfigError(f"unknown recognizer mode {mode!r} (expected 'stream' or 'window')")
        # a checkpoint path, a voice_gru.model.Checkpoint or a CheckpointData: its arrays either way
        self.ckpt: CheckpointData = (read_checkpoint_data(ckpt) if ckpt is None or isinstance(ckpt, (str, Path))
                                     else ckpt.data())  # None: the shipped model, as for CommandSpotter
        self.labels = self.ckpt.labels
        self.mode = mode
        hop_s = self.ckpt.features.hop_ms / 1000
        # a copy must see more than a word before it takes over; below two frames the refresh would be all warm-up
        if refresh_s is not None and (isinstance(refresh_s, bool) or not isinstance(refresh_s, numbers.Real)
                                      or not (refresh_s == 0 or 2 * hop_s <= float(refresh_s) < float("inf"))):
            raise ConfigError(f"refresh_s {refresh_s!r}: seconds between state refreshes, at least {2 * hop_s:g} "
                              "(~3 s keeps more than a word of context; 0 or None: never refresh)")
        self.period = max(2, int(round(refresh_s / hop_s))) if refresh_s else None
        self.warm = self.period // 2 if self.period else 0  # frames a new copy runs before it takes over
        self.window = max(1, int(round(window_s / hop_s)))
        self.every = max(1, every)
        self.frontend = StreamingMFCC(self.ckpt.features, kernel, remove_dc)
        # the model's weights as they are now (a recognizer does not see later changes to them)
        self.net = fast_model(self.ckpt, kernel)
        self._mean = np.asarray(self.ckpt.normalizer.mean, dtype=np.float32)
        self._std = np.asarray(self.ckpt.normalizer.std, dtype=np.float32)
        # None leaves NumPy's BLAS threads as the process has them (for a benchmark, or an app with its own policy)
        # threadpoolctl's own limit() costs ~35 µs a call (it reads every library's full info); these
        # are its controllers for the BLAS libraries loaded now, set directly
        self._blas = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"] if blas_threads else []
        self.blas_threads = blas_threads
        self.reset()

    @property
    def frame_seconds(self) -> float:
        """Seconds between consecutive frames (the front end's hop)."""
        return self.ckpt.features.hop_ms / 1000

    def frame_time(self, index: int) -> float:
        """Stream time (s) at which frame ``index`` is complete."""
        f = self.ckpt.features
        return (index * f.hop_length + f.win_length) / f.sample_rate

    def reset(self) -> None:
        """Clear audio buffer, features and GRU state."""
        self.frontend.reset()
        self.n = 0  # frames processed
        # FastState for a FastGRU, EnsembleState for a FastEnsemble (the net's own kind, never mixed)
        self._state: Any = self.net.initial_state(1)  # the copy in use; while a new one warms up, batch [in use, new]
        self._frames: deque = deque(maxlen=self.window)
        self._last = np.full(len(self.labels), 1.0 / len(self.labels), dtype=np.float32)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Feed 16 kHz mono float32 audio; return posteriors ``(new_frames, classes)`` (float32)."""
        x = self.frontend.push(chunk)  # checks the chunk: 1-D float samples
        if x.shape[0] == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        x = (x - self._mean) / self._std  # the normaliser's arithmetic, in float32
        with _blas_limited(self._blas, self.blas_threads):  # the BLAS setting is the process's: restored on the way out
            return self._stream(x) if self.mode == "stream" else self._windowed(x)

    def _stream(self, x: np.ndarray) -> np.ndarray:
        net = self.net
        if self.period is None:
            post, self._state = net.posteriors(x[None], self._state)
            self.n += x.shape[0]
            return post[0]
        out = []
        i = 0
        P, start = self.period, self.period - self.warm  # a new copy starts at phase `start`, takes over at P
        while i < x.shape[0]:
            phase = self.n % P
            seg = min(x.shape[0] - i, (start if phase < start else P) - phase)
            one = x[None, i:i + seg]
            if phase < start:
                post, self._state = net.posteriors(one, self._state)
            else:  # segments split at `start`, so a warm-up always begins with phase == start
                if phase == start:
                    self._state = self._state.cat(net.initial_state(1))
                # one input for both copies (a stride-0 batch): once their front-end contexts agree,
                # FastGRU computes the front end once for both
                post, self._state = net.posteriors(np.broadcast_to(one, (2,) + one.shape[1:]), self._state)
            out.append(post[0])
            self.n += seg
            i += seg
            if phase >= start and self.n % P == 0:  # the new copy takes over from the next frame
                self._state = self._state.take(1)
        return out[0] if len(out) == 1 else np.concatenate(out)

    def _windowed(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], len(self.labels)), dtype=np.float32)
        for j, frame in enumerate(x):
            self._frames.append(frame)
            if self.n % self.every == 0:
                seq = np.stack(tuple(self._frames))[None]
                self._last = self.net.posteriors(seq, None)[0][0, -1]
            out[j] = self._last
            self.n += 1
        return out


@contextmanager
def _blas_limited(libs: list, threads: int | None):
    """Each BLAS library in ``libs`` (threadpoolctl controllers) on at most ``threads`` threads inside
    the block, its own setting back after it."""
    before = [lib.get_num_threads() for lib in libs]
    changed = [(lib, n) for lib, n in zip(libs, before) if n != threads]  # libs is empty where threads is None
    for lib, _ in changed:
        lib.set_num_threads(threads)
    try:
        yield
    finally:
        for lib, n in changed:
            lib.set_num_threads(n)
