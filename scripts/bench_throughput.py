#!/usr/bin/env python
"""Offline evaluation throughput, training throughput, and start-up time of `voice-gru listen`.

  * evaluation: clips/s of `evaluate_items` on the validation split (decode + MFCC + GRU), with
    1 thread and with all cores;
  * training: clips/s of augmented sequence building + forward + backward for the default recipe
    (cached features, so this is the steady-state cost of an epoch), 1 thread and all cores;
  * start-up: wall time of `voice-gru listen --input FILE --seconds 0.1` (interpreter start,
    imports, model load, first chunk processed), median of 3 runs.

    .venv/bin/python scripts/bench_throughput.py [--model CKPT] [--data-dir ../shared/speech_commands]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def bench_eval(ckpt, data_dir: str, threads: int) -> tuple[int, float]:
    """(clips, clips/s) of evaluating the validation split."""
    from voice_gru.evaluate import collect_inputs, evaluate_items

    torch.set_num_threads(threads)
    items = collect_inputs([data_dir], "validation", ckpt.labels)
    rep = evaluate_items(ckpt, items, progress=False)
    return len(items), rep["clips_per_second"]


def bench_train(data_dir: str, threads: int, batches: int = 15) -> float:
    """Training clips/s (sequence building + forward + backward + step) for configs/default.yaml."""
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


def bench_startup(model: str | None) -> float:
    """Median wall seconds of `voice-gru listen --input example.wav --seconds 0.1`."""
    cmd = [sys.executable, "-m", "voice_gru.cli", "listen", "--input", str(ROOT / "voice_gru" / "assets" / "example.wav"),
           "--seconds", "0.1", "--no-view"] + (["--model", model] if model else [])
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    from voice_gru.model import resolve_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "speech_commands"))
    args = ap.parse_args()
    ckpt = resolve_model(args.model)
    if not Path(args.data_dir).is_dir():
        from voice_gru.errors import DatasetError

        raise DatasetError(f"{args.data_dir}: dataset folder not found")
    cores = os.cpu_count() or 1
    print(f"{'measure':<44}{'value':>12}")
    for t in sorted({1, cores}):
        n, cps = bench_eval(ckpt, args.data_dir, t)
        print(f"{f'evaluate, validation split ({n} clips), {t} thread(s)':<44}{cps:>9.0f} clips/s")
    for t in sorted({1, cores}):
        print(f"{f'train, default recipe, {t} thread(s)':<44}{bench_train(args.data_dir, t):>9.0f} clips/s")
    print(f"{'listen start-up to first processed chunk':<44}{bench_startup(args.model):>10.2f} s")
    return 0


if __name__ == "__main__":
    from voice_gru.cli import run_reporting_errors

    raise SystemExit(run_reporting_errors(main, "scripts/bench_throughput.py", "bench_throughput.py"))
