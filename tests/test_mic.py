"""voice_gru.mic: device listing and resolution, the capture queue, streaming resampling, and
real capture through a private PulseAudio server (``audio_stack``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from voice_gru import mic
from voice_gru.errors import AudioDeviceError
from voice_gru.mic import InputDevice, MicrophoneStream, StreamingResampler

REPO = Path(__file__).resolve().parents[1]


def _portaudio_available() -> bool:
    try:
        import sounddevice  # noqa: F401
    except OSError:
        return False
    return True


needs_portaudio = pytest.mark.skipif(
    not _portaudio_available(), reason="libportaudio2 not installed; scripts/setup.sh installs it"
)

FAKE = [
    InputDevice(0, "pulse", "ALSA", 32, 44100.0),
    InputDevice(1, "default", "ALSA", 32, 44100.0),
    InputDevice(2, "sysdefault", "ALSA", 2, 48000.0),
    InputDevice(5, "USB Mic", "ALSA", 1, 48000.0),
    InputDevice(7, "USB Mic 2", "ALSA", 1, 16000.0),
]


@pytest.fixture
def fake_devices(monkeypatch: pytest.MonkeyPatch) -> list[InputDevice]:
    monkeypatch.setattr(mic, "list_input_devices", lambda: list(FAKE))
    monkeypatch.setattr(mic, "default_input_index", lambda: 1)
    return FAKE


# --- resolve_device / format_devices (no audio stack needed) -----------------------------------

def test_resolve_by_index_name_and_default(fake_devices):
    assert mic.resolve_device(None).name == "default"
    assert mic.resolve_device("").name == "default"
    assert mic.resolve_device(5).name == "USB Mic"
    assert mic.resolve_device("7").name == "USB Mic 2"
    assert mic.resolve_device(" 0 ").name == "pulse"
    assert mic.resolve_device("PULSE").index == 0
    assert mic.resolve_device("default").index == 1  # exact name beats the substring 'sysdefault'
    assert mic.resolve_device("usb mic").index == 5  # exact (case-insensitive) beats 'USB Mic 2'
    assert mic.resolve_device("mic 2").index == 7
    assert mic.resolve_device(FAKE[3]) is FAKE[3]


def test_resolve_default_falls_back_to_first_input(fake_devices, monkeypatch):
    monkeypatch.setattr(mic, "default_input_index", lambda: None)
    assert mic.resolve_device(None).index == 0


@pytest.mark.parametrize(
    "spec, words",
    [
        ("nothing-like-this", ["no audio input device matches 'nothing-like-this'"]),
        (3, ["no audio input device with index 3"]),
        ("99", ["no audio input device with index 99"]),
        ("usb", ["ambiguous", "5 'USB Mic'", "7 'USB Mic 2'", "give the index"]),
        ("def", ["ambiguous", "1 'default'", "2 'sysdefault'"]),
    ],
)
def test_resolve_unknown_or_ambiguous(fake_devices, spec, words):
    with pytest.raises(AudioDeviceError) as info:
        mic.resolve_device(spec)
    msg = str(info.value)
    assert "\n" not in msg
    assert "voice-gru devices" in msg
    for w in words:
        assert w in msg
    if "ambiguous" not in msg:  # unknown: lists what exists
        assert "0 'pulse'" in msg and "7 'USB Mic 2'" in msg


def test_resolve_without_any_device(monkeypatch):
    monkeypatch.setattr(mic, "list_input_devices", lambda: [])
    for spec in (None, "pulse", 0):
        with pytest.raises(AudioDeviceError, match="no audio input device found; is a sound card or PulseAudio running"):
            mic.resolve_device(spec)


def test_format_devices_marks_default():
    text = mic.format_devices(FAKE, default=1)
    lines = text.splitlines()
    assert "name" in lines[0] and "channels" in lines[0]
    marked = [ln for ln in lines[1:] if ln.startswith("*") and "default input" not in ln]
    assert len(marked) == 1 and " default " in marked[0]
    assert any("USB Mic 2" in ln and "16000" in ln for ln in lines)
    assert "no audio input device" in mic.format_devices([], default=None)
    assert "*" not in mic.format_devices(FAKE, default=None)


def test_missing_portaudio_is_one_clear_error(tmp_path, monkeypatch):
    fake = tmp_path / "sounddevice.py"
    fake.write_text("raise OSError('PortAudio library not found')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    for call in (mic.list_input_devices, lambda: mic.resolve_device("pulse")):
        with pytest.raises(AudioDeviceError) as info:
            call()
        msg = str(info.value)
        assert "PortAudio library not found" in msg and "libportaudio2" in msg and "\n" not in msg


# --- streaming resampler and the capture queue (no audio stack needed) ----------------------

@pytest.mark.parametrize("rate", [44100, 48000, 22050])
def test_streaming_resampler_matches_one_shot(rate):
    rng = np.random.default_rng(0)
    t = np.arange(rate * 2) / rate
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1234 * t)], axis=1)
    stereo += 0.01 * rng.standard_normal(stereo.shape)
    stereo = stereo.astype(np.float32)
    mono = stereo.mean(axis=1, dtype=np.float32)
    reference = soxr.resample(mono, rate, 16000, quality="HQ")

    res = StreamingResampler(rate)
    sizes = rng.integers(1, 4000, size=400)  # irregular blocks, some tiny
    chunks, pos = [], 0
    for n in sizes:
        if pos >= len(stereo):
            break
        chunks.append(res(stereo[pos : pos + n]))
        pos += n
    chunks.append(res(stereo[pos:]))
    chunks.append(res.flush())
    streamed = np.concatenate(chunks)
    assert streamed.dtype == np.float32 and streamed.ndim == 1
    assert abs(len(streamed) - len(reference)) <= 1
    n = min(len(streamed), len(reference))
    assert np.max(np.abs(streamed[:n] - reference[:n])) < 1e-4


def test_streaming_resampler_passthrough_at_16k():
    x = np.random.default_rng(1).standard_normal((800, 2)).astype(np.float32)
    out = StreamingResampler(16000)(x)
    np.testing.assert_allclose(out, x.mean(axis=1), atol=1e-7)


class _Status:
    def __init__(self, overflow: bool = False) -> None:
        self.input_overflow = overflow


def test_callback_queue_drops_oldest_and_counts():
    dev = InputDevice(3, "fake", "ALSA", 6, 16000.0)
    m = MicrophoneStream(dev, block_ms=50, max_blocks=3)
    assert m.device is dev and m.samplerate == 16000 and m.channels == 2 and m.blocksize == 800
    for i in range(5):
        block = np.full((800, 2), i, dtype=np.float32)
        m._callback(block, 800, None, _Status(overflow=(i == 4)))
        block[:] = -1  # PortAudio reuses its buffer: the queue must hold a copy
    assert m.dropped_blocks == 2 and m.overflows == 1
    got = [m.read(timeout=0)[0] for _ in range(3)]
    assert got == [2.0, 3.0, 4.0]  # the two oldest were dropped
    with pytest.raises(AudioDeviceError, match="not open"):
        m.read(timeout=0)
    m.close()
    m.close()  # twice is fine


def test_reopening_a_stream_starts_with_new_audio(monkeypatch):
    """close() left its queue full, and open() again served up to 5 s captured before the close as new audio."""
    import sounddevice as sd

    class Stream:  # PortAudio's stand-in: delivers nothing by itself
        def __init__(self, **kwargs):
            pass

        def start(self):
            pass

        def close(self, ignore_errors=True):
            pass

    monkeypatch.setattr(sd, "InputStream", Stream)
    m = MicrophoneStream(InputDevice(0, "fake", "ALSA", 1, 16000.0), block_ms=50)
    m.open()
    for value in (1.0, 2.0):
        m._callback(np.full((800, 1), value, np.float32), 800, None, _Status())
    m.close()
    m.open()
    m._callback(np.full((800, 1), 3.0, np.float32), 800, None, _Status())
    assert float(m.read(timeout=0)[0]) == 3.0
    m.close()


def test_block_size_follows_block_ms():
    m = MicrophoneStream(InputDevice(0, "x", "ALSA", 1, 44100.0), block_ms=20)
    assert m.blocksize == 882 and m.channels == 1


# --- real capture through a private PulseAudio server ----------------------------------------

def _tone_wav(path: Path, *, rate=44100, seconds=1.0, freq=1000.0, amp=0.5) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    tone = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    sf.write(path, np.stack([tone, tone], axis=1), rate, subtype="FLOAT")
    return path


@pytest.mark.audio_stack
@needs_portaudio
def test_devices_listed_through_pulse(pulse_mic):
    devices = mic.list_input_devices()
    names = [d.name for d in devices]
    assert "pulse" in names and "default" in names, names
    table = mic.format_devices(devices)
    assert "pulse" in table and "*" in table
    pulse = mic.resolve_device("pulse")
    assert mic.resolve_device(pulse.index) == pulse
    assert mic.resolve_device(str(pulse.index)) == pulse
    assert mic.resolve_device(None).name in names
    with pytest.raises(AudioDeviceError, match="voice-gru devices"):
        mic.resolve_device("no-such-microphone")
    # a subprocess sees the server too (os.environ carries PULSE_SERVER)
    code = "from voice_gru.mic import list_input_devices as l; print([d.name for d in l()])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert "'pulse'" in proc.stdout, proc.stderr
    # the sources behind the one `pulse` device, and how to choose one (the table alone gave no way to)
    pulse_mic.pactl("load-module", "module-null-sink", "sink_name=usb_mic")
    sources = mic.pulse_sources()
    assert {"fake_mic.monitor", "usb_mic.monitor"} <= set(sources), sources
    proc = subprocess.run([sys.executable, "-m", "voice_gru.cli", "devices"], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert "PULSE_SOURCE=NAME voice-gru listen --device pulse" in proc.stdout and "  usb_mic.monitor" in proc.stdout


@pytest.mark.audio_stack
@needs_portaudio
def test_capture_tone_from_fake_mic(pulse_mic, tmp_path):
    wav = _tone_wav(tmp_path / "tone.wav")
    chunks = []
    with MicrophoneStream("pulse", block_ms=50) as m:
        assert m.samplerate == 44100 and m.channels == 2
        first = m.read(timeout=10.0)  # PulseAudio's start-up lag is 1.5-2 s
        assert first is not None, "no audio block within 10 s"
        player = pulse_mic.play(wav, wait=False)
        deadline = time.monotonic() + 10.0
        while player.poll() is None and time.monotonic() < deadline:
            c = m.read(timeout=1.0)
            if c is not None:
                chunks.append(c)
        assert player.wait(timeout=5) == 0, player.stderr.read()
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            c = m.read(timeout=0.1)
            if c is not None:
                chunks.append(c)
        overflows, dropped = m.overflows, m.dropped_blocks
    m.close()  # closing twice is safe
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    sizes = np.array([len(c) for c in chunks])
    # 50 ms blocks at 16 kHz: 800 samples on average; soxr emits in its own steps (~540/1080)
    assert sizes.mean() == pytest.approx(800, rel=0.05) and sizes.max() <= 1600, sizes
    audio = np.concatenate(chunks)
    loud = np.flatnonzero(np.abs(audio) > 0.1)
    assert loud.size, "the tone never arrived"
    assert (loud[-1] - loud[0]) / 16000 == pytest.approx(1.0, abs=0.05)  # 1 s of tone at 16 kHz
    mid = (loud[0] + loud[-1]) // 2
    seg = audio[mid - 4000 : mid + 4000]  # 0.5 s from the middle of the tone
    rms = float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), abs=0.01)
    spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    peak_hz = np.argmax(spectrum) * 16000 / len(seg)
    assert peak_hz == pytest.approx(1000, abs=4)
    # no clicks at chunk boundaries: the tone is smooth sample to sample
    core = audio[loud[0] + 800 : loud[-1] - 800]
    assert np.max(np.abs(np.diff(core))) < 0.5 * 2 * np.pi * 1000 / 16000 * 1.05
    assert overflows == 0 and dropped == 0


@pytest.mark.audio_stack
@needs_portaudio
def test_server_gone_mid_stream_is_device_error(pulse_mic):
    with MicrophoneStream(None) as m:
        assert m.read(timeout=10.0) is not None
        pulse_mic.kill()
        t0 = time.monotonic()
        with pytest.raises(AudioDeviceError) as info:
            while time.monotonic() - t0 < 5:
                m.read(timeout=0.5)
        assert time.monotonic() - t0 < 3
    msg = str(info.value)
    assert "stopped delivering audio" in msg and "\n" not in msg



@pytest.mark.audio_stack
@needs_portaudio
def test_a_new_process_sees_the_sound_server_go_and_come_back(pulse_mic):
    """``probe_device`` asks a fresh PortAudio, so ``listen --reconnect`` can wait without rescanning its own (which
    would stop the program's other audio streams) until the microphone is really back."""
    from tests.pulse import start_pulse

    assert mic.probe_device("pulse") is True
    pulse_mic.kill()
    with pytest.raises(AudioDeviceError) as info:
        mic.probe_device("pulse")
    assert "\n" not in str(info.value) and "no audio input device" in str(info.value)
    again = start_pulse(runtime=pulse_mic.runtime_dir)
    try:
        assert mic.probe_device("pulse") is True
    finally:
        again.kill()


@needs_portaudio
def test_rescan_for_leaves_portaudio_alone_until_a_new_process_finds_the_device(monkeypatch):
    import sounddevice as sd

    calls: list[str] = []
    monkeypatch.setattr(sd, "_terminate", lambda: calls.append("terminate"))
    monkeypatch.setattr(sd, "_initialize", lambda: calls.append("initialize"))
    with pytest.raises(AudioDeviceError, match="no audio input device"):  # a real probe: no such device anywhere
        mic.rescan_for("no such microphone 7f3a")
    assert calls == []
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")  # no answer: rescan as before the probe
    assert mic.probe_device("no such microphone 7f3a") is False
    mic.rescan_for("no such microphone 7f3a")
    assert calls == ["terminate", "initialize"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)  # a bundled app: not asked to run `-c` at all
    monkeypatch.setattr(sys, "executable", "/bin/true")  # would answer "found"
    assert mic.probe_device("no such microphone 7f3a") is False

_NO_SERVER_SCRIPT = textwrap.dedent(
    """
    import json
    from voice_gru.errors import AudioDeviceError
    from voice_gru.mic import MicrophoneStream, list_input_devices
    out = {"devices": len(list_input_devices()), "errors": []}
    for spec in (None, "pulse", 0):
        try:
            MicrophoneStream(spec).open().close()
            out["errors"].append(None)
        except AudioDeviceError as exc:
            out["errors"].append(str(exc))
    print(json.dumps(out))
    """
)


@pytest.mark.audio_stack
@needs_portaudio
def test_no_server_gives_one_line_error(tmp_path):
    runtime = tmp_path / "rt"
    runtime.mkdir(mode=0o700)
    client_conf = tmp_path / "client.conf"
    client_conf.write_text("autospawn = no\n")
    env = dict(os.environ)
    env.update(
        XDG_RUNTIME_DIR=str(runtime),  # empty: no server socket here
        PULSE_SERVER=f"unix:{tmp_path}/no-such-dir/native",
        PULSE_CLIENTCONFIG=str(client_conf),  # and never autospawn one
    )
    proc = subprocess.run(
        [sys.executable, "-c", _NO_SERVER_SCRIPT], env=env, capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 0, "a sound server or card is reachable; this test needs none"
    for err in out["errors"]:
        assert err is not None and "\n" not in err
        assert err.startswith("no audio input device found; is a sound card or PulseAudio running?")
        assert "voice-gru devices" in err


@pytest.mark.audio_stack
@needs_portaudio
def test_open_failure_is_device_error(monkeypatch):
    import sounddevice as sd

    def boom(*args, **kwargs):
        raise sd.PortAudioError("Error querying device -1")

    monkeypatch.setattr(sd, "InputStream", boom)
    m = MicrophoneStream(InputDevice(0, "pulse", "ALSA", 32, 44100.0))
    monkeypatch.delenv("PULSE_SOURCE", raising=False)
    with pytest.raises(AudioDeviceError, match=r"cannot open audio input device 0 'pulse': Error querying device -1") as info:
        m.open()
    assert "PULSE_SOURCE" not in str(info.value)
    # a source name the sound server does not know fails as an ALSA error that never names it: the line does
    monkeypatch.setenv("PULSE_SOURCE", "nonexistent")
    with pytest.raises(AudioDeviceError, match=r"PULSE_SOURCE=nonexistent chooses the PulseAudio source: is that its "
                                               r"name\? \(`pactl list short sources` lists them\)$"):
        m.open()
    m.close()


# --- listen --reconnect ---------------------------------------------------------------------------


class _FakeMic:
    """Delivers its chunks, then fails as a vanished device does."""

    def __init__(self, name: str, chunks: list[np.ndarray]) -> None:
        self.name, self.chunks, self.closed = name, list(chunks), False

    def read(self, timeout: float | None = None) -> np.ndarray | None:
        if self.chunks:
            return self.chunks.pop(0)
        raise AudioDeviceError(f"audio input device {self.name} stopped delivering audio")

    def close(self) -> None:
        self.closed = True


def test_a_microphone_that_goes_silent_is_said_and_its_return_too():
    """A sound server that stopped answering left the stream open and silent: 'listening' stood for as long."""
    import time

    from voice_gru.live import mic_chunks

    plan = [np.ones(4, np.float32)] + [None] * 8 + [np.full(4, 2.0, np.float32)] * 2

    class Quiet:
        def read(self, timeout=None):
            time.sleep(0.02)
            return plan.pop(0)

    said: list[str] = []
    got = [float(c[0]) for c in mic_chunks(Quiet(), stop=lambda: not plan, on_gap=said.append, gap_s=0.1)]
    assert got == [1.0, 2.0, 2.0]  # the audio after the gap goes on as one stream
    assert len(said) == 2, said  # once when it fell silent, once when it came back: not every read
    assert said[0].startswith("no audio from the microphone for 0 s (is its sound server answering?)"), said
    assert said[1].startswith("audio from the microphone again after 0 s without: what was said meanwhile"), said


def test_reconnecting_chunks_wait_for_the_microphone_and_go_on():
    from voice_gru.live import reconnecting_mic_chunks

    a = _FakeMic("A", [np.full(4, 1.0, np.float32), np.full(4, 2.0, np.float32)])
    b = _FakeMic("B", [np.full(4, 3.0, np.float32)])
    tries = [AudioDeviceError("no device"), AudioDeviceError("no device"), b]  # then none at all
    said: list = []
    slept: list[float] = []
    rescans: list[int] = []

    def reopen():
        got = tries.pop(0) if tries else AudioDeviceError("no device")
        if isinstance(got, Exception):
            raise got
        return got

    got = [float(c[0]) for c in reconnecting_mic_chunks(
        a, reopen, stop=lambda: len(slept) >= 5, on_first=lambda: said.append("first"),
        on_lost=lambda why: said.append(("lost", why)), on_back=lambda m, away: said.append(("back", m.name)),
        retry_s=2.0, rescan=lambda: rescans.append(1), sleep=slept.append,
        on_retry_error=lambda why: said.append(("retry", why)))]
    assert got == [1.0, 2.0, 3.0]  # one stream across the outage
    assert said == ["first", ("lost", "audio input device A stopped delivering audio"), ("retry", "no device"),
                    ("back", "B"), ("lost", "audio input device B stopped delivering audio"),
                    ("retry", "no device")]  # "first" once: one session; a retry's error once until it changes
    # each try: reopen, and after a rescan once more. A: 2 failures, then B at the second try; B: two tries, then stop
    assert slept == [2.0] * 5 and len(rescans) == 3
    assert a.closed and b.closed


def test_reconnecting_chunks_say_listening_once_audio_has_come():
    """A microphone lost before its first chunk (PulseAudio takes 1.5-2 s to deliver one) still gets the line."""
    from voice_gru.live import reconnecting_mic_chunks

    a = _FakeMic("A", [])
    b = _FakeMic("B", [np.zeros(4, np.float32)])
    said: list[str] = []
    got = list(reconnecting_mic_chunks(a, lambda: b, stop=lambda: b.closed, on_first=lambda: said.append("first"),
                                       sleep=lambda s: None, on_back=lambda m, away: said.append("back"),
                                       on_lost=lambda why: said.append("lost"), retry_s=0.0))
    assert len(got) == 1 and said[:3] == ["lost", "back", "first"]


def test_rescan_initialises_portaudio_again_after_a_failed_rescan(monkeypatch):
    """One failed initialise must not leave every later rescan failing at the terminate before it."""
    sd = pytest.importorskip("sounddevice")
    state = {"up": True, "fail_init": 1}

    def terminate():
        if not state["up"]:
            raise sd.PortAudioError("PortAudio not initialized")
        state["up"] = False

    def initialize():
        if state["fail_init"]:
            state["fail_init"] -= 1
            raise sd.PortAudioError("Unanticipated host error")
        state["up"] = True

    monkeypatch.setattr(sd, "_terminate", terminate)
    monkeypatch.setattr(sd, "_initialize", initialize)
    with pytest.raises(AudioDeviceError, match="cannot scan audio devices again"):
        mic.rescan_devices()
    mic.rescan_devices()  # the next one initialises
    assert state["up"]


def test_reconnecting_chunks_stop_while_waiting():
    from voice_gru.live import reconnecting_mic_chunks

    a = _FakeMic("A", [np.zeros(4, np.float32)])
    stopped = {"now": False}

    def reopen():
        stopped["now"] = True  # Ctrl-C while the device is away
        raise AudioDeviceError("no device")

    got = list(reconnecting_mic_chunks(a, reopen, stop=lambda: stopped["now"], sleep=lambda s: None))
    assert len(got) == 1 and a.closed


def test_library_noise_is_left_out_and_the_rest_passed_on(capfd):
    """Each retry of a lost microphone printed ALSA's and PortAudio's own lines around the one that says it."""
    import os

    from voice_gru.mic import library_noise_muted

    with library_noise_muted():
        os.write(2, b"ALSA lib pulse.c:242:(pulse_connect) PulseAudio: Unable to connect: Connection refused\n\n"
                    b"Expression 'ret' failed in 'src/hostapi/alsa/pa_linux_alsa.c', line: 1736\n"
                    b"a line of someone else's\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "a line of someone else's\nafter\n"


def test_the_device_probe_runs_no_module_of_the_working_folder(tmp_path, monkeypatch):
    """`python -c` puts its working folder first on the module path: a dataclasses.py where `listen --reconnect`
    ran was run by the probe when the microphone went away."""
    (tmp_path / "dataclasses.py").write_text("open('PLANTED_RAN', 'w').close()\nraise SystemExit(9)\n")
    monkeypatch.chdir(tmp_path)
    try:
        mic.probe_device("no such device 12345")
    except AudioDeviceError:
        pass
    assert not (tmp_path / "PLANTED_RAN").exists()
