"""Which other words push a command up, how far, and where in the word: each clip alone through the live path.

A clip is played with ``lead_s`` of faint noise before it and ``tail_s`` after, through a fresh
``Recognizer`` and the model's own decision settings (``Detector``: its smoothing, and its unknown-word veto where
the model has one); the report per clip is the highest smoothed
command posterior, which command, and when it peaked relative to the end of the clip's speech as
``make-stream`` measures it (``streams.speech_bounds``; negative: while the word was still being spoken,
on frames training leaves unlabelled). This is how the
inside-word cap (``train.inside_unknown_weight``) was found and is measured (README, *For training*).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from voice_gru.audio import load_audio
from voice_gru.decision import BACKGROUND, Detector


def peak_command(smoothed: np.ndarray, labels: Sequence[str]) -> tuple[float, str, int]:
    """The highest smoothed posterior of any command in ``(frames, classes)``: value, command, frame."""
    commands = [i for i, lab in enumerate(labels) if lab not in BACKGROUND]
    sub = smoothed[:, commands]
    frame, k = np.unravel_index(int(np.argmax(sub)), sub.shape)
    return float(sub[frame, k]), labels[commands[k]], int(frame)


def other_word_fires(ckpt: Any, clips: Iterable[tuple[str, str]], lead_s: float = 0.3, tail_s: float = 0.5,
                     noise: float = 1e-3, seed: int = 0) -> list[dict]:
    """Per clip ``(path, word)``: ``peak``, ``command``, ``after_end_s`` (peak time minus the speech's end)."""
    from voice_gru.stream import Recognizer
    from voice_gru.streams import decision_of, speech_bounds

    rec = Recognizer(ckpt, remove_dc=True)  # as CommandSpotter runs it
    sr = rec.ckpt.features.sample_rate
    det = Detector(rec.labels, decision_of(rec.ckpt), frame_seconds=rec.frame_seconds, kernel="numpy")
    rng = np.random.default_rng(seed)
    out = []
    for path, word in clips:
        audio = load_audio(path, sr).astype(np.float32)
        x = np.concatenate([np.zeros(int(lead_s * sr), np.float32), audio, np.zeros(int(tail_s * sr), np.float32)])
        x += (rng.standard_normal(x.size) * noise).astype(np.float32)
        rec.reset()
        det.reset()
        smoothed = []
        for row in rec.push(x):
            det.update(row)
            smoothed.append(det.smoothed)
        if not smoothed:
            continue
        peak, command, frame = peak_command(np.asarray(smoothed), rec.labels)
        out.append({"path": str(path), "word": word, "peak": peak, "command": command,
                    "after_end_s": round(rec.frame_time(frame) - (lead_s + speech_bounds(audio, sample_rate=sr)[1]), 3)})
    return out
