"""Atomic file writing: write to a temp file beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path, PurePath
from typing import IO, Any, Iterator, Mapping, Sequence, TextIO

from voice_gru.errors import ConfigError, VoiceGruError


STDOUT = "/dev/stdout"
"""Where an output named ``-`` goes."""
FULL_DISK_BYTES = 16 << 20  # a writer that failed with less free than this ran out of space
MAX_LINK_HOPS = 40  # as the kernel's ELOOP limit
TEMP_STEM_MAX = 225  # a file name is at most 255 bytes: ".", the stem, ".<pid>-", 8 random characters, a suffix
DEAD_TEMP_S = 60.0  # a killed writer's temp file is removed once it is this old
LABEL_FILE_MAX_BYTES = 64 << 20  # a day of make-stream's labels is ~8 MB: larger JSON is not read to find out


def descriptor(path: str | Path) -> int | None:
    """The open file descriptor a path names (``-`` and ``/dev/stdout``: 1, ``/dev/stderr``, ``/dev/fd/N``,
    ``/proc/self/fd/N``), or None. Written through a copy of the descriptor: opening the path again would truncate
    a file that standard output is appended to (``>> log``), and renaming onto it would replace the link itself."""
    text = path.as_posix() if isinstance(path, PurePath) else str(path)  # on Windows str(Path("/dev/stdout")) is \\dev\\stdout
    m = re.fullmatch(r"-|/dev/std(out|err)|/(?:dev|proc/self)/fd/(\d+)", text)
    if m is None:
        return None
    return int(m.group(2)) if m.group(2) else 2 if m.group(1) == "err" else 1


def open_descriptor(fd: int, mode: str = "w") -> IO[Any]:
    """A file object on a copy of ``fd`` (closing it leaves ``fd`` open)."""
    return os.fdopen(os.dup(fd), mode, encoding=None if "b" in mode else "utf-8")


def _special(path: str | Path) -> bool:
    """A pipe, a terminal or ``/dev/stdout``: written directly, never replaced by a rename."""
    return descriptor(path) is not None or (os.path.exists(path) and not os.path.isfile(path)
                                             and not os.path.isdir(path))


def written_path(path: str | Path) -> Path:
    """Where writing ``path`` lands: ``-`` is standard output, a pipe or device is itself (checked before resolving:
    /dev/stdout on a pipe resolves to no path at all), a link is its target (the link kept)."""
    if str(path) == "-":
        return Path(STDOUT)
    if _special(path) or not Path(path).is_symlink():
        return Path(path)
    link = Path(path)
    for _ in range(MAX_LINK_HOPS):
        if not link.is_symlink():
            break
        if _planted(link):
            # the kernel's protected_symlinks rule, which resolving the link here would bypass
            raise OSError(errno.EACCES, "a link that another user made in a shared folder is not followed "
                          "(write somewhere else, or remove the link)", str(path))
        link = link.parent / os.readlink(link)
    return Path(os.path.realpath(path))


def _planted(link: Path) -> bool:
    """Whether ``link`` sits in a sticky, world-writable folder (a shared ``/tmp``) and belongs to neither this user
    nor the folder's owner."""
    try:
        own, folder = link.lstat(), link.parent.stat()
    except OSError:
        return False
    shared = folder.st_mode & stat.S_ISVTX and folder.st_mode & stat.S_IWOTH
    return bool(shared) and own.st_uid not in (os.geteuid(), folder.st_uid)


def atomic_temps(folder: str | Path, name_glob: str) -> list[Path]:
    """The temp files ``atomic_path`` makes for files named like ``name_glob`` in ``folder`` (a killed run leaves
    them: ``.NAME.<random><suffix>``)."""
    return sorted(Path(folder).glob(f".{name_glob}.*"))


def remove_dead_temps(path: Path, suffix: str = ".tmp") -> None:
    """Remove the temp files (named as ``atomic_path`` names them, ``suffix`` included) that writers of ``path`` which
    no longer run left beside it (SIGKILL skips every clean-up; a recording's temp is as large as the recording); only
    those untouched for a minute: a writer on another machine (a shared folder) has a pid this one cannot see."""
    # the whole name as mkstemp makes it: a user's .report.json.2024-06-01 only begins like one
    mine = re.compile(rf"\.{re.escape(_temp_stem(path))}\.(\d+)-[a-z0-9_]{{8}}{re.escape(suffix)}")
    try:
        temps = list(path.parent.glob(f".{glob.escape(_temp_stem(path))}.*"))
    except OSError:
        return
    for tmp in temps:
        m = mine.fullmatch(tmp.name)
        try:
            if m and not _runs(int(m.group(1))) and tmp.is_file() and not tmp.is_symlink() \
                    and time.time() - tmp.stat().st_mtime > DEAD_TEMP_S:
                tmp.unlink()
        except OSError:
            continue


def _temp_stem(path: Path) -> str:
    """The part of ``path``'s name its temp files begin with: the name, cut where a long one would leave no room for
    the pid and the random part (a 240-character output name failed after the work)."""
    return os.fsdecode(os.fsencode(path.name)[:TEMP_STEM_MAX])  # bytes: "é" takes two of the 255


def _runs(pid: int) -> bool:
    """Whether a process ``pid`` runs here (on Windows: False, and a live writer's open temp file cannot be removed
    there anyway; os.kill(pid, 0) would send it Ctrl-C, CTRL_C_EVENT being 0)."""
    if os.name == "nt":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; a number no pid can be: left alone
        pass
    return True


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "", through_links: bool = True) -> Iterator[Path]:
    """Yield a temp path in the target's folder; on success rename it onto ``path``.

    A link is written through (its target is replaced, the link kept); a target that is not a regular
    file (a pipe, ``/dev/stdout``) is written directly, since renaming onto it would replace it. Errors
    name ``path``, not the temp file. ``-`` is standard output. ``through_links=False``: a link is replaced by the
    file, in the one rename (a dataset copy made of links gets a list of its own, the original kept)."""
    path = written_path(path) if through_links else Path(path)
    fd = descriptor(path)
    if fd is not None:  # written whole, then copied onto the descriptor as it is (appending, a pipe, a file)
        folder = tempfile.mkdtemp(prefix=".voice-gru-")
        try:
            yield Path(folder) / f"out{suffix}"
            if sys.__stdout__ is not None:
                sys.__stdout__.flush()  # what Python printed before comes first
            with open(Path(folder) / f"out{suffix}", "rb") as src, open_descriptor(fd, "wb") as dst:
                shutil.copyfileobj(src, dst)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    if _special(path):
        yield path
        return
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_dead_temps(path, suffix or ".tmp")
        # the writer's pid in the name: what a killed one left is known for its own and removed by the next
        fd, tmp = tempfile.mkstemp(prefix=f".{_temp_stem(path)}.{os.getpid()}-", suffix=suffix or ".tmp",
                                   dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        try:  # a file written again keeps its own modes (a report made private stays private)
            mode = path.stat().st_mode & 0o7777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask  # mkstemp makes 0600; a new result file should read like any other
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except RuntimeError:  # torch.save on a full disk: "[enforce fail at inline_container.cc] unexpected pos ..."
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if shutil.disk_usage(path.parent).free < FULL_DISK_BYTES:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
        raise
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def is_within(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` is ``folder`` or lies within it: the path itself (a link there, its folders resolved) or where
    it leads (links resolved)."""
    top = Path(os.path.realpath(folder))
    path = Path(path)
    return any(top in (p, *p.parents) for p in (Path(os.path.realpath(path.parent)) / path.name,
                                                Path(os.path.realpath(path))))


def print_line(text: str, file: TextIO | None = None) -> None:
    """``text`` and its newline in one write, flushed: print() writes them apart, so a line printed on another thread
    (an action's result beside a detection) could land between them and join two lines into one."""
    out = sys.stdout if file is None else file
    out.write(text + "\n")
    out.flush()


def _fcntl() -> Any:
    """The ``fcntl`` module where the platform has ``flock`` (Linux, macOS), else None (files are written unlocked)."""
    try:
        import fcntl
    except ImportError:
        return None
    return fcntl


def can_lock() -> bool:
    """Whether files and folders can be locked here (``flock``)."""
    return _fcntl() is not None


def lock_exclusive(fd: int, busy: str) -> int:
    """``fd``, holding an exclusive lock on its file or folder (where the platform has ``flock``; elsewhere unlocked);
    when another process holds one, ``fd`` is closed and ``VoiceGruError(busy)`` raised."""
    fcntl = _fcntl()
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise VoiceGruError(busy) from None
    return fd


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (waiting for another process's; where the platform has ``flock``): runs
    that write the same dataset take turns instead of overwriting each other's files and list lines."""
    fcntl = _fcntl()
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_folder(flag: str, path: str | Path, writable: bool = False) -> None:
    """``ConfigError`` unless ``path`` is a folder or can become one (``writable``: and files can be made in it): a file
    there or above it, or a read-only disk, was found only at the first write, after minutes of work."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{flag} {p}: exists and is not a folder")
    above = _existing_parent(p.absolute())
    if not above.is_dir():
        raise ConfigError(f"{flag} {p}: {above} is a file, not a folder")
    where = p if p.is_dir() else above
    if writable and not os.access(where, os.W_OK | os.X_OK):  # also a read-only file system (EROFS), even for root
        raise ConfigError(f"{flag} {p}: cannot write in {where} (a read-only disk, or no permission)")


def _existing_parent(path: Path) -> Path:
    """The nearest folder above ``path`` that exists (or whatever is there in its place)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def check_outputs(outputs: Mapping[str, str | Path | None], inputs: Sequence[str | Path | None] = (),
                  png: Sequence[str] = (), folders: Sequence[str | Path | None] = (),
                  binary: Sequence[str] = (), audio: Sequence[str] = (), labels: Sequence[str] = (),
                  in_place: str | Path | None = None) -> None:
    """Before any work is done: each output (``{"--json": path}``) can be written, is none of the inputs, in none of
    the input ``folders`` (a dataset: a file there would be read as one of its clips or lists, or replace one), no
    other output and not the shipped model — a failure found after an hour of streams would throw the hour away. The
    outputs named in ``png`` are images and must be named ``.png``; those in ``binary`` (checkpoints) go to files,
    never to standard output; those in ``audio`` are recordings, those in ``labels`` label files. An existing file of
    another kind (a checkpoint, a recording, an image, a recipe or a script, a label file) is not replaced: a typo
    would have thrown away a trained model; nor is a training run's own checkpoint (its state.pt, best.pt or last.pt)
    by a checkpoint output, but for ``in_place``, the model a command rewrites when told to
    (``calibrate --model M --out M``)."""
    from voice_gru.checkpoint_data import default_model_path

    ins = {os.path.realpath(q) for q in inputs if q and str(q) != "-"}
    shipped = os.path.realpath(default_model_path())
    seen: dict[str, str] = {}
    for flag, p in outputs.items():
        if not p:
            continue
        try:
            if flag in binary and descriptor(p) is not None:  # mixed into the report's lines: neither was usable
                raise ConfigError(f"{flag} {p}: a checkpoint is binary; give it a file name, not standard output")
            if flag in binary and os.path.isfile(p) and not _is_checkpoint(p):  # a typo would have replaced a script
                raise ConfigError(f"{flag} {p}: exists and is not a checkpoint; give another name (or remove it)")
            run = Path(p).parent
            mine = in_place is not None and os.path.realpath(p) == os.path.realpath(in_place)
            if flag in binary and Path(p).name in RUN_CHECKPOINTS and any((run / n).is_file() for n in RUN_MARKS) \
                    and not (mine and Path(p).name != "state.pt"):
                # `--out runs/a/state.pt` replaced the run's training state: it could no longer resume
                raise ConfigError(f"{flag} {p}: is the training run {run}'s own {Path(p).name}; writing there would "
                                  "replace it: give another name (e.g. beside it, calibrated.pt)")
            _check_output(flag, p, ins, shipped, png, folders, seen)
            want = ("a checkpoint" if flag in binary else "an image" if flag in png else "a recording" if flag in audio
                    else "a label file" if flag in labels else None)
            held = file_kind(p) if str(p) != "-" and os.path.isfile(p) else None
            if held is not None and held != want:
                raise ConfigError(f"{flag} {p}: exists and is {held}, not what {flag} writes; give another name (or "
                                  "remove it)")
        except OSError as exc:  # a name too long for the file system, a folder that cannot be searched
            raise ConfigError(f"{flag} {p}: {exc.strerror or exc}") from None


RUN_CHECKPOINTS = ("state.pt", "best.pt", "last.pt")  # the checkpoints `train` writes into its --out
RUN_MARKS = ("state.pt", "metrics.jsonl")  # a folder holding one of these is a training run's

_MAGIC = ((b"PK\x03\x04", "a checkpoint"), (b"\x89PNG", "an image"),
          *((m, "a recording") for m in (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"FORM", b"ID3", b".snd",
                                          b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")))
_BY_SUFFIX = {**dict.fromkeys((".py", ".yaml", ".yml", ".sh", ".toml"), "a recipe or a script"),
              **dict.fromkeys((".pt", ".pth", ".ckpt", ".safetensors"), "a checkpoint")}


def file_kind(path: str | Path) -> str | None:
    """What an existing file is, where an output must not silently replace it: "a checkpoint", "a recording", "an
    image" (by its first bytes, else a checkpoint's name), "a recipe or a script" (by its name), "a label file" (a
    recording's, as make-stream writes it); None for anything else (other text, an empty file)."""
    with open(path, "rb") as f:
        head = f.read(4)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head.lstrip().startswith(b"{") and Path(path).suffix.lower() == ".json" and _is_label_file(path):
        return "a label file"
    return _BY_SUFFIX.get(Path(path).suffix.lower()) if head else None


def _is_label_file(path: str | Path) -> bool:
    """Whether ``path`` holds a recording's labels as make-stream writes them (``listen --events rec.json`` beside
    rec.wav emptied them)."""
    if os.path.getsize(path) > LABEL_FILE_MAX_BYTES:
        return False
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "duration" in data and isinstance(data.get("events"), list)


def _is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` starts as ``torch.save`` writes (a zip archive; an empty file is a write cut short)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head in (b"PK\x03\x04", b"")


def _check_output(flag: str, p: str | Path, ins: set[str], shipped: str, png: Sequence[str],
                  folders: Sequence[str | Path | None], seen: dict[str, str]) -> None:
    """``check_outputs`` for one output (``ins``, ``shipped``: the inputs' and the shipped model's real paths);
    ``seen`` maps the outputs checked before it to their flags."""
    if str(p).endswith(("/", os.sep)) and not os.path.isdir(p):  # was written as a file of that name, slash dropped
        raise ConfigError(f"{flag} {p}: ends in '/', as a folder does; give the name of the file to write")
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
    if Path(p).is_symlink():
        written_path(p)  # refuses a link planted in a shared folder before the work, not after it
    if real in ins:
        raise ConfigError(f"{flag} {p}: is also an input; writing it would destroy that input")
    for folder in folders:
        if folder and os.path.isdir(folder) and is_within(p, folder):
            raise ConfigError(f"{flag} {p}: is inside {folder}, which is read as input (a file there is taken for "
                              "one of its clips or lists, or replaces one); write elsewhere")
    if real == shipped:  # what every command uses without --model
        raise ConfigError(f"{flag} {p}: is the model shipped in the package; write elsewhere "
                          "(a calibrated copy: --out mine.pt, then --model mine.pt)")
    if real in seen:
        raise ConfigError(f"{flag} {p}: the same file as {seen[real]}")
    seen[real] = flag
    if _special(p):
        return  # a pipe or /dev/stdout is written directly (atomic_path)
    if os.path.isdir(real):
        raise ConfigError(f"{flag} {p}: is a folder, not a file")
    parent = _existing_parent(Path(real))
    if not parent.is_dir():
        raise ConfigError(f"{flag} {p}: {parent} is not a folder")
    try:  # a real file, not os.access: root may "access" /proc or a read-only mount and still fail to write
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".voice-gru-probe-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{flag} {p}: cannot write in {parent} ({exc.strerror or exc})") from None


def written_together(outputs: Sequence[str | Path | None]) -> contextlib.AbstractContextManager[None]:
    """Around writing a command's outputs, which are one set: Ctrl-C and SIGTERM held until all are written (a stop
    between them left a new report beside the last run's plot); but not where one goes into a pipe or standard
    output, whose reader may have stopped: held there, only SIGKILL could end the run."""
    from voice_gru.signals import signals_held

    if any(p and (descriptor(p) is not None or _special(p)) for p in outputs):
        return contextlib.nullcontext()
    return signals_held()


def write_text(path: str | Path, text: str, through_links: bool = True) -> None:
    """Write a text file atomically."""
    # a file name that is no UTF-8 (a CSV row's) is written back as its own bytes
    with atomic_path(path, through_links=through_links) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")


def json_text(obj: Any) -> str:
    """``obj`` as the JSON files here are written (indented, a line end at the end)."""
    return json.dumps(obj, indent=2, sort_keys=False) + "\n"


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (indented, UTF-8)."""
    write_text(path, json_text(obj))
