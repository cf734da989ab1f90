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

from pathlib import Path

import numpy as np

SR = 16000
LEAD_S = 0.5  # silence before the first clip
TAIL_S = 2.5  # after the second clip starts: time for its detection


def main(argv: list[str] | None = None) -> int:
    from voice_gru.cli import OneLineParser, number, whole

    p = OneLineParser(prog="wake_gap.py", description=__doc__.splitlines()[0])
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
    from voice_gru.calibrate import operating_point
    from voice_gru.checkpoint_data import read_checkpoint_data
    from voice_gru.data import scan_dataset
    from voice_gru.decision import BACKGROUND
    from voice_gru.errors import AudioFormatError, ConfigError, DatasetError
    from voice_gru.spotter import CommandSpotter

    shipped = read_checkpoint_data(None)
    for r in args.rates:  # named as this script's flag, before the spotter names its own argument
        operating_point(shipped, r, name="--rates")
    spotters = {r: CommandSpotter(shipped, false_accepts_per_hour=r) for r in args.rates}
    commands = [c for c in shipped.labels if c not in BACKGROUND]
    for flag, word in (("--first", args.first), ("--then", args.then)):
        if word not in commands:
            raise ConfigError(f"{flag} {word}: not a command of the model ({', '.join(commands)})")
    clips = [c for c in scan_dataset(args.data_dir) if c.split == args.split]  # the flags first: they need no data
    unreadable: list[str] = []
    noise_rng = np.random.default_rng(0)
    noise = (noise_rng.standard_normal(int((LEAD_S + max(args.gaps) + TAIL_S + 1) * SR)) * 10 ** (-55 / 20) / 3
             ).astype(np.float32)
    strict = spotters[min(args.rates)]

    def fires_alone(path: Path, label: str) -> bool:
        x = noise[: 3 * SR].copy()
        try:
            c = load_audio(path, SR)
        except AudioFormatError as exc:  # said below, with how many
            unreadable.append(str(exc))
            return False
        s0 = int(LEAD_S * SR)
        x[s0:s0 + c.size] += c[: x.size - s0]  # a clip longer than the 3 s: its start (it broadcast wrongly)
        strict.reset()
        return label in [e.label for e in strict.process(x)]

    def pick(word: str) -> list[Path]:
        paths = sorted(Path(c.path) for c in clips if c.word == word)
        return [q for q in paths if fires_alone(q, word)][: args.pairs]

    firsts, thens = pick(args.first), pick(args.then)
    if unreadable:
        print(f"skipped {len(unreadable)} unreadable clip(s), e.g. {unreadable[0]}")
    n = min(len(firsts), len(thens))
    if n == 0:
        raise DatasetError(f"{args.data_dir}: no {args.split} clips of {args.first} and {args.then} that fire alone")
    print(f"{n} pairs of {args.split} clips ({args.first} then {args.then}, each firing alone at "
          f"{min(args.rates):g}/h); pairs where {args.then} fired"
          + (" twice:" if args.then == args.first else ":"))
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
                # the same word twice: the first's own detection is no hit of the second
                hits += [e.label for e in sp.process(y)].count(args.then) >= (2 if args.then == args.first else 1)
            row.append(f"{gap:g} s: {hits}/{n}")
        used = sp.operating_point["target_fa_per_hour"]  # the most sensitive point at or below the rate asked
        print(f"  --false-accepts-per-hour {rate:g}" + (f" (the {used:g}/h point)" if used != rate else "") + ": "
              + ", ".join(row))
    return 0


if __name__ == "__main__":
    from voice_gru.cli import run_reporting_errors

    raise SystemExit(run_reporting_errors(main, "scripts/wake_gap.py", "wake_gap.py"))
