"""Label files of long recordings: read, checked and brought to one form before scoring.

``make-stream`` writes a JSON object (``{"duration": ..., "events": [{"label", "start", "end",
"speech_start", "speech_end", ...}]}``, see ``voice_gru.streams``). Label files written by other
tools are read too, so a recording labelled elsewhere can be scored without conversion:

* a JSON list of events, or JSON Lines (one event object per line);
* TensorFlow's streaming test (``generate_streaming_test_wav.py``): ``label, time_ms`` lines,
  each a 1 s clip starting at that time;
* labels in any case, ``unknown``/``silence`` without underscores, and the dataset's other words
  (``"bed"``) for ``_unknown_``; times as numbers or numeric strings; ``duration`` may be left out
  (the recording's length is used); an event without ``speech_end`` gets it estimated from the
  recording with the rule make-stream uses (``streams.speech_bounds``), since latency is
  measured from there;
* a ``"commands"`` list (make-stream ``--commands``, for a model of its own command words): the words that are
  commands in this file; without it, the ten of Speech Commands.

Anything else is refused in one line naming the file, the event and the key.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from voice_gru import COMMANDS, SILENCE, UNKNOWN
from voice_gru.data import WORDS_V2
from voice_gru.errors import AudioFormatError, DatasetError

SAMPLE_RATE = 16000
TIME_TOL_S = 0.05  # a label file's times may run this far past the recording (rounding, resampling)
END_OVERRUN_S = 1.0  # a span ending at most this far past the recording is cut at its end (a fixed 1 s window)
ORDER_TOL_S = 1e-4  # start <= speech_start <= speech_end <= end up to rounding of the written times
MIN_EVENT_GAP_S = 0.05  # two events starting closer than this are one event given twice
TF_CLIP_S = 1.0  # TensorFlow's streaming test labels a clip's start; its clips last 1 s
LINE = "_line"  # where an event of a line-based label file came from (for messages; not kept)
TF_ROW = "_tensorflow"  # an event read from TensorFlow's 'label, time_ms' line: its end is ours (not kept)
# the labels a truth event of a ten-command label file may carry (a file with a "commands" list: those instead);
# scoring counts every one but _unknown_/_silence_ as a command
TRUTH_LABELS = (*COMMANDS, UNKNOWN, SILENCE)
_ALIASES = {"unknown": UNKNOWN, "silence": SILENCE, "_background_noise_": SILENCE,
            **{w: UNKNOWN for w in WORDS_V2}}  # a word of the dataset that is not one of the commands
_TF_LINE = re.compile(r"^\s*([^,]+?)\s*,\s*([-+0-9.eE]+)\s*$")


def labels_path_for(wav: str | Path) -> Path:
    """``REC.wav`` -> ``REC.json`` (the label file written beside a stream)."""
    return Path(wav).with_suffix(".json")


def command_free_truth(duration_s: float, sample_rate: int = SAMPLE_RATE) -> dict:
    """The truth of a recording known to hold none of the commands (a TV, radio or meeting)."""
    return {"duration": float(duration_s), "sample_rate": sample_rate, "events": [], "command_free": True}


def _seconds(value: Any) -> float | None:
    """A finite number of seconds from a JSON number or numeric string; None otherwise (bool never)."""
    if isinstance(value, bool):
        return None
    if not isinstance(value, (str, int, float)):
        return None
    try:
        number = float(value)  # a 400-digit JSON integer overflows: not a time either
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(number):
        return None
    return value if isinstance(value, (int, float)) else number


@functools.lru_cache(maxsize=16)
def _by_fold(words: tuple[str, ...]) -> dict[str, str]:
    """Each word by its case-folded form: label files and detections name words in any case."""
    return {w.casefold(): w for w in words}


def _label(where: str, raw: Any, commands: tuple[str, ...] = COMMANDS,
           others: tuple[str, ...] = ()) -> tuple[str, str | None]:
    """The label of ``raw`` (one of ``commands``, ``_unknown_``, ``_silence_``) and the word it names when that is
    not the label itself (``others``: words the file itself calls commands that these commands do not hold)."""
    labels = (*commands, UNKNOWN, SILENCE)
    if isinstance(raw, str):
        name = raw.strip()
        own = _by_fold(labels).get(name.casefold())
        if own is not None:
            return own, None
        if name.lower() in _ALIASES:
            return _ALIASES[name.lower()], (name.lower() if name.lower() in WORDS_V2 else None)
        other = _by_fold(others).get(name.casefold())
        if other is not None:  # the file's own command word (a folder of one's recordings): another word here
            return UNKNOWN, other
    hint = ""
    if isinstance(raw, str):
        close = difflib.get_close_matches(raw.strip().lower(), [*labels, *_ALIASES], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
    # a label no model outputs would count as a command that can never be hit, lowering recall
    raise DatasetError(f"{where}.label = {raw!r}: not a command or {UNKNOWN}/{SILENCE} (one of {', '.join(labels)}, "
                       f"or a word of the dataset for {UNKNOWN}){hint}")


def _check_event(path: Path, i: int, ev: Any, duration: float, recorded: float | None = None,
                 commands: tuple[str, ...] = COMMANDS, others: tuple[str, ...] = (), rescore: bool = False) -> dict:
    """``events[i]`` in the one form scoring reads; DatasetError naming the event and its first bad key.
    ``recorded``: the recording's own length, where the label file's ``duration`` was used instead."""
    where = f"{path}:{ev[LINE]}" if isinstance(ev, dict) and LINE in ev else f"{path}: events[{i}]"
    if not isinstance(ev, dict):
        raise DatasetError(f"{where}: expected an object with 'label', 'start' and 'end', got {type(ev).__name__}")
    for key in ("label", "start", "end"):
        if key not in ev:
            hint = (f"; '{key}_ms' is not read: give '{key}' in seconds" if f"{key}_ms" in ev else
                    "; this looks like a detections file (listen --events): give it to score-events --events"
                    if "t" in ev else "")
            raise DatasetError(f"{where}: missing '{key}' (each event needs 'label', 'start' and 'end', in seconds){hint}")
    out = {k: v for k, v in ev.items() if k not in (LINE, TF_ROW)}
    out["label"], word = _label(where, ev["label"], commands, others)
    if word and not ev.get("word"):
        out["word"] = word
    said = out.get("word")
    if rescore and out["label"] == UNKNOWN and isinstance(said, str):  # another word to the file, a command here
        out["label"] = _by_fold(commands).get(said.strip().casefold(), UNKNOWN)
    for key in ("start", "end", "speech_start", "speech_end"):
        if key in ev and ev[key] is None and key.startswith("speech"):
            del out[key]  # written as unknown: estimated from the recording, as when left out
        elif key in ev:
            out[key] = _seconds(ev[key])
            if out[key] is None:
                raise DatasetError(f"{where}.{key} = {ev[key]!r}: must be a finite number of seconds")
    start, end = out["start"], out["end"]
    said = (f" by the label file's duration; the recording is {recorded:.2f} s long"
            if recorded is not None and abs(recorded - duration) > TIME_TOL_S else "")
    longest = max(duration, recorded or 0.0) + TIME_TOL_S
    if max(longest, 1000.0) < max(start, end) <= 1000 * longest:  # 1702.25 in a minute: milliseconds
        said += "; times are in seconds: milliseconds?"
    if start < 0:
        raise DatasetError(f"{where}.start = {start}: must be >= 0 (seconds from the recording's start)")
    if start > duration + TIME_TOL_S:
        raise DatasetError(f"{where}.start = {start}: after the recording's end ({duration:.5f} s{said})")
    if end < start:
        raise DatasetError(f"{where}.end = {end}: before its start ({start})")
    if duration + TIME_TOL_S < end <= duration + END_OVERRUN_S:  # a word's window cut by the recording's end
        out["end_cut"] = end
        end = out["end"] = max(duration, start)
        for key in ("speech_start", "speech_end"):
            if key in out and out[key] > end:
                out[key] = end
    if end > duration + TIME_TOL_S:
        if TF_ROW in ev:
            raise DatasetError(f"{where}: a {TF_CLIP_S:g} s clip starting at {start:g} s runs past the recording's "
                               f"end ({duration:.5f} s)")
        raise DatasetError(f"{where}.end = {end}: after the recording's end ({duration:.5f} s{said})")
    lo = start
    for key in ("speech_start", "speech_end"):  # start <= speech_start <= speech_end <= end
        if key in out:
            if not lo - ORDER_TOL_S <= out[key] <= end + ORDER_TOL_S:
                raise DatasetError(f"{where}.{key} = {out[key]}: must lie between {lo:.5f} and the event's "
                                   f"end ({end:.5f})")
            out[key] = min(max(out[key], lo), end)
            lo = out[key]
    for key in ("word", "file"):  # scoring groups false accepts by them
        if out.get(key) is not None and not isinstance(out[key], str):
            raise DatasetError(f"{where}.{key} = {out[key]!r}: must be a string")
    return out


def _read_text(path: Path, what: str, where_from: str) -> str:
    """The text of an input file, or one line saying why there is none."""
    if path.is_dir():
        raise DatasetError(f"{path}: is a folder, not a {what}")
    if not path.exists():
        raise DatasetError(f"{path}: {what} not found ({where_from})")
    try:
        raw = path.read_bytes()  # also a pipe (<(...)) or a device
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    try:
        # a byte-order mark is what Windows editors (UTF-8) and PowerShell's > (UTF-16) put first
        return raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a text file ({exc})") from None


class _KeyTwice(ValueError):
    pass


def _pairs(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    twice = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
    if twice is not None:  # json keeps the last: {"duration": 5, "duration": 60} was scored as an hour
        raise _KeyTwice(f"key '{twice}' given twice")
    return dict(pairs)


def _json(text: str, where: str | Path) -> Any:
    """``json.loads`` where a key given twice in one object is a ``DatasetError`` naming ``where``."""
    try:
        return json.loads(text, object_pairs_hook=_pairs)
    except _KeyTwice as exc:
        raise DatasetError(f"{where}: {exc}") from None


def _parse_lines(path: Path, text: str, why: str) -> dict:
    """JSON Lines or TensorFlow's ``label, time_ms`` lines as ``{"events": [...]}``."""
    numbered = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")]
    rows: list = []
    for n, ln in numbered:
        try:
            rows.append(_json(ln, f"{path}:{n}"))
        except (json.JSONDecodeError, RecursionError) as exc:
            rows.append(exc)
    objects = [isinstance(r, dict) for r in rows]
    if numbered and all(objects):
        return {"events": [{**r, LINE: n} for (n, _), r in zip(numbered, rows)]}
    if numbered and 2 * sum(objects) > len(objects):  # JSON Lines with a broken line: that line, not "no format"
        first = objects.index(False)
        (n, ln), r = numbered[first], rows[first]
        why_line = f"not JSON ({r})" if isinstance(r, Exception) else f"a JSON {type(r).__name__}, not an event object"
        raise DatasetError(f"{path}:{n}: {ln.strip()[:60]!r}: {why_line} (the other lines are JSON Lines events)")
    if not numbered:  # an empty file (or only comments) is a label file with no events: said as an empty list is
        return {"events": []}
    tf = [(n, _TF_LINE.match(ln)) for n, ln in numbered]
    if 2 * sum(m is not None for _, m in tf) < len(tf):
        raise DatasetError(f"{path}: not a label file: neither JSON ({why}), JSON Lines nor TensorFlow's "
                           "'label, time_ms' lines")
    events = []
    for (n, m), (_, line) in zip(tf, numbered):
        ms = _seconds(m[2]) if m else None
        if m is None or ms is None:
            raise DatasetError(f"{path}:{n}: {line.strip()!r}: not a 'label, time_ms' line (TensorFlow's "
                               "streaming-test labels)")
        events.append({"label": m[1], "start": ms / 1000, "end": ms / 1000 + TF_CLIP_S, LINE: n, TF_ROW: True})
    return {"events": events, "format": "tensorflow"}


def _parse(path: Path, text: str) -> dict:
    """The label file's content as ``{"events": [...], ...}``, whichever format it was written in."""
    try:
        data = _json(text, path)
    except RecursionError:
        raise DatasetError(f"{path}: JSON nested too deeply to be a label file") from None
    except json.JSONDecodeError as exc:
        return _parse_lines(path, text, str(exc))
    if isinstance(data, list):
        return {"events": data}
    if isinstance(data, dict) and "events" not in data and data.get("command_free") is True:
        return {**data, "events": []}
    if isinstance(data, dict) and "start" in data and "label" in data:
        return {"events": [data]}  # JSON Lines of one event
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        hint = ("; this looks like a detections file (listen --events): give it to score-events --events"
                if isinstance(data, dict) and "t" in data else "")
        raise DatasetError(f"{path}: not a stream label file (expected an object with an 'events' list, or a list "
                           f"of events){hint}")
    return data


def read_truth(path: str | Path, duration: float | None = None, commands: Sequence[str] | None = None) -> dict:
    """Read and check a stream's label file (any format of the module doc) and return its truth.

    ``duration``: the recording's length in seconds, used when the file does not say it. Checked
    once here so scoring never meets a value it would silently misread: times are finite numbers
    within the recording (with a small tolerance), ``start <= speech_start <= speech_end <= end``,
    labels are commands, ``_unknown_`` or ``_silence_``, no two events start at the same time. The commands are
    ``commands`` where given (a model's: every event is labelled by what it says, a word of the file's
    ``_unknown_`` that is one of them becomes that command, a command of the file that is not one of them
    ``_unknown_``; where the file was made for other commands, its list is kept as ``labelled_for`` and the number of
    its other words that do not say which word they are as ``unnamed_words``), else the file's ``commands`` list
    (make-stream writes it for a model's own command words), else the ten of Speech Commands
    (``commands_in(truth)``).
    """
    path = Path(path)
    truth = _parse(path, _read_text(path, "label file", "make-stream writes it beside the WAV"))
    if "commands" in truth:
        truth["commands"] = _commands(path, truth["commands"])
    others: tuple[str, ...] = ()  # the file's command words that are not those it is scored for
    rescore = False  # made for other commands than those it is scored for: each word is read as what it is
    if commands is not None:
        made = commands_in(truth)
        mine, theirs = set(_by_fold(tuple(commands))), set(_by_fold(made))
        others = tuple(w for w in made if w.casefold() not in mine)
        rescore = theirs != mine
        raw = {str(e.get("label", "")).strip().casefold() for e in truth["events"] if isinstance(e, dict)}
        # made for other commands: its list says so, or (without one) it labels one of the ten that is not ours
        if rescore and ("commands" in truth or raw & (theirs - mine)):
            truth["labelled_for"] = list(made)
        if mine - theirs:  # an other word of the file may be one of ours: it must say which
            unnamed = sum(1 for e in truth["events"] if isinstance(e, dict) and not e.get("word")
                          and str(e.get("label", "")).strip().casefold() in (UNKNOWN, "unknown"))
            if unnamed:
                truth["unnamed_words"] = unnamed
        truth["commands"] = list(commands)
    commands = commands_in(truth)
    if truth.get("duration") is not None:
        said = _seconds(truth["duration"])
        if said is None or said <= 0:
            raise DatasetError(f"{path}: duration = {truth['duration']!r}: must be a positive number of seconds")
        truth["duration"] = said
    elif duration is not None:
        given = _seconds(duration)
        if given is None or given <= 0:
            raise DatasetError(f"{path}: the recording's duration {duration!r} is not a positive number of seconds")
        truth["duration"] = float(given)
    elif any(isinstance(e, dict) and "t" in e and "start" not in e for e in truth["events"]):
        raise DatasetError(f"{path}: this looks like a detections file (listen --events), not a label file: give it "
                           "to score-events --events")
    else:
        raise DatasetError(f"{path}: missing 'duration' (the recording's length in seconds; with the recording, "
                           "--input REC.wav, it is read from there)")
    rate = truth.get("sample_rate")
    if rate is not None:
        number = _seconds(rate)  # 16000, 16000.0 and "16000" are the same rate
        if number is not None and float(number).is_integer():
            rate = truth["sample_rate"] = int(number)
        if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
            raise DatasetError(f"{path}: sample_rate = {rate!r}: must be a positive whole number of Hz")
    if not truth["events"] and truth.get("command_free") is not True:
        raise DatasetError(f"{path}: no events: for a recording without commands say \"command_free\": true "
                           "(or use evaluate-stream --command-free)")
    events = []
    for i, ev in enumerate(truth["events"]):
        ev = _check_event(path, i, ev, float(truth["duration"]), None if duration is None else float(duration),
                          commands, others, rescore)
        if truth.get("command_free") is True and ev["label"] in commands:
            own = commands != COMMANDS  # a model's own words: maybe another word to whoever made the file
            raise DatasetError(f"{path}: events[{i}] is the command {ev['label']!r}"
                               + (f" (scored for {', '.join(commands)})" if own else "")
                               + " but the file says \"command_free\": true"
                               + (f" (a recording without them: make-stream --command-free --commands "
                                  f"{' '.join(commands)})" if own else ""))
        events.append(ev)
    # two events at one start (or a few ms apart: two label sources merged): scoring cuts the first one's window at
    # the second's start, a miss no detector can avoid; make-stream starts words at least 100 ms apart
    by_start = sorted(range(len(events)), key=lambda k: events[k]["start"])
    for a, b in zip(by_start, by_start[1:]):
        gap = events[b]["start"] - events[a]["start"]
        if gap < MIN_EVENT_GAP_S:
            first, second = sorted((a, b))
            where = "there too" if gap == 0 else f"{gap * 1000:.0f} ms away"
            raise DatasetError(f"{path}: events[{second}].start = {events[second]['start']}: events[{first}] starts "
                               f"{where} (a duplicate event)")
    truth["events"] = events
    return truth


def commands_in(truth: Mapping) -> tuple[str, ...]:
    """The words a truth counts as commands: its ``commands`` list, else the ten of Speech Commands."""
    return tuple(truth.get("commands", COMMANDS))


def _commands(path: Path, value: Any) -> list[str]:
    """A label file's ``commands`` list, checked."""
    words = [w.strip() for w in value if isinstance(w, str)] if isinstance(value, (list, tuple)) else []
    folded = {w.casefold() for w in words}
    if not words or len(words) < len(value) or not all(words) or folded & {UNKNOWN, SILENCE} or len(folded) < len(words):
        raise DatasetError(f"{path}: commands = {value!r}: expected a list of distinct command words")
    return words


CLIP_SPAN_S = 0.8  # a label span this long is a clip's window, noise around the word included


def estimate_speech_ends(audio: np.ndarray, truth: dict, sample_rate: int = SAMPLE_RATE) -> int:
    """Give every word event without ``speech_end`` one measured in ``audio`` (make-stream's rule);
    returns how many were estimated (each marked ``speech_end_estimated``)."""
    from voice_gru.streams import speech_bounds

    n = 0
    for ev in truth["events"]:
        if "speech_end" in ev or ev["label"] == SILENCE:
            continue
        a, b = int(round(ev["start"] * sample_rate)), int(round(ev["end"] * sample_rate))
        segment = audio[a:min(b, audio.size)]
        if segment.size == 0:
            continue
        # a clip-long span (TensorFlow's 1 s labels, a list of clip windows) holds the noise around its word, as
        # make-stream's clips do: the same noise-floor rule (without it latencies read ~45 ms short); a span cut to
        # the word has no floor to find
        margin = 10.0 if ev["end"] - ev["start"] >= CLIP_SPAN_S else None
        s0, s1 = speech_bounds(segment, sample_rate=sample_rate, floor_margin_db=margin)
        ev.setdefault("speech_start", round(ev["start"] + s0, 5))
        ev["speech_end"] = max(ev["speech_start"], round(ev["start"] + s1, 5))
        ev["speech_end_estimated"] = True
        n += 1
    return n


def read_detections(path: str | Path, offset: float = 0.0, commands: tuple[str, ...] = COMMANDS) -> list[dict]:
    """Detections as ``listen --events`` writes them (JSON Lines of ``{"t", "label", "score"}``, or a
    JSON list of such objects), each ``t`` minus ``offset`` (how long listening ran before the
    recording started), each label one of ``commands``; errors name the file and line."""
    path = Path(path)
    shift = _seconds(offset)
    if shift is None:
        raise DatasetError(f"{path}: offset {offset!r} is not a finite number of seconds")
    text = _read_text(path, "detections file", "listen --events writes it")
    own = _by_fold(tuple(commands))
    try:
        whole = _json(text, path)
    except RecursionError:
        raise DatasetError(f"{path}: JSON nested too deeply to be a detections file") from None
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and isinstance(whole.get("events"), list):
        if _seconds(whole.get("offset_s")) and shift:  # a score-events report's times are shifted already
            raise DatasetError(f"{path}: a report whose times were already shifted by offset_s = {whole['offset_s']}: "
                               "leave out --offset")
        whole = whole["events"]  # an evaluate-stream / score-events --json report: its detections
    rows = [(f"{path}: [{i}]", row) for i, row in enumerate(whole)] if isinstance(whole, list) else \
        [(f"{path}:{n}", line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    out = []
    seen: dict[tuple[float, str], str] = {}
    for where, row in rows:
        if isinstance(row, str):
            try:
                row = _json(row, where)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise DatasetError(f"{where}: not a JSON line ({exc})") from None
        if not isinstance(row, dict) or "t" not in row or "label" not in row:
            hint = " (this looks like a label file: give it to --labels)" if isinstance(row, dict) and "start" in row else ""
            raise DatasetError(f"{where}: expected an object with 't' (seconds) and 'label', as listen --events "
                               f"writes{hint}")
        t = _seconds(row["t"])
        if t is None:
            raise DatasetError(f"{where}: t = {row['t']!r}: must be a finite number of seconds")
        label = own.get(row["label"].strip().casefold()) if isinstance(row["label"], str) else None
        if label is None:
            raise DatasetError(f"{where}: label = {row['label']!r}: not one of the commands ({', '.join(commands)}; "
                               "a model of its own words: score-events --commands names them)")
        if (t, label) in seen:  # the same file twice (concatenated): every copy was a false accept
            raise DatasetError(f"{where}: the same detection as {seen[t, label]} ({label} at {t:g} s): the file "
                               "holds its detections twice?")
        seen[t, label] = where
        det = {"t": t - shift, "label": label}
        if row.get("score") is not None:
            score = _seconds(row["score"])
            if score is None or not 0 <= score <= 1:
                raise DatasetError(f"{where}: score = {row['score']!r}: must be a posterior between 0 and 1")
            det["score"] = float(score)
        out.append(det)
    return out


def load_stream(wav: str | Path, labels: str | Path | None = None, command_free: bool = False,
                sample_rate: int = SAMPLE_RATE, commands: Sequence[str] | None = None) -> tuple[np.ndarray, dict]:
    """A recording at ``sample_rate`` (the model's) and its truth; the label file defaults to the
    WAV's name with ``.json``.

    The label file's ``sample_rate`` says at what rate make-stream wrote the WAV; the recording's own
    header is the truth for the audio, so a label file that disagrees with it is refused (it belongs
    to another recording, or the recording was resampled after the labels were written).
    ``command_free``: no label file; the recording holds no commands (``command_free_truth``). ``commands``: the
    words scored as commands (``read_truth``).
    """
    import soundfile as sf

    from voice_gru.audio import load_recording

    if not Path(wav).exists():
        raise AudioFormatError(f"{wav}: recording not found")
    if Path(wav).is_dir():  # said of it, not of the label file its name would give
        raise AudioFormatError(f"{wav}: is a folder, not a recording")
    if command_free:
        audio = load_recording(wav, sample_rate)
        return audio, command_free_truth(audio.size / sample_rate, sample_rate)
    labels = Path(labels) if labels else labels_path_for(wav)
    if not labels.exists():  # said before the recording is decoded
        raise DatasetError(f"{labels}: label file not found (make-stream writes it beside the WAV; a recording with "
                           "no commands in it, e.g. TV or a meeting, takes --command-free instead)")
    if not labels.is_file():
        read_truth(labels, commands=commands)
    audio = load_recording(wav, sample_rate)  # decoded and checked: the header below is readable
    seconds = audio.size / sample_rate
    truth = read_truth(labels, duration=seconds, commands=commands)
    header_sr = int(sf.info(str(wav)).samplerate)
    said_sr = truth.get("sample_rate")
    if said_sr is not None and said_sr != header_sr:
        raise DatasetError(f"{labels}: sample_rate = {said_sr} but {wav} is recorded at {header_sr} Hz: the label "
                           f"file belongs to another recording (if {wav} was resampled, set sample_rate to {header_sr})")
    if abs(seconds - float(truth["duration"])) > TIME_TOL_S:
        raise DatasetError(f"{labels}: says {float(truth['duration']):.2f} s but {wav} holds "
                           f"{seconds:.2f} s: the label file belongs to another recording")
    estimate_speech_ends(audio, truth, sample_rate)
    return audio, truth


__all__ = ["TRUTH_LABELS", "commands_in", "labels_path_for", "command_free_truth", "read_truth", "estimate_speech_ends", "load_stream",
           "read_detections"]
