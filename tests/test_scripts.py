"""The analysis scripts keep the command line's contract: a bad flag, file or dataset is one line naming it and exit
status 2 (never a traceback), unreadable clips are said, and no output may land among a dataset's clips."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_data import make_tiny_dataset

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ["bench_memory.py", "bench_stream.py", "bench_throughput.py", "make_example.py", "nested_points.py",
           "other_word_fires.py", "snr_curve.py", "wake_gap.py"]


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"scripts/{script}", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def one_line_error(r: subprocess.CompletedProcess, script: str) -> str:
    """The error line of a run that failed as the contract says; returns it."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"{script}: error: ")
    return r.stderr.strip()


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "speech_commands")


@pytest.fixture(scope="module")
def broken_root(tiny_root, tmp_path_factory) -> Path:
    """The tiny dataset with one validation "stop" clip that is no audio."""
    root = Path(shutil.copytree(tiny_root, tmp_path_factory.mktemp("broken") / "speech_commands"))
    clip = next(p for p in (root / "validation_list.txt").read_text().split() if p.startswith("stop/"))
    (root / clip).write_bytes(b"RIFF....WAVEjunk")
    return root


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_bad_flag_is_one_line_naming_the_script(script):
    line = one_line_error(run(script, "--no-such-flag"), script)
    assert line == f"{script}: error: unrecognized arguments: --no-such-flag (see {script} --help)"


def test_snr_curve_refuses_repeats_an_output_among_the_clips_and_more_threads_than_cores(tiny_root):
    assert one_line_error(run("snr_curve.py", "--data-dir", str(tiny_root), "--snr", "10", "10"), "snr_curve.py") \
        == "snr_curve.py: error: --snr: 10 10 names a value twice"
    lists = tiny_root / "validation_list.txt"
    before = lists.read_bytes()
    line = one_line_error(run("snr_curve.py", "--data-dir", str(tiny_root), "--snr", "--json", str(lists)), "snr_curve.py")
    assert f"--json {lists}: is inside {tiny_root}, which is read as input" in line and lists.read_bytes() == before
    line = one_line_error(run("snr_curve.py", "--threads", "100000"), "snr_curve.py")
    assert "argument --threads: expected a whole number from 1 to " in line  # it segfaulted


def test_snr_curve_says_which_clips_it_could_not_read_and_needs_noise_only_for_noise(broken_root, tmp_path):
    js = tmp_path / "out.json"
    r = run("snr_curve.py", "--data-dir", str(broken_root), "--snr", "--json", str(js))
    assert r.returncode == 0, r.stderr
    assert "skipped 1 unreadable clip(s), e.g. " in r.stdout and "stop/" in r.stdout
    report = json.loads(js.read_text())
    assert len(report["unreadable"]) == 1 and report["n"] == int(r.stdout.split(" clips;")[0].split()[-1])
    quiet = Path(shutil.copytree(broken_root, tmp_path / "no_noise"))
    shutil.rmtree(quiet / "_background_noise_")
    r = run("snr_curve.py", "--data-dir", str(quiet), "--snr", "--peak-dbfs", "-50")  # no SNR: no noise needed
    assert r.returncode == 0 and "peak -50 dBFS" in r.stdout, r.stderr
    line = one_line_error(run("snr_curve.py", "--data-dir", str(quiet), "--snr", "10"), "snr_curve.py")
    assert "_background_noise_" in line


def test_other_word_fires_refuses_an_empty_split_and_an_output_among_the_clips(tiny_root):
    clip = tiny_root / (tiny_root / "validation_list.txt").read_text().split()[0]
    before = clip.read_bytes()
    line = one_line_error(run("other_word_fires.py", "--data-dir", str(tiny_root), "--json", str(clip)),
                          "other_word_fires.py")
    assert f"--json {clip}: is inside {tiny_root}" in line and clip.read_bytes() == before  # it wrote JSON into it
    empty = tiny_root.parent / "empty_split"
    if not empty.exists():
        shutil.copytree(tiny_root, empty)
        (empty / "testing_list.txt").write_text("")  # its clips become training clips
    assert one_line_error(run("other_word_fires.py", "--data-dir", str(empty), "--split", "testing"),
                          "other_word_fires.py") == \
        f"other_word_fires.py: error: {empty}: the testing split has no other-word clips"


def test_wake_gap_names_its_own_flags_and_skips_unreadable_clips_aloud(broken_root):
    assert one_line_error(run("wake_gap.py", "--first", "bed"), "wake_gap.py") == \
        "wake_gap.py: error: --first bed: not a command of the model (yes, no, up, down, left, right, on, off, stop, go)"
    assert one_line_error(run("wake_gap.py", "--rates", "0.001"), "wake_gap.py") == \
        "wake_gap.py: error: --rates 0.001: the lowest calibrated rate is 0.5 per hour"
    r = run("wake_gap.py", "--data-dir", str(broken_root), "--pairs", "1", "--gaps", "1")
    assert r.stdout.startswith("skipped 1 unreadable clip(s), e.g. ") and "stop/" in r.stdout  # it was a traceback
    assert "no validation clips of go and stop that fire alone" in one_line_error(r, "wake_gap.py")  # tiny clips


def test_wake_gap_with_one_word_twice_and_a_clip_longer_than_its_buffer(tiny_root, tmp_path, shared_data):
    """`--first go --then go` counted the first go's own detection as the second's (5/5 at 0.1 s apart); a clip
    longer than 2.5 s ended the run in a broadcasting traceback."""
    import numpy as np
    import soundfile as sf

    r = run("wake_gap.py", "--first", "go", "--then", "go", "--pairs", "2", "--gaps", "0.1", "--rates", "1",
            "--data-dir", str(shared_data))
    assert r.returncode == 0, r.stderr
    assert "pairs where go fired twice:" in r.stdout and "0.1 s: 0/2" in r.stdout  # within the cooldown: once
    root = Path(shutil.copytree(tiny_root, tmp_path / "speech_commands"))
    clip = next(p for p in (root / "validation_list.txt").read_text().split() if p.startswith("stop/"))
    sf.write(str(root / clip), np.zeros(48000, np.float32), 16000)
    line = one_line_error(run("wake_gap.py", "--data-dir", str(root), "--pairs", "1", "--gaps", "1"), "wake_gap.py")
    assert "that fire alone" in line


def test_nested_points_refuses_what_it_cannot_measure(shared_data):
    assert one_line_error(run("nested_points.py", "--confidence", "0.5"), "nested_points.py") == \
        "nested_points.py: error: --confidence chooses the point of a set of commands: add --commands"
    assert "argument --confidence: expected a number from 0 to 0.999, got '1'" in \
        one_line_error(run("nested_points.py", "--commands", "stop", "--confidence", "1"), "nested_points.py")
    line = one_line_error(run("nested_points.py", "--data-dir", str(shared_data), "--command-minutes", "0.05",
                              "--free-minutes", "0.05", "--piece-minutes", "0.05"), "nested_points.py")
    assert "speaker cells have no command-free audio: give more --free-minutes" in line  # a NaN traceback before


@pytest.mark.parametrize("script, args, says", [
    ("bench_throughput.py", ["--data-dir", "README.md"], "README.md: is a file, not a dataset folder"),
    ("nested_points.py", ["--config", "configs"], "configs: is a folder, not a config file"),
    # silently not used: no room to have the ratio
    ("snr_curve.py", ["--snr", "--drr", "40"], "--drr is the direct-to-reverberant ratio of the rooms --rt60 simulates"),
    ("snr_curve.py", ["--snr", "--drr", "3"], "add --rt60 S"),
])
def test_a_path_of_the_wrong_kind_or_an_option_without_its_own_is_one_line(script, args, says):
    assert says in one_line_error(run(script, *args), script)
