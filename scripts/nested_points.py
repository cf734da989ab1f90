#!/usr/bin/env python
"""Nested speaker cross-validation of choosing operating points from calibration's per-command figures.

`voice-gru calibrate` scores every threshold rule on speakers it was not fitted to (halves of the validation
speakers). Choosing *among* those scored points again (one point per command, or one point for a set of commands
as `listen --commands` does) needs a second level: here each outer half of the speakers is split by a second fold
into two parts; each point's shared threshold is fitted on one part and the commands' false accepts and recall are
scored on the other (both ways); the choice is made from those inner figures, its thresholds fitted on the whole
outer half, and it is scored jointly on the other outer half. Three ways of choosing, within ``--target``
false accepts per hour:

  * ``shared``: one point for every command (the calibration's own kind of rule; a check of the procedure);
  * ``mix``: a point per command (a knapsack over commands; a command may also take the strictest grid value or be off);
  * ``--commands S``: one point for the set S, the others off (what ``listen --commands S --false-accepts-per-hour``
    picks from the stored figures): the point must fit the target at the upper confidence bound of S's rate
    (``--confidence``, each level in turn; 0: the rate itself, the choice before 2026-12-06).

    .venv/bin/python scripts/nested_points.py [--model CKPT] [--config configs/words_finetune.yaml] [--seed 0]
        [--target 1] [--commands stop go] [--confidence 0 0.84] [--free-minutes 360] [--data-dir ../shared/speech_commands]
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

OFF = 1.01


def main(argv: list[str] | None = None) -> int:
    from voice_gru.cli import OneLineParser, number, whole

    p = OneLineParser(prog="nested_points.py", description=__doc__.splitlines()[0])
    p.add_argument("--model", help="checkpoint (default: the shipped model)")
    p.add_argument("--config", help="recipe YAML whose decision section the streams are scored with")
    p.add_argument("--data-dir", default="../shared/speech_commands")
    p.add_argument("--seed", type=whole(0, 2**32 - 1), default=0, help="calibration streams' seed")
    p.add_argument("--target", type=number(0, above=True), default=1.0, help="false accepts per hour")
    p.add_argument("--commands", nargs="+", metavar="CMD", help="a set of commands: one point for them, the others off")
    p.add_argument("--confidence", nargs="+", type=number(0, 0.999), metavar="LEVEL",
                   help="with --commands: upper-bound levels to choose the set's point by (0: the expected rate; "
                        "default: the package's)")
    p.add_argument("--command-minutes", type=number(0.05, 600), default=25.0)
    p.add_argument("--free-minutes", type=number(0.05, 24 * 60), default=360.0)
    p.add_argument("--piece-minutes", type=number(0.05, 600), default=10.0)
    args = p.parse_args(argv)

    from voice_gru.calibrate import DEFAULT_GRID, SUBSET_CONFIDENCE, TRADEOFF_TARGETS, calibration_streams, _replay
    from voice_gru.metrics import rate_upper_bound
    from voice_gru.checkpoint_data import read_checkpoint_data
    from voice_gru.cli import config_decision
    from voice_gru.errors import ConfigError
    from voice_gru.speaker_cv import (FAS, HITS, budget_of, commands_by_label, half_sizes, speaker_halves,
                                      split_counts_by_label)
    from voice_gru.spotter import command_subset

    if args.confidence is not None and not args.commands:  # the levels choose a set's point: ignored otherwise
        raise ConfigError("--confidence chooses the point of a set of commands: add --commands")
    ckpt = read_checkpoint_data(args.model)
    subset = command_subset(args.commands, ckpt.labels) if args.commands else None
    data = calibration_streams(ckpt, args.data_dir, command_minutes=args.command_minutes,
                               free_minutes=args.free_minutes, piece_minutes=args.piece_minutes,
                               decision_cfg=config_decision(args.config, ckpt), seed=args.seed)
    from voice_gru.streams import skipped_line

    if data.unreadable:
        print(skipped_line(data.unreadable))
    labels, grid, targets = data.labels, sorted(set(DEFAULT_GRID)), list(TRADEOFF_TARGETS)
    cmds = [c for c in labels if c not in ("_silence_", "_unknown_")]
    truths, kinds = [p.truth for p in data.pieces], [p.kind == "command" for p in data.pieces]
    halves = speaker_halves(truths)
    folds = halves[0].shape[1]
    # a cell: the clips in half a of fold f and in half c of fold f + 1
    cells = [(f, a, c) for f in range(folds) for a in (0, 1) for c in (0, 1)]
    cols = [np.stack([((h[:, f] == a) & (h[:, (f + 1) % folds] == c)).astype(np.int64) for f, a, c in cells], 1)
            for h in halves]
    k_of = {cell: k for k, cell in enumerate(cells)}
    hours = half_sizes(truths, cols, data.hours, kinds, folds=len(cells)).hours[:, 1]
    if not (hours > 0).all():  # a rate per hour of no hours
        raise ConfigError(f"{(hours <= 0).sum()} of the {len(cells)} speaker cells have no command-free audio: "
                          "give more --free-minutes (and --piece-minutes)")

    def counts(thresholds: dict[str, float]) -> np.ndarray:
        """``(cells, labels, 3)``: each detection of the joint detector in its clip's cell, by label."""
        thr = np.array([thresholds.get(lab, np.inf) for lab in labels])
        return split_counts_by_label(_replay(data, thr), cols, labels, folds=len(cells))[:, 1]

    n = commands_by_label(truths, cols, labels, kinds, folds=len(cells))[:, 1]  # commands to hit, by cell
    alone = {c: {g: counts({c: g}) for g in grid} for c in cmds}  # each command alone on the grid
    every = {g: counts({c: g for c in cmds})[:, :, FAS].sum(1) for g in grid}

    def shared(t: float, ks: list[int]) -> float:
        """The lowest grid value whose joint false accepts over cells ``ks`` fit ``t`` per hour."""
        fits = [g for g in grid if sum(every[g][k] for k in ks) <= budget_of(t, sum(hours[k] for k in ks))]
        return min(fits) if fits else OFF

    def inner(ks: list[int], group: list[str], fit: Callable[[int], float]) -> tuple[float, float]:
        """False accepts per hour and recall of ``group`` at the threshold ``fit`` gives one cell, scored on the other."""
        fa, rec = [], []
        for i in (0, 1):
            g, test = fit(ks[i]), ks[1 - i]
            c_ = [alone[c][g][test, labels.index(c)] if g < OFF else np.zeros(3) for c in group]
            fa.append(sum(x[FAS] for x in c_) / hours[test])
            m = sum(n[test, labels.index(c)] for c in group)
            if m:
                rec.append(sum(x[HITS] for x in c_) / m)
        return float(np.mean(fa)), float(np.mean(rec)) if rec else 0.0

    def point(t: float) -> Callable[[int], float]:
        return lambda k: shared(t, [k])

    def choose(ks: list[int], how: str, level: float = 0.0) -> dict[str, float]:
        """Thresholds chosen inside the outer half whose cells are ``ks``."""
        group = subset if how == "set" else cmds
        if how in ("shared", "set"):
            figs = {t: inner(ks, list(group), point(t)) for t in targets}
            h = sum(hours[k] for k in ks)
            ok = [t for t in targets if t <= args.target  # a point for every command holds for fewer
                  or (rate_upper_bound(figs[t][0] * h, h, level) if level else figs[t][0]) <= args.target]
            t = max(ok, key=lambda x: figs[x][1]) if ok else targets[0]
            g = shared(t, ks)
            return {c: (g if c in group else OFF) for c in cmds}
        opts = {c: {**{t: inner(ks, [c], point(t)) for t in targets}, "max": inner(ks, [c], lambda k: grid[-1]),
                    "off": (0.0, 0.0)} for c in cmds}
        budget, best = int(round(args.target * 100)), {0: (0.0, {})}
        for c in cmds:  # knapsack in steps of 0.01 per hour
            new: dict[int, tuple[float, dict]] = {}
            for used, (r, ch) in best.items():
                for o, (fa, rec) in opts[c].items():
                    u = used + int(math.ceil(fa * 100 - 1e-9))
                    if u <= budget and (u not in new or new[u][0] < r + rec):
                        new[u] = (r + rec, {**ch, c: o})
            best = new
        pick = max(best.values(), key=lambda v: v[0])[1]
        return {c: grid[-1] if pick[c] == "max" else OFF if pick[c] == "off" else shared(pick[c], ks) for c in cmds}

    levels = args.confidence if args.confidence is not None else [SUBSET_CONFIDENCE]
    ways = [("set", lv) for lv in levels] + [("shared", 0.0)] if subset else [("shared", 0.0), ("mix", 0.0)]
    print(f"calibration seed {args.seed}, {data.hours:.1f} h of streams, target {args.target:g} false accepts/h; "
          "held-out recall and false accepts per hour, mean over the outer halves:")
    for how, level in ways:
        rec, fa = [], []
        group = subset if how == "set" else cmds
        for f in range(folds):
            for a in (0, 1):
                b = 1 - a
                thr = choose([k_of[(f, a, 0)], k_of[(f, a, 1)]], how, level)
                got = counts(thr)
                kb = [k_of[(f, b, 0)], k_of[(f, b, 1)]]
                hits = sum(got[k, labels.index(c), HITS] for k in kb for c in group)
                fas = sum(got[k, :, FAS].sum() for k in kb)
                rec.append(hits / max(1.0, sum(n[k, labels.index(c)] for k in kb for c in group)))
                fa.append(fas / sum(hours[k] for k in kb))
        bound = f", chosen at the {level:.0%} upper bound of their rate" if level else ", chosen by their expected rate"
        name = {"set": f"one point for {', '.join(group)} (others off){bound}", "shared": "one point for every command",
                "mix": "a point per command"}[how]
        print(f"  {name}: recall {np.mean(rec):.1%}, {np.mean(fa):.2f} false accepts/h")
    return 0


if __name__ == "__main__":
    from voice_gru.cli import run_reporting_errors

    raise SystemExit(run_reporting_errors(main, "scripts/nested_points.py", "nested_points.py"))
