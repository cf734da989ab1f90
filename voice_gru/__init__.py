"""voice_gru: a streaming GRU speech-command recognizer over MFCC features."""

from voice_gru.errors import (
    AudioDeviceError,
    AudioFormatError,
    CheckpointError,
    ConfigError,
    DatasetError,
    DownloadError,
    VoiceGruError,
)

__version__ = "0.1.0"
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"

__all__ = [
    "AudioDeviceError", "AudioFormatError", "CheckpointError", "CommandSpotter", "ConfigError", "DatasetError",
    "DownloadError", "VoiceGruError", "COMMANDS", "SILENCE", "UNKNOWN", "__version__",
]


def __getattr__(name: str):
    # the API class is loaded on first use, so `import voice_gru` stays light (no torch import)
    if name == "CommandSpotter":
        from voice_gru.spotter import CommandSpotter

        return CommandSpotter
    raise AttributeError(f"module 'voice_gru' has no attribute {name!r}")
