"""``python -m voice_gru``: the ``voice-gru`` program, where the console script is not on PATH."""

from voice_gru.console import run

if __name__ == "__main__":
    run()
