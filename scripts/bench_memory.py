#!/usr/bin/env python
"""Peak memory while streaming an hour of audio: resident set size must stay flat.

Streams ``--minutes`` of audio (the bundled example looped with fresh noise, generated chunk by
chunk so the input itself takes no memory) through Recognizer + Detector in 100 ms chunks and
prints the process RSS every simulated 5 minutes, then the growth from the first to the last
sample and the peak (VmHWM).

    .venv/bin/python scripts/bench_memory.py [--model CKPT] [--minutes 60]
"""

from __future__ import annotations

import sys
import time

import numpy as np


def rss_mib(field: str = "VmRSS") -> float:
    """A memory figure of this process from /proc/self/status, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    from bench_stream import make_audio

    from voice_gru.checkpoint_data import read_checkpoint_data
    from voice_gru.cli import OneLineParser, number
    from voice_gru.decision import Detector, effective_thresholds
    from voice_gru.stream import Recognizer
    from voice_gru.streams import decision_of

    ap = OneLineParser(prog="bench_memory.py", description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint (default: the shipped model)")
    ap.add_argument("--minutes", type=number(10, 24 * 60), default=60.0,
                    help="audio to stream, 10-1440 (default: %(default)g; growth is read from 5 minutes on, where "
                         "every buffer has filled)")
    args = ap.parse_args()
    ckpt = read_checkpoint_data(args.model)  # as `voice-gru listen` reads it: no torch
    rec = Recognizer(ckpt, remove_dc=True)  # as CommandSpotter runs it
    f = ckpt.features
    decision = decision_of(ckpt)  # as listen: the model's own decision settings and thresholds
    det = Detector(ckpt.labels, decision, effective_thresholds(ckpt.labels, decision, ckpt.thresholds, None),
                   f.hop_ms / 1000, f.win_length / f.sample_rate)
    base = make_audio(60.0)
    rng = np.random.default_rng(1)
    chunk = 1600
    total = int(args.minutes * 60 * 16000)
    samples, events, t0 = [], 0, time.perf_counter()
    print(f"{'audio min':>10}{'RSS MiB':>10}{'events':>8}")
    for i in range(0, total, chunk):
        j = i % base.size
        piece = base[j:j + chunk] + rng.normal(0, 0.003, min(chunk, base.size - j)).astype(np.float32)
        events += len(det.update(rec.push(piece)))
        if i % (5 * 60 * 16000) < chunk:
            samples.append(rss_mib())
            print(f"{i / 16000 / 60:>10.0f}{samples[-1]:>10.1f}{events:>8}", flush=True)
    samples.append(rss_mib())
    wall = time.perf_counter() - t0
    print(f"streamed {args.minutes:.0f} min in {wall:.0f} s (RTF {wall / (args.minutes * 60):.4f}); "
          f"RSS {samples[0]:.1f} -> {samples[-1]:.1f} MiB ({samples[-1] - samples[0]:+.1f} MiB in all, "
          f"{samples[-1] - samples[min(1, len(samples) - 1)]:+.1f} MiB from minute 5 on); process peak (set-up "
          f"included) {rss_mib('VmHWM'):.1f} MiB; "
          f"torch {'imported' if 'torch' in sys.modules else 'not imported'}")
    return 0


if __name__ == "__main__":
    from voice_gru.cli import run_reporting_errors

    raise SystemExit(run_reporting_errors(main, "scripts/bench_memory.py", "bench_memory.py"))
