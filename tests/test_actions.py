"""Actions: YAML validation, each action type, the non-blocking worker and the wake-word gate."""

from __future__ import annotations

import dataclasses
import http.server
import json
import logging
import os
import re
import socket
import signal
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from voice_gru import COMMANDS, ConfigError
from voice_gru.actions import (
    Action,
    ActionRunner,
    AssistantConfig,
    WakeGate,
    WakeWord,
    _post_json,
    load_assistant,
    substitute,
    substitute_json,
)
from voice_gru.decision import Command

ROOT = Path(__file__).resolve().parents[1]
PY = json.dumps(sys.executable)  # a YAML/JSON-safe quoted path of this interpreter


def write_cfg(tmp_path: Path, text: str, name: str = "assistant.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def runner_for(tmp_path: Path, text: str, **kw) -> ActionRunner:
    return ActionRunner(load_assistant(write_cfg(tmp_path, text)), **kw)


def make_module(tmp_path: Path, monkeypatch, source: str) -> str:
    """A fresh module on sys.path; returns its (unique) name."""
    name = f"va_hooks_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def hook_server():
    """A local HTTP server that records POSTed JSON bodies."""
    received: list = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            n = int(self.headers.get("Content-Length", 0))
            received.append((self.path, self.headers.get("Content-Type"), json.loads(self.rfile.read(n))))
            code = 500 if self.path == "/fail" else 200
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------------------------
# Placeholders


def test_substitute_placeholders_and_leaves_other_braces():
    cmd = Command("stop", 0.91234, 12.34567)
    assert substitute("{label}|{cmd}|{score}|{t}", cmd) == "stop|stop|0.9123|12.346"
    assert substitute("{score:.2f} {t:.1f}", cmd) == "0.91 12.3"
    assert substitute('print({"a": 1}) {unknown} {}', cmd) == 'print({"a": 1}) {unknown} {}'


def test_substitute_json_numbers_and_nesting():
    cmd = Command("up", 0.5, 2.0)
    body = {"s": "{score}", "t": "{t}", "msg": "said {label} at {t}", "nested": ["{cmd}", 3, None]}
    assert substitute_json(body, cmd) == {
        "s": 0.5, "t": 2.0, "msg": "said up at 2.0", "nested": ["up", 3, None]}


# --------------------------------------------------------------------------------------------
# Each action type


def test_run_action_writes_file_with_placeholders(tmp_path):
    out = tmp_path / "out.txt"
    script = "import sys; open(sys.argv[1], 'w').write(' '.join(sys.argv[2:]))"
    with runner_for(tmp_path, f"""
        actions:
          stop: {{run: [{PY}, "-c", "{script}", "{out}", "{{cmd}}", "{{label}}", "{{score}}", "{{t:.1f}}"], timeout: 10}}
    """) as runner:
        assert runner.submit(Command("stop", 0.875, 3.25))
        assert runner.wait_idle(10)
    assert out.read_text() == "stop stop 0.875 3.2"
    assert runner.fired == 1 and runner.failed == 0
    assert runner.results[0].ok and runner.results[0].action.startswith("run ")


def test_run_action_gets_the_command_in_its_environment(tmp_path):
    out = tmp_path / "env.txt"
    script = "import os, sys; open(sys.argv[1], 'w').write(' '.join(os.environ[k] for k in sys.argv[2:]))"
    with runner_for(tmp_path, f"""
        actions:
          left: {{run: [{PY}, "-c", "{script}", "{out}", VOICE_GRU_COMMAND, VOICE_GRU_SCORE, VOICE_GRU_T, PATH]}}
    """) as runner:
        runner.submit(Command("left", 0.875, 3.25))
        assert runner.wait_idle(10)
    assert out.read_text() == f"left 0.8750 3.250 {os.environ['PATH']}"  # added to the environment, not replacing it


def test_http_action_default_body(tmp_path, hook_server):
    url, received = hook_server
    with runner_for(tmp_path, f"""
        actions:
          up: {{http: {{url: "{url}/hook", timeout: 3}}}}
    """) as runner:
        runner.submit(Command("up", 0.93, 1.5))
        assert runner.wait_idle(10)
    assert received == [("/hook", "application/json", {"t": 1.5, "label": "up", "score": 0.93})]
    assert runner.fired == 1 and runner.results[0].detail == "HTTP 200"


def test_http_action_json_body_with_placeholders(tmp_path, hook_server):
    url, received = hook_server
    with runner_for(tmp_path, f"""
        actions:
          up:
            http:
              url: "{url}/{{label}}"
              json: {{volume: "+10", word: "{{label}}", score: "{{score}}", note: "at {{t}}s"}}
    """) as runner:
        runner.submit(Command("up", 0.8, 4.0))
        assert runner.wait_idle(10)
    assert received == [("/up", "application/json",
                         {"volume": "+10", "word": "up", "score": 0.8, "note": "at 4.0s"})]


def test_call_action_receives_the_command(tmp_path, monkeypatch):
    mod = make_module(tmp_path, monkeypatch, """
        seen = []
        def on_command(cmd):
            seen.append(cmd)
    """)
    with runner_for(tmp_path, f"""
        actions:
          go: {{call: "{mod}:on_command"}}
    """) as runner:
        cmd = Command("go", 0.99, 7.0)
        runner.submit(cmd)
        assert runner.wait_idle(10)
    assert sys.modules[mod].seen == [cmd]
    assert isinstance(sys.modules[mod].seen[0], Command)


def test_print_and_log_actions(tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="voice_gru.actions")
    with runner_for(tmp_path, """
        actions:
          left: {print: "turning {label} ({score:.1f})"}
          right: log
          on: [print, {log: "light {cmd}"}]
    """) as runner:
        runner.submit(Command("left", 0.9, 1.0))
        runner.submit(Command("right", 0.8, 2.0))
        runner.submit(Command("on", 0.7, 3.0))
        assert runner.wait_idle(10)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "turning left (0.9)"
    assert out[1].startswith("on (score 0.70")
    messages = [r.getMessage() for r in caplog.records if r.name == "voice_gru.actions"]
    assert any(m.startswith("right (score 0.80") for m in messages)
    assert "light on" in messages
    assert runner.fired == 4


def test_say_without_speech_program_warns_at_start_and_fails(tmp_path, monkeypatch, caplog):
    """Not "ok": nothing was said. The warning comes when the runner starts, before any command."""
    monkeypatch.setattr("voice_gru.actions.find_speech_program", lambda: None)
    caplog.set_level(logging.INFO, logger="voice_gru.actions")
    with runner_for(tmp_path, """
        actions:
          yes: {say: "confirmed {label}"}
    """) as runner:
        warned = [r for r in caplog.records if r.levelno == logging.WARNING and "no speech program" in r.getMessage()]
        assert len(warned) == 1
        runner.submit(Command("yes", 0.9, 1.0))
        runner.submit(Command("yes", 0.9, 2.0))
        assert runner.wait_idle(10)
    assert runner.fired == 0 and runner.failed == 2
    assert [r.detail for r in runner.results] == ["no speech program (install espeak-ng): not said: 'confirmed yes'"] * 2


def _fake_speaker(tmp_path: Path, monkeypatch, seconds: float = 0.0) -> Path:
    """A fake espeak-ng on PATH that reads the text on stdin (as espeak-ng --stdin) and takes ``seconds`` to say
    it; returns the file it appends each text to, one per line."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    spoken = tmp_path / "spoken.txt"
    fake = bindir / "espeak-ng"
    fake.write_text(f"#!{sys.executable}\nimport sys, time\nassert sys.argv[1:] == ['--stdin']\ntext = sys.stdin.read()\n"
                    f"time.sleep({seconds})\nopen({str(spoken)!r}, 'a').write(text + '\\n')\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir) + os.pathsep + os.environ.get("PATH", ""))
    return spoken


def test_say_uses_espeak_on_path(tmp_path, monkeypatch):
    """A fake espeak-ng on PATH receives the text on stdin."""
    spoken = _fake_speaker(tmp_path, monkeypatch)
    with runner_for(tmp_path, """
        actions:
          yes: {say: "confirmed, score {score}"}
    """) as runner:
        runner.submit(Command("yes", 0.5, 1.0))
        assert runner.wait_idle(10)
    assert runner.failed == 0, list(runner.results)
    assert spoken.read_text() == "confirmed, score 0.5\n"


def test_a_live_assistant_does_not_obey_its_own_voice(tmp_path, monkeypatch):
    """`on: {say: "light on"}` heard back through the microphone would say it again, for ever: while it speaks, and
    for echo_seconds after, commands (the wake word too) are ignored, on live audio only."""
    spoken = _fake_speaker(tmp_path, monkeypatch, 1.0)
    text = """
        echo_seconds: 0.3
        wake_word: {word: go, seconds: 30, fire: true}
        actions:
          go: {say: "going"}
          on: {say: "light on"}
    """
    with runner_for(tmp_path, text, live=True) as runner:
        assert runner.submit(Command("go", 0.9, 1.0))
        deadline = time.monotonic() + 5
        while not runner.speaking() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runner.speaking()
        assert runner.ignored_because(Command("on", 0.9, 1.5)) == "the assistant was speaking"
        assert not runner.submit(Command("on", 0.9, 1.5))  # "light on" heard back
        assert not runner.submit(Command("go", 0.9, 1.6))  # nor does its voice wake it again
        assert runner.wait_idle(10)
        assert runner.speaking()  # its last words are still on their way
        time.sleep(0.4)
        assert not runner.speaking() and runner.ignored_because(Command("on", 0.9, 3.0)) is None
        assert runner.submit(Command("on", 0.9, 3.0))
        assert runner.wait_idle(10)
    assert spoken.read_text().splitlines() == ["going", "light on"] and runner.ignored == 2
    assert runner.summary() == "actions: 2 done, 0 failed; commands that ran none: 2 while the assistant spoke"
    with runner_for(tmp_path, text) as recorded:  # a recording streamed faster than real time: no overlap to judge
        assert recorded.submit(Command("go", 0.9, 1.0))
        time.sleep(0.2)
        assert recorded.submit(Command("on", 0.9, 1.5))
        assert recorded.wait_idle(10)
    with runner_for(tmp_path, text + "    listen_while_speaking: true\n", live=True) as told:
        assert told.submit(Command("go", 0.9, 1.0))
        time.sleep(0.2)
        assert told.speaking() and told.submit(Command("on", 0.9, 1.5))
        assert told.wait_idle(10)
    with pytest.raises(ConfigError, match="listen_while_speaking: expected true or false, got 'sometimes'"):
        load_assistant(write_cfg(tmp_path, "listen_while_speaking: sometimes\nactions: {stop: print}\n"))
    assert load_assistant(write_cfg(tmp_path, "actions: {stop: print}\n")).echo_seconds == 1.0  # the default
    for bad in ("-1", "11", ".nan", "yes", "[1]"):
        with pytest.raises(ConfigError) as info:
            load_assistant(write_cfg(tmp_path, f"echo_seconds: {bad}\nactions: {{stop: print}}\n"))
        assert "echo_seconds: expected a number of seconds from 0 to 10, got " in str(info.value)


def test_an_action_marked_audible_is_heard_like_speech(tmp_path):
    """A program that plays a sound (`run: [paplay, ding.wav]`) is heard by the microphone too: marked
    `audible: true`, commands while it runs, and echo_seconds after, are ignored as during a say."""
    text = "echo_seconds: 0.2\n" f"actions:\n  go: {{run: [{sys.executable!r}, -c, 'import time; time.sleep(0.8)'], audible: true}}\n" \
           "  stop: {run: [echo]}\n"
    with runner_for(tmp_path, text, live=True) as runner:
        assert runner.submit(Command("go", 0.9, 1.0))
        deadline = time.monotonic() + 5
        while not runner.speaking() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runner.ignored_because(Command("stop", 0.9, 1.2)) == "the assistant was speaking"
        assert runner.wait_idle(10)
        time.sleep(0.3)
        assert runner.submit(Command("stop", 0.9, 3.0))  # a run not marked audible makes nobody deaf
        assert runner.wait_idle(10) and not runner.speaking()
    # an audible action that failed made no sound (a `say` with no speech program): no echo to wait out after it
    failing = "echo_seconds: 5\nactions:\n  go: {run: [/nonexistent/player], audible: true}\n  stop: print\n"
    with runner_for(tmp_path, failing, live=True) as runner:
        assert runner.submit(Command("go", 0.9, 1.0))
        assert runner.wait_idle(10) and runner.failed == 1
        assert not runner.speaking() and runner.submit(Command("stop", 0.9, 1.5))
    # one that played until its timeout killed it (a long say) was heard: the echo window follows it all the same
    timed_out = (f"echo_seconds: 5\nactions:\n  go: {{run: [{sys.executable!r}, -c, 'import time; time.sleep(9)'], "
                 "audible: true, timeout: 0.3}\n  stop: print\n")
    with runner_for(tmp_path, timed_out, live=True) as runner:
        assert runner.submit(Command("go", 0.9, 1.0))
        assert runner.wait_idle(10) and runner.failed == 1
        assert runner.speaking() and runner.ignored_because(Command("stop", 0.9, 1.5)) == "the assistant was speaking"
    # live only while the audio keeps the clock's pace (a recording piped in runs far ahead: no echo of anything)
    paced = [True]
    with runner_for(tmp_path, timed_out, live=lambda: paced[0]) as runner:
        assert runner.submit(Command("go", 0.9, 1.0)) and runner.wait_idle(10) and runner.speaking()
        assert runner.ignored_because(Command("stop", 0.9, 1.5)) == "the assistant was speaking"
        paced[0] = False
        assert runner.ignored_because(Command("stop", 0.9, 90.0)) is None
    for bad, says in (("{run: [echo], audible: loud}", "actions.stop.audible: expected true or false, got 'loud'"),
                      ("{print: x, audible: true}", "actions.stop.audible: unknown key for a print action")):
        with pytest.raises(ConfigError, match=says):
            load_assistant(write_cfg(tmp_path, f"actions:\n  stop: {bad}\n"))

def test_a_command_whose_queue_is_full_is_said_ignored_and_dropped(tmp_path):
    """Dropped by a full queue, it was printed and written to --events as if its actions ran."""
    text = (f"queue_size: 1\nactions:\n  go: {{run: [{sys.executable!r}, -c, 'import time; time.sleep(1)']}}\n")
    with runner_for(tmp_path, text) as runner:
        assert runner.submit(Command("go", 0.9, 1.0))
        deadline = time.monotonic() + 5
        while runner.ignored_because(Command("go", 0.9, 2.0)) is not None and time.monotonic() < deadline:
            time.sleep(0.01)  # until its worker has taken it: it runs, the next one waits
        assert runner.submit(Command("go", 0.9, 2.0))
        why = runner.ignored_because(Command("go", 0.9, 3.0))
        assert why == "its earlier actions are still running (1 waiting)"
        assert not runner.submit(Command("go", 0.9, 3.0), said=why) and runner.dropped == 1
        assert runner.wait_idle(10) and runner.fired == 2


def test_an_action_that_waits_for_the_runner_is_refused(tmp_path, monkeypatch):
    """`call` code (or an on_result callback) that waits for the workers ran on one of them: it waited for itself
    for ever, and close() then reported it as still running."""
    name = make_module(tmp_path, monkeypatch, """
        RUNNER = []
        def wait(cmd):
            RUNNER[0].wait_idle(1)
        def close(cmd):
            RUNNER[0].close(1)
    """)
    module = sys.modules.get(name) or __import__(name)
    with runner_for(tmp_path, f"actions:\n  stop: {{call: '{name}:wait'}}\n  go: {{call: '{name}:close'}}\n") as runner:
        module.RUNNER.append(runner)
        runner.submit(Command("stop", 0.9, 1.0))
        runner.submit(Command("go", 0.9, 2.0))
        assert runner.wait_idle(10)
        with pytest.raises(ValueError, match="timeout nan must be None or seconds from 0 up"):
            runner.wait_idle(float("nan"))
    assert runner.failed == 2 and all("called from one of its own actions, which would wait for itself" in r.detail
                                      for r in runner.results)

def test_on_result_callback(tmp_path):
    seen = []
    with runner_for(tmp_path, f"""
        actions:
          stop: [{{run: [{PY}, "-c", "pass"]}}, {{run: [{PY}, "-c", "raise SystemExit(3)"]}}]
    """, on_result=lambda *a: seen.append(a)) as runner:
        runner.submit(Command("stop", 0.9, 1.0))
        assert runner.wait_idle(10)
    assert [(c.label, ok) for c, _, ok, _ in seen] == [("stop", True), ("stop", False)]
    assert seen[0][1].startswith("run ") and seen[0][1].endswith("-c pass")
    assert seen[1][3] == "exit 3"
    assert str(runner.results[1]) == f"stop -> {seen[1][1]} (failed: exit 3)"



def test_actions_built_in_python_without_timeout_or_function(tmp_path):
    """Actions made in code rather than YAML: no timeout means the YAML default, not a crash or no limit;
    a call action with no function fails with a line instead of raising in the worker."""
    seen = []
    cfg = AssistantConfig("python", {"go": (Action(kind="run", argv=(sys.executable, "-c", "pass")),
                                            Action(kind="call", target="mine:missing"))})
    with ActionRunner(cfg, on_result=lambda *a: seen.append(a)) as runner:
        runner.submit(Command("go", 0.9, 1.0))
        assert runner.wait_idle(10)
    assert [(ok, why) for _, _, ok, why in seen] == [(True, "exit 0"), (False, "no function given for mine:missing")]

# --------------------------------------------------------------------------------------------
# Worker: non-blocking, failures, drops


def test_slow_action_does_not_block_submit(tmp_path):
    runner = runner_for(tmp_path, f"""
        queue_size: 8
        actions:
          stop: {{run: [{PY}, "-c", "import time; time.sleep(0.2)"]}}
    """)
    try:
        for i in range(3):
            t0 = time.perf_counter()
            assert runner.submit(Command("stop", 0.9, float(i)))
            assert time.perf_counter() - t0 < 0.05
    finally:
        assert runner.close(timeout=20)
    assert runner.fired == 3


def test_failures_are_logged_with_the_command_and_later_actions_run(tmp_path, monkeypatch, caplog):
    mod = make_module(tmp_path, monkeypatch, """
        def boom(cmd):
            raise ValueError("boom for " + cmd.label)
    """)
    out = tmp_path / "after.txt"
    port = closed_port()
    append = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + chr(10))"
    caplog.set_level(logging.INFO, logger="voice_gru.actions")
    with runner_for(tmp_path, f"""
        actions:
          no:
            - {{run: [{PY}, "-c", "raise SystemExit(1)"]}}
            - {{run: [{PY}, "-c", "{append}", "{out}", "{{label}}-1"]}}
          off:
            - {{call: "{mod}:boom"}}
            - {{run: [{PY}, "-c", "{append}", "{out}", "{{label}}-2"]}}
          down:
            - {{http: {{url: "http://127.0.0.1:{port}/x", timeout: 2}}}}
            - {{run: [{PY}, "-c", "{append}", "{out}", "{{label}}-3"]}}
          right:
            - {{run: [{PY}, "-c", "import time; time.sleep(30)"], timeout: 0.3}}
            - {{run: [{PY}, "-c", "{append}", "{out}", "{{label}}-4"]}}
    """) as runner:
        for i, label in enumerate(["no", "off", "down", "right"]):
            runner.submit(Command(label, 0.9, float(i)))
        assert runner.wait_idle(20)
    assert sorted(out.read_text().split()) == ["down-3", "no-1", "off-2", "right-4"]  # each command on its own worker
    assert runner.failed == 4 and runner.fired == 4 and runner.summary() == "actions: 4 done, 4 failed"
    failures = {r.getMessage().split(" ->")[0]: r.getMessage() for r in caplog.records
                if r.name == "voice_gru.actions" and r.levelno >= logging.WARNING}
    assert len(failures) == 4
    assert failures["no"].startswith("no -> run") and "exit 1" in failures["no"]
    assert failures["off"].startswith("off -> call") and "boom for off" in failures["off"]
    assert failures["down"].startswith("down -> http") and "unreachable" in failures["down"]
    assert failures["right"].startswith("right -> run") and "timed out after 0.3s" in failures["right"]


def _shell_with_a_child(tmp_path: Path, script: str, timeout: float) -> tuple[ActionRunner, float, int]:
    """Run ``sh -c script`` as a ``run`` action (``{pid}``: where it writes its background child's pid); return the
    runner, the seconds from submitting the command to the action's end, and the child's pid."""
    pid_file = tmp_path / "child.pid"
    with runner_for(tmp_path, f"""
        actions:
          go: {{run: [sh, -c, "{script.format(pid=pid_file)}"], timeout: {timeout}}}
    """) as runner:
        t0 = time.monotonic()
        runner.submit(Command("go", 0.9, 1.0))
        assert runner.wait_idle(20)
        took = time.monotonic() - t0
    return runner, took, int(pid_file.read_text())


def test_a_run_that_times_out_is_stopped_at_its_timeout_with_the_programs_it_started(tmp_path):
    """The time limit is the one the file gives (twice it passed the tests: only the message was read), and the
    whole process group goes (killing the shell alone left its `sleep` running)."""
    import os

    runner, took, child = _shell_with_a_child(tmp_path, "sleep 30 & echo $! > {pid}; wait", 1)
    assert runner.failed == 1 and 0.95 <= took < 1.8, took

    def alive() -> bool:  # a zombie (no init to reap it in a container) has ended
        try:
            return Path(f"/proc/{child}/stat").read_text().split(")")[-1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 2.0
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive():
        os.kill(child, 9)
        pytest.fail("the action's child outlived its timeout")


def test_the_documented_default_timeouts(tmp_path):
    """run 10 s, say 15 s, http 5 s, as the README and the assistant file's comments say."""
    loaded = load_assistant(write_cfg(tmp_path, """
        actions:
          stop: {run: [echo]}
          go: {say: hi}
          up: {http: {url: "http://127.0.0.1:9/x"}}
    """))
    assert [loaded.actions[c][0].timeout for c in ("stop", "go", "up")] == [10.0, 15.0, 5.0]


def test_a_slow_action_delays_no_other_command(tmp_path):
    """ "down" runs for 5 s; "up", detected a moment later, has done its action long before."""
    out = tmp_path / "up.txt"
    with runner_for(tmp_path, f"""
        actions:
          down: {{run: [{PY}, "-c", "import time; time.sleep(5)"]}}
          up: {{run: [{PY}, "-c", "open('{out}', 'w').write('up')"]}}
    """) as runner:
        t0 = time.monotonic()
        runner.submit(Command("down", 0.9, 1.0))
        time.sleep(0.2)
        runner.submit(Command("up", 0.9, 1.2))
        while not out.exists() and time.monotonic() - t0 < 4.5:
            time.sleep(0.02)
        assert out.exists() and time.monotonic() - t0 < 4.5
        assert runner.wait_idle(20)
    assert runner.fired == 2


def test_a_launcher_is_done_when_it_exits_and_what_it_started_runs_on(tmp_path):
    """`sh -c "sleep 30 & ..."` exits at once; its background child holds the output open but must neither make
    the action wait for its timeout nor be killed."""
    runner, took, child = _shell_with_a_child(tmp_path, "sleep 30 & echo $! > {pid}; echo started", 5)
    assert runner.fired == 1 and took < 2.0, (runner.results[-1], took)
    os.kill(child, 0)  # still running
    os.kill(child, signal.SIGKILL)


def test_what_a_launcher_started_writes_to_stderr_fills_no_file_and_never_blocks(tmp_path):
    """The program a launcher leaves running inherits the action's stderr: a deleted temporary file there grew for as
    long as it wrote (out of sight of ls and du); a pipe nobody drained would block it once full (64 KiB), and one
    drained only by this process killed it with SIGPIPE once this process was gone (a service stopped). So a detached
    drainer takes the pipe: this process holds no end of it."""
    done = tmp_path / "done"
    script = (f"(sleep 1; i=0; while [ $i -lt 400 ]; do printf '%4000s\\n' x >&2; i=$((i+1)); done; touch {done}; "
              "sleep 30) & echo $! > {pid}; echo started")
    runner, took, child = _shell_with_a_child(tmp_path, script, 5)
    try:
        assert runner.fired == 1 and took < 2.0, (runner.results[-1], took)
        pipe = os.readlink(f"/proc/{child}/fd/2")
        assert pipe.startswith("pipe:")
        ours = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                ours.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:  # the listing's own descriptor, closed by now
                pass
        assert pipe not in ours  # nothing here reads it: the program's stderr does not depend on this process
        deadline = time.monotonic() + 10
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done.exists(), "1.6 MB of stderr blocked the program the launcher started"
    finally:
        os.kill(child, signal.SIGKILL)


def test_the_stderr_pipe_is_closed_on_every_path_and_read_above_descriptor_1024():
    """A start that failed left the pipe's read end open (a thousand missing-program actions and no program could
    start any more); select() refused descriptors from 1024 up, so a program's stderr went undrained there and one
    that wrote 64 KiB blocked until its timeout, its error lost."""
    from voice_gru.actions import _run_process

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = fds()
    for _ in range(50):
        assert _run_process(["no-such-program-voice-gru"], 5) == (False, "program not found: no-such-program-voice-gru")
        assert _run_process([str(Path(sys.executable).parent)], 5)[1].startswith("cannot start")
    with pytest.raises(ValueError):  # an argument with a NUL byte: refused by Popen, the pipe closed all the same
        _run_process(["echo", "a\0b"], 5)
    assert fds() == before
    loud = [sys.executable, "-c", "import sys; sys.stderr.write('x' * 200000 + '\\nthe real error\\n'); sys.exit(3)"]
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1030)]  # a long run's open files: the pipe above 1024
    try:
        t0 = time.monotonic()
        assert _run_process(loud, 5) == (False, "exit 3: the real error")
        assert time.monotonic() - t0 < 4
    finally:
        for fd in held:
            os.close(fd)


def test_a_failing_launcher_says_its_last_line_though_its_child_holds_stderr(tmp_path):
    runner, took, child = _shell_with_a_child(tmp_path, "sleep 30 & echo $! > {pid}; echo no player >&2; exit 3", 5)
    os.kill(child, signal.SIGKILL)
    assert runner.failed == 1 and took < 2.0, took
    assert runner.results[-1].detail == "exit 3: no player"


def test_a_speech_program_that_says_error_and_exits_0_said_nothing(tmp_path, monkeypatch):
    """espeak-ng without a sound device prints "error: No such file or directory" and exits 0."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "espeak-ng"
    fake.write_text(f"#!{sys.executable}\nimport sys\nsys.stdin.read()\n"
                    "print('ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM default', file=sys.stderr)\n"
                    "print('error: No such file or directory', file=sys.stderr)\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir) + os.pathsep + os.environ.get("PATH", ""))
    with runner_for(tmp_path, """
        echo_seconds: 5
        actions:
          yes: {say: "confirmed"}
    """, live=True) as runner:
        runner.submit(Command("yes", 0.9, 1.0))
        assert runner.wait_idle(10)
        assert not runner.speaking()  # nothing was said: no echo of it to wait out, deaf for nothing
    assert runner.failed == 1 and runner.results[-1].detail == "exit 0, but: error: No such file or directory"


def test_what_close_says_it_dropped_never_runs(tmp_path):
    out = tmp_path / "ran.txt"
    append = "import sys, time; time.sleep(1); open(sys.argv[1], 'a').write(sys.argv[2] + chr(10))"
    runner = runner_for(tmp_path, f"""
        actions:
          stop:
            - {{run: [{PY}, "-c", "{append}", "{out}", "{{t}}"], timeout: 30}}
            - print
    """, queue_size=2)
    runner.submit(Command("stop", 0.9, 1.0))
    time.sleep(0.3)  # taken by its worker: the other two wait in the queue
    for t in (2.0, 3.0):
        assert runner.submit(Command("stop", 0.9, t))
    assert runner.close(timeout=0.3) is False
    time.sleep(2.5)
    assert not out.exists()  # the running one was stopped, the queued ones dropped
    assert runner.wait_idle(5)  # and the runner's books are balanced
    runner.close()
    # the totals say so too (they counted neither)
    assert runner.summary() == ("actions: 0 done, 1 failed, 1 not run (the run stopped); commands that ran none: "
                                "2 dropped when the run stopped")


def test_closing_twice_is_harmless(tmp_path):
    with runner_for(tmp_path, """
        actions:
          stop: print
    """) as runner:
        runner.submit(Command("stop", 0.9, 1.0))
        assert runner.close() is True
    assert runner.close() is True and runner.wait_idle(1)


def test_sys_exit_in_a_call_fails_that_action_only(tmp_path, monkeypatch):
    mod = make_module(tmp_path, monkeypatch, """
        import sys

        def quit_(cmd):
            sys.exit(3)
    """)
    with runner_for(tmp_path, f"""
        actions:
          stop: [{{call: "{mod}:quit_"}}, print]
    """) as runner:
        runner.submit(Command("stop", 0.9, 1.0))
        runner.submit(Command("stop", 0.9, 3.0))
        assert runner.wait_idle(10)
    assert runner.failed == 2 and runner.fired == 2  # the worker lived on: both prints ran
    assert runner.results[0].detail.startswith("SystemExit: 3 (at ")


def test_close_names_the_actions_a_hung_call_holds_back(tmp_path, monkeypatch, caplog):
    """A `call` no kill can stop: the rest of its command's list was left out of "not run" (a killed run's was not)."""
    name = make_module(tmp_path, monkeypatch, """
        import time
        def hang(cmd):
            time.sleep(3)
    """)
    caplog.set_level(logging.INFO, logger="voice_gru.actions")
    runner = runner_for(tmp_path, f"""
        actions:
          go: [{{call: "{name}:hang"}}, {{print: after}}]
    """)
    runner.submit(Command("go", 0.9, 1.0))
    t0 = time.monotonic()
    while not runner.busy and time.monotonic() - t0 < 5:
        time.sleep(0.01)
    assert runner.close(timeout=0.3) is False
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING][-1]
    assert warning.startswith(f"actions still running after 0.3s: go -> call {name}:hang") and warning.endswith(
        "; not run: go -> print 'after'")


def test_close_that_times_out_stops_the_program_and_says_what_did_not_run(tmp_path, caplog):
    pid_file = tmp_path / "pid"
    caplog.set_level(logging.INFO, logger="voice_gru.actions")
    runner = runner_for(tmp_path, f"""
        actions:
          up: [{{run: [{PY}, "-c", "import os, time; open('{pid_file}', 'w').write(str(os.getpid())); time.sleep(60)"],
                 timeout: 120}}, {{print: after}}]
    """)
    runner.submit(Command("up", 0.9, 1.0))
    runner.submit(Command("up", 0.9, 3.0))
    t0 = time.monotonic()
    while not pid_file.exists() and time.monotonic() - t0 < 10:
        time.sleep(0.02)
    assert runner.close(timeout=0.5) is False
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING][-1]
    assert warning.startswith("actions still running after 0.5s: up -> run ") and warning.endswith(
        "(stopped); not run: up -> print 'after', up")  # the rest of the stopped command's list, then the queue
    # the stopped program's result was reported before close() returned (a line cut by the exit, or none, before)
    assert [(r.ok, r.detail) for r in runner.results] == [(False, "killed by SIGKILL")]
    assert runner.close(timeout=5) is True  # a second close only waits (the stopped program let the worker end)
    assert sum(r.getMessage().startswith("actions still running") for r in caplog.records) == 1
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the action's program is still running")


def test_missing_program_fails_cleanly(tmp_path):
    with runner_for(tmp_path, """
        actions:
          stop: {run: ["definitely-not-a-program-xyz"]}
    """) as runner:
        runner.submit(Command("stop", 0.9, 0.0))
        assert runner.wait_idle(10)
    assert runner.failed == 1
    assert runner.results[0].detail == "program not found: definitely-not-a-program-xyz"


def test_http_error_status_is_a_failure(tmp_path, hook_server):
    url, received = hook_server
    with runner_for(tmp_path, f"""
        actions:
          up: {{http: "{url}/fail"}}
    """) as runner:
        runner.submit(Command("up", 0.9, 0.0))
        assert runner.wait_idle(10)
    assert runner.failed == 1 and runner.results[0].detail.startswith("HTTP 500")
    assert len(received) == 1


@pytest.fixture
def dripping_server():
    """A server that answers a POST one byte every 0.1 s, headers included: each wait is short, the whole is not."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                for b in b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100:
                    if stop.is_set():
                        break
                    try:
                        conn.sendall(bytes([b]))
                    except OSError:
                        break
                    time.sleep(0.1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/hook"
    finally:
        stop.set()
        thread.join(5)
        srv.close()


def test_http_deadline_covers_a_proxys_slow_connect_answer(monkeypatch):
    """HTTPS through a proxy from the environment: the proxy's CONNECT answer, dripped, is inside the deadline too."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.recv(65536)  # the CONNECT request
            for b in b"HTTP/1.1 200 Connection established\r\nX: " + b"y" * 40 + b"\r\n\r\n":
                try:
                    conn.sendall(bytes([b]))
                except OSError:
                    return
                time.sleep(0.1)

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{srv.getsockname()[1]}")
    t0 = time.monotonic()
    ok, detail = _post_json("https://hooks.example.invalid/hook", {"label": "up"}, 0.5)
    assert not ok and detail == "timed out after 0.5s" and time.monotonic() - t0 < 3.0
    srv.close()


@pytest.mark.parametrize("kind", ["action", "post"])
def test_http_timeout_is_a_deadline_for_the_whole_request(tmp_path, dripping_server, kind):
    # ~15 s to send the whole answer, never 0.5 s without a byte: a per-wait timeout would wait it out
    t0 = time.monotonic()
    if kind == "post":
        ok, detail = _post_json(dripping_server, {"label": "up"}, 0.6)
    else:
        with runner_for(tmp_path, f"""
            actions:
              up: {{http: {{url: "{dripping_server}", timeout: 0.6}}}}
        """) as runner:
            runner.submit(Command("up", 0.9, 0.0))
            assert runner.wait_idle(10)
        ok, detail = runner.failed == 0, runner.results[0].detail
    elapsed = time.monotonic() - t0
    assert not ok and detail == "timed out after 0.6s"
    assert elapsed < 3.0


def test_http_timeout_also_bounds_the_name_lookup(monkeypatch):
    """A slow lookup (an mDNS name, a DNS server that does not answer) held the command's worker past the timeout,
    and the result line then said "timed out after 1s" after 4 s. Nothing is sent once the time is up."""
    import http.server

    got: list[bytes] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    real = socket.getaddrinfo

    def slow(host, *args, **kwargs):
        if host == "hook.example.local":
            time.sleep(2.5)
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    t0 = time.monotonic()
    ok, detail = _post_json(f"http://hook.example.local:{srv.server_port}/x", {"label": "up"}, 0.5)
    assert (ok, detail) == (False, "timed out after 0.5s") and time.monotonic() - t0 < 1.5
    time.sleep(2.5)  # the lookup ends meanwhile: its request is not sent late
    assert got == []
    assert _post_json(f"http://127.0.0.1:{srv.server_port}/x", {"label": "up"}, 2.0) == (True, "HTTP 200") and got
    srv.shutdown()


def test_queue_full_drops_are_counted(tmp_path, monkeypatch, caplog):
    mod = make_module(tmp_path, monkeypatch, """
        import threading
        started = threading.Event()
        release = threading.Event()
        calls = []
        def block(cmd):
            calls.append(cmd.t)
            started.set()
            assert release.wait(10)
    """)
    hooks = __import__(mod)
    runner = runner_for(tmp_path, f"""
        queue_size: 1
        actions:
          stop: {{call: "{mod}:block"}}
    """)
    try:
        assert runner.submit(Command("stop", 0.9, 0.0))  # taken by the worker, which blocks
        assert hooks.started.wait(10)
        assert runner.submit(Command("stop", 0.9, 1.0))  # waits in the queue
        t0 = time.perf_counter()
        assert not runner.submit(Command("stop", 0.9, 2.0))  # queue full: dropped
        assert not runner.submit(Command("stop", 0.9, 3.0))
        assert time.perf_counter() - t0 < 0.05
        assert runner.dropped == 2
    finally:
        hooks.release.set()
        assert runner.close(timeout=10)
    assert hooks.calls == [0.0, 1.0]
    assert runner.fired == 2
    assert runner.summary() == "actions: 2 done, 0 failed; commands that ran none: 2 with its queue full"
    assert sum("dropped stop" in r.getMessage() for r in caplog.records) == 2


def test_silence_unknown_unmapped_and_closed_are_not_queued(tmp_path):
    runner = runner_for(tmp_path, """
        actions:
          stop: print
    """)
    assert not runner.submit(Command("_silence_", 0.9, 0.0))
    assert not runner.submit(Command("_unknown_", 0.9, 0.0))
    assert not runner.submit(Command("go", 0.9, 0.0))  # no actions configured
    assert runner.close(timeout=5)
    assert runner.close(timeout=5)  # idempotent
    assert not runner.submit(Command("stop", 0.9, 1.0))
    assert runner.fired == runner.failed == runner.dropped == 0


def test_close_drains_the_queue(tmp_path):
    out = tmp_path / "n.txt"
    append = "import sys; open(sys.argv[1], 'a').write('x')"
    runner = runner_for(tmp_path, f"""
        actions:
          go: {{run: [{PY}, "-c", "{append}", "{out}"]}}
    """)
    for i in range(5):
        assert runner.submit(Command("go", 0.9, float(i)))
    assert runner.close(timeout=20)
    assert out.read_text() == "xxxxx"


# --------------------------------------------------------------------------------------------
# Config errors: each names the file and the key


@pytest.mark.parametrize("body, key", [
    ("actions: {stpo: log}", "stpo"),
    ("actions: {_silence_: log}", "_silence_"),
    ("actions: {left: {shout: hi}}", "shout"),
    ("actions: {left: shout}", "shout"),
    ("actions: {left: [log, {shout: hi}]}", "shout"),
    ("actions: {up: {http: {url: 'ftp://example.com/x'}}}", "actions.up.http.url"),
    ("actions: {up: {http: {url: 'http:///nohost'}}}", "actions.up.http.url"),
    ("actions: {up: {http: {url: 'not a url'}}}", "actions.up.http.url"),
    ("actions: {up: {http: {url: 'http://h:99999/'}}}", "actions.up.http.url"),
    ("actions: {up: {http: {json: {a: 1}}}}", "actions.up.http.url"),
    ("actions: {up: {http: {url: 'http://h/', method: GET}}}", "method"),
    ("actions: {stop: {run: 'playerctl stop'}}", "actions.stop.run"),
    ("actions: {stop: {run: []}}", "actions.stop.run"),
    ("actions: {stop: {run: [sleep, 1]}}", "actions.stop.run"),
    ("actions: {stop: {run: [playerctl], timeout: 0}}", "actions.stop.timeout"),
    ("actions: {stop: {run: [playerctl], timeout: -1}}", "actions.stop.timeout"),
    ("actions: {stop: {run: [playerctl], timeout: soon}}", "actions.stop.timeout"),
    ("actions: {stop: {run: [playerctl], timeout: .inf}}", "actions.stop.timeout"),
    ("actions: {stop: {run: [playerctl], timeout: true}}", "actions.stop.timeout"),
    ("actions: {up: {http: {url: 'http://h/', timeout: 0}}}", "actions.up.http.timeout"),
    ("actions: {yes: {say: hi, timeout: nope}}", "actions.yes.timeout"),
    ("actions: {no: {say: ''}}", "actions.no.say"),
    ("actions: {no: {say: '  '}}", "actions.no.say"),
    ("actions: {go: {call: 'no_such_module_xyz_123:func'}}", "actions.go.call"),
    ("actions: {go: {call: 'os:no_such_function_xyz'}}", "actions.go.call"),
    ("actions: {go: {call: 'os.path'}}", "actions.go.call"),
    ("actions: {go: {call: 'os:sep'}}", "actions.go.call"),
    ("actions: {go: {print: x, say: y}}", "actions.go"),
    ("actions: {go: null}", "actions.go"),
    ("actions: {go: {print: '{score:zz}'}}", "actions.go.print"),
    ("actionz: {}", "actionz"),
    ("actions: [stop]", "actions"),
    ("queue_size: 0", "queue_size"),
    ("wake_word: hello", "wake_word.word"),
    ("wake_word: {word: _unknown_}", "wake_word.word"),
    ("wake_word: {word: go, seconds: 0}", "wake_word.seconds"),
    ("wake_word: {word: go, secs: 3}", "wake_word.secs"),
    ("wake_word: {word: go, fire: maybe}", "wake_word.fire"),
    # past a day: a typo (the timers themselves overflow past ~25 days, at every command)
    ("actions: {stop: {run: [playerctl], timeout: 86401}}", "actions.stop.timeout"),
    ("actions: {up: {http: {url: 'http://h/', timeout: 1.0e+10}}}", "actions.up.http.timeout"),
    ("actions: {yes: {say: hi, timeout: 3000000}}", "actions.yes.timeout"),
    ("actions: {stop: {run: [playerctl], timeout: 1e3}}", "write it as a number YAML reads"),  # YAML's text
    ("actions:\n  stop: log\n  stop: print\n", "stop"),
    # a whole number of 400 digits: OverflowError and a traceback
    ("actions: {stop: {run: [echo, hi], timeout: " + "9" * 400 + "}}", "actions.stop.timeout"),
    ("wake_word: {word: go, seconds: " + "9" * 400 + "}", "wake_word.seconds"),
    # NaN and Infinity are not JSON: sent as such, a server refuses the body
    ("actions: {stop: {http: {url: 'http://h/', json: .nan}}}", "actions.stop.http.json"),
    ("actions: {stop: {http: {url: 'http://h/', json: {x: .inf}}}}", "actions.stop.http.json"),
])
def test_config_errors_name_file_and_key(tmp_path, body, key):
    path = write_cfg(tmp_path, body + "\n", name=f"bad-{uuid.uuid4().hex[:6]}.yaml")
    with pytest.raises(ConfigError) as info:
        load_assistant(path)
    msg = str(info.value)
    assert str(path) in msg
    assert key in msg


def test_a_call_module_that_exits_while_imported_is_a_config_error(tmp_path, monkeypatch):
    """sys.exit() at a hook module's top level ended listen with status 4 and not a word."""
    mod = make_module(tmp_path, monkeypatch, "import sys\nsys.exit(4)\n")
    with pytest.raises(ConfigError, match=rf"actions.go.call: cannot import module '{mod}' \(SystemExit: 4\)"):
        load_assistant(write_cfg(tmp_path, f"actions: {{go: {{call: '{mod}:f'}}}}\n"))


def test_an_async_hook_runs_to_its_end_and_a_generator_is_refused(tmp_path, monkeypatch):
    """An async def was called, its coroutine never awaited, and the action reported ok; a generator's body never
    runs either."""
    mod = make_module(tmp_path, monkeypatch, """
        import asyncio
        seen = []
        async def notify(cmd):
            await asyncio.sleep(0.01)
            seen.append(cmd.label)
            return "done"
        def gen(cmd):
            yield cmd
    """)
    with runner_for(tmp_path, f"actions: {{go: {{call: '{mod}:notify'}}}}\n") as runner:
        runner.submit(Command("go", 0.9, 1.0))
        assert runner.wait_idle(10)
    assert sys.modules[mod].seen == ["go"] and runner.results[0].detail == "returned 'done'"
    with pytest.raises(ConfigError, match=f"actions.go.call: '{mod}:gen' is a generator function"):
        load_assistant(write_cfg(tmp_path, f"actions: {{go: {{call: '{mod}:gen'}}}}\n"))


def test_a_hooks_message_over_several_lines_is_reported_on_one(tmp_path, monkeypatch):
    mod = make_module(tmp_path, monkeypatch, "def f(cmd):\n    raise RuntimeError('first line\\nsecond line')\n")
    with runner_for(tmp_path, f"actions: {{go: {{call: '{mod}:f'}}}}\n") as runner:
        runner.submit(Command("go", 0.9, 1.0))
        assert runner.wait_idle(10)
    assert runner.results[0].detail.startswith("RuntimeError: first line second line (at ")


def test_call_module_that_fails_to_import_is_a_config_error(tmp_path, monkeypatch):
    mod = make_module(tmp_path, monkeypatch, "raise RuntimeError('broken hook module')\n")
    path = write_cfg(tmp_path, f"actions: {{go: {{call: '{mod}:f'}}}}\n")
    with pytest.raises(ConfigError, match="broken hook module") as info:
        load_assistant(path)
    assert str(path) in str(info.value) and "actions.go.call" in str(info.value)


def test_a_call_target_that_cannot_take_the_command_is_a_config_error(tmp_path, monkeypatch):
    mod = make_module(tmp_path, monkeypatch, "def none():\n    pass\n\ndef two(cmd, extra):\n    pass\n")
    for func in ("none", "two"):
        with pytest.raises(ConfigError, match=f"actions.go.call: '{mod}:{func}' cannot be called with the command"):
            load_assistant(write_cfg(tmp_path, f"actions: {{go: {{call: '{mod}:{func}'}}}}\n"))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_assistant(tmp_path / "nope.yaml")
    bad = write_cfg(tmp_path, "actions: {stop: [\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_assistant(bad)
    assert str(bad) in str(info.value)
    deep = write_cfg(tmp_path, "actions: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_assistant(deep)


def test_yes_no_on_off_are_commands_not_booleans(tmp_path):
    cfg = load_assistant(write_cfg(tmp_path, """
        wake_word: {word: on, fire: true}
        actions:
          yes: log
          no: log
          on: log
          off: {say: yes}
    """))
    assert set(cfg.actions) == {"yes", "no", "on", "off"}
    assert cfg.wake_word == WakeWord("on", 5.0, True)
    assert cfg.actions["off"][0].text == "yes"


def test_shapes_and_defaults(tmp_path, monkeypatch):
    mod = make_module(tmp_path, monkeypatch, "def f(cmd):\n    return 42\n")
    cfg = load_assistant(write_cfg(tmp_path, f"""
        wake_word: {{word: go, fire: true}}
        actions:
          stop: {{run: ["playerctl", "stop"], timeout: 5}}
          yes: {{say: "confirmed"}}
          up: {{http: {{url: "http://127.0.0.1:8080/hook", json: {{volume: "+10"}}, timeout: 3}}}}
          down: {{http: "https://example.com/x", timeout: 2}}
          go: {{call: "{mod}:f"}}
          left: {{print: "turning left"}}
          right: log
    """))
    assert isinstance(cfg, AssistantConfig)
    assert cfg.wake_word == WakeWord("go", 5.0, True)
    a = cfg.actions
    assert a["stop"] == (Action(kind="run", argv=("playerctl", "stop"), timeout=5.0),)
    assert a["yes"][0].timeout == 15.0
    assert a["up"][0].body == {"volume": "+10"} and a["up"][0].timeout == 3.0
    assert a["down"][0].timeout == 2.0 and a["down"][0].body is None
    assert a["go"][0].func(Command("go", 1, 0)) == 42
    assert a["right"] == (Action(kind="log"),)
    assert a["stop"][0].describe() == "run playerctl stop"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.queue_size = 3  # frozen
    with pytest.raises(TypeError):
        cfg.actions["no"] = ()  # read-only mapping


def test_a_misspelled_placeholder_is_warned_about_at_load(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="voice_gru.actions")
    folder = tmp_path / "100%s"  # the file's name goes before the message, not into its format
    folder.mkdir()
    load_assistant(write_cfg(folder, 'actions:\n  stop: {print: "heard {lable} at {t:.1f}s, json {\\"a\\": 1}"}\n'))
    warned = [r.getMessage() for r in caplog.records if r.name == "voice_gru.actions"]
    assert warned == [f"{folder / 'assistant.yaml'}: actions.stop.print: {{lable}} is not a placeholder ({{cmd}}, "
                      "{label}, {score}, {t}); it is kept as written"]


@pytest.mark.parametrize("text", ["{score!r}", "{ cmd }", "{cmd.upper}", "{label[0]}", "{score:.2f and on"])
def test_a_placeholder_written_almost_right_is_warned_about_at_load(tmp_path, caplog, text):
    """These were kept as written without a word."""
    caplog.set_level(logging.WARNING, logger="voice_gru.actions")
    load_assistant(write_cfg(tmp_path, f"actions:\n  stop: {{print: {json.dumps('heard ' + text)}}}\n"))
    warned = [r.getMessage() for r in caplog.records if r.name == "voice_gru.actions"]
    assert len(warned) == 1 and "is not a placeholder" in warned[0] and "actions.stop.print" in warned[0], warned


def test_placeholders_in_json_keys_are_filled(tmp_path, hook_server):
    url, received = hook_server
    with runner_for(tmp_path, f"actions: {{up: {{http: {{url: '{url}/k', json: {{'{{cmd}}': '{{score}}'}}}}}}}}\n") as r:
        r.submit(Command("up", 0.8, 4.0))
        assert r.wait_idle(10)
    assert received == [("/k", "application/json", {"up": 0.8})]


def test_a_url_with_a_space_or_an_accent_is_sent_percent_encoded(tmp_path, hook_server):
    """Accepted at load, it failed at every command (InvalidURL, UnicodeEncodeError)."""
    url, received = hook_server
    with runner_for(tmp_path, f"""
        actions:
          up: {{http: "{url}/light on?room=salle à manger&s={{score:6.2f}}"}}
          down: {{http: "{url}/lumi%C3%A8re"}}
    """) as runner:
        runner.submit(Command("up", 0.8, 4.0))
        runner.submit(Command("down", 0.8, 6.0))
        assert runner.wait_idle(10)
    assert runner.failed == 0, [x.detail for x in runner.results]
    assert sorted(path for path, _, _ in received) == ["/light%20on?room=salle%20%C3%A0%20manger&s=%20%200.80",
                                                       "/lumi%C3%A8re"]



@pytest.mark.parametrize("spec", ["10000000000", ".5000f", ">1001"])
def test_a_placeholder_wider_than_any_line_is_refused_at_load(tmp_path, spec):
    """`{score:10000000000}` once passed and filled 20 GB of memory with spaces at the first command."""
    with pytest.raises(ConfigError, match=r"actions.stop.print: bad placeholder .* over 1000"):
        load_assistant(write_cfg(tmp_path, f'actions:\n  stop: {{print: "{{score:{spec}}}"}}\n'))
    load_assistant(write_cfg(tmp_path, 'actions:\n  stop: {print: "{score:>1000.3f}"}\n'))  # wide, not absurd

@pytest.mark.parametrize("text", ["# nothing\n", "actions: {}\n", "wake_word: go\n"])
def test_an_assistant_without_actions_is_refused(tmp_path, text):
    """It would listen and do nothing: most likely the wrong file, or actions indented under another key."""
    path = write_cfg(tmp_path, text)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: actions: no command has an action"):
        load_assistant(path)


def test_default_assistant_yaml_loads_and_prints(capsys):
    cfg = load_assistant(ROOT / "configs" / "assistant.yaml")
    assert set(cfg.actions) == set(COMMANDS)
    assert all(act.kind == "print" for acts in cfg.actions.values() for act in acts)
    assert cfg.wake_word is None
    with ActionRunner(cfg) as runner:
        for i, label in enumerate(COMMANDS):
            assert runner.submit(Command(label, 0.9, float(i)))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(COMMANDS)
    assert "stop -> would stop the music" in out
    assert runner.fired == len(COMMANDS) and runner.failed == 0


def test_default_assistant_examples_are_valid(tmp_path, monkeypatch):
    """The commented examples in the default file, uncommented, form a valid config."""
    text = (ROOT / "configs" / "assistant.yaml").read_text()
    examples = text.split("# Examples", 1)[1]
    lines = [ln[1:] for ln in examples.splitlines() if ln.startswith("#  ")]
    make_module(tmp_path, monkeypatch, "def on_command(cmd):\n    pass\n")
    mod_name = sorted(tmp_path.glob("va_hooks_*.py"))[0].stem
    body = "actions:\n" + "\n".join(lines).replace("my_hooks:", f"{mod_name}:") + "\n"
    cfg = load_assistant(write_cfg(tmp_path, body, name="examples.yaml"))
    assert {a.kind for acts in cfg.actions.values() for a in acts} == {"run", "say", "http", "call", "log"}


# --------------------------------------------------------------------------------------------
# Wake word


def test_wake_gate_by_stream_time():
    gate = WakeGate("go", seconds=5.0)
    assert not gate.accept(Command("stop", 0.9, 1.0))  # not woken yet
    assert not gate.accept(Command("go", 0.9, 10.0))  # the wake word itself doesn't fire
    assert gate.is_open(12.0)
    assert gate.accept(Command("stop", 0.9, 12.0))
    assert gate.accept(Command("up", 0.9, 15.0))  # several commands within the window
    assert not gate.accept(Command("stop", 0.9, 15.01))  # window over
    assert not gate.accept(Command("go", 0.9, 20.0))  # wake again ...
    assert gate.accept(Command("down", 0.9, 24.0))
    assert not gate.accept(Command("down", 0.9, 3.0))  # time went backwards: a new stream
    gate.reset()
    assert not gate.is_open(20.5)


def test_wake_gate_fire():
    gate = WakeGate("go", seconds=2.0, fire=True)
    assert gate.accept(Command("go", 0.9, 1.0))
    assert gate.accept(Command("stop", 0.9, 2.5))


def test_a_call_module_beside_the_assistant_file_is_found(tmp_path, monkeypatch):
    """... and so is a module it imports only when it is called (the folder left the path once the file was read)."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # whatever the assistant adds goes with the test
    name = f"va_beside_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(f"def on_stop(cmd):\n    import {name}_helper\n"
                                         f"    return {name}_helper.word(cmd.label)\n")
    (tmp_path / f"{name}_helper.py").write_text("def word(label):\n    return 'stopped ' + label\n")
    assert str(tmp_path) not in sys.path
    cfg = load_assistant(write_cfg(tmp_path, f"actions:\n  stop: {{call: '{name}:on_stop'}}\n"))
    assert cfg.actions["stop"][0].func(Command("stop", 0.9, 1.0)) == "stopped stop"
    other = tmp_path / "other"
    other.mkdir()
    load_assistant(write_cfg(other, "actions: {stop: print}\n"))
    assert str(other) not in sys.path  # a file without call actions leaves the path as it was


def test_a_run_program_that_is_a_folder_or_not_executable_is_said_at_load(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="voice_gru.actions")
    script = tmp_path / "light.sh"
    script.write_text("#!/bin/sh\n")
    path = write_cfg(tmp_path, f"actions: {{stop: {{run: ['{tmp_path}']}}, go: {{run: ['{script}']}}}}\n")
    load_assistant(path)
    warned = [r.getMessage() for r in caplog.records if r.name == "voice_gru.actions"]
    assert warned == [f"{path}: actions.stop.run: '{tmp_path}' is a folder, not a program; that action will fail",
                      f"{path}: actions.go.run: '{script}' is not executable (chmod +x it, or run it through its "
                      "interpreter); that action will fail"]


def test_a_command_submitted_while_another_thread_closes_runs_or_is_refused(tmp_path, capsys):
    """submit() checked "closed" under the lock but queued after it: a close() in between put the lane's stop marker
    first, and the command, accepted (True), never ran (an API caller with its audio on one thread)."""
    import threading

    runner = runner_for(tmp_path, 'actions: {up: {print: "up at {t}"}}\n')
    assert runner.submit(Command("up", 0.9, 1.0))  # the lane exists
    lane = runner._lanes["up"]
    real = lane.queue.put_nowait
    closer = threading.Thread(target=runner.close)

    def slow_put(item):
        closer.start()  # close() while this submit is between its check and its queueing
        closer.join(0.3)
        real(item)

    lane.queue.put_nowait = slow_put
    accepted = runner.submit(Command("up", 0.9, 2.0))
    closer.join(10)
    ran = capsys.readouterr().out.splitlines()
    assert ran == (["up at 1.0", "up at 2.0"] if accepted else ["up at 1.0"])


def test_wake_replay_counts_what_the_gate_lets_through():
    """Detections already made, replayed through the gate: out of order as given, counted as a runner would act."""
    from voice_gru.actions import WakeWord, wake_replay

    events = [{"t": t, "label": lab, "score": 0.9} for t, lab in
              [(9.5, "up"), (1.0, "down"), (2.0, "up"), (3.0, "down"), (8.0, "down"), (9.0, "up"), (10.0, "stop")]]
    # down@3 within 5 s of up@2; down@8 is 6 s after it; up@9 and up@9.5 wake again; stop@10 within
    assert wake_replay(WakeWord("up", 5.0), events) == {"wakes": 3, "acted": 2}
    assert wake_replay(WakeWord("up", 5.0, fire=True), events) == {"wakes": 3, "acted": 5}
    assert wake_replay(WakeWord("up", 6.5), events) == {"wakes": 3, "acted": 3}
    assert wake_replay(WakeWord("go", 5.0), events) == {"wakes": 0, "acted": 0}
    # what a runner runs: a wake word that fires but has no action of its own, a command with none, run nothing
    assert wake_replay(WakeWord("up", 5.0, fire=True), events, acting=["down"]) == {"wakes": 3, "acted": 1}


def test_runner_with_wake_word(tmp_path, capsys):
    with runner_for(tmp_path, """
        wake_word: {word: go, seconds: 3}
        actions:
          stop: {print: "stop at {t}"}
    """) as runner:
        assert runner.ignored_because(Command("stop", 0.9, 1.0)) == "not after the wake word 'go'"
        assert runner.ignored_because(Command("go", 0.9, 1.0)) is None
        assert not runner.submit(Command("stop", 0.9, 1.0))
        assert not runner.submit(Command("go", 0.9, 2.0))
        assert runner.ignored_because(Command("stop", 0.9, 4.0)) is None
        assert runner.submit(Command("stop", 0.9, 4.0))
        assert not runner.submit(Command("stop", 0.9, 6.0))
    assert capsys.readouterr().out.splitlines() == ["stop at 4.0"]
    assert runner.ignored == 2 and runner.fired == 1
    assert runner.summary() == "actions: 1 done, 0 failed; commands that ran none: 2 before the wake word 'go'"
    # a command without an action (`--commands` beyond the file: only printed) is not "ignored": nothing would run
    with runner_for(tmp_path, "wake_word: {word: go, seconds: 3}\nactions: {stop: print}\n") as bare:
        assert bare.ignored_because(Command("down", 0.9, 1.0)) is None and not bare.submit(Command("down", 0.9, 1.0))
        assert bare.ignored == 0
    assert load_assistant(write_cfg(tmp_path, "wake_word: {word: go, false_accepts_per_hour: null}\nactions: {stop: print}\n"
                                    )).wake_word.false_accepts_per_hour is None
    assert load_assistant(write_cfg(tmp_path, "wake_word: go\nactions: {stop: print}\n")).wake_word.false_accepts_per_hour == 20
    with pytest.raises(ConfigError, match=r"wake_word.false_accepts_per_hour: expected a positive number of false accepts"):
        load_assistant(write_cfg(tmp_path, "wake_word: {word: go, false_accepts_per_hour: 0}\nactions: {stop: print}\n"))
    with pytest.raises(ConfigError, match=r"actions.go: 'go' is the wake word and wake_word.fire is false"):
        load_assistant(write_cfg(tmp_path, """
            wake_word: {word: go, seconds: 3}
            actions:
              go: {print: "go fired"}
              stop: print
            """))


def test_an_assistant_listens_for_the_commands_it_maps_and_its_wake_word(tmp_path):
    cfg = load_assistant(write_cfg(tmp_path, """
        wake_word: {word: go, seconds: 5}
        actions:
          stop: {print: stop}
          left: {print: left}
        """))
    assert cfg.commands == ("left", "stop", "go")  # the model's order
    every = load_assistant(ROOT / "configs" / "assistant.yaml")
    assert every.commands == COMMANDS


def test_an_assistant_file_holds_its_sensitivity(tmp_path, capsys):
    """A service runs the assistant file: its sensitivity had to go into the unit's command line, as flags."""
    from voice_gru.cli import main

    cfg = load_assistant(write_cfg(tmp_path, """
        sensitivity: {false_accepts_per_hour: 5, thresholds: {down: 0.99}}
        actions:
          down: {print: DOWN}
          up: {print: UP}
        """))
    assert (cfg.false_accepts_per_hour, cfg.threshold, dict(cfg.thresholds)) == (5.0, None, {"down": 0.99})
    assert cfg.threshold_values == ["down=0.99"]
    example = str(ROOT / "voice_gru" / "assets" / "example.wav")
    path = tmp_path / "assistant.yaml"
    assert main(["listen", "--input", example, "--no-view", "--assistant", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err.startswith(f"sensitivity from {path}: false_accepts_per_hour 5 down=0.99\n"
                          "operating point: at most 5 false accepts/hour from up, down") and "adjusted: down=0.99" in err
    assert "DOWN" not in out and "UP" in out  # down at 0.99: its two words (0.97) do not reach it
    # flags given too: theirs, said so
    assert main(["listen", "--input", example, "--no-view", "--assistant", str(path), "--threshold", "0.5"]) == 0
    err = capsys.readouterr().err
    assert f"used instead of {path}'s sensitivity" in err and "sensitivity: threshold 0.5 for every command" in err
    # errors about the file's values name its keys, not flags nobody typed (a service has none)
    low = write_cfg(tmp_path, "sensitivity: {false_accepts_per_hour: 0.3}\nactions: {stop: {print: s}, go: {print: g}}\n",
                    "low.yaml")
    assert main(["listen", "--input", example, "--no-view", "--assistant", str(low)]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        f"voice-gru: error: {low}: sensitivity.false_accepts_per_hour 0.3: for stop, go the lowest")
    off = write_cfg(tmp_path, "sensitivity: {threshold: 1.01}\nactions: {stop: {print: s}}\n", "off.yaml")
    assert main(["listen", "--input", example, "--no-view", "--assistant", str(off)]) == 2
    assert f"error: {off}: sensitivity.threshold(s) 1.01: switches off every command" in capsys.readouterr().err
    # --commands narrows the file's commands: its pair for one left out does nothing, and is no error
    pair = write_cfg(tmp_path, "sensitivity: {thresholds: {stop: 0.95}}\nactions: {stop: {print: s}, down: {print: d}}\n",
                     "pair.yaml")
    assert main(["listen", "--input", example, "--no-view", "--assistant", str(pair), "--commands", "down"]) == 0
    out, err = capsys.readouterr()
    assert "DOWN" not in out and f"{pair}: its sensitivity is for commands --commands leaves out: the model's is used" in err
    # a wake word with one number and pairs: one scheme for all, refused beside a rate before any line says otherwise
    wake = write_cfg(tmp_path, "wake_word: {word: go, seconds: 5}\nactions: {stop: {print: s}, up: {print: u}}\n",
                     "wake.yaml")
    assert main(["listen", "--input", example, "--no-view", "--assistant", str(wake), "--false-accepts-per-hour", "5",
                 "--threshold", "0.95", "--threshold", "up=0.99"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "voice-gru: error: give --threshold T or --false-accepts-per-hour, not both (COMMAND=VALUE pairs may adjust "
        "single commands of a point)"]
    assert main(["listen", "--input", example, "--no-view", "--assistant", str(wake), "--threshold", "0.95",
                 "--threshold", "up=0.99", "--seconds", "1"]) == 0
    assert ("--threshold 0.95 up=0.99: these thresholds, the wake word 'go' too (its own point and "
            "wake_word.false_accepts_per_hour are not used)") in capsys.readouterr().err
    assert main(["listen", "--input", example, "--no-view", "--assistant", str(wake), "--threshold", "1.01",
                 "--threshold", "go=0.9"]) == 2  # the wake word alone on, and it runs nothing: nothing ever would
    assert "switches off every command after the wake word 'go'" in capsys.readouterr().err
    assert main(["listen", "--input", example, "--no-view", "--assistant", str(wake), "--threshold", "stop=1.01",
                 "--threshold", "up=1.01"]) == 2  # pairs alone too
    assert "switches off every command after the wake word 'go'" in capsys.readouterr().err
    both = load_assistant(write_cfg(tmp_path, "sensitivity: {false_accepts_per_hour: 5, threshold: null}\n"
                                              "actions: {stop: {print: s}}\n"))  # null: not set, as everywhere
    assert both.false_accepts_per_hour == 5.0 and both.threshold is None
    # evaluate-stream scores the recording as the assistant runs: its commands, its sensitivity
    out_json = tmp_path / "r.json"
    runs = write_cfg(tmp_path, "sensitivity: {false_accepts_per_hour: 5, thresholds: {down: 0.99}}\n"
                               "actions: {down: {print: DOWN}, up: {print: UP}}\n", "runs.yaml")
    assert main(["evaluate-stream", "--input", example, "--assistant", str(runs), "--json", str(out_json)]) == 0
    err = capsys.readouterr().err
    assert f"sensitivity from {runs}: false_accepts_per_hour 5 down=0.99" in err and "adjusted: down=0.99" in err
    scored = json.loads(out_json.read_text())
    assert scored["can_fire"]["commands"] == ["up", "down"] and scored["per_command"]["down"]["hits"] == 0
    assert main(["evaluate-stream", "--input", example, "--assistant", str(wake)]) == 2
    assert "its commands run only within 5 s after the wake word 'go'" in capsys.readouterr().err
    one = load_assistant(write_cfg(tmp_path, "sensitivity: {threshold: 0.9, thresholds: {stop: 0.95}}\n"
                                             "actions: {stop: {print: s}, go: {print: g}}\n"))
    assert one.threshold_values == ["0.9", "stop=0.95"]
    for bad, says in (("{false_accepts_per_hour: 5, threshold: 0.9}", "give false_accepts_per_hour or threshold, not both"),
                      ("{threshold: 2}", "sensitivity.threshold: expected a posterior from 0.01 to 1"),
                      ("{thresholds: {jump: 0.9}}", "sensitivity.thresholds.jump: unknown command"),
                      ("{thresholds: {left: 0.9}}", "sensitivity.thresholds.left: 'left' has no action here"),
                      ("{false_accepts_per_hour: -1}", "sensitivity.false_accepts_per_hour: expected a positive number"),
                      ("{patience: 3}", "sensitivity.patience: unknown key"), ("5", "sensitivity: expected a mapping")):
        with pytest.raises(ConfigError, match=re.escape(says)):
            load_assistant(write_cfg(tmp_path, f"sensitivity: {bad}\nactions: {{stop: {{print: s}}}}\n"))


def test_a_runner_and_a_wake_gate_refuse_settings_that_would_never_open_or_never_bound():
    """A NaN or negative window gave a gate that never opens, an unknown word one never woken; -1 an unbounded queue."""
    for word, seconds, says in (("go", float("nan"), "window nan"), ("go", -5, "window -5"),
                                ("jump", 5, "wake word 'jump': not a command")):
        with pytest.raises(ConfigError, match=says):
            WakeGate(word, seconds)
    cfg = AssistantConfig(source="test", actions={"stop": (Action("print", text="x"),)})
    with pytest.raises(ConfigError, match="queue_size -1: must be a positive whole number"):
        ActionRunner(cfg, queue_size=-1)


def test_an_assistant_file_that_is_a_folder_is_called_so(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_assistant(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a folder, not an assistant config file"
    with pytest.raises(ConfigError, match="assistant config file not found"):
        load_assistant(tmp_path / "none.yaml")


def test_a_close_cut_short_while_its_queue_is_full_is_finished_by_the_next():
    """Ctrl-C while close() waited for room for its stop in a full queue: that lane never got one, and a second
    close() waited for ever (or said actions were running that were not)."""
    # Python leaves Ctrl-C ignored where it started ignored (the suite run in the background of a script, `cmd &`)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _close_cut_short()
    finally:
        signal.signal(signal.SIGINT, previous)


def _close_cut_short() -> None:
    started = threading.Event()

    def act(cmd):
        started.set()
        time.sleep(0.6)

    cfg = AssistantConfig(source="test", actions={"stop": (Action("call", target="m:f", func=act),)})
    runner = ActionRunner(cfg, queue_size=1)
    runner.submit(Command("stop", 0.9, 1.0))
    assert started.wait(5)
    assert runner.submit(Command("stop", 0.9, 2.0))  # one running, one queued: the queue is full
    main_thread = threading.get_ident()  # to the waiting thread itself: another would not wake its wait
    threading.Timer(0.2, lambda: signal.pthread_kill(main_thread, signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        runner.close(timeout=10)
    done: dict = {}
    closer = threading.Thread(target=lambda: done.setdefault("ok", runner.close(timeout=None)), daemon=True)
    closer.start()
    closer.join(10)
    assert done == {"ok": True} and runner.fired == 2  # both ran, and the workers ended


def test_a_results_line_names_the_action_as_it_ran(tmp_path):
    """`yes -> run rec.sh '{label}' '{score:.3f}' (ok: exit 0)`: the result named the template, not what ran."""
    with runner_for(tmp_path, f"""
        actions:
          stop: [{{run: [{PY}, "-c", "pass", "{{label}}", "{{score:.2f}}"]}}, {{print: "heard {{cmd}} at {{t:.1f}}"}},
                 {{http: {{url: "http://127.0.0.1:9/{{label}}", timeout: 1}}}}]
    """) as runner:
        runner.submit(Command("stop", 0.912, 2.25))
        assert runner.wait_idle(20)
    names = [r.action for r in runner.results]
    assert names == [f"run {sys.executable} -c pass stop 0.91", "print 'heard stop at 2.2'",
                     "http POST http://127.0.0.1:9/stop"]
