#!/usr/bin/env python
"""Offline evaluation throughput, training throughput, and start-up time of `voice-gru listen`.

  * evaluation: clips/s of `evaluate_items` on the validation split (decode + MFCC + GRU), with
    1 thread and with all cores, the median of ``--repeats`` runs and their range (a run is ~1 s of work: another
    busy process on the machine moves it, with all cores most);
  * training: clips/s of augmented sequence building + forward + backward for the default recipe
    (cached features, so this is the steady-state cost of an epoch), 1 thread and all cores;
  * start-up: wall time of `voice-gru listen --input FILE --seconds 0.1` (interpreter start,
    imports, model load, first chunk processed, exit), the first run and the median of 3 more: the very first
    run after installing also compiles the live path's numba kernels into their cache.

    .venv/bin/python scripts/bench_throughput.py [--model CKPT] [--data-dir ../shared/speech_commands]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def bench_eval(ckpt, data_dir: str, threads: int, repeats: int = 3) -> tuple[int, list[float]]:
    """(clips, clips/s of each run) of evaluating the validation split ``repeats`` times."""
    import torch

    from voice_gru.evaluate import collect_inputs, evaluate_items

    torch.set_num_threads(threads)
    items = collect_inputs([data_dir], "validation", ckpt.labels)
    return len(items), [evaluate_items(ckpt, items, progress=False)["clips_per_second"] for _ in range(repeats)]


def bench_train(data_dir: str, threads: int, batches: int = 15) -> float:
    """Training clips/s (sequence building + forward + backward + step) for configs/default.yaml."""
    import torch

    from voice_gru import SILENCE
    from voice_gru.augment import SequenceBuilder
    from voice_gru.config import load_config
    from voice_gru.model import GRUClassifier
    from voice_gru.train import prepare, sequence_loss

    torch.set_num_threads(threads)
    cfg = load_config(ROOT / "configs" / "default.yaml")
    prep = prepare(cfg, data_dir, quiet=True)
    sil = prep.labels.index(SILENCE)
    model = GRUClassifier(cfg.features.n_mfcc, len(prep.labels), cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    builder = SequenceBuilder(prep.train, prep.noise_mels, cfg.features, cfg.augment, prep.normalizer, sil,
                              cfg.train.tail_frames, cfg.train.target)
    rng = np.random.default_rng(0)
    bs = cfg.train.batch_size
    t0 = None
    for b in range(batches + 2):
        if b == 2:
            t0 = time.perf_counter()
        x, y = builder.batch(rng.integers(0, len(prep.train.labels), bs), rng)
        loss = sequence_loss(model(x), y, sil, 0.05, 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batches * bs / (time.perf_counter() - t0)


def bench_startup(model: str | None) -> tuple[float, float]:
    """Wall seconds of `voice-gru listen --input example.wav --seconds 0.1`: the first run, the median of 3 more."""
    cmd = [sys.executable, "-m", "voice_gru.cli", "listen", "--input", str(ROOT / "voice_gru" / "assets" / "example.wav"),
           "--seconds", "0.1", "--no-view"] + (["--model", model] if model else [])
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times[0], statistics.median(times[1:])


def main() -> int:
    from voice_gru.cli import OneLineParser, whole
    from voice_gru.data import scan_dataset
    from voice_gru.errors import DatasetError
    from voice_gru.model import resolve_model

    ap = OneLineParser(prog="bench_throughput.py", description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint (default: the shipped model)")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "speech_commands"),
                    help="Speech Commands root with a validation split (default: ../shared/speech_commands beside "
                         "the project)")
    ap.add_argument("--repeats", type=whole(1, 20), default=3, help="evaluation runs per thread count (default: 3)")
    args = ap.parse_args()
    ckpt = resolve_model(args.model)
    if not any(c.split == "validation" for c in scan_dataset(args.data_dir)):  # said before any figure
        raise DatasetError(f"{args.data_dir}: no validation clips to measure with (--data-dir names a dataset root)")
    cores = os.cpu_count() or 1
    print(f"{'measure':<52}{'value':>12}")
    for t in sorted({1, cores}):
        n, runs = bench_eval(ckpt, args.data_dir, t, args.repeats)
        print(f"{f'evaluate, validation split ({n} clips), {t} thread(s)':<52}{statistics.median(runs):>9.0f} clips/s"
              f"  (runs {min(runs):.0f}–{max(runs):.0f})")
    for t in sorted({1, cores}):
        print(f"{f'train, default recipe, {t} thread(s)':<52}{bench_train(args.data_dir, t):>9.0f} clips/s")
    first, warm = bench_startup(args.model)
    print(f"{'listen start-up to first processed chunk':<52}{warm:>10.2f} s  (first run {first:.2f} s)")
    return 0


if __name__ == "__main__":
    from voice_gru.cli import run_reporting_errors

    raise SystemExit(run_reporting_errors(main, "scripts/bench_throughput.py", "bench_throughput.py"))
