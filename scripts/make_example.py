#!/usr/bin/env python
"""Rebuild the bundled example recording (voice_gru/assets/example.wav + example.json).

Real Speech Commands clips from the testing split (a few commands between other words) over
background noise, built with the same generator as `voice-gru make-stream`:

    .venv/bin/python scripts/make_example.py [--data-dir ../shared/speech_commands]
"""

from __future__ import annotations

from pathlib import Path

from voice_gru.streams import StreamSpec, make_stream, skipped_line, write_stream

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from voice_gru.cli import OneLineParser, number, whole

    ap = OneLineParser(prog="make_example.py", description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "speech_commands"),
                    help="dataset root whose testing split the clips come from (default: %(default)s)")
    ap.add_argument("--seconds", type=number(5, 600), default=20.0, help="length, 5-600 s (default: %(default)s)")
    ap.add_argument("--seed", type=whole(0, 2**32 - 1), default=2,
                    help="which clips and gaps; the bundled recording is seed 2 (default: %(default)s)")
    args = ap.parse_args()
    spec = StreamSpec(seconds=args.seconds, gap_s=(2.0, 3.0), command_ratio=0.7, gain_db=(-6.0, 0.0),
                      noise_dbfs=(-60.0, -48.0))
    audio, truth = make_stream(args.data_dir, "testing", spec, seed=args.seed)
    if truth["unreadable"]:
        print(skipped_line(truth["unreadable"]))
    wav, js = write_stream(ROOT / "voice_gru" / "assets" / "example.wav", audio, truth)
    print(f"wrote {wav} and {js}: " + ", ".join(f"{e['word']}@{e['start']:.1f}s" for e in truth["events"]))
    return 0


if __name__ == "__main__":
    from voice_gru.cli import run_reporting_errors

    raise SystemExit(run_reporting_errors(main, "scripts/make_example.py", "make_example.py"))
