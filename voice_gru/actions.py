"""Command -> action(s): a YAML mapping validated at start-up and a worker thread that runs them.

The audio path only calls ``ActionRunner.submit`` (never blocks: a full queue drops the command
with a warning); each command has its own worker, which runs its actions in order (a slow action of
one command never delays another's), reports every failure with the command that caused it and
carries on.

YAML (``configs/assistant.yaml``)::

    wake_word: null            # or "go", or {word: go, seconds: 5, fire: false, false_accepts_per_hour: 20}
    queue_size: 16             # a command's detections waiting for its worker before new ones are dropped
    listen_while_speaking: false  # live audio: commands heard while a say (or `audible: true`) action runs are ignored
    echo_seconds: 1.0          # ... and for this long after it stops (its sound still in the room and the buffers)
    actions:
      stop: {run: ["playerctl", "stop"], timeout: 5}
      on: {run: ["paplay", "chime.wav"], audible: true}    # heard by the microphone, as a say is
      yes: {say: "confirmed"}
      up: {http: {url: "http://127.0.0.1:8080/hook", json: {volume: "+10"}, timeout: 3}}
      go: {call: "pkg.module:func"}
      left: [{print: "turning left"}, log]
      right: log

Placeholders ``{cmd}``/``{label}`` (the command word), ``{score}`` and ``{t}`` (stream seconds),
optionally with a format spec (``{score:.2f}``), are substituted in ``run`` arguments, ``say``/
``print``/``log`` text and the ``http`` URL and JSON body; other braces are left alone. In a JSON
body a string that is exactly ``"{score}"`` or ``"{t}"`` becomes a number. A ``run`` program also gets them in its
environment: ``VOICE_GRU_COMMAND``, ``VOICE_GRU_SCORE``, ``VOICE_GRU_T``.

``yes``/``no``/``on``/``off`` are read as plain strings (YAML 1.2), not booleans, so they work as
command keys.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http.client
import importlib
import inspect
import ipaddress
import json as jsonlib
import logging
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import queue
import select
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Collection, Iterator, Mapping, Sequence

from voice_gru import COMMANDS
from voice_gru.config import THRESHOLD_RANGE, finite, number_in_text, shown_value, threshold_ok, yaml_loader, yaml_problem
from voice_gru.decision import Command
from voice_gru.errors import ConfigError, not_a_file, one_line
from voice_gru.fileio import print_line

logger = logging.getLogger("voice_gru.actions")

ACTION_TYPES = ("run", "say", "http", "call", "print", "log")
TOP_LEVEL_KEYS = ("wake_word", "actions", "sensitivity", "queue_size", "listen_while_speaking", "echo_seconds")
SENSITIVITY_KEYS = ("false_accepts_per_hour", "threshold", "thresholds")
DEFAULT_TIMEOUTS = {"run": 10.0, "say": 15.0, "http": 5.0}
QUEUE_FULL = "its earlier actions are still running"  # ignored_because's words for a command's full queue
# how the results of actions that never got to make a sound begin (an echo window after them would make a deaf
# assistant for nothing)
SAID_NOTHING = "exit 0, but"  # a speech program that exits 0 after its error (espeak-ng without a sound device)
FULL, SPOKE, BEFORE_WAKE = "with its queue full", "while the assistant spoke", "before the wake word"  # summary()
NEVER_STARTED = ("program not found", "cannot start", "no speech program", "unreachable", SAID_NOTHING)
DEFAULT_QUEUE_SIZE = 16
MAX_TIMEOUT_S = 86400.0  # a day: past ~25 days the timers themselves overflow (a typo, never a wish)
KILLED_SETTLE_S = 1.0  # how long close() waits, after killing the programs, for their workers to report and end
# after a say action ends, its last words are still on their way through the room, the sound server's buffers and
# the recognizer (~0.2 s from a word's end to its detection): a command until then is the assistant's own voice
# (the assistant file's ``echo_seconds``; a Bluetooth speaker's delay or a long room may want more)
SPEECH_ECHO_S = 1.0
MAX_ECHO_S = 10.0
SPEECH_PROGRAMS = ("espeak-ng", "espeak", "spd-say")
# the system's own voice where there is no espeak: macOS's say, Windows' speech synthesizer through PowerShell
SYSTEM_SPEECH = {"darwin": "say", "win32": "powershell"}
_WINDOWS_SPEAK = ("[Console]::InputEncoding = [Text.Encoding]::UTF8; Add-Type -AssemblyName System.Speech; "
                  "(New-Object System.Speech.Synthesis.SpeechSynthesizer).Speak([Console]::In.ReadToEnd())")

OnResult = Callable[[Command, str, bool, str], Any]


# --------------------------------------------------------------------------------------------
# Config


@dataclass(frozen=True)
class Action:
    """One validated action. ``kind`` is one of ``ACTION_TYPES``; only its own fields are set."""

    kind: str
    argv: tuple[str, ...] = ()  # run
    text: str | None = None  # say / print / log (None: a default line naming the command)
    url: str = ""  # http
    body: Any = None  # http JSON body template (None: the command as {"label","score","t"})
    target: str = ""  # call: "module:function"
    timeout: float | None = None  # run / say / http, seconds
    func: Callable[[Command], Any] | None = field(default=None, compare=False, repr=False)
    audible: bool = False  # it makes sound the microphone hears (say always; run / http / call when the file says so)

    def describe(self, cmd: Command | None = None) -> str:
        """Short human name, e.g. ``run playerctl stop`` or ``say 'confirmed'``; with ``cmd``, its ``{label}``,
        ``{score}`` and ``{t}`` filled in as the action gets them."""
        def filled(template: str) -> str:
            if cmd is None:
                return template
            try:
                return substitute(template, cmd)
            except ValueError:  # the action itself reports what is wrong with it
                return template

        if self.kind == "run":
            return "run " + shlex.join(filled(a) for a in self.argv)
        if self.kind == "http":
            return f"http POST {filled(self.url or '')}"
        if self.kind == "call":
            return f"call {self.target}"
        if self.text is None:
            return self.kind
        return f"{self.kind} {filled(self.text)!r}"


@dataclass(frozen=True)
class WakeWord:
    """Commands other than ``word`` fire only within ``seconds`` (stream time) after it."""

    word: str
    seconds: float = 5.0
    fire: bool = False  # whether the wake word also runs its own actions
    # the operating point of the commands it opens (None: the same as the wake word's): their false accepts
    # cost nothing outside the few seconds after it, so they can be more sensitive than the wake word itself
    false_accepts_per_hour: float | None = 20.0


@dataclass(frozen=True)
class AssistantConfig:
    """A validated assistant file: actions per command, optional wake word."""

    source: str
    actions: Mapping[str, tuple[Action, ...]] = field(default_factory=lambda: MappingProxyType({}))
    wake_word: WakeWord | None = None
    queue_size: int = DEFAULT_QUEUE_SIZE
    listen_while_speaking: bool = False  # live audio: obey commands heard while a say action speaks
    echo_seconds: float = SPEECH_ECHO_S  # how long after an audible action its sound may still be heard
    model_commands: tuple[str, ...] = COMMANDS  # which the file was checked against
    # its sensitivity: as listen's --false-accepts-per-hour, or --threshold (one number and/or COMMAND=NUMBER)
    false_accepts_per_hour: float | None = None
    threshold: float | None = None
    thresholds: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def threshold_values(self) -> list[str]:
        """Its thresholds as ``--threshold`` values (``["0.95", "down=0.99"]``; empty: none set)."""
        return ([] if self.threshold is None else [f"{self.threshold!r}"]) + [f"{c}={t!r}" for c, t in self.thresholds.items()]

    @property
    def commands(self) -> tuple[str, ...]:
        """The commands this assistant responds to: those with an action, and its wake word (the model's order)."""
        wake = (self.wake_word.word,) if self.wake_word else ()
        return tuple(c for c in self.model_commands if c in self.actions or c in wake)


def load_assistant(path: str | Path, commands: Sequence[str] = COMMANDS) -> AssistantConfig:
    """Load and validate an assistant YAML file; every problem is a ``ConfigError`` naming the
    file and the key. ``call`` targets are imported here, so an import error is caught now. ``commands``: the
    model's commands (its labels but ``_silence_`` and ``_unknown_``), which the file's words must be."""
    import yaml

    if not str(path).strip():
        raise ConfigError("assistant config file: the path is empty")
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {not_a_file(path, 'assistant config file')}")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml_loader())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML{yaml_problem(exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    except RecursionError:  # thousands of nested brackets: the parser's own recursion gives out first
        raise ConfigError(f"{path}: nested too deeply to be an assistant config") from None
    # a `call` module beside the file or in the working folder imports like one on PYTHONPATH (after it: a
    # module of the same name there wins); the console script's sys.path holds neither. They stay there while
    # the assistant runs: a hook may import a module of its own when it is called
    added = [d for d in dict.fromkeys((str(path.resolve().parent), os.getcwd())) if d not in sys.path]
    sys.path.extend(added)
    named = _FileNamed(str(path))  # the warnings said while the file is read name it, as its errors do
    logger.addFilter(named)
    try:
        config = _parse_assistant(raw if raw is not None else {}, str(path), tuple(commands))
    except ConfigError as exc:
        for d in added:
            sys.path.remove(d)
        raise ConfigError(f"{path}: {exc}") from None
    finally:
        logger.removeFilter(named)
    if not any(a.kind == "call" for acts in config.actions.values() for a in acts):
        for d in added:
            sys.path.remove(d)
    for label, acts in config.actions.items():
        for a in acts:
            if a.kind == "run":
                problem = _program_problem(a.argv[0])
                if problem:
                    logger.warning("%s: actions.%s.run: %s; that action will fail", path, label, problem)
    return config


class _FileNamed(logging.Filter):
    """Puts a file's name before each message it lets through."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.file = name

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = f"{self.file}: {record.getMessage()}", ()  # a % in the name is no format
        return True


def _program_problem(program: str) -> str | None:
    """Why ``program`` cannot be run (not on PATH, a folder, not executable), or None."""
    if shutil.which(program):
        return None
    if os.sep in program and Path(program).is_dir():
        return f"{program!r} is a folder, not a program"
    if os.sep in program and Path(program).is_file():
        return f"{program!r} is not executable (chmod +x it, or run it through its interpreter)"
    return f"program {program!r} not found" + ("" if os.sep in program else " on PATH")


def _parse_assistant(raw: Any, source: str, commands: tuple[str, ...]) -> AssistantConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"top level must be a mapping with keys {', '.join(TOP_LEVEL_KEYS)}")
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"unknown key '{key}' (known: {', '.join(TOP_LEVEL_KEYS)})")
    queue_size = raw.get("queue_size", DEFAULT_QUEUE_SIZE)
    if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
        raise ConfigError(f"queue_size: expected a positive integer, got {queue_size!r}")
    while_speaking = raw.get("listen_while_speaking", False)
    if not isinstance(while_speaking, bool):
        raise ConfigError(f"listen_while_speaking: expected true or false, got {while_speaking!r}")
    echo = raw.get("echo_seconds", SPEECH_ECHO_S)
    if isinstance(echo, bool) or not isinstance(echo, (int, float)) or not 0 <= echo <= MAX_ECHO_S:
        raise ConfigError(f"echo_seconds: expected a number of seconds from 0 to {MAX_ECHO_S:g}, got {echo!r}")
    wake = _parse_wake(raw.get("wake_word"), commands)
    rate, one, each = _parse_sensitivity(raw.get("sensitivity"), commands)
    acts = raw.get("actions")
    if not acts:  # an assistant that does nothing is a mistake, not a choice (listen without --assistant prints)
        raise ConfigError("actions: no command has an action (e.g. actions: {stop: {say: stopping}})")
    if not isinstance(acts, Mapping):
        raise ConfigError(f"actions: expected a mapping of command -> action(s), got {acts!r}")
    parsed: dict[str, tuple[Action, ...]] = {}
    for label, spec in acts.items():
        where = f"actions.{label}"
        if label not in commands:
            raise ConfigError(f"{where}: unknown command '{label}' (the model's commands: {', '.join(commands)})")
        if isinstance(spec, list):
            if not spec:
                raise ConfigError(f"{where}: empty list of actions")
            parsed[label] = tuple(_parse_action(s, f"{where}[{i}]") for i, s in enumerate(spec))
        else:
            parsed[label] = (_parse_action(spec, where),)
    if wake is not None and wake.word in parsed and not wake.fire:
        raise ConfigError(f"actions.{wake.word}: '{wake.word}' is the wake word and wake_word.fire is false, so these "
                          "actions would never run: set fire: true or remove them")
    silent = [c for c in each if c not in parsed and (wake is None or c != wake.word)]
    if silent:  # only the commands with actions (and the wake word) are listened for
        raise ConfigError(f"sensitivity.thresholds.{silent[0]}: '{silent[0]}' has no action here, so it never fires")
    return AssistantConfig(source=source, actions=MappingProxyType(parsed), wake_word=wake,
                           queue_size=queue_size, listen_while_speaking=while_speaking, echo_seconds=float(echo),
                           model_commands=commands, false_accepts_per_hour=rate, threshold=one,
                           thresholds=MappingProxyType(each))


def _parse_sensitivity(spec: Any, commands: tuple[str, ...]) -> tuple[float | None, float | None, dict[str, float]]:
    """``sensitivity: {false_accepts_per_hour: R}`` or ``{threshold: T, thresholds: {COMMAND: T}}`` (either or both)
    as (rate, one threshold, per-command thresholds)."""
    if spec is None:
        return None, None, {}
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError(f"sensitivity: expected a mapping with {' or '.join(SENSITIVITY_KEYS)}, got {spec!r}")
    for key in spec:
        if key not in SENSITIVITY_KEYS:
            raise ConfigError(f"sensitivity.{key}: unknown key (known: {', '.join(SENSITIVITY_KEYS)})")
    if spec.get("false_accepts_per_hour") is not None and spec.get("threshold") is not None:
        raise ConfigError("sensitivity: give false_accepts_per_hour or threshold, not both (thresholds may adjust "
                          "single commands of either)")
    rate = spec.get("false_accepts_per_hour")
    if rate is not None:
        rate = _positive_number(rate, "sensitivity.false_accepts_per_hour", "false accepts per hour")

    def checked(value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not threshold_ok(value):
            raise ConfigError(f"{where}: expected {THRESHOLD_RANGE}, got {shown_value(value)}")
        return float(value)

    one = checked(spec["threshold"], "sensitivity.threshold") if spec.get("threshold") is not None else None
    each = spec.get("thresholds") or {}
    if not isinstance(each, Mapping):
        raise ConfigError(f"sensitivity.thresholds: expected a mapping of command -> threshold, got {each!r}")
    for label in each:
        if label not in commands:
            raise ConfigError(f"sensitivity.thresholds.{label}: unknown command (the model's commands: "
                              f"{', '.join(commands)})")
    return rate, one, {label: checked(t, f"sensitivity.thresholds.{label}") for label, t in each.items()}


def _parse_wake(spec: Any, commands: tuple[str, ...]) -> WakeWord | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = {"word": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"wake_word: expected null, a command or {{word, seconds, fire}}, got {spec!r}")
    known = ("word", "seconds", "fire", "false_accepts_per_hour")
    for key in spec:
        if key not in known:
            raise ConfigError(f"wake_word.{key}: unknown key (known: {', '.join(known)})")
    if "word" not in spec:
        raise ConfigError("wake_word.word: missing (which command wakes the assistant?)")
    word = spec["word"]
    if word not in commands:
        raise ConfigError(f"wake_word.word: '{word}' is not a command (the model's commands: {', '.join(commands)})")
    seconds = _positive_number(spec.get("seconds", 5.0), "wake_word.seconds")
    fire = spec.get("fire", False)
    if not isinstance(fire, bool):
        raise ConfigError(f"wake_word.fire: expected true/false, got {fire!r}")
    rate = spec.get("false_accepts_per_hour", WakeWord.false_accepts_per_hour)
    if rate is not None:
        rate = _positive_number(rate, "wake_word.false_accepts_per_hour", "false accepts per hour")
    return WakeWord(word=word, seconds=seconds, fire=fire, false_accepts_per_hour=rate)


def _positive_number(value: Any, where: str, unit: str = "seconds", most: float = math.inf) -> float:
    if number_in_text(value) is not None:  # YAML 1.1 reads 1e3 (no dot, no sign) as text
        raise ConfigError(f"{where}: got the text {value!r}: write it as a number YAML reads (1000, or 1.0e+3)")
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not finite(value) or value <= 0 or value > most:
        upto = f" up to {most:g}" if math.isfinite(most) else ""
        raise ConfigError(f"{where}: expected a positive number of {unit}{upto}, got {shown_value(value)}")
    return float(value)


def _timeout(value: Any, where: str) -> float:
    """An action's timeout: seconds, up to a day."""
    return _positive_number(value, where, most=MAX_TIMEOUT_S)


def _check_keys(spec: Mapping, allowed: tuple[str, ...], where: str, kind: str) -> None:
    for key in spec:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: unknown key for a {kind} action "
                              f"(known: {', '.join(allowed)})")


def _text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    _check_template(value, where)
    return value


def _parse_action(spec: Any, where: str) -> Action:
    if isinstance(spec, str):  # bare "log", "print", "say"
        if spec in ("log", "print", "say"):
            return Action(kind=spec)
        if spec in ACTION_TYPES:
            raise ConfigError(f"{where}: '{spec}' needs an argument, e.g. {{{spec}: ...}}")
        raise ConfigError(f"{where}: unknown action type '{spec}' (types: {', '.join(ACTION_TYPES)})")
    if spec is None:
        raise ConfigError(f"{where}: no action given (types: {', '.join(ACTION_TYPES)})")
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected an action mapping like {{print: ...}}, got {spec!r}")
    kinds = [k for k in spec if k in ACTION_TYPES]
    audible = spec.get("audible", False)
    if not isinstance(audible, bool):
        raise ConfigError(f"{where}.audible: expected true or false, got {audible!r}")
    for key in spec:
        if key not in ACTION_TYPES and key not in ("timeout", "audible"):
            raise ConfigError(f"{where}.{key}: unknown action type '{key}' (types: {', '.join(ACTION_TYPES)})")
    if len(kinds) != 1:
        raise ConfigError(f"{where}: give exactly one action type per entry (got "
                          f"{', '.join(map(str, kinds)) or 'none'}); use a list for several")
    kind = kinds[0]
    value = spec[kind]
    kw = f"{where}.{kind}"

    if kind == "run":
        _check_keys(spec, ("run", "timeout", "audible"), where, kind)
        if isinstance(value, str):
            raise ConfigError(f"{kw}: expected a non-empty list of strings (no shell), e.g. "
                              f"{jsonlib.dumps(value.split() or ['program'])}, got {value!r}")
        if not isinstance(value, list) or not value or \
                not all(isinstance(a, str) for a in value) or not value[0]:
            raise ConfigError(f"{kw}: expected a non-empty list of strings (quote numbers), got {value!r}")
        for i, a in enumerate(value):
            _check_template(a, f"{kw}[{i}]")
        timeout = _timeout(spec.get("timeout", DEFAULT_TIMEOUTS["run"]), f"{where}.timeout")
        return Action(kind="run", argv=tuple(value), timeout=timeout, audible=audible)

    if kind == "say":
        _check_keys(spec, ("say", "timeout"), where, kind)
        timeout = _timeout(spec.get("timeout", DEFAULT_TIMEOUTS["say"]), f"{where}.timeout")
        if isinstance(value, str) and not value.strip():  # ran the speech program on nothing at every command
            raise ConfigError(f"{kw}: empty text: nothing would be said (a bare `say` says the command's name)")
        return Action(kind="say", text=_text(value, kw), timeout=timeout, audible=True)

    if kind in ("print", "log"):
        _check_keys(spec, (kind,), where, kind)
        return Action(kind=kind, text=_text(value, kw))

    if kind == "http":
        _check_keys(spec, ("http", "timeout", "audible"), where, kind)
        if isinstance(value, str):
            value = {"url": value}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{kw}: expected {{url, json, timeout}} or a URL, got {value!r}")
        _check_keys(value, ("url", "json", "timeout"), kw, kind)
        if "timeout" in value and "timeout" in spec:
            raise ConfigError(f"{kw}.timeout: given twice (inside and beside http:)")
        url = _check_url(value.get("url"), f"{kw}.url")
        body = value.get("json")
        if body is not None:
            try:
                jsonlib.dumps(body, allow_nan=False)  # NaN and Infinity are not JSON: a server would refuse it
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{kw}.json: not JSON-serialisable ({exc})") from None
            _walk_templates(body, f"{kw}.json")
        t_where = f"{kw}.timeout" if "timeout" in value else f"{where}.timeout"
        timeout = _timeout(value.get("timeout", spec.get("timeout", DEFAULT_TIMEOUTS["http"])), t_where)
        return Action(kind="http", url=url, body=body, timeout=timeout, audible=audible)

    # call
    _check_keys(spec, ("call", "audible"), where, kind)
    func = _import_callable(value, kw)
    return Action(kind="call", target=value, func=func, audible=audible)


def encoded_url(url: str) -> str:
    """``url`` with what may not stand in one (spaces, other characters outside ASCII) percent-encoded, as a browser
    sends it; what is encoded already stays as it is."""
    return urllib.parse.quote(url, safe="!#$%&'()*+,/:;=?@[]~")


def _check_url(url: Any, where: str) -> str:
    """``url`` itself if it is an http(s) URL with a host; ConfigError otherwise."""
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where}: expected an http(s) URL, got {url!r}")
    _check_template(url, where)
    try:
        parts = urllib.parse.urlsplit(encoded_url(url))
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{where}: bad URL {url!r} ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{where}: URL scheme must be http or https, got {url!r}")
    if not parts.hostname:
        raise ConfigError(f"{where}: URL has no host: {url!r}")
    return url


def _import_callable(target: Any, where: str) -> Callable[[Command], Any]:
    if not isinstance(target, str) or target.count(":") != 1:
        raise ConfigError(f"{where}: expected 'module:function', got {target!r}")
    mod_name, attr = target.split(":")
    if not mod_name or not attr:
        raise ConfigError(f"{where}: expected 'module:function', got {target!r}")
    try:
        obj: Any = importlib.import_module(mod_name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure importing user code (sys.exit too)
        raise ConfigError(f"{where}: cannot import module '{mod_name}' ({one_line(exc)})") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{where}: module '{mod_name}' has no attribute '{attr}'") from None
    if not callable(obj):
        raise ConfigError(f"{where}: '{target}' is not callable")
    if inspect.isgeneratorfunction(obj) or inspect.isasyncgenfunction(obj):  # calling it would run none of its body
        raise ConfigError(f"{where}: '{target}' is a generator function (it yields): give a function that does "
                          "its work when called")
    try:
        inspect.signature(obj).bind(_PROBE)  # said now, not when the command is first heard
    except TypeError as exc:
        raise ConfigError(f"{where}: '{target}' cannot be called with the command as its one argument ({exc})") from None
    except ValueError:  # a builtin without a signature: its first call will tell
        pass
    return obj


# --------------------------------------------------------------------------------------------
# Placeholders

_PLACEHOLDER = re.compile(r"\{(cmd|label|score|t)(?::([^{}]*))?\}")
_PROBE = Command(label="stop", score=0.9, t=1.0)
MAX_FORMAT_WIDTH = 1000  # of a placeholder's format, e.g. {score:8.3f}


def _value(name: str, cmd: Command) -> Any:
    if name in ("cmd", "label"):
        return cmd.label
    if name == "score":
        return round(cmd.score, 4)
    return round(cmd.t, 3)


def substitute(template: str, cmd: Command) -> str:
    """Replace ``{cmd}``/``{label}``/``{score}``/``{t}`` (optionally ``{score:.2f}``) in
    ``template``; any other braces are left as they are."""
    def repl(m: re.Match) -> str:
        name, spec = m.group(1), m.group(2)
        if spec is None:
            return str(_value(name, cmd))
        raw = cmd.label if name in ("cmd", "label") else (cmd.score if name == "score" else cmd.t)
        big = [d for d in re.findall(r"\d+", spec) if int(d) > MAX_FORMAT_WIDTH]
        if big:  # {score:10000000000} would fill memory with spaces at the first command
            raise ValueError(f"width or precision {big[0]} in {m.group(0)} is over {MAX_FORMAT_WIDTH}")
        return format(raw, spec)
    return _PLACEHOLDER.sub(repl, template)


def substitute_json(body: Any, cmd: Command) -> Any:
    """``substitute`` every string in a JSON-like structure; a string that is exactly
    ``"{score}"`` or ``"{t}"`` becomes the number."""
    if isinstance(body, str):
        m = _PLACEHOLDER.fullmatch(body)
        if m and m.group(1) in ("score", "t") and m.group(2) is None:
            return _value(m.group(1), cmd)
        return substitute(body, cmd)
    if isinstance(body, Mapping):  # keys too: {"{cmd}": "{score}"} names the command
        return {substitute(k, cmd) if isinstance(k, str) else k: substitute_json(v, cmd) for k, v in body.items()}
    if isinstance(body, (list, tuple)):
        return [substitute_json(v, cmd) for v in body]
    return body


# a name in braces that is no placeholder: kept as written (a JSON body may hold braces), but most often a typo
_NAME_IN_BRACES = re.compile(r"\{([A-Za-z_]\w*)(?::[^{}]*)?\}")
# a placeholder's name after a brace in something that is no placeholder: { cmd }, {score!r}, {label[0]}, {t:.2f
_ALMOST = re.compile(r"\{\s*(?:cmd|label|score|t)\b[^{}]*\}?")


def _check_template(text: str, where: str) -> None:
    try:
        substitute(text, _PROBE)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: bad placeholder in {text!r} ({exc})") from None
    for m in _NAME_IN_BRACES.finditer(text):
        if not _PLACEHOLDER.fullmatch(m.group(0)):
            logger.warning("%s: {%s} is not a placeholder ({cmd}, {label}, {score}, {t}); it is kept as written",
                           where, m.group(1))
    for m in _ALMOST.finditer(text):
        if not _PLACEHOLDER.fullmatch(m.group(0)) and not _NAME_IN_BRACES.fullmatch(m.group(0)):
            logger.warning("%s: %r is not a placeholder (write {cmd}, {label}, {score}, {t}, or with a format "
                           "as {score:.2f}); it is kept as written", where, m.group(0))


def _walk_templates(body: Any, where: str) -> None:
    if isinstance(body, str):
        _check_template(body, where)
    elif isinstance(body, Mapping):
        for k, v in body.items():
            if isinstance(k, str):
                _check_template(k, f"{where} (key {k!r})")
            _walk_templates(v, f"{where}.{k}")
    elif isinstance(body, list):
        for i, v in enumerate(body):
            _walk_templates(v, f"{where}[{i}]")


# --------------------------------------------------------------------------------------------
# Running one action


def find_speech_program() -> str | None:
    """Path of the first of espeak-ng, espeak, spd-say on PATH, else of the system's own (``SYSTEM_SPEECH``), or None."""
    own = SYSTEM_SPEECH.get(sys.platform)
    for name in SPEECH_PROGRAMS + ((own,) if own else ()):
        found = shutil.which(name)
        if found:
            return found
    return None


def speech_command(program: str, text: str) -> tuple[list[str], bytes | None]:
    """The command line that makes ``program`` (a ``find_speech_program`` path) say ``text``, and what goes to its
    stdin (the text, except for spd-say, which takes it as its last argument)."""
    name = Path(program).stem.lower()
    if name == "spd-say":
        return [program, "--wait", "--", text], None
    argv = {"say": [program, "-f", "-"],
            "powershell": [program, "-NoProfile", "-NonInteractive", "-Command", _WINDOWS_SPEAK]}.get(
        name, [program, "--stdin"])  # espeak-ng, espeak
    return argv, text.encode("utf-8")


def _tail(data: bytes | None, limit: int = 200) -> str:
    text = (data or b"").decode("utf-8", "replace").strip()
    if not text:
        return ""
    last = text.splitlines()[-1]
    return last if len(last) <= limit else last[: limit - 3] + "..."


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and everything it started in its process group, and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (OSError, AttributeError):
        proc.kill()
    try:
        proc.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        pass


class _StderrTail:
    """The last 4 KiB a program writes to stderr, read from a pipe while the program runs (a temporary file instead was
    written on, deleted and out of sight of ls and du, for as long as a program a launcher started lived). When the
    program has exited and a program it left running still holds the pipe, a detached ``cat`` drains it from then on:
    that program never blocks on a full pipe, nor dies of SIGPIPE once this process is gone."""

    KEEP = 4096
    POLL_S = 0.1

    def __init__(self) -> None:
        self._read, self.write_fd = os.pipe()
        self._tail = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ended = False
        self._thread = threading.Thread(target=self._drain, name="voice-gru-stderr", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        if not hasattr(select, "poll"):  # Windows: select() takes sockets only
            self._read_to_end()
            return
        poll = select.poll()  # not select.select: it refuses descriptors numbered 1024 and up
        poll.register(self._read, select.POLLIN | select.POLLHUP)
        while not self._stop.is_set():
            if not poll.poll(self.POLL_S * 1000):
                continue
            chunk = os.read(self._read, 65536)
            if not chunk:
                self._ended = True
                return
            self._keep(chunk)

    def _read_to_end(self) -> None:
        """Blocking reads until the last writer closes the pipe; this thread owns the read end and closes it."""
        try:
            while chunk := os.read(self._read, 65536):
                self._keep(chunk)
        finally:
            os.close(self._read)
            self._ended = True

    def _keep(self, chunk: bytes) -> None:
        with self._lock:
            self._tail += chunk
            del self._tail[:-self.KEEP]

    def writer_started(self) -> None:
        """Close this process's copy of the write end (the program holds its own), so the pipe ends with it."""
        os.close(self.write_fd)

    def finish(self, wait: float = 0.5) -> str:
        """After the program exited: the last line it wrote, once the pipe has ended or, where a program left running
        holds it, ``wait`` seconds have passed and the pipe is handed to a detached drainer (without ``poll``: the
        reader thread itself reads on while this process lives)."""
        self._thread.join(wait)
        if not hasattr(select, "poll"):
            with self._lock:
                return _tail(bytes(self._tail))
        self._stop.set()
        self._thread.join()
        try:
            if not self._ended:  # `cat` reads what is left and ends with the last writer; fd 3: a background job's
                subprocess.run(["/bin/sh", "-c", "exec 3<&0; cat <&3 >/dev/null 3<&- &"],  # stdin is /dev/null
                               stdin=self._read, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True, check=False)
        except OSError as exc:  # no shell: the program left running may block on its stderr one day, said once here
            logger.warning("cannot hand the stderr of a program an action left running to a drainer: %s", exc)
        finally:
            os.close(self._read)
        with self._lock:
            return _tail(bytes(self._tail))


def _run_process(argv: list[str], timeout: float, stdin: bytes | None = None,
                 running: set | None = None, env: Mapping[str, str] | None = None,
                 quiet_failure: str | None = None) -> tuple[bool, str]:
    """Run ``argv`` (no shell) until it exits; on timeout kill its whole process group. The last line of its stderr is
    the failure's detail (``_StderrTail``: a launcher that starts a program in the background and exits is done when
    it exits, though the program it started keeps stderr open, and keeps running). ``running``: a set the process is in
    while it runs (so a closing runner can stop it). ``quiet_failure``: how a failing program that still exits 0 begins
    its last stderr line (espeak-ng without a sound device says "error: ..." and exits 0)."""
    err = _StderrTail()
    try:  # stdout is dropped: it was only ever logged at debug level
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err.write_fd, start_new_session=True,
                                env=None if env is None else {**os.environ, **env})
    except BaseException as exc:  # both ends closed here too: each failed start kept one, and after ~1,000 of them
        err.writer_started()      # no program could start any more
        err.finish()
        if isinstance(exc, FileNotFoundError):
            return False, f"program not found: {argv[0]}"
        if isinstance(exc, OSError):
            return False, f"cannot start {argv[0]}: {exc}"
        raise
    err.writer_started()
    if running is not None:
        running.add(proc)
    try:
        proc.communicate(input=stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        err.finish()
        return False, f"timed out after {timeout:g}s"
    finally:
        if running is not None:
            running.discard(proc)
    tail = err.finish()
    if proc.returncode == 0:
        if quiet_failure and tail.lower().startswith(quiet_failure):
            return False, f"{SAID_NOTHING}: {tail}"
        return True, "exit 0"
    how = f"exit {proc.returncode}"
    if proc.returncode < 0:  # -9 said nothing of a program that was killed
        try:
            how = f"killed by {signal.Signals(-proc.returncode).name}"
        except ValueError:
            how = f"killed by signal {-proc.returncode}"
    return False, how + (f": {tail}" if tail else "")


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Deadline:
    """Sockets of one request, shut down when its deadline passes: urllib's timeout bounds each wait for
    the server, so a server that sends a byte a second would otherwise hold the command's worker forever."""

    def __init__(self) -> None:
        self.passed = threading.Event()
        self._sockets: list = []
        self._lock = threading.Lock()

    def track(self, sock) -> None:
        with self._lock:
            self._sockets.append(sock)
        if self.passed.is_set():
            self.cut()

    def cut(self) -> None:
        self.passed.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # a blocked recv in the worker returns at once
            except OSError:
                pass

    def handlers(self) -> list:
        """urllib handlers whose connections report their sockets here."""
        deadline = self

        def tracked(cls):
            class Tracked(cls):
                def __init__(self, *args, **kwargs) -> None:
                    super().__init__(*args, **kwargs)
                    create: Callable[..., socket.socket] = self._create_connection  # type: ignore[has-type]

                    def create_tracked(*a, **kw):  # the bare socket: a proxy's CONNECT answer is waited for on it
                        sock = create(*a, **kw)
                        deadline.track(sock)
                        return sock

                    self._create_connection = create_tracked

                def connect(self) -> None:
                    super().connect()
                    deadline.track(self.sock)  # HTTPS: the TLS socket that took the bare one over
            return Tracked

        class Http(urllib.request.HTTPHandler):
            def do_open(self, http_class, req, **kw):
                return super().do_open(tracked(http_class), req, **kw)

        class Https(urllib.request.HTTPSHandler):
            def do_open(self, http_class, req, **kw):
                return super().do_open(tracked(http_class), req, **kw)

        return [Http(), Https()]


def _post_json(url: str, body: Any, timeout: float) -> tuple[bool, str]:
    """POST ``body`` as JSON; the whole request (name lookup, connect, send, answer) must finish within ``timeout``."""
    # the lookup (getaddrinfo: an mDNS name, a DNS server that does not answer) has no timeout of its own and no socket
    # to cut: the request runs on a thread of its own, and one still looking a name up is left to end by itself (its
    # socket, made after the deadline, is cut at once: nothing is sent late)
    done: list[tuple[bool, str]] = []
    worker = threading.Thread(target=lambda: done.append(_post_json_within(url, body, timeout)), daemon=True,
                              name="voice-gru-http")
    worker.start()
    worker.join(timeout + LOOKUP_GRACE_S)
    return done[0] if done else (False, f"timed out after {timeout:g}s")


LOOKUP_GRACE_S = 0.5  # past an http action's timeout, for the request's own deadline to say so first


def _post_json_within(url: str, body: Any, timeout: float) -> tuple[bool, str]:
    """``_post_json`` on the calling thread: bounded by ``timeout`` once the server's address is known."""
    data = jsonlib.dumps(body, allow_nan=False).encode("utf-8")
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    deadline = _Deadline()
    # A local hook must not go through an HTTP proxy set in the environment.
    handlers = [urllib.request.ProxyHandler({})] if _is_loopback(urllib.parse.urlsplit(url).hostname) else []
    opener = urllib.request.build_opener(*handlers, *deadline.handlers())
    timer = threading.Timer(timeout, deadline.cut)
    timer.daemon = True
    timer.start()
    late = f"timed out after {timeout:g}s"
    try:
        with opener.open(req, timeout=timeout) as resp:
            resp.read(65536)
            if deadline.passed.is_set():  # the answer was cut short
                return False, late
            return True, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if deadline.passed.is_set() or isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return False, late
        return False, f"unreachable: {reason}"
    except TimeoutError:
        return False, late
    except (OSError, ValueError, http.client.HTTPException) as exc:
        if deadline.passed.is_set():
            return False, late
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        timer.cancel()


def _default_text(kind: str, cmd: Command) -> str:
    if kind == "say":
        return cmd.label
    return f"{cmd.label} (score {cmd.score:.2f}, t={cmd.t:.2f}s)"


# --------------------------------------------------------------------------------------------
# Wake word


class WakeGate:
    """Ignore commands until the wake word, then accept them for ``seconds`` of stream time.

    Times are the commands' ``t`` (stream seconds), never the wall clock. A repeated wake word
    restarts the window; a time earlier than the wake word (a new stream) closes the gate.
    """

    def __init__(self, word: str, seconds: float, fire: bool = False, commands: Sequence[str] = COMMANDS):
        if word not in commands:
            raise ConfigError(f"wake word {word!r}: not a command ({', '.join(commands)})")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < math.inf:
            raise ConfigError(f"wake word window {seconds!r}: must be a positive number of seconds")
        self.word = word
        self.seconds = float(seconds)
        self.fire = fire
        self.woke_at: float | None = None

    @classmethod
    def from_config(cls, wake: WakeWord, commands: Sequence[str] = COMMANDS) -> "WakeGate":
        """The gate an assistant file's ``wake_word`` describes (``commands``: the model's)."""
        return cls(wake.word, wake.seconds, wake.fire, commands)

    def is_open(self, t: float) -> bool:
        """Whether a command at stream time ``t`` would be accepted."""
        return self.woke_at is not None and 0.0 <= t - self.woke_at <= self.seconds

    def accept(self, cmd: Command) -> bool:
        """Update the gate with ``cmd``; True if its actions should run."""
        if cmd.label == self.word:
            self.woke_at = cmd.t
            return self.fire
        return self.is_open(cmd.t)

    def reset(self) -> None:
        """Close the gate: commands wait for the wake word again."""
        self.woke_at = None


def wake_replay(wake: WakeWord, events: Sequence[Mapping], commands: Sequence[str] = COMMANDS,
                acting: Collection[str] | None = None) -> dict[str, int]:
    """A wake word's gate over detections already made (each with ``t``, ``label`` and ``score``): how many woke it
    (``wakes``) and how many would have run actions (``acted``: the commands within its window, and the wake word
    itself where it fires, each only if among ``acting``, the commands with actions; None: all)."""
    gate = WakeGate.from_config(wake, commands)
    wakes = acted = 0
    for e in sorted(events, key=lambda e: float(e["t"])):
        cmd = Command(str(e["label"]), float(e.get("score", 1.0)), float(e["t"]))
        wakes += cmd.label == wake.word
        acted += gate.accept(cmd) and (acting is None or cmd.label in acting)
    return {"wakes": wakes, "acted": acted}


# --------------------------------------------------------------------------------------------
# Worker


@dataclass(frozen=True)
class ActionResult:
    """The outcome of one action run for one command."""

    command: Command
    action: str  # Action.describe(command): as it ran
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.command.label} -> {self.action} ({'ok' if self.ok else 'failed: ' + self.detail})"


class _Lane:
    """One command's queue and the thread that runs its actions in order: a slow action delays only later
    actions of the same command, never another command's."""

    def __init__(self, label: str, size: int, work: Callable[["_Lane"], None]):
        self.label = label
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self.running: str | None = None  # the action being run, for the message of a close that times out
        self.rest: list[str] = []  # the actions after it in its command's list (a hung call never reaches them)
        # set by the worker as it ends: Thread.is_alive() said False after a join() that Ctrl-C interrupted (3.11)
        self.ended = threading.Event()
        self.stop_sent = False  # close() has put its stop in the queue
        self.thread = threading.Thread(target=work, args=(self,), name=f"voice-gru-actions-{label}", daemon=True)
        self.thread.start()


class ActionRunner:
    """Runs the configured actions of submitted commands, each command on its own worker thread.

    ``submit`` never blocks; a full queue drops the command (counted in ``dropped``). Counters:
    ``fired`` (actions that succeeded), ``failed`` (actions that failed), ``dropped`` (commands
    lost to a full queue), ``ignored`` (commands held back by the wake word, or heard while it spoke). ``live``: the
    commands come from audio heard as it happens (a microphone, a pipe from one), so one heard while a ``say`` (or
    ``audible``) action runs, or within the file's ``echo_seconds`` after, is the assistant's own voice and is ignored
    (unless the assistant file says ``listen_while_speaking: true``); a recording streamed faster than real time
    has no such overlap. A callable is asked at each command (a pipe is live while its audio keeps real time).
    ``results`` keeps the last ``keep`` ``ActionResult``s. ``on_result(command, action_name, ok, detail)`` is called
    on the command's worker thread after each action; without it, failures are logged as warnings.
    """

    _STOP = object()

    def __init__(self, config: AssistantConfig, *, on_result: OnResult | None = None,
                 queue_size: int | None = None, keep: int = 1000, live: bool | Callable[[], bool] = False):
        self.config = config
        self._live: Callable[[], bool] = live if callable(live) else (lambda: bool(live))
        self._speaking = 0  # audible actions running now
        self._spoke_until = -math.inf  # monotonic time until which the last speech may still be heard
        self.on_result = on_result
        self.gate = WakeGate.from_config(config.wake_word, config.model_commands) if config.wake_word else None
        self.results: collections.deque[ActionResult] = collections.deque(maxlen=keep)
        self.fired = 0
        self.failed = 0
        self._ran_none: collections.Counter[str] = collections.Counter()  # commands that ran no action, by why
        self._unrun = 0  # actions of a command under way that close() stopped before they ran
        if queue_size is not None and (isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1):
            raise ConfigError(f"queue_size {queue_size!r}: must be a positive whole number")  # -1 meant unbounded
        self._size = queue_size or config.queue_size
        self._lanes: dict[str, _Lane] = {}
        self._running: set[subprocess.Popen] = set()  # programs of run/say actions now running
        self._gave_up = False  # close() dropped the queues and killed the programs
        self._skipped: list[str] = []  # actions of a stopped command's list not run after its program was killed
        self._closing_since = 0.0  # when close() was first called
        self._lock = threading.Lock()
        self._closed = False
        self._speech: str | None = None
        if any(a.kind == "say" for acts in config.actions.values() for a in acts):
            self._speech = find_speech_program()
            if self._speech is None:  # said now, not at the first command
                keys = ", ".join(f"actions.{c}.say" for c, acts in config.actions.items()
                                 if any(a.kind == "say" for a in acts))
                logger.warning("%s: %s: no speech program found (install espeak-ng, espeak or speech-dispatcher): "
                               "'say' actions will fail", config.source, keys)

    @property
    def dropped(self) -> int:
        """Commands whose actions found their queue full."""
        return self._ran_none[FULL]

    @property
    def ignored(self) -> int:
        """Commands held back by the wake word, or heard while the assistant spoke."""
        return sum(n for why, n in self._ran_none.items() if why == SPOKE or why.startswith(BEFORE_WAKE))

    def _deaf_while_speaking(self) -> bool:
        return not self.config.listen_while_speaking and self._live()

    def speaking(self) -> bool:
        """Whether an audible action (``say``, or one marked ``audible: true``) is running, or stopped less than
        ``echo_seconds`` ago."""
        with self._lock:
            return self._speaking > 0 or time.monotonic() < self._spoke_until

    def _acts_on(self, label: str) -> bool:
        """Whether ``label`` has actions, or is the wake word (which opens the gate)."""
        return bool(self.config.actions.get(label)) or (self.gate is not None and label == self.gate.word)

    def ignored_because(self, cmd: Command) -> str | None:
        """Why ``submit`` would run no action for ``cmd`` now, in words for the line that reports it; None if it
        would (or if ``cmd`` has no action anyway)."""
        if cmd.label not in self.config.model_commands or not self._acts_on(cmd.label):
            return None
        if self._deaf_while_speaking() and self.speaking():
            return "the assistant was speaking"
        if self.gate is not None and cmd.label != self.gate.word and not self.gate.is_open(cmd.t):
            return f"not after the wake word '{self.gate.word}'"
        with self._lock:
            lane = self._lanes.get(cmd.label)
            if lane is not None and lane.queue.full():
                return f"{QUEUE_FULL} ({lane.queue.maxsize} waiting)"
        return None

    # -- audio-path side ----------------------------------------------------------------------
    def submit(self, cmd: Command, said: str | None = None) -> bool:
        """Queue ``cmd``'s actions; True if queued. Never blocks. False for a label with no
        actions, a command the wake word holds back, a full queue (counted) or a closed runner. ``said``: what
        ``ignored_because`` answered for it a moment ago (a queue it found full drops it, though a worker may have
        taken one since: as it was reported)."""
        if said is not None and said.startswith(QUEUE_FULL):
            with self._lock:
                self._ran_none[FULL] += 1
            logger.info("action queue of %s full: dropped %s at t=%.2fs", cmd.label, cmd.label, cmd.t)  # said there
            return False
        if self._closed:
            logger.debug("runner closed; %s not run", cmd.label)
            return False
        if cmd.label not in self.config.model_commands or not self._acts_on(cmd.label):
            return False  # nothing to run, so nothing ignored (a command only printed: `--commands` beyond the file)
        if self._deaf_while_speaking() and self.speaking():  # its own voice: nor may it wake the wake word
            with self._lock:
                self._ran_none[SPOKE] += 1
            return False
        if self.gate is not None and not self.gate.accept(cmd):
            if cmd.label != self.gate.word:
                with self._lock:
                    self._ran_none[f"{BEFORE_WAKE} '{self.gate.word}'"] += 1
            return False
        if not self.config.actions.get(cmd.label):
            return False
        with self._lock:  # with close(): queued only while the runner is open, so never behind a lane's stop marker
            if self._closed:
                return False
            lane = self._lanes.get(cmd.label)
            if lane is None:
                lane = self._lanes[cmd.label] = _Lane(cmd.label, self._size, self._work)
            try:
                lane.queue.put_nowait(cmd)
                full = False
            except queue.Full:
                self._ran_none[FULL] += 1
                full = True
        if full:
            logger.warning("action queue of %s full (%d waiting): dropped %s at t=%.2fs",
                           cmd.label, lane.queue.maxsize, cmd.label, cmd.t)
            return False
        return True

    # -- worker side ----------------------------------------------------------------------------
    def _work(self, lane: _Lane) -> None:
        try:
            while True:
                item = lane.queue.get()
                try:
                    if item is self._STOP:
                        return
                    actions = self.config.actions.get(item.label, ())
                    for i, action in enumerate(actions):
                        if self._gave_up:  # close() stopped this command's program: the rest of its list is not run
                            with self._lock:
                                self._skipped += [f"{item.label} -> {a.describe(item)}" for a in actions[i:]]
                            break
                        lane.running = f"{item.label} -> {action.describe(item)}"
                        lane.rest = [f"{item.label} -> {a.describe(item)}" for a in actions[i + 1:]]
                        self._run_one(action, item)
                finally:
                    lane.running, lane.rest = None, []
                    lane.queue.task_done()
        finally:
            lane.ended.set()

    @contextlib.contextmanager
    def _sounding(self, audible: bool) -> Iterator[list[bool]]:
        """While an audible action runs, and ``echo_seconds`` after, ``speaking()`` is true; the caller sets the
        flag it is given to False for an action that made no sound (a ``say`` with no speech program, a program
        that could not start): no echo."""
        sounded = [True]
        if not audible:
            yield sounded
            return
        with self._lock:
            self._speaking += 1
        try:
            yield sounded
        finally:
            with self._lock:
                self._speaking -= 1
                if sounded[0]:
                    self._spoke_until = max(self._spoke_until, time.monotonic() + self.config.echo_seconds)

    def _run_one(self, action: Action, cmd: Command) -> None:
        name = action.describe(cmd)
        try:
            with self._sounding(action.audible) as sounded:
                ok, detail = self._execute(action, cmd)
                # one that timed out or failed after it played was heard all the same: only one that never started
                sounded[0] = ok or not detail.startswith(NEVER_STARTED)
        except BaseException as exc:  # noqa: BLE001 - a failing action (sys.exit() included) never stops the worker
            ok, detail = False, one_line(exc)
            if action.kind == "call":  # the user's own code: the line that raised, the traceback at debug level
                last = traceback.extract_tb(exc.__traceback__)[-1]
                detail += f" (at {last.filename}:{last.lineno})"
            logger.debug("%s -> %s traceback", cmd.label, name, exc_info=True)
        if not ok:  # once: the callback reports it where there is one
            logger.log(logging.DEBUG if self.on_result else logging.WARNING, "%s -> %s failed: %s",
                       cmd.label, name, detail)
        result = ActionResult(cmd, name, ok, detail)
        with self._lock:
            self.results.append(result)
            if ok:
                self.fired += 1
            else:
                self.failed += 1
        if self.on_result is not None:
            try:
                self.on_result(cmd, name, ok, detail)
            except BrokenPipeError:  # the reader of standard output is gone: the run stops at its next line there
                pass
            except Exception:  # noqa: BLE001
                logger.exception("on_result callback failed for %s -> %s", cmd.label, name)

    def _execute(self, action: Action, cmd: Command) -> tuple[bool, str]:
        kind = action.kind
        # an Action built in Python without a timeout gets the one a YAML action would
        timeout = DEFAULT_TIMEOUTS.get(kind, 0.0) if action.timeout is None else action.timeout
        if kind == "run":
            # a script reads the command from its environment as well as from placeholders in its arguments
            env = {"VOICE_GRU_COMMAND": cmd.label, "VOICE_GRU_SCORE": f"{cmd.score:.4f}", "VOICE_GRU_T": f"{cmd.t:.3f}"}
            return _run_process([substitute(a, cmd) for a in action.argv], timeout, running=self._running, env=env)
        if kind == "http":
            body = cmd.to_dict() if action.body is None else substitute_json(action.body, cmd)
            return _post_json(encoded_url(substitute(action.url, cmd)), body, timeout)
        if kind == "call":
            if action.func is None:
                return False, f"no function given for {action.target or 'this call action'}"
            out = action.func(cmd)
            if inspect.iscoroutine(out):  # an async def: run to its end here, on this action's own worker
                out = asyncio.run(out)
            return True, "returned" if out is None else f"returned {out!r}"[:200]
        text = substitute(action.text, cmd) if action.text is not None else _default_text(kind, cmd)
        if kind == "print":
            print_line(text)
            return True, "printed"
        if kind == "log":
            logger.info("%s", text)
            return True, f"logged: {text}"
        return self._say(text, timeout)

    def _say(self, text: str, timeout: float) -> tuple[bool, str]:
        if self._speech is None:
            return False, f"no speech program (install espeak-ng): not said: {text!r}"
        argv, stdin = speech_command(self._speech, text)
        return _run_process(argv, timeout, stdin=stdin, running=self._running, quiet_failure="error")

    # -- lifecycle -------------------------------------------------------------------------------
    def _not_from_an_action(self, what: str) -> None:
        """An action (a ``call`` function, an ``on_result`` callback) runs on a worker: waiting there for the
        workers to finish would wait for itself for ever."""
        if any(lane.thread is threading.current_thread() for lane in list(self._lanes.values())):
            raise RuntimeError(f"ActionRunner.{what} called from one of its own actions, which would wait for itself; "
                               "call it from the thread that submits commands")

    def _checked_timeout(self, timeout: float | None, what: str) -> float | None:
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not 0 <= timeout < math.inf):
            raise ValueError(f"ActionRunner.{what}: timeout {timeout!r} must be None or seconds from 0 up")
        return timeout

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every queued command has run; False if ``timeout`` passed first."""
        self._not_from_an_action("wait_idle")
        timeout = self._checked_timeout(timeout, "wait_idle")
        deadline = None if timeout is None else time.monotonic() + timeout
        for lane in list(self._lanes.values()):
            with lane.queue.all_tasks_done:
                while lane.queue.unfinished_tasks:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    lane.queue.all_tasks_done.wait(remaining)
        return True

    def summary(self) -> str:
        """One line of totals for the end of a run: the actions that ran and failed, the commands that ran none
        and why (each also said as it happened)."""
        with self._lock:
            none = ", ".join(f"{n} {why}" for why, n in self._ran_none.most_common() if n)
            unrun = f", {self._unrun} not run (the run stopped)" if self._unrun else ""
        return (f"actions: {self.fired} done, {self.failed} failed{unrun}"
                + (f"; commands that ran none: {none}" if none else ""))

    def close(self, timeout: float | None = 10.0) -> bool:
        """Stop accepting commands, run what is queued, stop the workers. True if they finished within
        ``timeout``; otherwise what is still queued is dropped, the programs still running are killed, the
        (daemon) workers are left to end, and a warning names what did not run. A second call waits as long as it is
        told, then gives up as the first would have, where the first was interrupted before it did (a second Ctrl-C)."""
        self._not_from_an_action("close")
        timeout = self._checked_timeout(timeout, "close")
        deadline = None if timeout is None else time.monotonic() + timeout

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        with self._lock:
            first, self._closed = not self._closed, True
            lanes = list(self._lanes.values())
        if first:
            self._closing_since = time.monotonic()
        for lane in lanes:  # every call: a first one cut short (Ctrl-C) may have left a full lane without its stop
            if lane.stop_sent:
                continue
            try:
                lane.queue.put(self._STOP, timeout=remaining())
                lane.stop_sent = True
            except queue.Full:  # its backlog did not drain in time: the stop goes in below, after the drop
                pass
        for lane in lanes:
            lane.ended.wait(remaining())
        stuck = [lane for lane in lanes if not lane.ended.is_set()]
        if not stuck or self._gave_up:
            return not stuck
        self._gave_up = True
        running = [lane.running for lane in stuck if lane.running]
        dropped = []
        for lane in stuck:  # nothing queued runs after close() has returned
            while True:
                try:
                    item = lane.queue.get_nowait()
                except queue.Empty:
                    break
                if item is not self._STOP:
                    dropped.append(item.label)
                lane.queue.task_done()
            lane.queue.put_nowait(self._STOP)
            lane.stop_sent = True
        waited = round(time.monotonic() - self._closing_since, 1)
        killed = self.kill_running()
        settle = time.monotonic() + KILLED_SETTLE_S
        for lane in stuck:  # a killed program's worker says so (its line whole, not cut by the exit) and ends
            lane.ended.wait(max(0.0, settle - time.monotonic()))
        hung = [rest for lane in stuck if not lane.ended.is_set() for rest in lane.rest]  # a call no kill can stop
        with self._lock:
            skipped = list(self._skipped)
            self._ran_none["dropped when the run stopped"] += len(dropped)
            self._unrun = len(skipped) + len(hung)
        not_run = skipped + hung + dropped
        logger.warning("actions still running after %gs: %s%s", waited, ", ".join(running) or "(none)",
                       (" (stopped)" if killed else "") + (f"; not run: {', '.join(not_run)}" if not_run else ""))
        return False

    def kill_running(self) -> bool:
        """Kill the programs of run/say actions running now (from any thread); whether there were any."""
        running = list(self._running)
        for proc in running:
            _kill_group(proc)
        return bool(running)

    @property
    def busy(self) -> bool:
        """Whether an action is running or waiting in a queue."""
        with self._lock:
            lanes = list(self._lanes.values())
        return any(lane.running or not lane.queue.empty() for lane in lanes)

    def __enter__(self) -> "ActionRunner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = [
    "ACTION_TYPES", "Action", "ActionResult", "ActionRunner", "AssistantConfig", "WakeGate",
    "WakeWord", "find_speech_program", "load_assistant", "substitute", "substitute_json",
]
