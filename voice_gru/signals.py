"""How a voice-gru process stops: SIGINT and SIGTERM as ``KeyboardInterrupt``, whoever started it."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise ``KeyboardInterrupt`` (a clean stop), even in a
    process started with SIGINT ignored (``voice-gru listen &`` from a script inherits that) and
    for SIGTERM, which is how services are stopped. Previous handlers come back on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise KeyboardInterrupt

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
