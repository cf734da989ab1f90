"""The installed ``voice-gru`` program: ``cli.main`` with Ctrl-C and SIGTERM answered from its first moment to its
last, not only while a command runs."""

from __future__ import annotations

import signal
import sys
from typing import NoReturn

from voice_gru.signals import stop_on_signals, stop_signals


def run() -> NoReturn:
    """Run ``voice-gru`` with ``sys.argv`` and exit with its status."""
    with stop_on_signals():  # the imports take ~0.2 s: a stop then printed a traceback, SIGTERM ended it unsaid
        try:
            from voice_gru.cli import main

            status = main()
        except KeyboardInterrupt:
            print("voice-gru: interrupted", file=sys.stderr)
            status = 130
    # the work is done and said: a stop during the interpreter's teardown (~0.5 s with torch loaded) only turned
    # the status into death by that signal
    for s in stop_signals():
        signal.signal(s, signal.SIG_IGN)
    sys.exit(status)
