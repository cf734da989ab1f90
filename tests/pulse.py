"""A private PulseAudio server with a fake microphone, for tests that capture real audio.

The daemon runs in its own runtime directory with one null sink, ``fake_mic``; its monitor
``fake_mic.monitor`` is the default source, so whatever is played into ``fake_mic`` is what a
client recording from the ``pulse`` / ``default`` device hears.

Use the ``pulse_mic`` fixture (``conftest.py`` loads this module as a pytest plugin)::

    @pytest.mark.audio_stack
    def test_something(pulse_mic):
        pulse_mic.play("speech.wav")                      # blocking, into fake_mic
        proc = pulse_mic.play("speech.wav", wait=False)   # returns a Popen
        subprocess.run(["voice-gru", "listen"], env=pulse_mic.env)   # sees the server too

The fixture sets ``XDG_RUNTIME_DIR`` and ``PULSE_SERVER`` in ``os.environ`` (undone afterwards)
and re-initialises PortAudio in this process if sounddevice was already imported, so both this
process and subprocesses see the server. It skips the test when the PulseAudio binaries are not
installed (``scripts/setup.sh`` installs them) and kills the daemon at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

SINK = "fake_mic"
SOURCE = f"{SINK}.monitor"
BINARIES = ("pulseaudio", "pactl", "paplay")


def missing_binaries() -> list[str]:
    """The PulseAudio programs that are not on PATH."""
    return [b for b in BINARIES if shutil.which(b) is None]


@dataclass
class PulseServer:
    """A running private PulseAudio daemon with the ``fake_mic`` null sink."""

    runtime_dir: Path
    process: subprocess.Popen
    env: dict[str, str] = field(repr=False)  # full environment for subprocesses
    sink: str = SINK
    source: str = SOURCE

    @property
    def server(self) -> str:
        return self.env["PULSE_SERVER"]

    @property
    def log_path(self) -> Path:
        return self.runtime_dir / "pulseaudio.log"

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, check=check, timeout=10)

    def play(self, path: str | os.PathLike, *, wait: bool = True, timeout: float = 60.0):
        """Play an audio file into the fake microphone with ``paplay --device=fake_mic``.

        ``wait=True`` blocks until playback ends (returns the CompletedProcess, raising on error);
        ``wait=False`` returns the running Popen.
        """
        cmd = ["paplay", f"--device={self.sink}", str(path)]
        if not wait:
            return subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=True, timeout=timeout)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """Stop the daemon now (e.g. to simulate a microphone that disappears)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def start_pulse(timeout: float = 10.0, runtime: Path | None = None) -> PulseServer:
    """Start a private daemon with the ``fake_mic`` null sink as the default sink and source (in ``runtime``: a
    daemon that was killed there comes back at the same address, as a restarted sound server does).

    Raises RuntimeError (with the daemon's log) if it does not come up within ``timeout`` s.
    """
    if runtime is None:  # a short path of our own: a unix socket path must stay under ~108 bytes
        runtime = Path(tempfile.mkdtemp(prefix="vg-pulse-"))
        runtime.chmod(0o700)
    env = dict(os.environ)
    env.pop("PULSE_COOKIE", None)
    env.update(XDG_RUNTIME_DIR=str(runtime), PULSE_SERVER=f"unix:{runtime}/pulse/native")
    daemon_env = dict(env, HOME=str(runtime))  # keep the daemon's state files out of $HOME
    daemon_env.pop("PULSE_SERVER", None)
    log = runtime / "pulseaudio.log"
    cmd = [
        "pulseaudio",
        "--daemonize=no",
        "--system=no",
        "--exit-idle-time=-1",
        "--disallow-exit",
        "--use-pid-file=no",
        "-n",  # no default.pa: only the modules below
        "-L", "module-native-protocol-unix auth-anonymous=1",
        "-L", f"module-null-sink sink_name={SINK} sink_properties=device.description=FakeMic",
        f"--log-target=file:{log}",
    ]
    proc = subprocess.Popen(cmd, env=daemon_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = PulseServer(runtime_dir=runtime, process=proc, env=env)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited with status {proc.returncode}:\n{server.log_tail()}")
            if server.pactl("info", check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"pulseaudio did not answer `pactl info` within {timeout} s:\n{server.log_tail()}")
            time.sleep(0.05)
        server.pactl("set-default-sink", SINK)
        server.pactl("set-default-source", SOURCE)
    except BaseException:
        stop_pulse(server)
        raise
    return server


def stop_pulse(server: PulseServer) -> None:
    """Kill the daemon and remove its runtime directory."""
    server.kill()
    shutil.rmtree(server.runtime_dir, ignore_errors=True)


def rescan_portaudio() -> None:
    """Make PortAudio in this process enumerate devices again (it does so once per init).

    Only when sounddevice is already imported (a later import scans anyway); no stream may be open.
    """
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        sd._terminate()
        sd._initialize()


@pytest.fixture
def pulse_mic(monkeypatch: pytest.MonkeyPatch) -> Iterator[PulseServer]:
    """A private PulseAudio server whose default source hears what ``play`` plays into ``fake_mic``."""
    missing = missing_binaries()
    if missing:
        pytest.skip(f"PulseAudio not installed (missing {', '.join(missing)}); scripts/setup.sh installs it")
    server = start_pulse()
    monkeypatch.setenv("XDG_RUNTIME_DIR", server.env["XDG_RUNTIME_DIR"])
    monkeypatch.setenv("PULSE_SERVER", server.env["PULSE_SERVER"])
    rescan_portaudio()
    try:
        yield server
    finally:
        stop_pulse(server)
        rescan_portaudio()  # forget the server's devices before the environment is restored
