"""Writing results: atomically, through links, into pipes, and never over an input or an earlier run's file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from tiny_data import TEST_DATA
from voice_gru.checkpoint_data import default_model_path
from voice_gru.cli import main
from voice_gru.errors import ConfigError
from voice_gru.fileio import atomic_path, check_outputs, write_json, write_text

CLIP = TEST_DATA / "yes" / "0ea0e2f4_nohash_0.wav"


def test_a_link_is_written_through(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real.json"]  # no temp file left


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making another user's link needs root")
@pytest.mark.parametrize("hops", [1, 2])
def test_a_link_another_user_planted_in_a_shared_folder_is_not_followed(tmp_path, capsys, hops):
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp: anyone may add a file, only its owner may remove it
    victim = tmp_path / "victim.json"
    link = shared / "out.json"
    first = shared / "hop.json" if hops == 2 else link
    if hops == 2:  # our own link, leading on to the planted one
        link.symlink_to(first)
    first.symlink_to(victim)
    os.lchown(first, 12345, 12345)
    with pytest.raises(OSError, match="another user made in a shared folder"):
        write_text(link, "mine")
    assert main(["evaluate", str(CLIP), "--json", str(link)]) == 2  # refused before any work
    assert "--json" in capsys.readouterr().err and not victim.exists()
    os.lchown(first, os.getuid(), os.getgid())  # one's own link in /tmp is followed, as ever
    write_text(link, "mine")
    assert victim.read_text() == "mine"
    shared.chmod(0o777)  # not sticky: anyone could replace the link anyway, and the kernel follows it
    os.lchown(first, 12345, 12345)
    write_text(link, "again")
    assert victim.read_text() == "again"


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path, monkeypatch):
    """SIGKILL skips every clean-up: three killed 60-minute make-stream runs left 250 MB of temps, and a complete rerun
    kept them (each temp also nested a temp of its own)."""
    import time

    from voice_gru.fileio import DEAD_TEMP_S
    from voice_gru.streams import write_stream

    dead = next(pid for pid in range(4_000_000, 3_000_000, -1) if not Path(f"/proc/{pid}").exists())
    old = time.time() - DEAD_TEMP_S - 5
    left = {name: tmp_path / name for name in (f".out.json.{dead}-x1abcdef.tmp", f".out.json.{os.getpid()}-x2abcdef.tmp",
                                               f".out.json.{dead}-x3abcdef.tmp", f".other.json.{dead}-x4abcdef.tmp",
                                               ".out.json.2024-06-01", f".out.json.{dead}-x5abcdef.tmp.bak")}
    for name, p in left.items():
        p.write_text("half")
        if "x3" not in name:  # x3: written to a moment ago (a writer elsewhere, on a shared folder)
            os.utime(p, (old, old))
    write_json(tmp_path / "out.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == sorted(
        n for n in left if "x1" not in n)  # only the dead writer's old temp of this very file: not a user's backup
    for long in (tmp_path / ("r" * 245 + ".json"), tmp_path / ("é" * 120 + ".json")):  # 250 and 245 bytes
        write_json(long, {"a": 1})  # its temp's name, with the pid in it, was too long to make
        assert json.loads(long.read_text()) == {"a": 1}
    made = []
    real = tempfile.mkstemp
    monkeypatch.setattr(tempfile, "mkstemp", lambda *a, **k: made.append(k.get("suffix")) or real(*a, **k))
    write_stream(tmp_path / "s.wav", np.zeros(160, np.float32), {"sample_rate": 16000, "duration": 0.01, "events": []})
    assert made == [".wav", ".json"]  # one temp per file


def test_outputs_into_a_pipe_are_written_with_stops_heard(tmp_path):
    """A command's outputs are written with Ctrl-C held until all are, but not when one goes into a pipe: its reader
    may have stopped, and the run blocked in the write could then be ended by SIGKILL alone."""
    import signal
    import time

    from voice_gru.fileio import written_together

    done = []
    with pytest.raises(KeyboardInterrupt):
        with written_together([str(tmp_path / "r.json"), None, str(tmp_path / "r.png")]):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            done.append("both written")  # held until here
    assert done == ["both written"]
    with pytest.raises(KeyboardInterrupt):
        with written_together([str(tmp_path / "r.json"), "-"]):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            done.append("not reached")
    assert done == ["both written"]


def test_a_pipe_is_written_into_not_replaced(tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    write_text(fifo, "through the pipe")
    reader.join(10)
    assert got == ["through the pipe"] and fifo.exists() and not fifo.is_file()


_TO_STDOUT = """import sys
from voice_gru.fileio import check_outputs, write_json
check_outputs({"--json": sys.argv[1]})
write_json(sys.argv[1], {"ok": 1})
"""


@pytest.mark.parametrize("target", ["/dev/stdout", "-"])
def test_standard_output_is_written_into_when_it_is_a_pipe(target, tmp_path):
    """``--json /dev/stdout | jq``: /dev/stdout then resolves to no path at all, so neither the check nor the
    write may resolve it first; ``-`` names it too."""
    run = subprocess.run([sys.executable, "-c", _TO_STDOUT, target], capture_output=True, text=True, cwd=tmp_path,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"ok": 1} and list(tmp_path.iterdir()) == []  # no file named "-"

def test_an_output_on_a_descriptor_is_appended_through_it_never_replaced(tmp_path):
    """``--json - >> log``: with standard output a file, /dev/stdout was taken for one, and the report, renamed
    onto it, replaced the /dev/stdout link itself (for every process after, as root) and never reached the log.
    Shown on a descriptor of the test's own (the same path rule), so a relapse cannot break this machine's."""
    from voice_gru.fileio import descriptor
    from voice_gru.live import EventWriter
    from voice_gru.decision import Command

    assert descriptor("-") == descriptor("/dev/stdout") == 1 and descriptor("/dev/stderr") == 2
    assert descriptor("/proc/self/fd/7") == descriptor("/dev/fd/7") == 7 and descriptor(tmp_path / "x") is None
    log = tmp_path / "log.txt"
    log.write_text("earlier\n")
    with open(log, "a") as f:
        write_json(f"/dev/fd/{f.fileno()}", {"a": 1})
        events = EventWriter(f"/dev/fd/{f.fileno()}")
        events.write(Command("go", 0.9, 1.0))
        events.close()
    assert log.read_text().splitlines() == ["earlier", "{", '  "a": 1', "}", json.dumps(Command("go", 0.9, 1.0).to_dict())]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.txt"]


def test_a_failed_write_names_the_file_and_leaves_the_old_one(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer failed")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_an_os_error_names_the_target_not_the_temp_file(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise OSError(28, "No space left on device", src)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError) as info:
        write_text(tmp_path / "r.json", "{}")
    assert info.value.filename == str(tmp_path / "r.json") and info.value.strerror == "No space left on device"
    assert list(tmp_path.iterdir()) == []


def test_check_outputs(tmp_path):
    inp = tmp_path / "in.wav"
    inp.write_bytes(b"x")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    check_outputs({"--json": tmp_path / "new" / "deeper" / "r.json", "--csv": None}, [inp])  # folders are made later
    for outputs, inputs, says in [
        ({"--json": inp}, [inp], "also an input"),
        ({"--json": tmp_path / "a", "--csv": tmp_path / "." / "a"}, [], "the same file as --json"),
        ({"--json": tmp_path}, [], "is a folder"),
        ({"--json": inp / "r.json"}, [], "is not a folder"),
        ({"--plot": tmp_path / "c.jpg"}, [], "give a name ending in .png"),
        # what every command uses without --model: `calibrate --out` it (no --model) once replaced it
        ({"--out": default_model_path()}, [], "is the model shipped in the package; write elsewhere"),
        ({"--events": tmp_path / "loop"}, [], "a link that leads back to itself"),
        # root passes os.access on /proc, yet nothing can be created there: found by trying
        ({"--events": "/proc/voice-gru-x.jsonl"}, [], r"--events /proc/voice-gru-x.jsonl: cannot write in /proc \("),
        # written as a file named "new" before, the slash dropped, "wrote new/" said
        ({"--json": f"{tmp_path}/new/"}, [], "ends in '/', as a folder does; give the name of the file to write"),
        # the checkpoint's bytes landed among the report's lines on standard output
        ({"--out": "-"}, [], "--out -: a checkpoint is binary; give it a file name, not standard output"),
        ({"--out": "/dev/stdout"}, [], "a checkpoint is binary"),
        # `ensemble ... --out run.sh` (a typo) replaced the script with a checkpoint
        ({"--out": inp}, [], "exists and is not a checkpoint; give another name"),
    ]:
        with pytest.raises(ConfigError, match=says):
            check_outputs(outputs, inputs, png=["--plot"], binary=["--out"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "loop"]  # the probe leaves nothing behind
    check_outputs({"--events": "/dev/null"})  # a device is written directly
    (tmp_path / "old.pt").write_bytes(b"PK\x03\x04rest")  # an earlier checkpoint is replaced, as asked
    check_outputs({"--out": tmp_path / "old.pt"}, binary=["--out"])


def test_an_output_does_not_replace_a_file_of_another_kind(tmp_path, capsys):
    """`listen --events runs/a/best.pt` (a typo) turned a trained model into 46 bytes of JSON, exit 0."""
    clip = sorted((TEST_DATA / "yes").iterdir())[0]
    files = {"best.pt": b"PK\x03\x04rest", "take.wav": clip.read_bytes(), "cm.png": b"\x89PNG\r\n\x1a\nrest",
             "recipe.yaml": b"name: mine\n", "old.json": b'{"accuracy": 0.9}\n', "empty.csv": b"",
             "model.png": b"PK\x03\x04rest", "rec.json": b' {"sample_rate": 16000, "duration": 60.0, "events": []}'}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    for flag, name, kind in [("--events", "best.pt", "a checkpoint"), ("--json", "take.wav", "a recording"),
                             ("--csv", "cm.png", "an image"), ("--json", "recipe.yaml", "a recipe or a script"),
                             ("--plot", "model.png", "a checkpoint"), ("--out", "take.wav", "not a checkpoint"),
                             ("--events", "rec.json", "a label file")]:  # `listen --input rec.wav --events rec.json`
        with pytest.raises(ConfigError, match=f"{flag} {tmp_path / name}: exists and is {kind}"):
            check_outputs({flag: tmp_path / name}, png=["--plot"], binary=["--out"])
    # each output replaces its own kind, and text or an empty file
    check_outputs({"--json": tmp_path / "old.json", "--csv": tmp_path / "empty.csv", "--plot": tmp_path / "cm.png",
                   "--out": tmp_path / "best.pt", "--wav": tmp_path / "take.wav", "labels": tmp_path / "rec.json"},
                  png=["--plot"], binary=["--out"], audio=["--wav"], labels=["labels"])
    rc = main(["listen", "--input", str(clip), "--no-view", "--events", str(tmp_path / "best.pt")])
    assert rc == 2 and "exists and is a checkpoint" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files  # nothing replaced


def test_a_checkpoint_output_never_replaces_a_training_runs_own(tmp_path):
    """`ensemble A B --out runs/a/state.pt` replaced the run's training state (it could no longer resume) and
    `--out runs/a/last.pt` its model, exit 0. A new name beside them is fine, and so is calibrating a run's model in
    place when told to (`calibrate --model runs/a/best.pt --out runs/a/best.pt`), never over its state."""
    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    for name in ("state.pt", "best.pt", "last.pt"):
        (run / name).write_bytes(b"PK\x03\x04rest")
    for name in ("state.pt", "best.pt", "last.pt"):
        with pytest.raises(ConfigError, match=f"--out {run / name}: is the training run {run}'s own {name}"):
            check_outputs({"--out": run / name}, binary=["--out"])
    check_outputs({"--out": run / "calibrated.pt"}, binary=["--out"])
    check_outputs({"--out": run / "best.pt"}, binary=["--out"], in_place=run / "best.pt")
    with pytest.raises(ConfigError, match="own state.pt"):
        check_outputs({"--out": run / "state.pt"}, binary=["--out"], in_place=run / "state.pt")
    (run / "state.pt").unlink()
    (run / "metrics.jsonl").write_text("{}\n")  # a run whose state was cleaned up is still a run
    with pytest.raises(ConfigError, match="own last.pt"):
        check_outputs({"--out": run / "last.pt"}, binary=["--out"])
    other = tmp_path / "models"
    other.mkdir()
    (other / "best.pt").write_bytes(b"PK\x03\x04rest")  # a checkpoint of that name outside a run: its own kind
    check_outputs({"--out": other / "best.pt"}, binary=["--out"])


def test_listen_keeps_the_last_runs_events_when_it_cannot_start(tmp_path, capsys):
    """The events file is replaced when the first detection arrives or the run ends: a recording that is no audio
    (or a missing microphone) leaves the previous run's events as they were."""
    events = tmp_path / "events.jsonl"
    events.write_text('{"t": 1.0, "label": "stop", "score": 0.9}\n')
    bad = tmp_path / "cut.wav"
    bad.write_bytes(CLIP.read_bytes()[:12] + b"junk" * 50)  # a WAV's first bytes, then no chunk at all
    assert main(["listen", "--input", str(bad), "--events", str(events), "--no-view"]) == 2
    assert events.read_text() == '{"t": 1.0, "label": "stop", "score": 0.9}\n'
    silence = tmp_path / "quiet.wav"
    import numpy as np
    import soundfile as sf

    sf.write(silence, np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    assert main(["listen", "--input", str(silence), "--events", str(events), "--no-view"]) == 0
    assert events.read_text() == ""  # a completed run with no detection: an empty record, not the old one
    capsys.readouterr()


def test_plot_of_unlabelled_files_says_why_there_is_none(tmp_path, capsys):
    plot = tmp_path / "c.png"
    assert main(["evaluate", str(tmp_path / "x.wav"), "--plot", str(plot), "--quiet"]) in (1, 2)  # unreadable: no result
    Path(tmp_path / "x.wav").write_bytes(CLIP.read_bytes())
    assert main(["evaluate", str(tmp_path / "x.wav"), "--plot", str(plot), "--quiet"]) == 0
    assert not plot.exists() and "no confusion plot" in capsys.readouterr().out


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_names_the_events_file():
    from voice_gru.decision import Command
    from voice_gru.live import EventWriter

    events = EventWriter("/dev/full")
    with pytest.raises(OSError) as info:
        events.write(Command("stop", 0.9, 1.0))
    assert info.value.filename == "/dev/full" and "No space" in info.value.strerror
    events.close()  # nothing left buffered to fail again


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_mid_run_does_not_stop_the_assistant(tmp_path, capsys):
    """The first detection's failed write ended `listen` (status 2) before its action ran: a full disk stopped the
    assistant. Now every command still runs its action, the loss is said at once and in the exit status."""
    from voice_gru.cli import main

    example = Path(__file__).resolve().parents[1] / "voice_gru" / "assets" / "example.wav"
    assistant = Path(__file__).resolve().parents[1] / "configs" / "assistant.yaml"
    code = main(["listen", "--input", str(example), "--no-view", "--assistant", str(assistant), "--events", "/dev/full"])
    out, err = capsys.readouterr()
    fired = [ln for ln in out.splitlines() if "score" in ln]
    assert code == 1 and len(fired) >= 2
    assert out.count(" -> would turn the volume") == len(fired)  # every command's action (a print) ran
    assert err.count("warning: /dev/full: No space left on device: the detection at") == 1
    assert err.strip().splitlines()[-1] == f"voice-gru: error: {len(fired)} detection(s) could not be written to " \
                                           f"/dev/full (the first at {fired[0].split()[0][:-1]} s)"


def test_a_line_cut_short_by_a_full_disk_leaves_nothing_of_itself(tmp_path, monkeypatch):
    """Half a line written before the disk filled, then the next line after space came back: one broken line
    in the middle of the file (score-events refuses it). The half is taken back."""
    import errno
    import os

    from voice_gru import live
    from voice_gru.decision import Command
    from voice_gru.live import EventWriter

    path = tmp_path / "e.jsonl"
    w = EventWriter(path)
    w.write(Command("stop", 0.9, 1.0))
    real_write, calls = os.write, []

    def full_after_half(fd, data):
        calls.append(1)
        if len(calls) == 1:
            return real_write(fd, bytes(data[:len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(live.os, "write", full_after_half)
    with pytest.raises(OSError, match="No space"):
        w.write(Command("go", 0.8, 2.0))
    monkeypatch.setattr(live.os, "write", real_write)
    w.write(Command("up", 0.7, 3.0))
    w.close()
    assert [json.loads(line)["label"] for line in path.read_text().splitlines()] == ["stop", "up"]


def test_a_result_on_standard_output_is_all_that_is_there():
    """`listen --events -`: one JSON line per command on stdout, the report on stderr."""
    example = Path(__file__).resolve().parents[1] / "voice_gru" / "assets" / "example.wav"
    run = subprocess.run([sys.executable, "-m", "voice_gru.cli", "listen", "--input", str(example), "--no-view",
                          "--events", "-"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(events) >= 2 and all(set(e) == {"t", "label", "score"} for e in events)
    assert "command(s) in" in run.stderr


def test_a_reader_that_goes_away_stops_listen_without_a_traceback():
    """`listen --assistant A | head -2`: an action's result line raised BrokenPipeError on its worker (a traceback),
    and the run ended with status 0, the later commands lost unsaid. Now: no traceback, status 141 (128 + SIGPIPE)."""
    repo = Path(__file__).resolve().parents[1]
    run = subprocess.Popen([sys.executable, "-m", "voice_gru.cli", "listen", "--input", str(repo / "voice_gru" / "assets"
                            / "example.wav"), "--no-view", "--assistant", str(repo / "configs" / "assistant.yaml")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert run.stdout is not None and run.stderr is not None
    first = [run.stdout.readline() for _ in range(2)]
    run.stdout.close()  # the reader goes away, as `head -2` does
    err = run.stderr.read()
    assert run.wait(timeout=300) == 141, err
    assert "down" in first[1] and "Traceback" not in err and "error" not in err
    # `--events - | head -1`: its reader gone, the run went on as for a full disk (from a microphone: for ever)
    run = subprocess.Popen([sys.executable, "-m", "voice_gru.cli", "listen", "--input", str(repo / "voice_gru" / "assets"
                            / "example.wav"), "--no-view", "--realtime", "--events", "-"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert run.stdout is not None and run.stderr is not None
    first = [run.stdout.readline()]
    run.stdout.close()
    err = run.stderr.read()
    assert run.wait(timeout=300) == 141, err
    assert json.loads(first[0])["label"] == "down" and "Traceback" not in err and "could not be written" not in err
    assert "in 20.0s of audio" not in err  # it stopped at the write that failed, not at the recording's end


def test_events_through_a_link_to_a_folder_not_made_yet(tmp_path):
    """`--events latest.jsonl` linked to runs/today/events.jsonl: written through the link, its folder made."""
    from voice_gru.live import EventWriter
    from voice_gru.spotter import Command

    link = tmp_path / "latest.jsonl"
    link.symlink_to(tmp_path / "runs" / "today" / "events.jsonl")
    check_outputs({"--events": link})
    w = EventWriter(link)
    w.write(Command(label="stop", score=0.9, t=1.0))
    w.close()
    assert link.is_symlink() and json.loads(link.read_text())["label"] == "stop"


def test_two_runs_never_write_one_events_file(tmp_path, capsys):
    """Two `listen --events E` at once wrote interleaved lines (one cut in half, so score-events refused the file,
    or worse, read both runs' events as one): the second is refused in one line, at its start if the file exists,
    else at its first event; each run's file is whole."""
    from voice_gru.cli import main
    from voice_gru.errors import VoiceGruError
    from voice_gru.live import EventWriter
    from voice_gru.spotter import Command

    path = tmp_path / "events.jsonl"
    first, second = EventWriter(path), EventWriter(path)  # no file yet: neither holds it
    first.write(Command("stop", 0.9, 1.0))
    with pytest.raises(VoiceGruError, match="another run is writing its events to this file"):
        second.write(Command("go", 0.8, 2.0))
    first.write(Command("up", 0.9, 3.0))
    example = Path(__file__).resolve().parents[1] / "voice_gru" / "assets" / "example.wav"
    assert main(["listen", "--input", str(example), "--no-view", "--events", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"voice-gru: error: {path}: another run is writing its events to this file (their lines would "
                   "mix); wait for it to end, or give another --events"]
    first.close()
    assert [json.loads(line)["label"] for line in path.read_text().splitlines()] == ["stop", "up"]
    third = EventWriter(path)  # the lock went with the first run
    third.write(Command("no", 0.9, 1.0))
    third.close()
    assert [json.loads(line)["label"] for line in path.read_text().splitlines()] == ["no"]
    # a device is every run's: two runs with --events /dev/null at once, the second was refused
    first, second = EventWriter("/dev/null"), EventWriter("/dev/null")
    first.write(Command("stop", 0.9, 1.0))
    second.write(Command("go", 0.8, 2.0))
    first.close()
    second.close()


def test_an_output_the_file_system_cannot_name_is_one_line(tmp_path):
    long = tmp_path / ("a" * 300 + ".json")  # over the 255 bytes a name may have: an OSError, not a ConfigError
    with pytest.raises(ConfigError) as info:
        check_outputs({"--json": long})
    assert str(info.value) == f"--json {long}: File name too long"


def test_an_output_inside_an_input_folder_is_refused(tmp_path):
    (tmp_path / "data" / "yes").mkdir(parents=True)
    with pytest.raises(ConfigError, match="is inside .*data, which is read as input"):
        check_outputs({"--json": tmp_path / "data" / "yes" / "r.json"}, folders=[tmp_path / "data"])
    check_outputs({"--json": tmp_path / "r.json"}, folders=[tmp_path / "data", None])  # beside it is fine


def test_a_link_among_an_input_folders_clips_is_inside_it_wherever_it_leads(tmp_path):
    clip = tmp_path / "elsewhere" / "a.wav"
    clip.parent.mkdir()
    clip.write_bytes(b"RIFF")
    (tmp_path / "data" / "yes").mkdir(parents=True)
    (tmp_path / "data" / "yes" / "a.wav").symlink_to(clip)  # a dataset of links: writing it would replace the clip
    with pytest.raises(ConfigError, match="is inside"):
        check_outputs({"--csv": tmp_path / "data" / "yes" / "a.wav"}, folders=[tmp_path / "data"])
    assert clip.read_bytes() == b"RIFF"


def test_a_full_disk_under_torch_save_is_said_as_one(tmp_path, monkeypatch):
    """torch.save on a full disk raises RuntimeError ("unexpected pos"), which reached the user as two tracebacks."""
    import shutil
    from collections import namedtuple

    import torch

    target = tmp_path / "last.pt"
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("u", "total used free")(1 << 30, 1 << 30, 4096))
    with pytest.raises(OSError) as info:
        with atomic_path(target, suffix=".pt") as tmp:
            torch.save({"x": 1}, tmp)
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
    assert info.value.strerror == "No space left on device" and info.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []  # the temp is gone
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("u", "total used free")(1 << 30, 0, 1 << 30))
    with pytest.raises(RuntimeError, match="some other failure"):  # with room to spare it is not a full disk
        with atomic_path(target) as tmp:
            raise RuntimeError("some other failure")


def test_a_file_written_again_keeps_its_modes(tmp_path):
    """mkstemp's temp replaced it with the umask's modes: a report made private (0600) became readable by all."""
    import os
    import stat

    from voice_gru.fileio import write_json

    private = tmp_path / "r.json"
    write_json(private, {"x": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(private.stat().st_mode) == 0o666 & ~umask  # new: as any file
    private.chmod(0o600)
    write_json(private, {"x": 2})
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and private.read_text() == '{\n  "x": 2\n}\n'


def test_the_temp_file_lies_beside_its_target(tmp_path, monkeypatch):
    """A rename is atomic only within one file system: a temp in $TMPDIR (another disk) would be copied over, and
    a kill mid-copy would leave half a file."""
    from voice_gru.fileio import atomic_path

    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.setenv("TMPDIR", str(other))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    target = tmp_path / "out" / "r.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        tmp.write_text("{}")
    assert target.read_text() == "{}" and not list(other.iterdir())
