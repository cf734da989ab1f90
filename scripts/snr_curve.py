#!/usr/bin/env python
"""Clip accuracy against signal-to-noise ratio (and rooms, talking speed): one dataset split, several models, one table and a PNG.

Every model sees exactly the same mixtures (``evaluate.with_noise``: the dataset's background noise
mixed into every clip but ``_silence_`` at each SNR; ``evaluate.with_reverb``: each clip played in
a simulated room of reverberation time RT60; ``evaluate.with_speed``: each clip spoken faster or
slower, pitch included; ``evaluate.with_peak``: each clip's loudest sample set to a level, clipped above
full scale), so the rows compare models, not random draws.

    .venv/bin/python scripts/snr_curve.py [--model CKPT ...] [--split validation] [--snr 30 20 10 5 0]
        [--rt60 0.3 0.6 1.0 [--drr 3]] [--speed 0.9 1.1] [--peak-dbfs -40 -50 6 12] [--data-dir ../shared/speech_commands] [--plot snr.png] [--json snr.json]
"""

from __future__ import annotations

import os

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from voice_gru.cli import OneLineParser, number, whole

    p = OneLineParser(prog="snr_curve.py", description=__doc__.splitlines()[0])
    p.add_argument("--model", nargs="+", default=[None], help="checkpoints (default: the shipped model)")
    p.add_argument("--data-dir", default="../shared/speech_commands")
    p.add_argument("--split", default="validation", choices=["validation", "testing"])
    p.add_argument("--snr", nargs="*", type=number(-60, 100), default=[30.0, 20.0, 10.0, 5.0, 0.0],
                   help="noise levels (dB SNR); none given: no noise columns")
    p.add_argument("--rt60", nargs="+", type=number(0.05, 5), default=[], help="rooms: reverberation times (s), no noise")
    p.add_argument("--drr", type=number(-30, 60), help="the rooms' direct-to-reverberant ratio (dB; default: 3)")
    p.add_argument("--speed", nargs="+", type=number(0.25, 4), default=[],
                   help="talkers: speed factors (1.1: ten percent faster), no noise")
    p.add_argument("--peak-dbfs", nargs="+", type=number(-120, 60), default=[],
                   help="input levels: each word's loudest sample at this dBFS (above 0: clipped), no noise")
    p.add_argument("--seed", type=whole(0, 2**32 - 1), default=0)
    p.add_argument("--threads", type=whole(1, os.cpu_count() or 1), default=1)
    p.add_argument("--plot", metavar="OUT.png")
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)

    import torch

    from voice_gru import SILENCE
    from voice_gru.errors import ConfigError
    from voice_gru.evaluate import (collect_inputs, evaluate_items, noise_recordings, with_noise, with_peak, with_reverb,
                                     with_speed)
    from voice_gru.fileio import check_outputs, write_json
    from voice_gru.model import resolve_model

    for flag in ("model", "snr", "rt60", "speed", "peak_dbfs"):  # a repeated value would be one row or column, silently
        values = getattr(args, flag)
        if len(set(values)) < len(values):
            raise ConfigError(f"--{flag.replace('_', '-')}: {' '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in values)} names a value twice")
    if args.drr is not None and not args.rt60:  # the rooms' ratio, with no room it was silently not used
        raise ConfigError("--drr is the direct-to-reverberant ratio of the rooms --rt60 simulates: add --rt60 S")
    args.drr = 3.0 if args.drr is None else args.drr
    torch.set_num_threads(args.threads)
    check_outputs({"--json": args.json, "--plot": args.plot}, [*[m for m in args.model if m], args.data_dir], png=["--plot"],
                  folders=[args.data_dir])
    models = [(m or "shipped", resolve_model(m)) for m in args.model]
    labels = models[0][1].labels
    items = collect_inputs([args.data_dir], args.split, labels)
    noises = noise_recordings([args.data_dir]) if args.snr else []  # rooms, speeds and levels need none
    conditions = {"clean": items}
    conditions.update({f"{snr:g}": with_noise(items, noises, snr, args.seed) for snr in args.snr})
    sr = models[0][1].features.sample_rate
    conditions.update({f"room {r:g}s": with_reverb(items, r, args.drr, sr, args.seed) for r in args.rt60})
    conditions.update({f"speed {f:g}": with_speed(items, f, sr) for f in args.speed})
    conditions.update({f"peak {d:g} dBFS": with_peak(items, d) for d in args.peak_dbfs})
    table: dict[str, dict[str, dict]] = {}
    unreadable: dict[str, str] = {}
    for name, ckpt in models:
        table[name] = {}
        for key, its in conditions.items():
            rep = evaluate_items(ckpt, its, progress=False)
            unreadable.update((e["file"], e["error"]) for e in rep["errors"])
            words = [q for q in rep["predictions"] if q["label"] != SILENCE]
            to_sil = float(np.mean([q["predicted"] == SILENCE for q in words])) if words else 0.0
            table[name][key] = {"accuracy": rep["accuracy"], "words_as_silence": to_sil}
    cols = list(conditions)
    legend = ((f"; rooms: RT60, DRR {args.drr:g} dB" if args.rt60 else "") + ("; speed: times as fast" if args.speed else "")
              + ("; peak: each word's loudest sample, clipped above 0 dBFS" if args.peak_dbfs else ""))
    if unreadable:  # left out of every figure: said, not dropped
        print(f"skipped {len(unreadable)} unreadable clip(s), e.g. {next(iter(unreadable.values()))}")  # it names the file
    print(f"{args.split} split, {len(items) - len(unreadable)} clips; accuracy (words scored as _silence_) by SNR in dB{legend}")
    print(f"{'model':<40}" + "".join(f"{c:>16}" for c in cols))
    for name, row in table.items():
        print(f"{name[-40:]:<40}" + "".join(f"{row[c]['accuracy'] * 100:>9.1f}% ({row[c]['words_as_silence'] * 100:>3.0f}%)" for c in cols))
    if args.json:
        write_json(args.json, {"split": args.split, "n": len(items) - len(unreadable), "seed": args.seed, "drr_db": args.drr,
                               "models": table, "unreadable": [{"file": k, "reason": v} for k, v in unreadable.items()]})
    if args.plot:
        from voice_gru.plots import save_png, subplots

        fig, ax = subplots(figsize=(6, 4))
        xs = list(range(len(cols)))
        for name, row in table.items():
            ax.plot(xs, [row[c]["accuracy"] * 100 for c in cols], marker="o", label=name)
        ax.set_xticks(xs, cols)
        ax.set_xlabel("signal-to-noise ratio (dB)" + (" / simulated room" if args.rt60 else "") + (" / talking speed" if args.speed else "")
                      + (" / input level" if args.peak_dbfs else ""))
        ax.set_ylabel(f"accuracy on {args.split} (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        save_png(fig, args.plot, dpi=110)
    return 0


if __name__ == "__main__":
    from voice_gru.cli import run_reporting_errors

    raise SystemExit(run_reporting_errors(main, "scripts/snr_curve.py", "snr_curve.py"))
