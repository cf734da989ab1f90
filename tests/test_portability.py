"""What runs off Linux, checked here by taking away what Windows and macOS lack (``signal.SIGHUP``, ``os.set_blocking``
before Python 3.12, ``select.poll``, ``fcntl``, a folder that ``os.open`` can open, POSIX path printing) or by giving
what macOS and Windows have instead (their own speech programs)."""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from pathlib import Path, PureWindowsPath

import pytest

from voice_gru.actions import ActionRunner, _run_process, find_speech_program, load_assistant
from voice_gru.decision import Command
from voice_gru.fileio import descriptor
from voice_gru.signals import give_up_after, stop_on_signals


def test_the_stop_signals_are_set_where_there_is_no_sighup(monkeypatch):
    """`signal.SIGHUP` read directly: every voice-gru command, `--help` too, failed at start-up on Windows."""
    monkeypatch.delattr(signal, "SIGHUP")
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_stop_watch_is_skipped_without_non_blocking_pipes(monkeypatch):
    """Windows before Python 3.12 has no os.set_blocking: `listen` from a microphone failed before it opened one."""
    monkeypatch.delattr(os, "set_blocking")
    with give_up_after(1.0):
        pass


def _speaker(tmp_path: Path, monkeypatch, name: str) -> Path:
    """A fake speech program ``name``, alone on PATH, that writes its arguments and the text on its stdin to a file."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    heard = tmp_path / "heard.txt"
    fake = bindir / name
    fake.write_text(f"#!{sys.executable}\nimport sys\n"
                    f"open({str(heard)!r}, 'w').write(repr(sys.argv[1:]) + '|' + sys.stdin.read())\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    return heard


@pytest.mark.parametrize("platform, program, args", [
    ("darwin", "say", ["-f", "-"]),
    ("win32", "powershell.exe", ["-NoProfile", "-NonInteractive", "-Command"]),
])
def test_say_uses_the_systems_own_voice_without_espeak(tmp_path, monkeypatch, platform, program, args):
    """macOS and Windows have no espeak-ng: every `say` action failed with "no speech program"."""
    heard = _speaker(tmp_path, monkeypatch, program)
    monkeypatch.setenv("PATHEXT", ".exe")  # what shutil.which looks for on Windows
    monkeypatch.setattr(sys, "platform", platform)
    assert find_speech_program() == str(tmp_path / "bin" / program)
    (tmp_path / "a.yaml").write_text('actions:\n  yes: {say: "lights on, {label}"}\n', encoding="utf-8")
    with ActionRunner(load_assistant(tmp_path / "a.yaml")) as runner:
        runner.submit(Command("yes", 0.9, 1.0))
        assert runner.wait_idle(10)
    assert runner.failed == 0, list(runner.results)
    argv, text = heard.read_text().split("|")
    assert eval(argv)[:len(args)] == args and text == "lights on, yes"


def test_a_linux_machine_with_neither_uses_no_system_voice(tmp_path, monkeypatch):
    _speaker(tmp_path, monkeypatch, "say")  # GNUstep's `say` on Linux takes other arguments
    monkeypatch.setattr(sys, "platform", "linux")
    assert find_speech_program() is None


def test_a_programs_stderr_is_read_without_poll(tmp_path, monkeypatch):
    """Windows has no select.poll: the reader thread died at once, a failure's detail was lost and a program that
    wrote more stderr than the pipe holds blocked until its timeout."""
    monkeypatch.delattr(select, "poll")
    loud = [sys.executable, "-c", "import sys; sys.stderr.write('x' * 200000 + '\\ndisk full\\n'); sys.exit(3)"]
    t0 = time.monotonic()
    assert _run_process(loud, 5) == (False, "exit 3: disk full")
    assert time.monotonic() - t0 < 4
    child = tmp_path / "child.pid"  # a launcher whose program holds stderr on: done when the launcher exits
    t0 = time.monotonic()
    assert _run_process(["/bin/sh", "-c", f"sleep 3 & echo $! > {child}; exit 0"], 5) == (True, "exit 0")
    assert time.monotonic() - t0 < 2
    os.kill(int(child.read_text()), signal.SIGKILL)


def test_standard_output_is_named_the_same_in_windows_path_syntax():
    """`--json -` became Path('/dev/stdout'), which Windows prints as \\dev\\stdout: a file was written there instead."""
    assert descriptor(PureWindowsPath("/dev/stdout")) == 1
    assert descriptor(PureWindowsPath("/dev/fd/5")) == 5
    assert descriptor(PureWindowsPath("C:/dev/stdout")) is None


def test_a_training_run_without_flock_does_not_open_its_folder(tmp_path, monkeypatch):
    """Windows cannot os.open a folder: every `train` failed with "Permission denied" after preparing its data."""
    from voice_gru import train

    real_open = os.open

    def windows_open(path, flags, *a):
        if os.path.isdir(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *a)

    monkeypatch.setitem(sys.modules, "fcntl", None)  # `import fcntl` raises ImportError
    monkeypatch.setattr(os, "open", windows_open)
    held: list[int] = []
    train._lock_run_folder(tmp_path, held)
    assert held == []


def test_no_ctrl_c_is_sent_to_ask_whether_a_writer_runs_on_windows(monkeypatch):
    """os.kill(pid, 0) is GenerateConsoleCtrlEvent(CTRL_C_EVENT, pid) on Windows: asking whether a killed writer's
    temp file was still written would have stopped another voice-gru on the same console."""
    from voice_gru import fileio

    sent = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr(os, "name", "nt")
    assert fileio._runs(12345) is False and sent == []
