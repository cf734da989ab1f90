"""How calibrated thresholds carry over to new speakers: cross-validation over validation speakers.

Thresholds chosen on the validation streams meet their false-accept budget *there* by sitting just
above the scores of the few unknown-word clips that would fire. Per-command thresholds do that ten
times, once per command, so on new voices roughly ten times as many clips slip through (order
statistics: a new clip beats the highest of ``n`` similar ones with probability ``1/(n + 1)``). The
budget a user states ("1 false accept per hour") only means something if it is estimated on speakers
the thresholds were not fitted to.

A *rule* turns a target into thresholds: ``("per-command", t)`` is the exact per-command search of
``voice_gru.calibrate`` at ``t`` false accepts per hour; ``("shared", t, m)`` is the lowest single
threshold, for every command, that meets ``t``, plus a margin ``m``; ``("blend", t, w)`` is ``w`` times
the per-command thresholds plus ``1 - w`` times the shared one, both fitted at ``t`` (per-command
thresholds pulled towards one value: the usual cure for many estimates from few events). Each rule is fitted on half of
the validation speakers and scored on the other half (``FOLDS`` random halvings by speaker, both
directions); the mean held-out recall and false accepts per hour are its *expected* figures on new
speakers. ``select_rule`` then picks the rule with the best expected recall within a target.

Events are attributed to a half through the clip they fall in (its file names the speaker); a
false accept outside every clip counts half to each. A half's hours are the streams' hours times its
share of the unknown-word clips, so rates stay per hour of the same kind of audio.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Callable, Mapping, Sequence

import numpy as np

from voice_gru import UNKNOWN
from voice_gru.errors import ConfigError

FOLDS = 3  # random halvings of the validation speakers; each half is fitted once and scored once
SHARED_MARGINS = (0.0, 0.01, 0.02, 0.03, 0.05)
BLENDS = (0.25, 0.5, 0.75)  # weight of the per-command thresholds against the shared one
HITS, FAS, WRONG = 0, 1, 2


def speaker_of(file: str) -> str:
    """The speaker of a Speech Commands clip path (``bed/4abb2400_nohash_0.wav`` -> ``4abb2400``)."""
    name = PurePosixPath(str(file).replace("\\", "/")).name
    return name.split("_nohash_")[0] if "_nohash_" in name else name.rsplit(".", 1)[0]


def speaker_halves(truths: Sequence[Mapping], folds: int = FOLDS) -> list[np.ndarray]:
    """Per stream: ``(clips, folds)`` half (0/1) of each clip (sorted by start), from its speaker."""
    out = []
    for truth in truths:
        clips = sorted(truth["events"], key=lambda e: float(e["start"]))
        out.append(np.array([[hashlib.md5(f"{f}:{speaker_of(c.get('file', ''))}".encode()).digest()[0] % 2
                              for f in range(folds)] for c in clips], dtype=np.int64).reshape(len(clips), folds))
    return out


def _counts(scores: Sequence[Mapping], halves: Sequence[np.ndarray], n: int, slot: Callable[[Mapping], int],
            folds: int) -> np.ndarray:
    """``(folds, 2, n, 3)``: each detection's outcome counted in its clip's speaker half, in the ``slot`` it
    names (a detection outside every clip: half to each side)."""
    out = np.zeros((folds, 2, n, 3))
    col = {"hit": HITS, "false_accept": FAS, "wrong": WRONG}
    for s, h in zip(scores, halves):
        for d in s["events"]:
            k, j = col[d["outcome"]], slot(d)
            if "clip" in d:
                out[np.arange(folds), h[d["clip"]], j, k] += 1
            else:
                out[:, :, j, k] += 0.5
    return out


def split_counts(scores: Sequence[Mapping], halves: Sequence[np.ndarray], folds: int = FOLDS) -> np.ndarray:
    """``(folds, 2, 3)``: hits, false accepts and wrong labels of scored streams, by speaker half."""
    return _counts(scores, halves, 1, lambda d: 0, folds)[:, :, 0]


def split_counts_by_label(scores: Sequence[Mapping], halves: Sequence[np.ndarray], labels: Sequence[str],
                          folds: int = FOLDS) -> np.ndarray:
    """``(folds, 2, labels, 3)``: ``split_counts`` with each detection counted under the label it fired."""
    index = {lab: i for i, lab in enumerate(labels)}
    return _counts(scores, halves, len(labels), lambda d: index[d["label"]], folds)


def commands_by_label(truths: Sequence[Mapping], halves: Sequence[np.ndarray], labels: Sequence[str],
                      command_kinds: Sequence[bool], folds: int = FOLDS) -> np.ndarray:
    """``(folds, 2, labels)``: the commands to hit in each half, by command."""
    index = {lab: i for i, lab in enumerate(labels)}
    n = np.zeros((folds, 2, len(labels)))
    for truth, h, has_commands in zip(truths, halves, command_kinds):
        if not has_commands:
            continue
        clips = sorted(truth["events"], key=lambda e: float(e["start"]))
        for c, row in zip(clips, h):
            if c["label"] != UNKNOWN and c["label"] in index:
                n[np.arange(folds), row, index[c["label"]]] += 1
    return n


@dataclass(frozen=True)
class Halves:
    """What each speaker half holds: commands ``(folds, 2)`` and hours of audio ``(folds, 2)``."""

    commands: np.ndarray
    hours: np.ndarray


def half_sizes(truths: Sequence[Mapping], halves: Sequence[np.ndarray], total_hours: float,
               command_kinds: Sequence[bool], folds: int = FOLDS) -> Halves:
    """Commands to hit and hours (by share of unknown-word clips) of each half of each fold."""
    n = np.zeros((folds, 2))
    u = np.zeros((folds, 2))
    for truth, h, has_commands in zip(truths, halves, command_kinds):
        clips = sorted(truth["events"], key=lambda e: float(e["start"]))
        for c, row in zip(clips, h):
            if c["label"] == UNKNOWN:
                u[np.arange(folds), row] += 1
            elif has_commands:
                n[np.arange(folds), row] += 1
    hours = total_hours * u / np.maximum(u.sum(1, keepdims=True), 1)
    return Halves(n, hours)


def describe_rule(rule: tuple) -> str:
    """``per-command thresholds at 1 false accept/h`` / ``one shared threshold at 0 /h + 0.02``."""
    if rule[0] == "per-command":
        return f"per-command thresholds fitted at {rule[1]:g} false accepts/h"
    if rule[0] == "blend":
        return f"{rule[2]:g} x per-command + {1 - rule[2]:g} x one shared threshold, both fitted at {rule[1]:g} false accepts/h"
    return f"one threshold for every command, fitted at {rule[1]:g} false accepts/h" + (f", +{rule[2]:g}" if rule[2] else "")


def cross_validate(rules: Sequence[tuple], fit: Callable[[tuple, int, int], dict[str, float]],
                   held_out: Callable[[dict[str, float]], np.ndarray], sizes: Halves,
                   folds: int = FOLDS) -> list[dict]:
    """Expected recall and false accepts per hour of each rule on speakers it was not fitted to.

    ``fit(rule, fold, half)`` gives thresholds fitted on one half; ``held_out(thresholds)`` gives
    their ``split_counts`` over all streams. Halves without commands or unknown words are skipped.
    """
    out = []
    for rule in rules:
        recalls, rates = [], []
        for f in range(folds):
            for a in (0, 1):
                b = 1 - a
                if sizes.commands[f, b] == 0 or sizes.hours[f, b] <= 0 or sizes.hours[f, a] <= 0:
                    continue
                c = held_out(fit(rule, f, a))
                recalls.append(c[f, b, HITS] / sizes.commands[f, b])
                rates.append(c[f, b, FAS] / sizes.hours[f, b])
        out.append({"rule": rule, "recall": float(np.mean(recalls)) if recalls else None,
                    "fa_per_hour": float(np.mean(rates)) if rates else None, "halves": len(recalls)})
    return out


def select_rule(results: Sequence[Mapping], max_fa_per_hour: float) -> tuple[Mapping, bool]:
    """The rule with the best expected recall whose expected false accepts per hour are within
    the target (ties: fewer false accepts); if none is, the one with the fewest. ``(result, met)``."""
    scored = [r for r in results if r["recall"] is not None]
    if not scored:
        raise ConfigError("calibrate: no threshold rule could be cross-validated (the validation streams need commands "
                          "and unknown words from more than one speaker: longer streams, --minutes and --free-minutes, "
                          "or a validation split with more speakers)")
    ok = [r for r in scored if r["fa_per_hour"] <= max_fa_per_hour + 1e-9]
    if ok:
        return max(ok, key=lambda r: (r["recall"], -r["fa_per_hour"])), True
    return min(scored, key=lambda r: (r["fa_per_hour"], -r["recall"])), False


def budget_of(target: float, hours: float) -> int:
    """False accepts a target per hour allows over ``hours``."""
    return int(math.floor(target * hours + 1e-9))


__all__ = ["FOLDS", "SHARED_MARGINS", "BLENDS", "speaker_of", "speaker_halves", "split_counts", "split_counts_by_label",
           "commands_by_label", "Halves", "half_sizes",
           "describe_rule", "cross_validate", "select_rule", "budget_of"]
