"""How a process stops: give_up_after ends a stop that hangs (PortAudio blocked on a sound server that stopped
answering ignored Ctrl-C and SIGTERM for minutes)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from voice_gru.signals import give_up_after, stop_on_signals

# the child stops "cleanly" in the way a hung close would: the KeyboardInterrupt arrives, the cleanup never ends
CHILD = textwrap.dedent("""
    import contextlib, sys, time
    from pathlib import Path
    from voice_gru.mic import library_noise_muted
    from voice_gru.signals import give_up_after, stop_on_signals

    marker, how = Path(sys.argv[1]), sys.argv[2]
    with stop_on_signals(), give_up_after(1.0, lambda: marker.write_text("killed the actions"), "the microphone did not let go"):
        # "muted": the hang inside a reconnect's retry, stderr's descriptor on a temp file meanwhile
        with library_noise_muted() if how == "muted" else contextlib.nullcontext():
            try:
                print("ready", flush=True)  # inside the try: the signal follows at once
                time.sleep(30)
            except KeyboardInterrupt:
                time.sleep(0.2 if how == "clean" else 30)
    print("stopped in time", flush=True)
""")


def _stop_child(tmp_path: Path, how: str, sig: int) -> tuple[subprocess.CompletedProcess, float]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "marker"), how], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    t0 = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), time.monotonic() - t0


@pytest.mark.parametrize("sig, how", [(signal.SIGTERM, "hang"), (signal.SIGINT, "hang"), (signal.SIGTERM, "muted")])
def test_a_stop_that_hangs_ends_the_process_after_the_grace(tmp_path, sig, how):
    done, took = _stop_child(tmp_path, how, sig)
    assert done.returncode == 130 and 0.9 < took < 10, (done, took)
    assert done.stderr == ("voice-gru: the microphone did not let go: stopped without waiting, 1 s after the "
                           "signal\n"), done.stderr
    assert (tmp_path / "marker").read_text() == "killed the actions"  # before the exit: no program left running


def test_a_stop_within_the_grace_is_left_alone(tmp_path):
    done, took = _stop_child(tmp_path, "clean", signal.SIGTERM)
    assert done.returncode == 0 and done.stdout == "stopped in time\n" and done.stderr == "", done
    assert not (tmp_path / "marker").exists()
    time.sleep(0)  # nothing else to wait for: the watcher ended with the block


def test_the_wakeup_descriptor_is_given_back():
    before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(before)
    with stop_on_signals(), give_up_after(5.0):
        pass
    assert signal.set_wakeup_fd(before) == before


def test_signals_held_act_on_exit_as_their_handlers_would():
    import os
    import signal
    import threading

    from voice_gru.signals import signals_held

    spinner = threading.Thread(target=lambda: threading.Event().wait(2.0))  # the kernel may pick another thread
    spinner.start()
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("first")
            os.kill(os.getpid(), signal.SIGINT)  # twice is once: one stop
            steps.append("second")
    assert steps == ["first", "second"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with signals_held():
        pass  # nothing came: nothing happens
    spinner.join()


def test_sighup_stops_a_run_unless_nohup_ignores_it():
    """A closed terminal (SIGHUP) ends a run as SIGTERM does; under `nohup` (SIGHUP ignored) it stays ignored."""
    before = signal.getsignal(signal.SIGHUP)
    try:
        for start, stops in ((signal.SIG_DFL, True), (signal.SIG_IGN, False)):
            signal.signal(signal.SIGHUP, start)
            with stop_on_signals():
                assert callable(signal.getsignal(signal.SIGHUP)) == stops
                if stops:
                    with pytest.raises(KeyboardInterrupt):
                        signal.raise_signal(signal.SIGHUP)
            assert signal.getsignal(signal.SIGHUP) == start
    finally:
        signal.signal(signal.SIGHUP, before)
