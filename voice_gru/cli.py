"""The ``voice-gru`` command: argparse subcommands over the package's public API.

Each subcommand parses its arguments, calls one public function and prints. A ``VoiceGruError``
becomes one line ``voice-gru: error: <message>`` and exit status 2; heavy imports (torch) happen
inside the handlers so ``voice-gru --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from voice_gru.errors import VoiceGruError

DEFAULT_DATA = "../shared/speech_commands"


def _cmd_data_stats(args: argparse.Namespace) -> int:
    from voice_gru.config import DataConfig
    from voice_gru.data import dataset_stats
    from voice_gru.fileio import write_json

    cfg = DataConfig(task=args.task)
    stats = dataset_stats(args.data_dir, cfg)
    print(format_stats(stats))
    if args.json:
        write_json(args.json, stats)
        print(f"wrote {args.json}")
    return 0


def format_stats(stats: dict) -> str:
    """A text table of ``dataset_stats`` output."""
    splits = [s for s in ("training", "validation", "testing") if s in stats]
    lines = [f"{stats['root']} ({stats['layout']} layout, {stats['background_noise_files']} background-noise files)", ""]
    words = list(stats[splits[0]]["per_word_folder"]) if splits else []
    head = f"{'word folder':<14}" + "".join(f"{s:>12}" for s in splits)
    lines += ["clips on disk per word folder", head, "-" * len(head)]
    for w in words:
        lines.append(f"{w:<14}" + "".join(f"{stats[s]['per_word_folder'].get(w, 0):>12}" for s in splits))
    lines.append(f"{'all clips':<14}" + "".join(f"{stats[s]['clips']:>12}" for s in splits))
    lines.append(f"{'speakers':<14}" + "".join(f"{stats[s]['speakers']:>12}" for s in splits))
    lines += ["", f"examples per class, {stats['task']}-class task (after silence/unknown sampling)", head, "-" * len(head)]
    for lab in stats[splits[0]]["per_class"] if splits else []:
        lines.append(f"{lab:<14}" + "".join(f"{stats[s]['per_class'].get(lab, 0):>12}" for s in splits))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    p = argparse.ArgumentParser(prog="voice-gru", description="Speech-command recognizer: train, evaluate, listen.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    data = sub.add_parser("data", help="dataset tools: stats, download")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION")
    st = dsub.add_parser("stats", help="clips per class and split of a Speech Commands root")
    st.add_argument("--data-dir", default=DEFAULT_DATA, help="dataset root (default: %(default)s)")
    st.add_argument("--task", choices=["12", "35"], default="12")
    st.add_argument("--json", metavar="FILE", help="also write the counts as JSON")
    st.set_defaults(func=_cmd_data_stats)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``voice-gru`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return func(args)
    except VoiceGruError as exc:
        print(f"voice-gru: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("voice-gru: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
