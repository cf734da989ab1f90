"""Per-command thresholds stated in false accepts per hour, chosen on the validation split.

``calibrate(ckpt, root, max_fa_per_hour)`` builds, deterministically from a seed, two kinds of
validation-split stream (``voice_gru.streams``): a *command stream* (commands and unknown words,
about every 3 s, over noise) and a long *command-free stream* (validation unknown words reused
many times at new gains, positions and noise, in pieces of ``piece_minutes``). The model runs
once over all of it (the listen path, ``streams.evaluate_stream``); the threshold search then
replays only the detector over the stored posteriors.

Search (documented, exact on its own terms):

1. For each command ``c`` and each threshold ``g`` of the grid (plus "off" = 1.01, above any
   posterior), replay the detector with only ``c`` enabled at ``g`` and count ``c``'s hits,
   wrong labels and false accepts over all streams (``streams.fast_events``, an exact replay of
   ``Detector``). Neighbouring thresholds with equal counts become one option at their middle
   grid value, leaving a margin on both sides.
2. The false-accept budget is ``B = floor(target × stream hours)`` events. Choose one option per
   command maximising total hits subject to total false accepts ≤ B — a small knapsack solved
   exactly by dynamic programming over the integer budget; ties go to fewer false triggers
   (false accepts + wrong labels), then to fewer commands switched off.
3. Verify with the real ``Detector`` and all commands enabled together (commands interact only
   through the cooldown). If the joint count exceeds ``B``, lower ``B`` by one and repeat.

The budget is only measurable when the streams are long: 0.5 per hour needs two hours before a
single false accept is allowed, hence the default 120 command-free minutes (plus 25 with
commands). The reported false accepts per hour and recall are those of step 3. Only the validation split
is used; the testing split stays untouched for honest numbers.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Mapping, Sequence

import numpy as np

from voice_gru import UNKNOWN
from voice_gru.config import DecisionConfig, to_dict
from voice_gru.errors import ConfigError
from voice_gru.streams import (
    StreamSpec, combine_scores, decision_of, detect, detector_frames, evaluate_stream, fast_events,
    load_clip_bank, make_stream, score_events, smoothed_top,
)

SPLIT = "validation"
DEFAULT_GRID = tuple(float(x) for x in np.round(np.arange(0.30, 0.9901, 0.01), 2))
OFF = 1.01  # above any posterior: the command is switched off (no grid value met the budget)


@dataclasses.dataclass
class _Piece:
    kind: str  # "command" or "command_free"
    truth: dict
    duration: float
    posteriors: np.ndarray
    top: np.ndarray
    score: np.ndarray
    before: dict  # score with the checkpoint's own thresholds


def _pieces_spec(minutes: float, piece_minutes: float) -> list[float]:
    total = minutes * 60.0
    n = max(1, int(math.ceil(total / (piece_minutes * 60.0) - 1e-9)))
    return [total / n] * n


def plateau_options(table: Sequence[tuple]) -> list[tuple]:
    """Reduce one command's ``(threshold, hits, fa, wrong)`` rows (ascending thresholds, "off" last)
    to one row per stretch of neighbouring thresholds with equal counts, at the stretch's middle
    grid value: the margin on both sides makes the choice less sensitive to the sample."""
    grid = [row for row in table if row[0] < OFF]
    out = []
    i = 0
    while i < len(grid):
        j = i
        while j + 1 < len(grid) and grid[j + 1][1:] == grid[i][1:]:
            j += 1
        out.append((grid[(i + j) // 2][0], *grid[i][1:]))
        i = j + 1
    return out + [row for row in table if row[0] >= OFF]


def _knapsack(options: Mapping[str, Sequence[tuple]], budget: int) -> dict[str, tuple]:
    """Pick one option per command: maximise hits with sum of false accepts <= budget.

    ``options[c]`` = [(threshold, hits, fa, wrong), ...]. Value order: hits, then fewer false
    triggers (fa + wrong), then fewer commands switched off, then higher thresholds.
    """
    neg = None
    best: list = [neg] * (budget + 1)  # best value using exactly b false accepts
    best[0] = (0, 0, 0, 0.0)
    choice: list[dict] = [dict() for _ in range(budget + 1)]
    for c, opts in options.items():
        new: list = [neg] * (budget + 1)
        new_choice: list[dict] = [dict() for _ in range(budget + 1)]
        for b in range(budget + 1):
            if best[b] is neg:
                continue
            for opt in opts:
                thr, hits, fa, wrong = opt
                nb = b + fa
                if nb > budget:
                    continue
                v = best[b]
                val = (v[0] + hits, v[1] - fa - wrong, v[2] - (thr >= OFF), v[3] + thr)
                if new[nb] is neg or val > new[nb]:
                    new[nb] = val
                    new_choice[nb] = {**choice[b], c: opt}
        best, choice = new, new_choice
    feasible = [b for b in range(budget + 1) if best[b] is not neg]
    if not feasible:  # only when even "off" fires (it cannot): switch everything off
        return {c: opts[-1] for c, opts in options.items()}
    return choice[max(feasible, key=lambda b: best[b])]


def calibrate(ckpt, root, max_fa_per_hour: float = 0.5, *, command_minutes: float = 25.0,
              free_minutes: float = 120.0, piece_minutes: float = 10.0, grid: Sequence[float] = DEFAULT_GRID,
              decision_cfg: DecisionConfig | None = None, seed: int = 0, mode: str = "stream",
              refresh_s: float | None = 3.0, chunk_ms: float = 100.0, after: float = 1.0,
              spec: StreamSpec = StreamSpec(), log: Callable[[str], None] | None = None):
    """Choose per-command thresholds on validation streams; return ``(calibrated_ckpt, report)``.

    The calibrated checkpoint is a copy (``dataclasses.replace``) with ``thresholds`` set, the
    decision settings used in ``decision`` and ``meta["calibration"]`` describing the result.
    """
    if not max_fa_per_hour >= 0:
        raise ConfigError(f"--max-false-accepts-per-hour {max_fa_per_hour}: must be >= 0")
    if command_minutes <= 0 or free_minutes < 0 or piece_minutes <= 0:
        raise ConfigError("calibrate: command stream minutes and piece minutes must be > 0, command-free minutes >= 0")
    grid = sorted({float(g) for g in grid})
    if not grid or grid[0] < 0 or grid[-1] > 1:
        raise ConfigError("calibrate: the threshold grid must hold posteriors between 0 and 1")
    say = log or (lambda msg: None)
    t0 = time.perf_counter()
    dcfg = decision_of(ckpt, decision_cfg)
    labels = list(ckpt.labels)
    commands = [lab for lab in labels if lab not in ("_silence_", UNKNOWN)]
    if not commands:
        raise ConfigError("calibrate: the model has no command labels")
    f = ckpt.features
    frame_s, first_end = f.hop_ms / 1000, f.win_length / f.sample_rate
    n_smooth, n_min, n_cool = detector_frames(dcfg, frame_s)
    bank = load_clip_bank(str(root), SPLIT)

    # 1. the streams, and the model over them once
    plan = [("command", dataclasses.replace(spec, seconds=command_minutes * 60.0, command_free=False), seed)]
    for k, secs in enumerate(_pieces_spec(free_minutes, piece_minutes) if free_minutes > 0 else []):
        plan.append(("command_free", dataclasses.replace(spec, seconds=secs, command_free=True), seed * 1000 + 1 + k))
    pieces: list[_Piece] = []
    compute = audio_s = 0.0
    for i, (kind, sp, sd) in enumerate(plan):
        audio, truth = make_stream(root, SPLIT, sp, seed=sd, bank=bank)
        res = evaluate_stream(ckpt, audio, truth, dcfg, None, mode=mode, chunk_ms=chunk_ms,
                              refresh_s=refresh_s, after=after)
        compute += res["compute_s"]
        audio_s += res["audio_s"]
        top, score = smoothed_top(res["posteriors"], n_smooth)
        before = {k: v for k, v in res.items() if k not in ("posteriors", "events")}
        pieces.append(_Piece(kind, truth, float(truth["duration"]), res["posteriors"], top, score, before))
        say(f"stream {i + 1}/{len(plan)} ({kind}, {sp.seconds / 60:.1f} min): {res['hits']}/{res['commands']} hits, "
            f"{res['false_accepts']} false accepts with the model's current thresholds (RTF {res['rtf']:.3f})")
        del audio
    hours = sum(p.duration for p in pieces) / 3600.0
    budget = int(math.floor(max_fa_per_hour * hours + 1e-9))

    # 2. per-command tables
    options: dict[str, list[tuple]] = {}
    tables: dict[str, list[tuple]] = {}
    for c in commands:
        ci = labels.index(c)
        opts = []
        for g in [*grid, OFF]:
            thr = np.full(len(labels), np.inf)
            thr[ci] = g
            hits = fa = wrong = 0
            for p in pieces:
                evs = [{"t": first_end + fr * frame_s, "label": labels[k]}
                       for fr, k, _ in fast_events(p.top, p.score, thr, n_min, n_cool)]
                s = score_events(evs, p.truth, p.duration, after)
                hits += s["hits"]
                fa += s["false_accepts"]
                wrong += s["wrong"]
            opts.append((g, hits, fa, wrong))
        options[c] = plateau_options(opts)
        tables[c] = opts

    # 3. choose, verify jointly with the real Detector, tighten if needed
    b = budget
    while True:
        chosen = _knapsack(options, max(b, 0)) if b >= 0 else {c: options[c][-1] for c in commands}
        thresholds = {c: float(chosen[c][0]) for c in commands}
        scores = []
        for p in pieces:
            evs = detect(p.posteriors, labels, dcfg, thresholds, frame_s, first_end)
            scores.append(score_events(evs, p.truth, p.duration, after))
        total = combine_scores(scores)
        if total["false_accepts"] <= budget or b < 0:
            break
        say(f"joint detector gave {total['false_accepts']} false accepts > budget {budget}; tightening")
        b -= 1

    cmd_scores = [s for s, p in zip(scores, pieces) if p.kind == "command"]
    free_scores = [s for s, p in zip(scores, pieces) if p.kind == "command_free"]
    cmd_total = combine_scores(cmd_scores)
    free_total = combine_scores(free_scores) if free_scores else None
    before = combine_scores([p.before for p in pieces])
    per_command = {}
    for c in commands:
        n = sum(s["per_command"].get(c, {}).get("clips", 0) for s in cmd_scores)
        h = sum(s["per_command"].get(c, {}).get("hits", 0) for s in cmd_scores)
        fa = sum(s["per_command"].get(c, {}).get("false_accepts", 0) for s in scores)
        per_command[c] = {"threshold": thresholds[c], "off": thresholds[c] >= OFF, "clips": n, "hits": h,
                          "recall": round(h / n, 4) if n else None, "false_accepts": fa}
    command_hours = sum(p.duration for p in pieces if p.kind == "command") / 3600.0
    free_hours = hours - command_hours
    report = {
        "split": SPLIT,
        "target_fa_per_hour": max_fa_per_hour,
        "achieved_fa_per_hour": total["false_accepts_per_hour"],
        "false_accepts": total["false_accepts"],
        "false_accept_budget": budget,
        "met": total["false_accepts"] <= budget,
        "recall": cmd_total["recall"],
        "hits": cmd_total["hits"],
        "commands": cmd_total["commands"],
        "wrong": cmd_total["wrong"],
        "latency_median": cmd_total["latency"]["median"],
        "latency_p90": cmd_total["latency"]["p90"],
        "command_stream": {k: cmd_total[k] for k in ("hits", "misses", "wrong", "false_accepts",
                                                     "false_accepts_per_hour", "recall", "duration_s")},
        "command_free_stream": ({k: free_total[k] for k in ("unknown_words", "false_accepts", "false_accepts_per_hour",
                                                            "duration_s")} if free_total else None),
        "stream_hours": round(hours, 4),
        "command_stream_hours": round(command_hours, 4),
        "command_free_hours": round(free_hours, 4),
        "command_free_pieces": len(free_scores),
        "thresholds": thresholds,
        "per_command": per_command,
        "tables": {c: [list(row) for row in rows] for c, rows in tables.items()},
        "before": {"thresholds": pieces[0].before["thresholds"], "recall": before["recall"],
                   "false_accepts": before["false_accepts"], "false_accepts_per_hour": before["false_accepts_per_hour"],
                   "wrong": before["wrong"]},
        "decision": to_dict(dcfg),
        "grid": [grid[0], grid[-1], len(grid)],
        "seed": seed,
        "mode": mode,
        "rtf": round(compute / audio_s, 5) if audio_s else None,
        "seconds": round(time.perf_counter() - t0, 1),
        "method": "per-command threshold tables, exact knapsack on the false-accept budget, joint verification",
    }
    meta = dict(ckpt.meta or {})
    meta["calibration"] = {
        "target_fa_per_hour": max_fa_per_hour,
        "achieved_fa_per_hour": report["achieved_fa_per_hour"],
        "recall": report["recall"],
        "stream_hours": report["stream_hours"],
        "command_free_hours": report["command_free_hours"],
        "split": SPLIT,
        "seed": seed,
        "mode": mode,
    }
    calibrated = dataclasses.replace(ckpt, thresholds=thresholds, decision=to_dict(dcfg), meta=meta)
    return calibrated, report


def format_calibration(report: Mapping) -> str:
    """A few lines for the terminal."""
    lines = [
        f"calibrated on {report['split']} streams: {report['command_stream_hours'] * 60:.1f} min with commands + "
        f"{report['command_free_hours'] * 60:.1f} min command-free ({report['stream_hours']:.2f} h)",
        f"target {report['target_fa_per_hour']:g} false accepts/hour (budget {report['false_accept_budget']} over "
        f"{report['stream_hours']:.2f} h): achieved {report['achieved_fa_per_hour']:.2f}/h "
        f"({report['false_accepts']} false accepts){'' if report['met'] else ' — TARGET NOT MET'}",
        f"recall {report['recall']:.3f} ({report['hits']}/{report['commands']} commands), wrong labels "
        f"{report['wrong']}, latency median {_s(report['latency_median'])} p90 {_s(report['latency_p90'])}",
        f"before: recall {report['before']['recall']:.3f}, {report['before']['false_accepts_per_hour']:.2f} false accepts/hour",
        "thresholds: " + " ".join(f"{c}={'off' if v['off'] else format(v['threshold'], '.2f')}"
                                  for c, v in report["per_command"].items()),
    ]
    return "\n".join(lines)


def _s(x) -> str:
    return "-" if x is None else f"{x:.3f}s"


__all__ = ["calibrate", "format_calibration", "DEFAULT_GRID", "OFF"]
