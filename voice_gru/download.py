"""Download and unpack the official Speech Commands v0.02 archive and its separate test set.

Layout produced by :func:`download_speech_commands` under ``DEST``::

    DEST/yes/… DEST/_background_noise_/… DEST/validation_list.txt …   (speech_commands_v0.02)
    DEST/speech_commands_test_set_v0.02/{yes,…,_unknown_,_silence_}/  (the canonical test set)
    DEST/.downloads/<archive>.tar.gz                                   (kept: a rerun is cheap)
    DEST/.downloads/<archive>.tar.gz.extracted.json                    (written after extraction)

Verification. Sizes and SHA-256 digests of the two official archives are pinned in
:data:`SPEECH_COMMANDS_ARCHIVES`. They come from TensorFlow Datasets' checksum file
(``tensorflow_datasets/url_checksums/speech_commands.txt``: 2,428,923,189 bytes / ``af14739e…``
and 112,563,277 bytes / ``cc2a00c1…``); the v0.02 digest is the same one torchaudio pins in
``torchaudio.datasets.speechcommands``. They are used when the base URL is the official one.
Any other ``--base-url`` (a mirror, a local folder via ``file://``, a test server) is checked
against the server's ``Content-Length``/``Content-Range`` and, when the server offers one, a
``<archive>.sha256`` sidecar (``"<hex>  <name>"`` or just ``"<hex>"``); without a sidecar only
the size is checked.

Downloads go to ``<file>.part`` first, resume with an HTTP ``Range`` request (a server that
ignores it and answers 200 makes the download restart cleanly), are verified, then renamed
onto the target; an existing target that matches the given size/checksum (or, given neither,
any existing target) is returned without a request. Extraction refuses, before writing anything, any member that would land
outside the destination (absolute names, ``..``, links escaping, paths through links, device
files); every failure is a :class:`~voice_gru.errors.DownloadError` with one actionable line.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import posixpath
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path, PureWindowsPath
from typing import Any, Iterator
from urllib.parse import urlsplit
from urllib.request import url2pathname

from tqdm import tqdm

from voice_gru.errors import DownloadError, first_line
from voice_gru.fileio import write_json

OFFICIAL_BASE_URL = "https://storage.googleapis.com/download.tensorflow.org/data/"
DOWNLOADS_DIRNAME = ".downloads"


@dataclass(frozen=True)
class ArchiveInfo:
    """One official archive: file name, pinned size and SHA-256, folder it unpacks into."""

    filename: str
    size: int
    sha256: str
    subdir: str  # relative to DEST; "" = DEST itself


# Source: TensorFlow Datasets url_checksums/speech_commands.txt (see the module docstring).
SPEECH_COMMANDS_ARCHIVES: tuple[ArchiveInfo, ...] = (
    ArchiveInfo(
        filename="speech_commands_v0.02.tar.gz",
        size=2_428_923_189,
        sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
        subdir="",
    ),
    ArchiveInfo(
        filename="speech_commands_test_set_v0.02.tar.gz",
        size=112_563_277,
        sha256="cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df",
        subdir="speech_commands_test_set_v0.02",
    ),
)

_CHUNK = 1 << 20
_TIMEOUT_S = 30.0
_MAX_ATTEMPTS = 5  # consecutive resumes within one call, each must make progress
_USER_AGENT = "voice-gru-download/1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)
_FILTER_ERRORS: tuple[type[BaseException], ...] = (
    (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()
)
_DAMAGED_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile,
)


class _Interrupted(Exception):
    """A transfer stopped part-way; the .part file keeps what arrived."""


# ---------------------------------------------------------------------------------------------
# small helpers


def _human(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"


def _reason(exc: object) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc)
    return text or type(exc).__name__


def _unreachable(url: str, reason: object) -> DownloadError:
    parts = urlsplit(url)
    if parts.scheme == "file":
        return DownloadError(f"cannot read {parts.path}: {_reason(reason)}; check --base-url")
    host = parts.hostname or url
    return DownloadError(
        f"cannot reach {host}: {_reason(reason)}; check your internet connection or pass --base-url"
    )


def _normalize_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if not _HEX64.match(value):
        raise DownloadError(f"not a SHA-256 hex digest: {sha256!r} (expected 64 hex characters)")
    return value


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_CHUNK), b""):
                digest.update(block)
    except OSError as exc:
        raise DownloadError(f"cannot read {path}: {_reason(exc)}") from exc
    return digest.hexdigest()


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise DownloadError(f"cannot read {path}: {_reason(exc)}") from exc


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot remove {path}: {_reason(exc)}") from exc


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create folder {path}: {_reason(exc)}") from exc


def _check_free_space(folder: Path, need: int, what: str) -> None:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # cannot tell; the write itself will report a full disk
    if need > free:
        raise DownloadError(
            f"not enough disk space in {folder} to {what}: need {_human(need)}, "
            f"{_human(free)} free; free some space or choose another --dest"
        )


def _matches(path: Path, expected_size: int | None, sha256: str | None) -> bool:
    if expected_size is not None and _file_size(path) != expected_size:
        return False
    return sha256 is None or _sha256_of(path) == sha256


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``(start, total)`` of a Content-Range header; ``None`` for parts that are absent or ``*``."""
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(3)) if match.group(3) != "*" else None
    return start, total


def _content_length(headers: Any) -> int | None:
    value = headers.get("Content-Length") if headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _open(url: str, offset: int) -> Any:
    """Open ``url`` (from ``offset`` when > 0); HTTP errors are returned, not raised."""
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        return exc
    except urllib.error.URLError as exc:
        raise _unreachable(url, exc.reason) from exc
    except (OSError, HTTPException) as exc:  # e.g. the server hung up before answering
        raise _Interrupted(f"no response ({_reason(exc)})") from exc


# ---------------------------------------------------------------------------------------------
# download


def _fetch_once(url: str, part: Path, expected_size: int | None, progress: bool) -> int | None:
    """One request appending to ``part``; returns the total size the server announced."""
    have = _file_size(part)
    for _ in range(2):  # the second pass is a clean restart without Range
        resp = _open(url, have)
        if isinstance(resp, urllib.error.HTTPError):
            with resp:
                if resp.code == 416 and have:  # our .part already reaches (or passes) the end
                    _, total = _parse_content_range(resp.headers.get("Content-Range"))
                    if total is not None and total == have:
                        return total
                    _unlink(part)
                    have = 0
                    continue
                raise DownloadError(f"HTTP {resp.code} {resp.reason} for {url}")
        with resp:
            status = getattr(resp, "status", None)
            if have and status == 206:
                start, total = _parse_content_range(resp.headers.get("Content-Range"))
                if start != have:  # not the range we asked for: start again from zero
                    _unlink(part)
                    have = 0
                    continue
                mode = "ab"
            else:  # a full body (200, or file://): the server ignored Range, restart cleanly
                have, mode = 0, "wb"
                total = _content_length(resp.headers)
            if expected_size is not None and total is not None and total != expected_size:
                _unlink(part)
                raise DownloadError(
                    f"size mismatch for {url}: expected {expected_size} bytes, server announces "
                    f"{total}; check --base-url (removed the partial file)"
                )
            if total is not None:
                _check_free_space(part.parent, total - have, f"download {url}")
            got = have
            try:
                f = open(part, mode)
            except OSError as exc:
                raise DownloadError(f"cannot write {part}: {_reason(exc)}") from exc
            with f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=part.name.removesuffix(".part"), disable=not progress,
            ) as bar:
                while True:
                    try:
                        chunk = resp.read(_CHUNK)
                    except (OSError, HTTPException) as exc:
                        raise _Interrupted(f"{_reason(exc)} after {got} bytes") from exc
                    if not chunk:
                        break
                    try:
                        f.write(chunk)
                    except OSError as exc:
                        raise DownloadError(f"cannot write {part}: {_reason(exc)}") from exc
                    got += len(chunk)
                    bar.update(len(chunk))
                try:
                    f.flush()
                    os.fsync(f.fileno())
                except OSError as exc:
                    raise DownloadError(f"cannot write {part}: {_reason(exc)}") from exc
            if total is not None and got < total:
                raise _Interrupted(f"connection closed after {got} of {total} bytes")
            return total
    raise DownloadError(f"the server for {url} keeps answering with a wrong byte range")


def _fetch_to_part(url: str, part: Path, expected_size: int | None, progress: bool) -> int | None:
    """Fill ``part`` with the whole body of ``url``, resuming; returns the announced total."""
    for attempt in range(1, _MAX_ATTEMPTS + 1):
        have = _file_size(part)
        if expected_size is not None:
            if have == expected_size:
                return expected_size
            if have > expected_size:  # longer than the real file: cannot be a prefix of it
                _unlink(part)
                have = 0
        try:
            return _fetch_once(url, part, expected_size, progress)
        except _Interrupted as exc:
            now = _file_size(part)
            if attempt == _MAX_ATTEMPTS or now <= have:
                raise DownloadError(
                    f"download of {url} interrupted ({exc}); kept {now} bytes in {part}, "
                    f"run the same command again to resume"
                ) from exc
    raise AssertionError("unreachable")


def download_file(
    url: str,
    dest: Path,
    expected_size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` via a resumable ``.part`` file, verify size/SHA-256, rename."""
    dest = Path(dest)
    sha256 = _normalize_sha256(sha256)
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise DownloadError(f"unsupported URL {url!r}: use http://, https:// or file://")
    if dest.is_file() and _matches(dest, expected_size, sha256):
        return dest
    _mkdir(dest.parent)
    part = dest.with_suffix(dest.suffix + ".part")
    total = _fetch_to_part(url, part, expected_size, progress)
    want = expected_size if expected_size is not None else total
    got = _file_size(part)
    if want is not None and got != want:
        _unlink(part)
        raise DownloadError(
            f"size mismatch for {url}: expected {want} bytes, got {got}; "
            f"removed the partial file, run again to download afresh"
        )
    if sha256 is not None:
        digest = _sha256_of(part)
        if digest != sha256:
            _unlink(part)
            raise DownloadError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {digest}; "
                f"removed the partial file, run again to download afresh"
            )
    try:
        os.replace(part, dest)
    except OSError as exc:
        raise DownloadError(f"cannot move {part} to {dest}: {_reason(exc)}") from exc
    return dest


def _fetch_sidecar_sha256(url: str) -> str | None:
    """The digest in ``<url>.sha256`` when the server offers one, else ``None``."""
    sidecar = url + ".sha256"
    parts = urlsplit(sidecar)
    if parts.scheme.lower() == "file" and not Path(url2pathname(parts.path)).is_file():
        return None
    try:
        resp = _open(sidecar, 0)
    except _Interrupted as exc:
        raise DownloadError(f"cannot read {sidecar}: {exc}; run again or check --base-url") from exc
    if isinstance(resp, urllib.error.HTTPError):
        with resp:
            if 400 <= resp.code < 500:
                return None
            raise DownloadError(f"HTTP {resp.code} {resp.reason} for {sidecar}")
    try:
        with resp:
            text = resp.read(4096).decode("ascii", "replace")
    except (OSError, HTTPException) as exc:
        raise DownloadError(f"cannot read {sidecar}: {_reason(exc)}") from exc
    token = text.split()[0].lower() if text.split() else ""
    if not _HEX64.match(token):
        raise DownloadError(f"{sidecar} does not start with a SHA-256 hex digest; check --base-url")
    return token


# ---------------------------------------------------------------------------------------------
# extraction


def _unsafe(archive: Path, member: tarfile.TarInfo, why: str) -> DownloadError:
    return DownloadError(
        f"refusing unsafe member {member.name!r} in {archive}: {why}; "
        f"this is not a genuine Speech Commands archive, delete it and check the source"
    )


def _relative_name(archive: Path, member: tarfile.TarInfo) -> str:
    name = member.name
    if _is_absolute(name):
        raise _unsafe(archive, member, "absolute path")
    parts = re.split(r"[\\/]+", name)
    if ".." in parts:
        raise _unsafe(archive, member, "'..' in its path")
    return posixpath.normpath("/".join(p for p in parts if p not in ("", ".")) or ".")


def _escapes(path: str) -> bool:
    return path == ".." or path.startswith("../") or path.startswith("/")


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or bool(PureWindowsPath(name).drive)


def _walk_target(path: str, symlinks: set[str]) -> str | None:
    """Why the archive-relative ``path`` is unsafe as a link target, or ``None``.

    Each intermediate component is checked, so ``a/..`` is refused when ``a`` is itself a
    link (``a -> .`` would make it point above the destination), whatever the member order.
    """
    prefix = ""
    components = path.split("/")
    for component in components[:-1]:
        prefix = posixpath.normpath(posixpath.join(prefix, component)) if prefix else component
        if _escapes(prefix):
            return "points outside"
        if prefix in symlinks:
            return f"resolves through the link {prefix!r}"
    return "points outside" if _escapes(posixpath.normpath(path)) else None


def _check_members(archive: Path, members: list[tarfile.TarInfo]) -> None:
    """Raise DownloadError naming the first member that could write outside the target."""
    named = [(_relative_name(archive, member), member) for member in members]
    symlinks = {rel for rel, member in named if member.issym()}
    for rel, member in named:
        parent = posixpath.dirname(rel)
        while parent not in ("", "."):
            if parent in symlinks:
                raise _unsafe(archive, member, f"its path goes through the link {parent!r}")
            parent = posixpath.dirname(parent)
        if member.issym() or member.islnk():
            kind = "symlink" if member.issym() else "hard link"
            target = member.linkname
            if _is_absolute(target):
                raise _unsafe(archive, member, f"{kind} to absolute path {target!r}")
            # a symlink is relative to its folder, a hard link to the archive root
            base = posixpath.dirname(rel) if member.issym() else ""
            joined = posixpath.join(base, target) if base not in ("", ".") else target
            why = _walk_target(re.sub(r"[\\/]+", "/", joined), symlinks)
            if why:
                raise _unsafe(archive, member, f"{kind} to {target!r} {why}")
        elif not (member.isreg() or member.isdir()):
            raise _unsafe(archive, member, "device, FIFO or other special file")


def _counting(members: list[tarfile.TarInfo], bar: tqdm) -> Iterator[tarfile.TarInfo]:
    for member in members:
        yield member
        bar.update(1)


def safe_extract(archive: Path, dest: Path, *, progress: bool = False) -> int:
    """Extract a tar(.gz) into ``dest`` after checking every member stays inside; count files."""
    archive, dest = Path(archive), Path(dest)
    damaged = f"archive {archive} is damaged or not a tar.gz; delete it and download again"
    try:
        tf = tarfile.open(archive, "r:*")
    except FileNotFoundError as exc:
        raise DownloadError(f"archive {archive} not found") from exc
    except _DAMAGED_ERRORS as exc:
        raise DownloadError(f"{damaged} ({first_line(exc).rstrip(':')})") from exc
    except OSError as exc:
        raise DownloadError(f"cannot read {archive}: {_reason(exc)}") from exc
    with tf:
        try:
            members = tf.getmembers()
        except _DAMAGED_ERRORS as exc:
            raise DownloadError(f"{damaged} ({first_line(exc).rstrip(':')})") from exc
        except OSError as exc:
            raise DownloadError(f"cannot read {archive}: {_reason(exc)}") from exc
        _check_members(archive, members)
        _mkdir(dest)
        _check_free_space(dest, sum(m.size for m in members if m.isreg()), f"extract {archive.name}")
        bar = tqdm(total=len(members), unit=" files", desc=f"extracting {archive.name}",
                   disable=not progress)
        counted = _counting(members, bar)
        try:
            with bar:
                if _FILTER_ERRORS:  # Python's own "data" filter as a second line of defence
                    tf.extractall(dest, members=counted, filter="data")
                else:
                    tf.extractall(dest, members=counted)
        except _FILTER_ERRORS as exc:
            raise DownloadError(f"refusing unsafe member in {archive}: {exc}") from exc
        except _DAMAGED_ERRORS as exc:
            raise DownloadError(f"{damaged} ({first_line(exc).rstrip(':')})") from exc
        except OSError as exc:
            where = exc.filename or dest
            raise DownloadError(
                f"cannot write {where} while extracting {archive.name}: {_reason(exc)}"
            ) from exc
    return sum(1 for m in members if m.isreg())


# ---------------------------------------------------------------------------------------------
# the dataset


def _archive_plan(base_url: str) -> list[tuple[ArchiveInfo, str, bool]]:
    """``(info, url, official)`` for each archive under ``base_url``."""
    base = base_url.strip()
    if "://" not in base:  # a local mirror given as a plain path
        if not Path(base).is_dir():
            raise DownloadError(f"--base-url {base}: neither a URL (https://, file://) nor an existing folder")
        base = Path(base).resolve().as_uri()
    try:  # said here, in one line: a traceback (http://[::1), or "cannot reach" a file name (https://, ftp://x)
        parts = urlsplit(base)
    except ValueError as exc:
        raise DownloadError(f"--base-url {base}: not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https", "file"):
        raise DownloadError(f"--base-url {base}: unsupported scheme {parts.scheme!r}: use https://, http://, file:// "
                            "or a folder")
    if parts.scheme.lower() != "file" and not parts.netloc:
        raise DownloadError(f"--base-url {base}: names no server (e.g. https://example.org/speech_commands/)")
    base = base if base.endswith("/") else base + "/"
    official = base == OFFICIAL_BASE_URL
    return [(info, base + info.filename, official) for info in SPEECH_COMMANDS_ARCHIVES]


def _marker_ok(marker: Path, archive: Path, root: Path, info: ArchiveInfo, official: bool) -> bool:
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
        size = int(record["size"])
        if record["archive"] != info.filename or not root.is_dir():
            return False
        if official and (size != info.size or record.get("sha256") != info.sha256):
            return False
        return archive.is_file() and archive.stat().st_size == size
    except (OSError, ValueError, KeyError, TypeError):
        return False


def download_speech_commands(
    dest: Path, base_url: str = OFFICIAL_BASE_URL, progress: bool = True
) -> list[Path]:
    """Download, verify and extract Speech Commands v0.02 and its test set; return both roots."""
    dest = Path(dest)
    downloads = dest / DOWNLOADS_DIRNAME
    plan = _archive_plan(base_url)
    if dest.is_dir() and not downloads.is_dir() and any(not p.name.startswith(".") for p in dest.iterdir()):
        raise DownloadError(f"--dest {dest}: holds files and no earlier download: the archive would write over those "
                            "of the same name (split lists, word folders); give an empty or a new folder")
    made = [p for p in (*reversed(downloads.parents), downloads) if not p.exists()]  # outermost first
    _mkdir(downloads)
    try:
        return _download_into(dest, downloads, plan, progress)
    except BaseException:
        for folder in reversed(made):  # nothing fetched (offline): no empty folders left behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise


def _download_into(dest: Path, downloads: Path, plan: list[tuple[ArchiveInfo, str, bool]], progress: bool) -> list[Path]:
    """``download_speech_commands`` once its folders are checked: each archive fetched, verified, extracted."""
    roots: list[Path] = []
    for info, url, official in plan:
        archive = downloads / info.filename
        marker = downloads / f"{info.filename}.extracted.json"
        root = dest / info.subdir if info.subdir else dest
        if not _marker_ok(marker, archive, root, info, official):
            size: int | None
            sha256: str | None
            if official:
                size, sha256 = info.size, info.sha256
            else:
                size, sha256 = None, _fetch_sidecar_sha256(url)
            download_file(url, archive, size, sha256, progress)
            _unlink(marker)
            count = safe_extract(archive, root, progress=progress)
            try:
                write_json(marker, {
                    "archive": info.filename, "url": url, "size": _file_size(archive),
                    "sha256": sha256, "files": count,
                })
            except OSError as exc:
                raise DownloadError(f"cannot write {marker}: {_reason(exc)}") from exc
        roots.append(root)
    return roots


__all__ = [
    "OFFICIAL_BASE_URL", "DOWNLOADS_DIRNAME", "ArchiveInfo", "SPEECH_COMMANDS_ARCHIVES",
    "download_file", "safe_extract", "download_speech_commands",
]
