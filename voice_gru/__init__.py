"""voice_gru: a streaming GRU speech-command recognizer over MFCC features."""

from __future__ import annotations

from typing import Sequence

from voice_gru.errors import (
    AudioDeviceError,
    AudioFormatError,
    CheckpointError,
    ConfigError,
    DatasetError,
    DeviceUnavailableError,
    DownloadError,
    VoiceGruError,
)

__version__ = "0.1.0"
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"


def commands_of(labels: Sequence[str]) -> tuple[str, ...]:
    """The command words of a model's labels (all but ``_silence_`` and ``_unknown_``), in their order."""
    return tuple(lab for lab in labels if lab not in (SILENCE, UNKNOWN))


__all__ = [
    "AudioDeviceError", "AudioFormatError", "CheckpointError", "Command", "CommandSpotter", "ConfigError", "DatasetError",
    "DeviceUnavailableError", "DownloadError", "VoiceGruError", "COMMANDS", "SILENCE", "UNKNOWN", "__version__", "commands_of",
]


def __getattr__(name: str) -> type:
    """The API classes, loaded on first use, so that `import voice_gru` stays light (no torch import)."""
    if name == "CommandSpotter":
        from voice_gru.spotter import CommandSpotter

        return CommandSpotter
    if name == "Command":  # what CommandSpotter returns: label, score, t
        from voice_gru.decision import Command

        return Command
    raise AttributeError(f"module 'voice_gru' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names, the lazily loaded API classes included (for dir() and completion)."""
    return sorted({*globals(), *__all__})
