#!/usr/bin/env python
"""How soon after one command another is heard: a clip of FIRST, then a clip of THEN starting GAP seconds later.

Each pair is two clips of a split (clips that fire alone at the model's own point, so only the closeness is
measured), over white noise at -55 dBFS, through ``CommandSpotter`` (the listen path) at each operating point.
Prints, for each point and gap, in how many pairs THEN fired. What a wake word (FIRST) and the command after it
meet:

    .venv/bin/python scripts/wake_gap.py [--data-dir ../shared/speech_commands] [--split validation]
        [--first go] [--then stop] [--pairs 20] [--gaps 0.8 1.0 1.2 1.5] [--rates 1 5 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SR = 16000
LEAD_S = 0.5  # silence before the first clip
TAIL_S = 2.5  # after the second clip starts: time for its detection


def main(argv: list[str] | None = None) -> int:
    from voice_gru.cli import number, whole

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/speech_commands")
    p.add_argument("--split", choices=["validation", "testing"], default="validation")
    p.add_argument("--first", default="go")
    p.add_argument("--then", default="stop")
    p.add_argument("--pairs", type=whole(1), default=20)
    p.add_argument("--gaps", type=number(0.1, 10), nargs="+", default=[0.8, 1.0, 1.2, 1.5], metavar="S")
    p.add_argument("--rates", type=number(0, above=True), nargs="+", default=[1.0, 5.0, 20.0], metavar="R",
                   help="operating points (--false-accepts-per-hour)")
    args = p.parse_args(argv)

    from voice_gru.audio import load_audio
    from voice_gru.data import scan_dataset
    from voice_gru.errors import VoiceGruError
    from voice_gru.spotter import CommandSpotter

    try:
        clips = [c for c in scan_dataset(args.data_dir) if c.split == args.split]
        spotters = {r: CommandSpotter(false_accepts_per_hour=r) for r in args.rates}
    except VoiceGruError as exc:
        print(f"wake_gap: {exc}", file=sys.stderr)
        return 2
    noise_rng = np.random.default_rng(0)
    noise = (noise_rng.standard_normal(int((LEAD_S + max(args.gaps) + TAIL_S + 1) * SR)) * 10 ** (-55 / 20) / 3
             ).astype(np.float32)
    strict = spotters[min(args.rates)]

    def fires_alone(path: Path, label: str) -> bool:
        x = noise[: 3 * SR].copy()
        c = load_audio(path, SR)
        x[int(LEAD_S * SR):int(LEAD_S * SR) + c.size] += c
        strict.reset()
        return label in [e.label for e in strict.process(x)]

    def pick(word: str) -> list[Path]:
        paths = sorted(Path(c.path) for c in clips if c.word == word)
        return [q for q in paths if fires_alone(q, word)][: args.pairs]

    firsts, thens = pick(args.first), pick(args.then)
    n = min(len(firsts), len(thens))
    if n == 0:
        print(f"wake_gap: no {args.split} clips of {args.first} and {args.then} that fire alone", file=sys.stderr)
        return 2
    print(f"{n} pairs of {args.split} clips ({args.first} then {args.then}, each firing alone at "
          f"{min(args.rates):g}/h); pairs where {args.then} fired:")
    for rate, sp in spotters.items():
        row = []
        for gap in args.gaps:
            hits = 0
            for a, b in zip(firsts[:n], thens[:n]):
                ca, cb = load_audio(a, SR), load_audio(b, SR)
                y = noise[: int((LEAD_S + gap + TAIL_S) * SR)].copy()
                s0, s1 = int(LEAD_S * SR), int((LEAD_S + gap) * SR)
                y[s0:s0 + ca.size] += ca[: y.size - s0]
                y[s1:s1 + cb.size] += cb[: y.size - s1]
                sp.reset()
                hits += args.then in [e.label for e in sp.process(y)]
            row.append(f"{gap:g} s: {hits}/{n}")
        print(f"  --false-accepts-per-hour {rate:g}: " + ", ".join(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
