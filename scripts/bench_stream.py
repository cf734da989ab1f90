#!/usr/bin/env python
"""Live-path CPU cost on one thread: streaming GRU (carried state) vs sliding-window re-evaluation.

Prints the real-time factor (compute seconds per audio second) of features + GRU + decision for
  * stream mode, state refresh every 3 s (a second state only while it warms up; the default of `voice-gru listen`),
  * stream mode, no refresh (one state),
  * window mode: a 1.5 s window re-run from zero state at the same 10 ms decision rate,
and the ratio window / stream. 100 ms chunks, the same audio for every variant; no torch (as `listen`).
Every timed part follows ``WARM_S`` of audio pushed untimed into the same recognizer, so the window is full (and a
stream's state warm) from the first timed chunk. The window mode reruns the GRU over the window's frames; their
MFCCs come from the streaming front end once (recomputing them per window would cost more still).
It also runs the default stream mode with NumPy's BLAS left to its own threads (``blas_threads=None``;
OpenBLAS spreads larger products over every core and its workers spin) and with NumPy calls
instead of the compiled kernels (``kernel="numpy"``: front end, network, combination and detector, the
fallback where numba cannot load) and without the decision's unknown-word veto (the model's own decision
settings otherwise), and prints, for every variant, the CPU seconds
of all the process's threads beside the wall-clock compute. ``--load N`` keeps N other processes
busy meanwhile, like a computer doing other work. A machine's speed drifts, so the audio is cut into
``--rounds`` parts and every variant runs on each part in turn; the last column is the spread of
the rounds' real-time factors.

    .venv/bin/python scripts/bench_stream.py [--model CKPT] [--seconds 120] [--window-seconds 10] [--load 1] [--rounds 5]
"""

from __future__ import annotations

import multiprocessing
import time

import numpy as np

WINDOW_S = 1.5  # the window mode's window: what a non-streaming recognizer would rerun every 10 ms
WARM_S = 2.0  # untimed audio before every timed part: more than the window


def make_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like test audio: the bundled example recording looped, plus a little noise."""
    from pathlib import Path

    from voice_gru.audio import load_audio

    example = Path(__file__).resolve().parents[1] / "voice_gru" / "assets" / "example.wav"
    base = load_audio(example) if example.is_file() else np.zeros(16000, np.float32)
    n = int(seconds * 16000)
    audio = np.resize(base, n).astype(np.float32)
    audio += np.random.default_rng(seed).standard_normal(n, dtype=np.float32) * np.float32(0.003)  # no float64 copy
    return audio


def run(ckpt, audio: np.ndarray, chunk: int = 1600, veto: bool = True, warm: np.ndarray | None = None,
        **kw) -> tuple[float, float, int]:
    """Wall and CPU seconds (all threads) to push ``audio`` through Recognizer + Detector (the model's decision
    settings; ``veto=False``: without its unknown-word veto), after ``warm`` pushed untimed; number of events."""
    import dataclasses

    from voice_gru.config import OFF
    from voice_gru.decision import Detector, effective_thresholds
    from voice_gru.stream import Recognizer
    from voice_gru.streams import decision_of

    rec = Recognizer(ckpt, remove_dc=True, **kw)  # as CommandSpotter runs it
    f = ckpt.features
    decision = decision_of(ckpt)
    if not veto:
        decision = dataclasses.replace(decision, unknown_veto=OFF)
    det = Detector(ckpt.labels, decision, effective_thresholds(ckpt.labels, decision, ckpt.thresholds, None),
                   f.hop_ms / 1000, f.win_length / f.sample_rate, kernel=kw.get("kernel", "numba"))
    if warm is not None:
        for i in range(0, warm.size, chunk):
            det.update(rec.push(warm[i:i + chunk]))
    n_events = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, audio.size, chunk):
        n_events += len(det.update(rec.push(audio[i:i + chunk])))
    return time.perf_counter() - t0, time.process_time() - c0, n_events


def round_parts(seconds: float, rounds: int, warm_s: float = WARM_S, rate: int = 16000) -> list[tuple[slice, slice]]:
    """(untimed warm-up, timed part) sample ranges of each round for ``seconds`` of timed audio: the warm-up is the
    audio just before the part, so a variant's recognizer arrives at it in the state it would be in."""
    part, warm = int(seconds * rate) // rounds, int(warm_s * rate)
    return [(slice(warm + r * part - warm, warm + r * part), slice(warm + r * part, warm + (r + 1) * part))
            for r in range(rounds)]


def _busy() -> None:
    while True:
        pass


def main() -> int:
    from voice_gru.checkpoint_data import read_checkpoint_data
    from voice_gru.cli import OneLineParser, number, whole

    ap = OneLineParser(prog="bench_stream.py", description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="checkpoint (default: the shipped model)")
    ap.add_argument("--seconds", type=number(5, 36000), default=120.0,
                    help="timed audio for each stream mode, 5-36000 (default: %(default)g)")
    ap.add_argument("--window-seconds", type=number(5, 3600), default=10.0,
                    help="timed audio for window mode, which is slow, 5-3600 (default: %(default)g)")
    ap.add_argument("--load", type=whole(0, 64), default=0, help="other busy processes meanwhile (default: none)")
    ap.add_argument("--rounds", type=whole(1, 20), default=5,
                    help="the audio in this many parts, every variant run on each part in turn (default: 5)")
    args = ap.parse_args()
    ckpt = read_checkpoint_data(args.model)  # as `voice-gru listen` reads it: no torch in this process
    print(f"model: {ckpt.n_parameters:,} parameters; 100 ms chunks; "
          f"{args.load} other busy process{'' if args.load == 1 else 'es'}; {args.rounds} rounds")
    audio = make_audio(max(args.seconds, args.window_seconds) + WARM_S)
    variants = [
        ("stream, refresh 3 s (default)", {"mode": "stream", "refresh_s": 3.0}, args.seconds),
        ("stream, no refresh", {"mode": "stream", "refresh_s": None}, args.seconds),
        (f"window {WINDOW_S:g} s every 10 ms", {"mode": "window", "window_s": WINDOW_S, "every": 1}, args.window_seconds),
        ("stream, BLAS threads not held", {"mode": "stream", "refresh_s": 3.0, "blas_threads": None}, args.seconds),
        ("stream, NumPy kernels (no numba)", {"mode": "stream", "refresh_s": 3.0, "kernel": "numpy"}, args.seconds),
        ("stream, no unknown-word veto", {"mode": "stream", "refresh_s": 3.0, "veto": False}, args.seconds),
    ]
    for _, kw, _ in variants:
        run(ckpt, audio[:16000], **kw)  # warm-up (and the compiled kernel loaded)
    busy = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(args.load)]
    for p in busy:
        p.start()
    # a machine's speed drifts (other tenants, clocks): each variant runs in every round, in turn,
    # so a slow minute touches them all alike
    times = {name: [] for name, _, _ in variants}
    try:
        for r in range(args.rounds):
            for name, kw, seconds in variants:
                warm, timed = round_parts(seconds, args.rounds)[r]
                sec, cpu, _ = run(ckpt, audio[timed], warm=audio[warm], **kw)
                times[name].append(((timed.stop - timed.start) / 16000, sec, cpu))
    finally:
        for p in busy:
            p.terminate()
    print(f"{'variant':<32}{'audio s':>9}{'compute s':>11}{'RTF':>9}{'1 h takes':>11}{'CPU s/audio s':>15}"
          f"{'RTF of rounds':>22}")
    rtf = {}
    for name, rows in times.items():
        dur, sec, cpu = (sum(col) for col in zip(*rows))
        rtf[name] = sec / dur
        spread = [s / d for d, s, _ in rows]
        print(f"{name:<32}{dur:>9.0f}{sec:>11.2f}{rtf[name]:>9.4f}{rtf[name] * 3600:>10.0f}s{cpu / dur:>15.4f}"
              f"{min(spread):>13.4f}–{max(spread):.4f}")
    stream, bare, window = (rtf[name] for name, _, _ in variants[:3])
    print(f"window / stream (refresh) compute ratio: {window / stream:.0f}x; "
          f"window / stream (no refresh): {window / bare:.0f}x")
    return 0


if __name__ == "__main__":
    from voice_gru.cli import run_reporting_errors

    raise SystemExit(run_reporting_errors(main, "scripts/bench_stream.py", "bench_stream.py"))
