#!/usr/bin/env python
"""Which other words push a command up, how far, and where in the word (before or after its end).

Each `_unknown_` clip of the chosen splits is played alone (faint noise around it) through the live
recognizer and the model's smoothing (``voice_gru.word_fires``); printed: how many clips push a
command above each level, the share of those peaks that came before the word ended, and the most
frequent word -> command pairs.

    .venv/bin/python scripts/other_word_fires.py [--model CKPT] [--split training validation]
        [--above 0.5 0.7 0.8 0.9] [--focus 0.7] [--data-dir ../shared/speech_commands] [--json OUT]
"""

from __future__ import annotations

from collections import Counter


def main(argv: list[str] | None = None) -> int:
    from voice_gru.cli import OneLineParser, number

    p = OneLineParser(prog="other_word_fires.py", description=__doc__.splitlines()[0])
    p.add_argument("--model", help="checkpoint (default: the shipped model)")
    p.add_argument("--data-dir", default="../shared/speech_commands")
    p.add_argument("--split", nargs="+", default=["training", "validation"], choices=["training", "validation", "testing"])
    p.add_argument("--above", nargs="+", type=number(0, 1), default=[0.5, 0.7, 0.8, 0.9])
    p.add_argument("--focus", type=number(0, 1), default=0.7, help="the level whose clips are described (default: %(default)s)")
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)

    from voice_gru import UNKNOWN
    from voice_gru import commands_of
    from voice_gru.data import label_of, scan_dataset
    from voice_gru.errors import DatasetError
    from voice_gru.fileio import check_outputs, write_json
    from voice_gru.checkpoint_data import default_model_path, read_checkpoint_data
    from voice_gru.word_fires import other_word_fires

    check_outputs({"--json": args.json}, [m for m in (args.model, args.data_dir) if m], folders=[args.data_dir])
    model = args.model or default_model_path()
    commands = commands_of(read_checkpoint_data(model).labels)  # other words: those that are not its commands
    clips = [c for c in scan_dataset(args.data_dir) if c.split in args.split and label_of(c, "12", commands) == UNKNOWN]
    for split in args.split:  # an empty split would print a row of zeros as if it were a result
        if not any(c.split == split for c in clips):
            raise DatasetError(f"{args.data_dir}: the {split} split has no other-word clips")
    rows = other_word_fires(model, [(c.path, c.word) for c in clips])
    split_of = {str(c.path): c.split for c in clips}
    for split in args.split:
        mine = [r for r in rows if split_of[r["path"]] == split]
        counts = ", ".join(f"> {t:g}: {sum(r['peak'] > t for r in mine)}" for t in args.above)
        print(f"{split}: {len(mine)} other-word clips; a command's smoothed posterior {counts}")
        high = [r for r in mine if r["peak"] > args.focus]
        if high:
            inside = sum(r["after_end_s"] < 0 for r in high)
            pairs = Counter(f"{r['word']} -> {r['command']}" for r in high).most_common(5)
            print(f"  of the {len(high)} above {args.focus:g}: {inside} peak before the word ends; "
                  f"most: {', '.join(f'{k} ({v})' for k, v in pairs)}")
    if args.json:
        write_json(args.json, {"clips": [{**r, "split": split_of[r["path"]]} for r in rows]})
    return 0


if __name__ == "__main__":
    from voice_gru.cli import run_reporting_errors

    raise SystemExit(run_reporting_errors(main, "scripts/other_word_fires.py", "other_word_fires.py"))
