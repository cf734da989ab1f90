"""Posteriors -> Command events: smoothing, per-command thresholds, minimum duration, cooldown."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """A detected command: its label, smoothed score and the stream time (s) of the detection."""

    label: str
    score: float
    t: float

    def to_dict(self) -> dict:
        return {"t": round(self.t, 3), "label": self.label, "score": round(self.score, 4)}
