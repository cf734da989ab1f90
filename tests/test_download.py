"""voice_gru.download against a local HTTP server (no real network)."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import soundfile as sf

from voice_gru import download as dl
from voice_gru.download import (
    OFFICIAL_BASE_URL,
    SPEECH_COMMANDS_ARCHIVES,
    download_file,
    download_speech_commands,
    safe_extract,
)
from voice_gru.errors import DownloadError

MAIN = "speech_commands_v0.02.tar.gz"
TEST_SET = "speech_commands_test_set_v0.02.tar.gz"
TEST_SET_DIR = "speech_commands_test_set_v0.02"


# ------------------------------------------------------------------------------------------
# a tiny HTTP server with Range support, cut-offs and .sha256 sidecars


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    cuts: dict[str, list[int]] = field(default_factory=dict)  # path -> body bytes per response
    ignore_range: bool = False
    base_url: str = ""

    def serve(self, name: str, data: bytes, sidecar: str | None = "auto") -> str:
        self.files["/" + name] = data
        if sidecar == "auto":
            sidecar = f"{hashlib.sha256(data).hexdigest()}  {name}\n"
        if sidecar is not None:
            self.files["/" + name + ".sha256"] = sidecar.encode()
        return self.base_url + name

    def hits(self, name: str) -> list[str | None]:
        return [rng for path, rng in self.requests if path == "/" + name]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802
        st: ServerState = self.server.state  # type: ignore[attr-defined]
        rng = self.headers.get("Range")
        st.requests.append((self.path, rng))
        data = st.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start, status = 0, 200
        if rng and not st.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))  # type: ignore[union-attr]
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        cut = st.cuts.get(self.path)
        try:
            if cut:  # simulate a dropped connection: send part of the body, then hang up
                self.wfile.write(body[: cut.pop(0)])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: fine
            self.close_connection = True


@pytest.fixture
def server() -> Iterator[ServerState]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    state = ServerState(base_url=f"http://127.0.0.1:{httpd.server_address[1]}/")
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=2)


# ------------------------------------------------------------------------------------------
# small archives in the Speech Commands layouts


def _wav(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).uniform(-0.2, 0.2, 1600).astype(np.float32)
    sf.write(path, noise, 16000, subtype="PCM_16")


def _tar_gz(src: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(src, arcname=".")
    return buf.getvalue()


def _main_archive(tmp: Path) -> bytes:
    src = tmp / "src_main"
    seed = 0
    for word in ("yes", "no"):
        for speaker in ("0a1b2c3d", "1b2c3d4e"):
            seed += 1
            _wav(src / word / f"{speaker}_nohash_0.wav", seed)
    _wav(src / "_background_noise_" / "white_noise.wav", 99)
    (src / "validation_list.txt").write_text("yes/1b2c3d4e_nohash_0.wav\n")
    (src / "testing_list.txt").write_text("no/1b2c3d4e_nohash_0.wav\n")
    return _tar_gz(src)


def _test_set_archive(tmp: Path) -> bytes:
    src = tmp / "src_test"
    _wav(src / "yes" / "2c3d4e5f_nohash_0.wav", 7)
    _wav(src / "_unknown_" / "cat_2c3d4e5f_nohash_0.wav", 8)
    _wav(src / "_silence_" / "silence_0.wav", 9)
    return _tar_gz(src)


@pytest.fixture
def archives(tmp_path: Path) -> dict[str, bytes]:
    return {MAIN: _main_archive(tmp_path), TEST_SET: _test_set_archive(tmp_path)}


def _blob(n: int = 300_000) -> bytes:
    return np.random.default_rng(1).integers(0, 256, n, dtype=np.uint8).tobytes()


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ------------------------------------------------------------------------------------------
# download_speech_commands


def test_full_download_and_extract(tmp_path, server, archives):
    for name, data in archives.items():
        server.serve(name, data)
    dest = tmp_path / "data"
    roots = download_speech_commands(dest, base_url=server.base_url, progress=False)

    assert roots == [dest, dest / TEST_SET_DIR]
    assert sorted(p.name for p in (dest / "yes").iterdir()) == ["0a1b2c3d_nohash_0.wav", "1b2c3d4e_nohash_0.wav"]
    assert (dest / "validation_list.txt").read_text() == "yes/1b2c3d4e_nohash_0.wav\n"
    assert (dest / "testing_list.txt").is_file()
    assert (dest / "_background_noise_" / "white_noise.wav").is_file()
    audio, rate = sf.read(dest / "no" / "0a1b2c3d_nohash_0.wav")
    assert rate == 16000 and audio.shape == (1600,)
    for folder in ("yes", "_unknown_", "_silence_"):
        assert len(list((dest / TEST_SET_DIR / folder).glob("*.wav"))) == 1
    # archives are kept, byte-identical, with no leftovers
    for name, data in archives.items():
        assert (dest / ".downloads" / name).read_bytes() == data
    assert not list(dest.rglob("*.part"))
    assert server.hits(MAIN) == [None] and server.hits(MAIN + ".sha256") == [None]


def test_rerun_is_idempotent_and_makes_no_requests(tmp_path, server, archives):
    for name, data in archives.items():
        server.serve(name, data)
    dest = tmp_path / "data"
    first = download_speech_commands(dest, base_url=server.base_url, progress=False)
    before = _tree(dest)
    server.requests.clear()
    second = download_speech_commands(dest, base_url=server.base_url, progress=False)
    assert second == first
    assert server.requests == []
    assert _tree(dest) == before


def test_rerun_after_lost_extraction_reuses_the_archive(tmp_path, server, archives):
    for name, data in archives.items():
        server.serve(name, data)
    dest = tmp_path / "data"
    download_speech_commands(dest, base_url=server.base_url, progress=False)
    (dest / ".downloads" / f"{MAIN}.extracted.json").unlink()
    for wav in (dest / "yes").iterdir():
        wav.unlink()
    server.requests.clear()
    download_speech_commands(dest, base_url=server.base_url, progress=False)
    assert server.hits(MAIN) == []  # verified against the sidecar, not downloaded again
    assert server.hits(TEST_SET) == []
    assert len(list((dest / "yes").iterdir())) == 2


def test_sidecar_mismatch_leaves_nothing(tmp_path, server, archives):
    server.serve(MAIN, archives[MAIN], sidecar="0" * 64 + f"  {MAIN}\n")
    server.serve(TEST_SET, archives[TEST_SET])
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"checksum mismatch .*expected sha256 0{64}, got [0-9a-f]{64}"):
        download_speech_commands(dest, base_url=server.base_url, progress=False)
    assert _tree(dest) == set()  # not even the empty .downloads folder
    new = tmp_path / "new" / "data"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_speech_commands(new, base_url=server.base_url, progress=False)
    assert not new.exists()  # a --dest the run made is not left behind empty (one above it may be: mkdir -p's)


@pytest.mark.parametrize("base, says", [
    ("http://[::1", "not a valid URL"),  # was a ValueError traceback
    ("ftp://mirror.example/sc/", "unsupported scheme 'ftp'"),  # was "cannot reach mirror.example"
    ("https://", "names no server"),  # was "cannot reach speech_commands_v0.02.tar.gz.sha256"
])
def test_a_base_url_that_cannot_work_is_one_line_before_anything(tmp_path, base, says):
    with pytest.raises(DownloadError, match=says):
        download_speech_commands(tmp_path / "data", base_url=base, progress=False)
    assert not (tmp_path / "data").exists()


def test_a_folder_holding_other_files_is_not_downloaded_into(tmp_path, server, archives):
    """Its validation_list.txt was replaced by the archive's, 'ready' said."""
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "validation_list.txt").write_text("mine\n")
    with pytest.raises(DownloadError, match="holds files and no earlier download"):
        download_speech_commands(dest, base_url=server.base_url, progress=False)
    assert (dest / "validation_list.txt").read_text() == "mine\n" and _tree(dest) == {"validation_list.txt"}


def test_unsafe_archive_is_refused_by_download_speech_commands(tmp_path, server, archives):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"evil"))
    server.serve(MAIN, buf.getvalue())
    server.serve(TEST_SET, archives[TEST_SET])
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"unsafe member '\.\./evil\.txt'"):
        download_speech_commands(dest, base_url=server.base_url, progress=False)
    assert not (tmp_path / "evil.txt").exists()
    assert _tree(dest) == {".downloads", f".downloads/{MAIN}"}


def test_without_sidecar_only_the_size_is_checked(tmp_path, server, archives):
    for name, data in archives.items():
        server.serve(name, data, sidecar=None)
    dest = tmp_path / "data"
    download_speech_commands(dest, base_url=server.base_url.rstrip("/"), progress=False)
    assert (dest / TEST_SET_DIR / "yes").is_dir()


def test_file_url_mirror(tmp_path, archives):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, data in archives.items():
        (mirror / name).write_bytes(data)
    (mirror / f"{MAIN}.sha256").write_text(hashlib.sha256(archives[MAIN]).hexdigest() + "\n")
    dest = tmp_path / "data"
    roots = download_speech_commands(dest, base_url=mirror.as_uri(), progress=False)
    assert roots == [dest, dest / TEST_SET_DIR] and (dest / "no").is_dir()
    with pytest.raises(DownloadError, match=r"^cannot read .*nowhere/speech_commands_v0\.02\.tar\.gz: No such file"):
        download_speech_commands(tmp_path / "other", base_url=(tmp_path / "nowhere").as_uri(), progress=False)
    plain = download_speech_commands(tmp_path / "plain", base_url=str(mirror), progress=False)  # a path, no file://
    assert plain == [tmp_path / "plain", tmp_path / "plain" / TEST_SET_DIR] and (tmp_path / "plain" / "no").is_dir()
    with pytest.raises(DownloadError, match=r"--base-url notaurl: neither a URL \(https://, file://\) nor an existing folder"):
        download_speech_commands(tmp_path / "other", base_url="notaurl", progress=False)


def test_official_base_url_uses_pinned_checksums():
    plan = dl._archive_plan(OFFICIAL_BASE_URL.rstrip("/"))
    assert [url for _, url, _ in plan] == [OFFICIAL_BASE_URL + a.filename for a in SPEECH_COMMANDS_ARCHIVES]
    assert all(official for _, _, official in plan)
    assert not any(official for _, _, official in dl._archive_plan("http://mirror.example/data/"))
    for info in SPEECH_COMMANDS_ARCHIVES:
        assert re.fullmatch(r"[0-9a-f]{64}", info.sha256) and info.size > 100_000_000


# ------------------------------------------------------------------------------------------
# download_file


def test_resume_after_interrupted_transfer_within_one_call(tmp_path, server):
    data = _blob()
    url = server.serve("blob.bin", data)
    server.cuts["/blob.bin"] = [100_000]
    dest = tmp_path / "blob.bin"
    assert download_file(url, dest, sha256=hashlib.sha256(data).hexdigest(), progress=False) == dest
    assert server.hits("blob.bin") == [None, "bytes=100000-"]
    assert dest.read_bytes() == data
    assert not (tmp_path / "blob.bin.part").exists()


def test_resume_across_runs_after_interruption(tmp_path, server):
    data = _blob()
    url = server.serve("blob.bin", data)
    server.cuts["/blob.bin"] = [120_000, 0]  # the second try makes no progress: give up, keep .part
    dest = tmp_path / "blob.bin"
    with pytest.raises(DownloadError, match=r"interrupted .*run the same command again to resume"):
        download_file(url, dest, expected_size=len(data), progress=False)
    part = tmp_path / "blob.bin.part"
    assert part.read_bytes() == data[:120_000] and not dest.exists()

    server.requests.clear()
    download_file(url, dest, expected_size=len(data), sha256=hashlib.sha256(data).hexdigest(), progress=False)
    assert server.hits("blob.bin") == ["bytes=120000-"]
    assert dest.read_bytes() == data and not part.exists()


def test_server_ignoring_range_restarts_cleanly(tmp_path, server):
    data = _blob()
    url = server.serve("blob.bin", data)
    server.ignore_range = True
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(b"stale bytes from another file")
    download_file(url, dest, sha256=hashlib.sha256(data).hexdigest(), progress=False)
    assert server.hits("blob.bin") == ["bytes=29-"]
    assert dest.read_bytes() == data


def test_complete_part_file_answered_416_is_accepted(tmp_path, server):
    data = _blob(5000)
    url = server.serve("blob.bin", data)
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(data)
    download_file(url, dest, progress=False)
    assert server.hits("blob.bin") == ["bytes=5000-"]
    assert dest.read_bytes() == data


def test_part_longer_than_expected_restarts(tmp_path, server):
    data = _blob(5000)
    url = server.serve("blob.bin", data)
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(b"z" * 6000)
    download_file(url, dest, expected_size=len(data), progress=False)
    assert server.hits("blob.bin") == [None] and dest.read_bytes() == data


def test_checksum_mismatch_removes_the_partial_file(tmp_path, server):
    data = _blob()
    url = server.serve("blob.bin", data)
    dest = tmp_path / "blob.bin"
    with pytest.raises(DownloadError, match=r"checksum mismatch for http://127\.0\.0\.1:\d+/blob\.bin: expected sha256 f{64}, got"):
        download_file(url, dest, sha256="F" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_size_mismatch_removes_the_partial_file(tmp_path, server):
    data = _blob(5000)
    url = server.serve("blob.bin", data)
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(data[:100])
    with pytest.raises(DownloadError, match=r"size mismatch .*expected 6000 bytes, server announces 5000"):
        download_file(url, dest, expected_size=6000, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_complete_file_is_not_downloaded_again(tmp_path, server):
    data = _blob(5000)
    url = server.serve("blob.bin", data)
    dest = tmp_path / "blob.bin"
    dest.write_bytes(data)
    download_file(url, dest, expected_size=len(data), sha256=hashlib.sha256(data).hexdigest(), progress=False)
    assert server.requests == []
    dest.write_bytes(b"x" * len(data))  # right size, wrong content: fetched again
    download_file(url, dest, expected_size=len(data), sha256=hashlib.sha256(data).hexdigest(), progress=False)
    assert server.hits("blob.bin") == [None] and dest.read_bytes() == data


def test_http_error_names_status_and_url(tmp_path, server):
    with pytest.raises(DownloadError, match=r"HTTP 404 .*for http://127\.0\.0\.1:\d+/missing\.bin$"):
        download_file(server.base_url + "missing.bin", tmp_path / "m.bin", progress=False)
    assert list(tmp_path.iterdir()) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_is_one_clear_line(tmp_path):
    base = f"http://127.0.0.1:{_closed_port()}/data/"
    with pytest.raises(DownloadError) as err:
        download_speech_commands(tmp_path / "data", base_url=base, progress=False)
    msg = str(err.value)
    assert msg.startswith("cannot reach 127.0.0.1: ")
    assert "refused" in msg.lower() and msg.endswith("check your internet connection or pass --base-url")
    assert "\n" not in msg
    with pytest.raises(DownloadError, match="cannot reach 127.0.0.1"):
        download_file(base + MAIN, tmp_path / "x.tar.gz", progress=False)
    assert list(tmp_path.iterdir()) == []  # no empty folder left behind
    (tmp_path / "kept").mkdir()
    with pytest.raises(DownloadError, match="cannot reach 127.0.0.1"):  # folders made for it, three deep
        download_speech_commands(tmp_path / "kept" / "a" / "b" / "data", base_url=base, progress=False)
    assert list(tmp_path.iterdir()) == [tmp_path / "kept"] and list((tmp_path / "kept").iterdir()) == []


def test_dns_failure_is_reported(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(DownloadError, match=r"^cannot reach no-such-host\.invalid: Name or service not known; check"):
        download_file("http://no-such-host.invalid/a.tar.gz", tmp_path / "a.tar.gz", progress=False)


def test_unsupported_url_scheme(tmp_path):
    with pytest.raises(DownloadError, match="unsupported URL"):
        download_file("ftp://example.org/a.tar.gz", tmp_path / "a.tar.gz", progress=False)


# ------------------------------------------------------------------------------------------
# safe_extract


def _add_file(tf: tarfile.TarFile, name: str, payload: bytes = b"data") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tf.addfile(info, io.BytesIO(payload))


def _add_link(tf: tarfile.TarFile, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tf.addfile(info)


def _special(name: str, kind: bytes = tarfile.CHRTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    return info


def _evil_archive(path: Path, build) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        _add_file(tf, "yes/aaa_first.wav")  # a harmless member first: must not be written either
        build(tf)
    return path


UNSAFE = {
    "dotdot": (lambda tf, tmp: _add_file(tf, "../evil.txt"), r"'\.\./evil\.txt'.*'\.\.' in its path"),
    "nested-dotdot": (lambda tf, tmp: _add_file(tf, "yes/../../evil.txt"), r"'\.\.' in its path"),
    "absolute": (lambda tf, tmp: _add_file(tf, str(tmp / "abs_evil.txt")), r"absolute path"),
    "symlink-out": (lambda tf, tmp: _add_link(tf, "yes/link", "../../outside"), r"'yes/link'.*points outside"),
    "symlink-abs": (lambda tf, tmp: _add_link(tf, "link", str(tmp)), r"symlink to absolute path"),
    "hardlink-out": (lambda tf, tmp: _add_link(tf, "hl", "../evil.txt", tarfile.LNKTYPE), r"hard link .*outside"),
    "through-link": (
        lambda tf, tmp: (_add_link(tf, "here", "."), _add_link(tf, "here/up", "..")),
        r"'here/up'.*goes through the link 'here'",
    ),
    "write-through-link": (
        lambda tf, tmp: (_add_link(tf, "sub", "yes"), _add_file(tf, "sub/x.wav")),
        r"goes through the link 'sub'",
    ),
    "target-through-link": (
        lambda tf, tmp: (_add_link(tf, "a", "."), _add_link(tf, "b", "a/..")),
        r"'b'.*symlink to 'a/\.\.' resolves through the link 'a'",
    ),
    "target-through-later-link": (  # member order must not matter
        lambda tf, tmp: (_add_link(tf, "b", "a/../x"), _add_link(tf, "a", ".")),
        r"'b'.*resolves through the link 'a'",
    ),
    "hardlink-through-link": (
        lambda tf, tmp: (_add_link(tf, "a", "yes"), _add_link(tf, "h", "a/aaa_first.wav", tarfile.LNKTYPE)),
        r"'h'.*hard link .*resolves through the link 'a'",
    ),
    "fifo": (lambda tf, tmp: tf.addfile(_special("pipe", tarfile.FIFOTYPE)), r"'pipe'.*FIFO"),
    "device": (
        lambda tf, tmp: tf.addfile(_special("dev")),
        r"'dev'.*device",
    ),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_safe_extract_refuses_unsafe_members_before_writing(tmp_path, case):
    build, pattern = UNSAFE[case]
    work = tmp_path / "work"
    dest = work / "a" / "dest"
    archive = _evil_archive(tmp_path / "evil.tar.gz", lambda tf: build(tf, work))
    work.mkdir()
    with pytest.raises(DownloadError, match=pattern):
        safe_extract(archive, dest)
    assert _tree(work) == set()  # nothing inside dest, nothing beside or above it


def test_safe_extract_counts_files_and_allows_inner_links(tmp_path):
    archive = tmp_path / "ok.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        _add_file(tf, "./yes/a.wav", b"aaaa")
        _add_file(tf, "./no/b.wav", b"bb")
        _add_link(tf, "./latest.wav", "yes/a.wav")
        _add_link(tf, "./copy.wav", "no/b.wav", tarfile.LNKTYPE)
    dest = tmp_path / "dest"
    assert safe_extract(archive, dest) == 2
    assert (dest / "latest.wav").read_bytes() == b"aaaa"
    assert (dest / "copy.wav").read_bytes() == b"bb"


def test_progress_bars_do_not_break_anything(tmp_path, server, archives, capsys):
    for name, data in archives.items():
        server.serve(name, data)
    download_speech_commands(tmp_path / "data", base_url=server.base_url, progress=True)
    err = capsys.readouterr().err
    assert MAIN in err and f"extracting {TEST_SET}" in err


def test_safe_extract_damaged_archive(tmp_path):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(b"\x1f\x8b\x08\x00" + _blob(2000))
    with pytest.raises(DownloadError, match=r"damaged or not a tar\.gz; delete it and download again"):
        safe_extract(archive, tmp_path / "dest")
    archive.write_bytes(b"not an archive")  # tarfile's reason was five lines, one per method it tried
    with pytest.raises(DownloadError) as info:
        safe_extract(archive, tmp_path / "dest")
    assert "\n" not in str(info.value) and str(info.value).endswith("(file could not be opened successfully)")
