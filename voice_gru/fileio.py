"""Atomic file writing: write to a temp file beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from voice_gru.errors import ConfigError


STDOUT = "/dev/stdout"
"""Where an output named ``-`` goes."""


def _special(path: str | Path) -> bool:
    """A pipe, a terminal or ``/dev/stdout``: written directly, never replaced by a rename."""
    return os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path)


def written_path(path: str | Path) -> Path:
    """Where writing ``path`` lands: ``-`` is standard output, a pipe or device is itself (checked before resolving:
    /dev/stdout on a pipe resolves to no path at all), a link is its target (the link kept)."""
    if str(path) == "-":
        return Path(STDOUT)
    if _special(path) or not Path(path).is_symlink():
        return Path(path)
    return Path(os.path.realpath(path))


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path in the target's folder; on success rename it onto ``path``.

    A link is written through (its target is replaced, the link kept); a target that is not a regular
    file (a pipe, ``/dev/stdout``) is written directly, since renaming onto it would replace it. Errors
    name ``path``, not the temp file. ``-`` is standard output."""
    path = written_path(path)
    if _special(path):
        yield path
        return
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a result file should read like any other
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def check_outputs(outputs: Mapping[str, str | Path | None], inputs: Sequence[str | Path | None] = (),
                  png: Sequence[str] = ()) -> None:
    """Before any work is done: each output (``{"--json": path}``) can be written, is none of the inputs, no other
    output and not the shipped model — a failure found after an hour of streams would throw the hour away. The
    outputs named in ``png`` are images and must be named ``.png``."""
    from voice_gru.checkpoint_data import default_model_path

    ins = {os.path.realpath(p) for p in inputs if p and str(p) != "-"}
    shipped = os.path.realpath(default_model_path())
    seen: dict[str, str] = {}
    for flag, p in outputs.items():
        if not p:
            continue
        if flag in png and Path(p).suffix.lower() != ".png":
            raise ConfigError(f"{flag} {p}: plots are written as PNG; give a name ending in .png")
        if str(p) == "-":
            p = STDOUT
        real = os.path.realpath(p)
        if Path(p).is_symlink() and not os.path.exists(p):
            try:
                os.stat(p)
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # found at the first write otherwise: after the run's first detection
                    raise ConfigError(f"{flag} {p}: a link that leads back to itself") from None
        if real in ins:
            raise ConfigError(f"{flag} {p}: is also an input; writing it would destroy that input")
        if real == shipped:  # what every command uses without --model; a copy is yours to change
            raise ConfigError(f"{flag} {p}: is the model shipped in the package; write elsewhere "
                              "(a calibrated copy: --out mine.pt, then --model mine.pt)")
        if real in seen:
            raise ConfigError(f"{flag} {p}: the same file as {seen[real]}")
        seen[real] = flag
        if _special(p):
            continue  # a pipe or /dev/stdout is written directly (atomic_path)
        if os.path.isdir(real):
            raise ConfigError(f"{flag} {p}: is a folder, not a file")
        folder = Path(real).parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir():
            raise ConfigError(f"{flag} {p}: {folder} is not a folder")
        try:  # a real file, not os.access: root may "access" /proc or a read-only mount and still fail to write
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".voice-gru-probe-"):
                pass
        except OSError as exc:
            raise ConfigError(f"{flag} {p}: cannot write in {folder} ({exc.strerror or exc})") from None


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (indented, UTF-8)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
