"""One error family: every message names the file, key or device and what was wrong."""

import os


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), at most 200 characters:
    what a one-line error quotes of a library's reason."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def one_line(exc: BaseException) -> str:
    """``Type: message`` with the whole message on one line (a message over several lines would break the line that
    reports it)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_whole(value: object, low: int = 1) -> bool:
    """Whether ``value`` is a whole number (Python's or NumPy's, not a bool) of at least ``low``: the check behind
    the one-line errors for counts, lengths and indices."""
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= low


def not_a_file(path: "str | os.PathLike[str]", what: str) -> str:
    """Why ``path`` (no regular file) cannot be read as ``what``: missing, a folder, or something else."""
    article = "an" if what[:1] in "aeiou" else "a"
    if os.path.isdir(path):
        return f"is a folder, not {article} {what}"
    return f"not a regular file ({article} {what} is one)" if os.path.exists(path) else f"{what} not found"


class VoiceGruError(Exception):
    """Base class: the CLI prints the message on one line and exits non-zero."""


class AudioFormatError(VoiceGruError):
    """An audio file is missing, empty, not audio or truncated, or audio (a file's or an array given to the API) holds
    samples that would be misread: NaN or inf, a scale or shape that is not audio's."""


class ConfigError(VoiceGruError):
    """A setting is wrong: a YAML file missing, malformed, or with an unknown or badly typed key; a command-line
    value or an API argument out of its range."""


class DatasetError(VoiceGruError):
    """A dataset root is missing or not in a recognised layout."""


class CheckpointError(VoiceGruError):
    """A checkpoint file is missing, damaged or of an unsupported format."""


class AudioDeviceError(VoiceGruError):
    """No audio input device, an unknown device, or a device that disappeared."""


class DeviceUnavailableError(AudioDeviceError):
    """A device that is not there now but may be when tried again: none found, none matching, one that cannot be
    opened or stopped delivering audio (exit status 75, which a service manager retries; a missing library or a
    device name that can never match is a plain ``AudioDeviceError``)."""


class DownloadError(VoiceGruError):
    """A download failed: offline, bad size/checksum, or an unsafe archive."""
