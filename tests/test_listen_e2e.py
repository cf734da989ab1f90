"""End to end on the real audio stack: `voice-gru listen` as a separate process on a PulseAudio
"microphone" hears a recording played into it and fires the configured actions.

The same recording streamed with `--input` is the reference: the microphone path (16 kHz file ->
PulseAudio at its own rate -> sounddevice -> resampled back to 16 kHz) must detect the same
commands, and each detection must have run its `run` action (a program appending to a file) and,
for "up"/"down", its `http` action (a POST to a server on 127.0.0.1).
"""

from __future__ import annotations

import http.server
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "voice_gru" / "assets" / "example.wav"
MODEL = ROOT / "voice_gru" / "models" / "default.pt"

pytestmark = [
    pytest.mark.audio_stack,
    pytest.mark.slow,
    pytest.mark.skipif(not MODEL.is_file(), reason="the shipped model voice_gru/models/default.pt is missing"),
]


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def _assistant(tmp_path: Path, port: int) -> Path:
    fired = tmp_path / "fired.txt"
    writer = f"import sys; open({str(fired)!r}, 'a').write(sys.argv[1] + chr(10))"
    lines = ["actions:"]
    for cmd in ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"):
        acts = [f'{{run: [{json.dumps(sys.executable)}, "-c", {json.dumps(writer)}, "{{label}}"]}}']
        if cmd in ("up", "down"):
            acts.append(f'{{http: {{url: "http://127.0.0.1:{port}/hook", timeout: 3}}}}')
        lines.append(f"  {cmd}: [{', '.join(acts)}]")
    path = tmp_path / "assistant.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _labels(path: Path) -> list[str]:
    return [json.loads(line)["label"] for line in path.read_text().splitlines() if line.strip()]


def _spawn(argv: list[str], env: dict, marks: dict[str, str]):
    """`argv` as its own process, its output read on a thread: (process, lines so far, an Event per key of ``marks``
    set when a line holds that key's text, the reader thread). PYTHONFAULTHANDLER: if it hangs, SIGABRT makes it
    print every thread's stack."""
    proc = subprocess.Popen(argv, env={**env, "PYTHONFAULTHANDLER": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out: list[str] = []
    seen = {key: threading.Event() for key in marks}

    def read():
        for line in proc.stdout:
            out.append(line)
            for key, mark in marks.items():
                if mark in line:
                    seen[key].set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return proc, out, seen, reader


def test_listen_on_fake_microphone_fires_actions(pulse_mic, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.received = []
    assistant = _assistant(tmp_path, server.server_address[1])
    cli = [sys.executable, "-m", "voice_gru.cli", "listen", "--no-view", "--assistant", str(assistant)]
    try:
        # the reference: the same recording through --input
        ref_events = tmp_path / "ref.jsonl"
        subprocess.run(cli + ["--input", str(EXAMPLE), "--events", str(ref_events)], check=True,
                       capture_output=True, text=True, env=pulse_mic.env, timeout=120)
        expected = _labels(ref_events)
        assert len(expected) >= 3, f"the shipped model found too few commands in the example: {expected}"
        (tmp_path / "fired.txt").unlink()
        _Hook.received = []

        # the microphone: listen runs as its own process on the PulseAudio source
        mic_events = tmp_path / "mic.jsonl"
        proc, out, seen, reader = _spawn(cli + ["--device", "pulse", "--events", str(mic_events)], pulse_mic.env,
                                         {"listening": "listening:"})
        assert seen["listening"].wait(30), "listen never reported it was listening:\n" + "".join(out)
        pulse_mic.play(EXAMPLE)
        time.sleep(2.0)  # the last word's detection and its actions
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            proc.wait(10)
            reader.join(5)
            pytest.fail("listen did not stop within 30 s of Ctrl-C:\n" + "".join(out))
        reader.join(5)
        assert rc == 130, "".join(out)  # as a file run: the README's status for a run ended by Ctrl-C or SIGTERM
    finally:
        server.shutdown()
    got = _labels(mic_events)
    assert got == expected, f"microphone run detected {got}, --input run {expected}\n" + "".join(out)
    # a session ended by Ctrl-C still says what it did
    assert any(line.startswith(f"{len(got)} command(s) in ") for line in out), "".join(out)
    fired = (tmp_path / "fired.txt").read_text().split()
    assert fired == expected
    hooks = [h["label"] for h in _Hook.received]
    assert hooks == [lab for lab in expected if lab in ("up", "down")]


def test_listen_reconnect_waits_for_a_restarted_sound_server(pulse_mic, tmp_path):
    """`--reconnect`: the sound server dies mid-session (as a microphone unplugged); listen says so, waits, and
    hears the example once the server is back at the same address."""
    from tests.pulse import start_pulse

    cli = [sys.executable, "-m", "voice_gru.cli", "listen", "--no-view"]
    ref_events = tmp_path / "ref.jsonl"
    subprocess.run(cli + ["--input", str(EXAMPLE), "--events", str(ref_events)], check=True, capture_output=True,
                   text=True, env=pulse_mic.env, timeout=120)
    expected = _labels(ref_events)
    events = tmp_path / "mic.jsonl"
    proc, out, seen, reader = _spawn(cli + ["--device", "pulse", "--reconnect", "--events", str(events)], pulse_mic.env,
                                     {"listening": "listening:", "waiting": "waiting for it to come back",
                                      "back": "is back after"})
    again = None
    try:
        assert seen["listening"].wait(30), "".join(out)
        pulse_mic.kill()
        assert seen["waiting"].wait(15), "listen did not say the microphone went away:\n" + "".join(out)
        assert proc.poll() is None, "listen ended instead of waiting:\n" + "".join(out)
        again = start_pulse(runtime=pulse_mic.runtime_dir)
        assert seen["back"].wait(30), "listen did not find the microphone again:\n" + "".join(out)
        time.sleep(2.0)  # PulseAudio's start-up lag before the stream delivers
        again.play(EXAMPLE)
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        if again is not None:
            again.kill()
        reader.join(5)
    assert rc == 130, "".join(out)
    assert _labels(events) == expected, "".join(out)
    assert sum("listening:" in line for line in out) == 1  # one session, said once


def test_listen_without_reconnect_ends_in_one_line_that_names_it(pulse_mic):
    """The sound server dies mid-session: one line, exit status 75 (a device's: systemd restarts the service), and the line says
    that --reconnect would have waited."""
    proc, out, seen, reader = _spawn([sys.executable, "-m", "voice_gru.cli", "listen", "--no-view", "--device", "pulse"],
                                     pulse_mic.env, {"listening": "listening:"})
    try:
        assert seen["listening"].wait(30), "".join(out)
        pulse_mic.kill()
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(5)
    errors = [line for line in out if line.startswith("voice-gru: error:")]
    assert rc == 75 and len(errors) == 1, "".join(out)
    assert "stopped delivering audio" in errors[0] and errors[0].rstrip().endswith("(listen --reconnect waits for it instead)")
    assert "Traceback" not in "".join(out)


@pytest.mark.parametrize("obeys_itself", [False, True])
def test_a_live_assistant_does_not_answer_its_own_voice(pulse_mic, tmp_path, obeys_itself):
    """The room hears what the assistant says: a `say` whose speech the model takes for a command would answer
    itself for ever. Here the speech program says "stop" whatever it is asked (a real clip, played into the room),
    and the example's first "down" sets it off. By default the echo is marked ignored and the assistant speaks once
    per command of the recording; with `listen_while_speaking: true` (which the default protects from) it answers
    its own voice again and again."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    speaker = bindir / "espeak-ng"
    speaker.write_text(f"#!/bin/sh\ncat >/dev/null\nexec paplay --device={pulse_mic.sink} {ROOT / 'tests' / 'data' / 'stop'}"
                       "/0fa1e7a9_nohash_0.wav\n")
    speaker.chmod(0o755)
    assistant = tmp_path / "assistant.yaml"
    assistant.write_text("actions:\n  down: {say: down}\n  stop: {say: stopping}\n"
                         + ("listen_while_speaking: true\n" if obeys_itself else ""))
    env = {**pulse_mic.env, "PATH": f"{bindir}:{pulse_mic.env.get('PATH', '')}"}
    cli = [sys.executable, "-m", "voice_gru.cli", "listen", "--no-view", "--device", "pulse", "--assistant",
           str(assistant), "--commands", "down", "stop"]
    proc, out, seen, reader = _spawn(cli, env, {"listening": "listening:"})
    try:
        assert seen["listening"].wait(30), "".join(out)
        time.sleep(1.0)
        pulse_mic.play(EXAMPLE)
        time.sleep(4.0)  # the last word's action, and what its speech sets off
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        reader.join(5)
    said = [line for line in out if "-> say" in line]
    ignored = [line for line in out if "(ignored: the assistant was speaking)" in line]
    heard = [line.split()[1] for line in out if line.strip().endswith(tuple("0123456789")) and " score " in line]
    if obeys_itself:
        assert heard.count("stop") >= 2 and len(said) >= 4, "".join(out)  # its own "stop", again and again
    else:
        assert heard.count("down") == 2 and len(said) == 2, "".join(out)  # the recording's two, no more
        assert ignored and all(" stop " in line for line in ignored), "".join(out)
