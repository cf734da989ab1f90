"""The benchmark scripts run as the README gives them (shortened) and print every figure they claim.

No timing is asserted beyond the window mode costing more than the stream (by ~80x when measured): the figures
themselves are the README's, from full runs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(*args: str) -> str:
    r = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return r.stdout


def _rtf(out: str, variant: str) -> float:
    line = next(ln for ln in out.splitlines() if ln.startswith(variant))
    return float(line[len(variant):].split()[2])


def test_bench_stream_prints_every_variant_and_a_full_window_costs_more():
    out = _run("scripts/bench_stream.py", "--seconds", "5", "--window-seconds", "5", "--rounds", "1")
    for variant in ("stream, refresh 3 s (default)", "stream, no refresh", "window 1.5 s every 10 ms",
                    "stream, BLAS threads not held", "stream, NumPy kernels (no numba)", "stream, no unknown-word veto"):
        assert 0 < _rtf(out, variant) < 10, variant
    # a window re-run every 10 ms does ~150 frames of GRU work per frame: far more than one frame, once it is full
    assert _rtf(out, "window 1.5 s every 10 ms") > 5 * _rtf(out, "stream, refresh 3 s (default)")
    assert re.search(r"window / stream \(refresh\) compute ratio: \d+x; window / stream \(no refresh\): \d+x", out)


def test_bench_stream_times_every_round_after_a_full_window():
    """The README's --window-seconds 5 gives 1 s a round: each must follow more than a window of untimed audio
    (until 2026-12-06 each round began empty, and the window mode timed a window filling up)."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from bench_stream import WINDOW_S, round_parts
    finally:
        sys.path.remove(str(REPO / "scripts"))
    parts = round_parts(5.0, 5)
    assert [(t.stop - t.start) for _, t in parts] == [16000] * 5
    for warm, timed in parts:
        assert warm.start >= 0 and warm.stop == timed.start and warm.stop - warm.start > WINDOW_S * 16000
    assert all(a[1].stop == b[1].start for a, b in zip(parts, parts[1:]))  # the timed parts follow each other


def test_bench_memory_reads_growth_from_minute_5():
    out = _run("scripts/bench_memory.py", "--minutes", "10")
    m = re.search(r"RSS ([\d.]+) -> ([\d.]+) MiB \(([+-][\d.]+) MiB in all, ([+-][\d.]+) MiB from minute 5 on\)", out)
    assert m, out
    assert abs(float(m.group(4))) < 5.0  # flat once every buffer has filled
    assert "torch not imported" in out


def test_bench_throughput_prints_each_measure(shared_data):
    out = _run("scripts/bench_throughput.py", "--data-dir", str(shared_data), "--repeats", "1")
    assert re.search(r"evaluate, validation split \(408 clips\), 1 thread\(s\) +\d+ clips/s", out)
    assert re.search(r"train, default recipe, 1 thread\(s\) +\d+ clips/s", out)
    assert re.search(r"listen start-up to first processed chunk +[\d.]+ s +\(first run [\d.]+ s\)", out)


def test_bench_throughput_refuses_a_folder_without_clips_before_any_figure(tmp_path):
    r = subprocess.run([sys.executable, "scripts/bench_throughput.py", "--data-dir", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "measure" not in r.stdout  # no table header before the error
    assert str(tmp_path) in r.stdout + r.stderr
