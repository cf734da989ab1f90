"""How a voice-gru process stops: SIGINT, SIGTERM and SIGHUP as ``KeyboardInterrupt``, whoever started it."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Callable, Iterator


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise ``KeyboardInterrupt`` (a clean stop), even in a
    process started with SIGINT ignored (``voice-gru listen &`` from a script inherits that) and
    for SIGTERM, which is how services are stopped; so does SIGHUP (its terminal or ssh session closed: the
    totals and the events file were lost), unless it is ignored (``nohup``). Previous handlers come back on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise KeyboardInterrupt

    old = {s: signal.getsignal(s) for s in stop_signals()}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)
    hup = getattr(signal, "SIGHUP", None)  # Windows has none
    if hup is not None and old.get(hup) == signal.SIG_DFL:  # nohup's ignored SIGHUP stays ignored
        signal.signal(hup, stop)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals that stop a run: SIGINT, SIGTERM and, where there is one, SIGHUP."""
    hup = getattr(signal, "SIGHUP", None)
    return (signal.SIGINT, signal.SIGTERM) + ((hup,) if hup is not None else ())


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM wait: what either would do (their handlers as they were) happens on exit, so
    a few steps that belong together (two files renamed into place) are done all or not at all. Python handlers are
    swapped rather than the signals blocked: in a process with other threads the kernel hands a signal to one that
    does not block it, and the main thread still raised between the steps. Needs the main thread (elsewhere:
    nothing is held)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    old = {s: signal.getsignal(s) for s in stop_signals()}
    for s in old:
        signal.signal(s, lambda signum, frame: came.append(signum))
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        for signum in dict.fromkeys(came):  # now as if it came just now
            handler = old[signal.Signals(signum)]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)


@contextlib.contextmanager
def give_up_after(grace_s: float, on_give_up: Callable[[], object] = lambda: None,
                  message: str = "did not stop") -> Iterator[None]:
    """While inside, a SIGINT or SIGTERM that has not ended the process ``grace_s`` seconds after it arrived ends it
    (``on_give_up()``, then ``message`` on stderr, exit status 130). A signal's Python handler runs only between
    bytecodes, so a main thread blocked in C code (PortAudio waiting on a sound server that stopped answering)
    neither stopped nor died: SIGTERM and Ctrl-C were ignored for minutes, and a service manager waited for its
    SIGKILL. Needs the main thread (elsewhere: nothing is watched)."""
    # Windows before Python 3.12 cannot make a pipe non-blocking: nothing is watched there either
    if threading.current_thread() is not threading.main_thread() or not hasattr(os, "set_blocking"):
        yield
        return
    # the line goes to stderr as it is now: a hang inside mic.library_noise_muted has descriptor 2 on a temp file
    # that nobody reads after os._exit
    err_fd = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    old_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)  # the C handler writes the signal's number
    done = threading.Event()

    def watch() -> None:
        while True:
            got = os.read(read_fd, 64)
            if done.is_set() or not got:
                return
            if any(b in stop_signals() for b in got) and not done.wait(grace_s):
                try:
                    on_give_up()
                finally:
                    os.write(err_fd, f"voice-gru: {message}: stopped without waiting, {grace_s:g} s after the signal\n".encode())
                    os._exit(130)

    watcher = threading.Thread(target=watch, name="voice-gru stop watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(old_fd)
        os.write(write_fd, b"\0")  # wakes the watcher, which sees done and ends
        watcher.join(1.0)
        os.close(write_fd)
        os.close(read_fd)
        os.close(err_fd)
