"""Long test recordings built from a dataset split, and how a detector is scored on them.

A *stream* is what a listening assistant hears: a word every 2–4 s (commands and other words)
over background noise that changes now and then, each word at its own gain. ``make_stream``
builds one deterministically from a seed and returns the audio with its *truth*::

    {"sample_rate": 16000, "duration": 600.0, "split": "validation", "seed": 0,
     "command_free": false, "spec": {...},
     "events": [{"label": "stop", "word": "stop", "file": "stop/0ab3b47d_nohash_0.wav",
                 "start": 3.2, "end": 4.2, "speech_end": 3.91, "gain_db": -4.1}, ...],
     "noise": [{"file": "running_tap.wav", "start": 0.0, "end": 12.3, "dbfs": -52.0, "segment_dbfs": -49.7}, ...]}

``label`` is the word's class (a command or ``_unknown_``; for a model of its own command words, ``make_stream(...,
commands=...)``, those words are the commands and the truth lists them as ``"commands"``); ``speech_end`` is where the speech
inside the clip ends (the end of the last 10 ms frame within ``speech_db`` dB of the clip's
loudest frame and clear of the clip's own noise floor, ``speech_bounds``) — latency is measured from there. A ``command_free`` stream holds only unknown
words and noise: it measures false accepts. Unknown words come clip by clip (the split's own word
mix: in this subset mostly "bed", "cat" and "happy") or, with ``unknown_mix="words"``, word by word
(every other word equally often, as in a conversation's varied vocabulary).

Scoring (``score_events``) gives every command clip a window ``[start, end + after]`` (cut at the
next clip's start, so a detection belongs to at most one clip):

* the first detection with the clip's label in its window is a *hit* (latency = t - speech_end);
* in a command clip's window without one, the first detection is a *wrong* label;
* a command clip without a hit is a *miss* (so misses include the wrong labels: miss rate = 1 - recall);
* every other detection is a *false accept*: outside every window, inside an unknown word's
  window, or a *repeat*: any further firing on a command clip, whatever its label (the issue's
  "repeated firing on one utterance"; the user got a second action).

``_silence_`` events in a label file own no window: a firing there is outside every word.

``evaluate_stream`` runs exactly what ``voice-gru listen --input FILE`` runs (``live.listen_loop``
over chunks into a ``Recognizer`` and a ``Detector``) and keeps the posteriors, so a threshold
sweep (``sweep_thresholds``) reruns only the cheap detector.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from voice_gru import COMMANDS, SILENCE, UNKNOWN, commands_of
from voice_gru.config import OFF, REFRESH_S, DecisionConfig, from_dict, to_dict
from voice_gru.errors import AudioFormatError, ConfigError, DatasetError, is_whole
from voice_gru.stream_labels import (  # noqa: F401  (this module's API since before they moved)
    TRUTH_LABELS,
    command_free_truth,
    labels_path_for,
    load_stream,
    read_truth,
)
from voice_gru.stream_labels import commands_in
from voice_gru.data import missing_commands, record_hint

if TYPE_CHECKING:
    from voice_gru.checkpoint_data import CheckpointData
    from voice_gru.decision import Detector
    from voice_gru.model import Checkpoint

SAMPLE_RATE = 16000
SPLITS = ("training", "validation", "testing")
DEFAULT_SWEEP = tuple(float(x) for x in np.round(np.linspace(0.3, 0.99, 24), 3))
FRAME_S = 0.01  # energy frames of the speech_end rule
MAX_GAP_S = 0.2  # longer than a pause inside a word (the closure before a stop's release)


# --------------------------------------------------------------------------------------------
# stream generation


UNKNOWN_MIXES = ("clips", "words")


@dataclass(frozen=True)
class StreamSpec:
    """How a test stream is built. Levels are dBFS (RMS) for noise, dB relative to the recording for clips."""

    seconds: float = 600.0  # stream length
    gap_s: tuple[float, float] = (2.0, 4.0)  # clip start to next clip start, uniform in this range
    command_ratio: float = 0.7  # fraction of clips that are commands (ignored when command_free)
    command_free: bool = False  # only unknown words and noise: measures false accepts
    gain_db: tuple[float, float] = (-10.0, 0.0)  # gain applied to each clip, uniform in dB
    # each noise segment's recording is set to an RMS level drawn uniformly in dB from this range (``dbfs``); the
    # segment's own level varies with the recording (~±9 dB for the dataset's dishes and cat; ``segment_dbfs``)
    noise_dbfs: tuple[float, float] = (-70.0, -50.0)
    noise_segment_s: tuple[float, float] = (5.0, 20.0)  # the noise changes file/level this often
    crossfade_s: float = 0.1  # between noise segments
    lead_s: float = 1.0  # noise only before the first clip
    tail_s: float = 1.5  # noise only after the last clip's end
    speech_db: float = 25.0  # speech_end: last 10 ms frame within this many dB of the loudest
    rt60_s: float = 0.0  # > 0: every word played in one simulated room with this reverberation time ...
    drr_db: float = 3.0  # ... and this direct-to-reverberant ratio (mixing.room_impulse_response)
    unknown_mix: str = "clips"  # "clips": each unknown clip equally often (the split's own word mix);
    # "words": each unknown word equally often ("five" as often as "happy", which has ten times its clips)
    # instead of gain_db: each word set to an SNR drawn from this range over the noise bed under it (the word's active
    # power over the bed's mean power across the clip, as ``mixing.mix_at_snr`` and scripts/snr_curve.py define it)
    snr_db: tuple[float, float] | None = None

    def check(self) -> "StreamSpec":
        """Raise ConfigError naming the first bad field; return self."""
        for f in dataclasses.fields(self):  # a NaN passes every comparison below by failing it; inf never ends
            value = getattr(self, f.name)
            parts = tuple(value) if isinstance(value, (tuple, list)) else (value,)
            if f.name in ("command_free", "unknown_mix") or (f.name == "snr_db" and value is None):
                continue
            pair = isinstance(f.default, tuple) or f.name == "snr_db"
            if len(parts) != (2 if pair else 1) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in parts):
                raise ConfigError(f"stream spec: {f.name} = {value!r}: expected "
                                  + ("two finite numbers" if pair else "a finite number"))

        def rng(name: str, lo_min: float | None = None) -> None:
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ConfigError(f"stream spec: {name} = ({lo}, {hi}): the first value must not exceed the second")
            if lo_min is not None and lo < lo_min:
                raise ConfigError(f"stream spec: {name} = ({lo}, {hi}): values must be at least {lo_min}")
        if not self.seconds > 0:
            raise ConfigError(f"stream spec: seconds = {self.seconds}: must be positive")
        rng("gap_s", 0.1)
        rng("gain_db")
        rng("noise_dbfs")
        if self.snr_db is not None:
            rng("snr_db")
        rng("noise_segment_s", 0.5)
        if not 0.0 <= self.command_ratio <= 1.0:
            raise ConfigError(f"stream spec: command_ratio = {self.command_ratio}: must be between 0 and 1")
        if self.crossfade_s < 0 or self.lead_s < 0 or self.tail_s < 0 or self.speech_db <= 0:
            raise ConfigError("stream spec: crossfade_s, lead_s and tail_s must be >= 0 and speech_db > 0")
        if self.rt60_s < 0:
            raise ConfigError(f"stream spec: rt60_s = {self.rt60_s}: a reverberation time is >= 0 (0: no room)")
        if self.unknown_mix not in UNKNOWN_MIXES:
            raise ConfigError(f"stream spec: unknown_mix = {self.unknown_mix!r}: one of {', '.join(UNKNOWN_MIXES)}")
        return self


@dataclass(frozen=True)
class ClipBank:
    """The decoded clips of one split of a dataset root, and its background noise."""

    root: str
    split: str
    commands: tuple  # ((relative path, word, audio), ...)
    unknown: tuple
    noise: tuple  # ((file name, audio, rms), ...)
    unreadable: tuple = ()  # ((path, reason), ...): reported, never silently dropped
    command_words: tuple[str, ...] = COMMANDS  # which words were taken as commands


@functools.lru_cache(maxsize=4)
def load_clip_bank(root: str | Path, split: str, commands: tuple[str, ...] = COMMANDS) -> ClipBank:
    """Decode every clip of ``split`` under ``root`` (cached per process) and the background noise; ``commands``: the
    words that are commands (a model's own, ``data.commands``), every other word is an unknown word."""
    from voice_gru.audio import load_audio
    from voice_gru.data import background_files, is_test_set_layout, scan_dataset

    if split not in SPLITS:
        raise DatasetError(f"unknown split '{split}' (expected one of {', '.join(SPLITS)})")
    root = Path(root)
    clips = [c for c in scan_dataset(root) if c.split == split]
    if not clips:
        if is_test_set_layout(root):
            raise DatasetError(f"{root}: a test-set layout (label folders, no split lists) is all testing clips; it "
                               f"has no {split} split")
        raise DatasetError(f"{root}: no clips in the {split} split")
    said: list[tuple[str, str, np.ndarray]] = []  # the commands: (path under root, word, audio)
    unknown: list[tuple[str, str, np.ndarray]] = []
    silence: list[np.ndarray] = []
    bad: list[tuple[str, str]] = []
    for c in clips:
        try:
            audio = load_audio(c.path, SAMPLE_RATE)
        except AudioFormatError as exc:
            bad.append((c.path, str(exc)))
            continue
        try:
            rel = Path(c.path).relative_to(root).as_posix()
        except ValueError:
            rel = c.path
        word = c.word or c.label or UNKNOWN
        if word == SILENCE:  # a test-set layout's _silence_ clips are background noise, not words
            silence.append(audio)
            continue
        (said if word in commands else unknown).append((rel, word, audio))
    noise = []
    for f in background_files(root):
        try:
            a = load_audio(f, SAMPLE_RATE)
        except AudioFormatError as exc:
            bad.append((str(f), str(exc)))
            continue
        rms = _rms(a)
        if rms > 0 and a.size >= SAMPLE_RATE:
            noise.append((f.name, a, rms))
    joined, n_joined = _join_noise(silence)
    if n_joined:
        noise.append((f"{SILENCE} ({n_joined} clips joined)", joined, _rms(joined)))
    return ClipBank(str(root), split, tuple(said), tuple(unknown), tuple(noise), tuple(bad), tuple(commands))


def _rms(a: np.ndarray) -> float:
    """Root-mean-square of samples (0 for none), in float64."""
    return float(np.sqrt(np.mean(a.astype(np.float64) ** 2))) if a.size else 0.0


def _join_noise(clips: Sequence[np.ndarray], crossfade_s: float = 0.05,
                floor_dbfs: float = -80.0) -> tuple[np.ndarray, int]:
    """Short noise clips (a test-set layout's ``_silence_``) as one recording, and how many it holds: each at one
    RMS level, joined with crossfades (the noise bed sets its own level). Clips below ``floor_dbfs`` RMS are left out
    while louder ones exist: at 16 bits they are a few levels of rounding, spiky once raised to the others' level
    (the official test set's quietest, scaled by 0.01)."""
    xf = int(round(crossfade_s * SAMPLE_RATE))
    levels = [(a, _rms(a)) for a in clips]
    usable = [(a, rms) for a, rms in levels if rms > 0 and a.size > 2 * xf]
    loud = [(a, rms) for a, rms in usable if rms >= 10 ** (floor_dbfs / 20)]
    parts = [(a / rms).astype(np.float32) for a, rms in (loud or usable)]
    if not parts:
        return np.zeros(0, dtype=np.float32), 0
    ramp = np.linspace(0.0, 1.0, xf, endpoint=False, dtype=np.float32)
    fade_in, fade_out = np.sqrt(ramp), np.sqrt(1.0 - ramp)  # equal power: the clips are uncorrelated noise
    pieces = [parts[0][:-xf]]
    for prev, a in zip(parts, parts[1:]):
        pieces += [prev[-xf:] * fade_out + a[:xf] * fade_in, a[xf:-xf]]
    pieces.append(parts[-1][-xf:])
    return np.concatenate(pieces), len(parts)


def skipped_line(unreadable: Sequence[Mapping]) -> str:
    """The line that reports a split's unreadable clips (``{"file", "reason"}``), left out of a stream."""
    first = unreadable[0]
    reason = str(first["reason"]).removeprefix(f"{first['file']}: ")  # some reasons name the file themselves
    return f"skipped {len(unreadable)} unreadable clip(s), e.g. {first['file']}: {reason}"


def speech_bounds(audio: np.ndarray, speech_db: float = 25.0, sample_rate: int = SAMPLE_RATE,
                  floor_margin_db: float | None = 10.0) -> tuple[float, float]:
    """(start, end) in seconds of the speech in a clip: the first/last 10 ms frame within ``speech_db`` dB of
    the loudest frame (energy = mean square of the frame) that is also, alone and averaged over 50 ms,
    ``floor_margin_db`` above the clip's noise floor (its 10th-percentile frame; the margin is kept within 10 dB of
    the peak).

    The floor matters for clips recorded with noise less than ``speech_db`` below the word: by the first
    rule alone their noise is speech to the clip's end, and latency measured from there comes out short
    (a quarter of the testing stream's clips). It needs noise around the word, as a dataset clip has; for a
    segment cut to the word (a label file's span) ``floor_margin_db=None`` keeps the first rule alone.
    Frames of exact zeros (a clip padded with digital silence) are not the floor. Of frames that pass, the word is the
    stretch of them with the most energy, its pauses shorter than ``MAX_GAP_S``: a click or breath a pause away is not.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"speech_bounds: audio must be one channel of float samples, got {audio.dtype} of shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise ValueError("speech_bounds: audio holds NaN or infinite samples")
    if not is_whole(sample_rate, 100):
        raise ValueError(f"speech_bounds: sample_rate must be a whole number of Hz (at least 100), got {sample_rate!r}")
    if not math.isfinite(speech_db) or (floor_margin_db is not None and not math.isfinite(floor_margin_db)):
        raise ValueError(f"speech_bounds: speech_db and floor_margin_db must be finite, got {speech_db!r} and {floor_margin_db!r}")
    hop = int(round(FRAME_S * sample_rate))
    n = max(1, int(np.ceil(audio.size / hop)))
    padded = np.zeros(n * hop, dtype=np.float64)
    padded[:audio.size] = audio
    energy = (padded.reshape(n, hop) ** 2).mean(1)
    peak = energy.max()
    if peak <= 0:
        return 0.0, audio.size / sample_rate
    loud = energy >= peak * 10 ** (-speech_db / 10)
    speech = np.flatnonzero(loud)
    if floor_margin_db is not None:
        # one noise burst is no speech; "full" sliced, not "same", which is longer than a clip of under 5 frames
        smooth = np.convolve(energy, np.ones(5) / 5, mode="full")[2:2 + n]
        floor = min(np.percentile(smooth[energy > 0], 10) * 10 ** (floor_margin_db / 10), smooth.max() * 0.1)
        clear = np.flatnonzero(loud & (energy >= floor) & (smooth >= floor))
        if clear.size:  # else the loudest frames are brief bursts: the first rule alone
            speech = clear
    # the word is the stretch that holds the most energy; a click the recorder made a pause away is not part of it
    # (nor the word of a click louder than it: the loudest 50 ms chose the click in 3 of 1,500 command clips)
    parts = np.split(speech, np.flatnonzero(np.diff(speech) > MAX_GAP_S / FRAME_S) + 1)
    word = max(parts, key=lambda part: float(energy[part].sum()))
    return float(word[0] * hop / sample_rate), float(min(audio.size, (word[-1] + 1) * hop) / sample_rate)


class _Deck:
    """Draw items in a shuffled order, reshuffling when all have been drawn (even coverage)."""

    def __init__(self, items: Sequence, rng: np.random.Generator) -> None:
        self.items, self.rng = items, rng
        self.order: list[int] = []

    def draw(self):
        if not self.order:
            self.order = list(self.rng.permutation(len(self.items)))
        return self.items[self.order.pop()]


class _WordDeck:
    """Draw a word from a deck of words, then one of its clips from that word's own deck."""

    def __init__(self, items: Sequence, rng: np.random.Generator) -> None:
        by_word: dict = {}
        for item in items:
            by_word.setdefault(item[1], []).append(item)
        self.words = _Deck(sorted(by_word), rng)
        self.clips = {w: _Deck(v, rng) for w, v in by_word.items()}

    def draw(self):
        return self.clips[self.words.draw()].draw()


def _noise_bed(n: int, bank: ClipBank, spec: StreamSpec, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    out = np.zeros(n, dtype=np.float32)
    segments: list[dict] = []
    if not bank.noise:
        return out, segments
    xf = int(round(spec.crossfade_s * SAMPLE_RATE))
    pos = 0
    while pos < n:
        name, audio, rms = bank.noise[int(rng.integers(len(bank.noise)))]
        length = int(round(rng.uniform(*spec.noise_segment_s) * SAMPLE_RATE)) + xf
        length = min(length, n - pos)
        dbfs = float(rng.uniform(*spec.noise_dbfs))
        if audio.size >= length:
            off = int(rng.integers(0, audio.size - length + 1))
            seg = audio[off:off + length].astype(np.float32)
        else:  # a short noise file is looped
            off = int(rng.integers(0, audio.size))
            seg = np.resize(np.roll(audio, -off), length).astype(np.float32)
        seg *= np.float32(10 ** (dbfs / 20) / rms)
        level = float(10 * np.log10(max(float(np.mean(seg.astype(np.float64) ** 2)), 1e-20)))  # before the fades
        k = min(xf, length // 2)
        if k > 0:
            ramp = np.linspace(0.0, 1.0, k, endpoint=False, dtype=np.float32)
            if pos > 0:
                seg[:k] *= ramp
            if pos + length < n:
                seg[-k:] *= ramp[::-1]
        out[pos:pos + length] += seg
        segments.append({"file": name, "start": round(pos / SAMPLE_RATE, 4),
                         "end": round((pos + length) / SAMPLE_RATE, 4), "dbfs": round(dbfs, 2),
                         "segment_dbfs": round(level, 2)})
        if pos + length >= n:
            break
        pos += length - k
    return out, segments


def _gain_for_snr(word: np.ndarray, bed: np.ndarray, snr_db: float) -> float | None:
    """The gain in dB that puts ``word``'s active power ``snr_db`` above the mean power of ``bed`` under it (None for a
    silent word or silent noise, where no gain does)."""
    from voice_gru.mixing import active_power

    speech, noise = active_power(word), float(np.mean(bed.astype(np.float64) ** 2))
    if speech <= 0.0 or noise <= 0.0:
        return None
    return float(10 * np.log10(noise / speech) + snr_db)


def make_stream(root: str | Path, split: str, spec: StreamSpec = StreamSpec(), seed: int = 0,
                bank: ClipBank | None = None, commands: Sequence[str] = COMMANDS) -> tuple[np.ndarray, dict]:
    """A long recording of ``split``'s clips over background noise, and its truth (see module doc).

    ``commands``: the words that are commands (a model's own); a ``bank`` given says its own. Deterministic: the same
    root, split, spec, commands and seed give the same samples and truth.
    """
    spec.check()
    if bank is None:
        bank = load_clip_bank(str(root), split, tuple(commands))
    if not bank.unknown and (spec.command_free or spec.command_ratio < 1):
        raise DatasetError(f"{root}: the {split} split has no unknown-word clips to build this stream from")
    if spec.snr_db is not None and not bank.noise:
        raise DatasetError(f"{root}: no background noise (a _background_noise_ folder or a test-set layout's _silence_ "
                           "clips) to set the words' SNR against: give gain_db instead of snr_db")
    if not bank.commands and not spec.command_free and spec.command_ratio > 0:
        raise DatasetError(f"{root}: the {split} split has no clips of the commands ({', '.join(bank.command_words)})")
    missing = missing_commands((w for _, w, _ in bank.commands), bank.command_words)
    if missing and bank.command_words != COMMANDS:  # one's own list: a misspelt word would be a command never said
        raise DatasetError(f"{root}: the {split} split has no clips of {', '.join(missing)} (commands: "
                           f"{', '.join(bank.command_words)}): {record_hint(root, split, missing)}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, SPLITS.index(split), int(spec.command_free)])
    n = int(round(spec.seconds * SAMPLE_RATE))
    audio, noise = _noise_bed(n, bank, spec, rng)
    decks = {True: _Deck(bank.commands, rng),
             False: (_WordDeck if spec.unknown_mix == "words" else _Deck)(bank.unknown, rng)}
    rir = None
    if spec.rt60_s > 0:  # its own random stream: the words, gains and noise stay those of the dry recording
        from voice_gru.mixing import reverberate, room_impulse_response

        room_rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, SPLITS.index(split), int(spec.command_free), 1])
        rir = room_impulse_response(spec.rt60_s, spec.drr_db, SAMPLE_RATE, room_rng).astype(np.float32)
    events, placed = [], []
    t = spec.lead_s + float(rng.uniform(0.0, 1.0))
    stop_at = n - int(round(spec.tail_s * SAMPLE_RATE))
    while True:
        is_cmd = (not spec.command_free) and (not bank.unknown or float(rng.random()) < spec.command_ratio)
        rel, word, clip = decks[is_cmd].draw()
        level_db = float(rng.uniform(*(spec.gain_db if spec.snr_db is None else spec.snr_db)))
        start = int(round(t * SAMPLE_RATE))
        if start + clip.size > stop_at:
            break
        gain_db: float | None = level_db
        if spec.snr_db is not None:  # the word as heard (in the room, with its echo) over the noise under it; words
            # are added after every level is set, so that noise is the bed alone, not an earlier word
            heard = clip if rir is None else reverberate(clip, rir, length=n - start)
            gain_db = _gain_for_snr(heard, audio[start:start + heard.size], level_db)
        gain = 0.0 if gain_db is None else gain_db
        placed.append((start, clip, gain))
        s0, s1 = speech_bounds(clip, spec.speech_db)
        events.append({
            "label": word if word in bank.command_words else UNKNOWN, "word": word, "file": rel,
            "start": round(start / SAMPLE_RATE, 5), "end": round((start + clip.size) / SAMPLE_RATE, 5),
            # rounded separately, speech_end could land 1e-5 past end: clamped, as the label reader requires
            "speech_start": round(start / SAMPLE_RATE + s0, 5),
            "speech_end": min(round(start / SAMPLE_RATE + s1, 5), round((start + clip.size) / SAMPLE_RATE, 5)),
            "gain_db": round(gain, 2),
            # None: the noise under the word was digital silence, where no level makes an SNR
            **({} if spec.snr_db is None else {"snr_db": None if gain_db is None else round(level_db, 2)}),
        })
        t += float(rng.uniform(*spec.gap_s))
    for start, clip, gain_db in placed:
        heard = clip if rir is None else reverberate(clip, rir, length=n - start)
        audio[start:start + heard.size] += heard * np.float32(10 ** (gain_db / 20))
    clipped = int(np.count_nonzero(np.abs(audio) > 1.0))
    np.clip(audio, -1.0, 1.0, out=audio)
    truth = {
        "sample_rate": SAMPLE_RATE,
        "duration": round(n / SAMPLE_RATE, 5),
        "split": split,
        "seed": int(seed),
        "command_free": bool(spec.command_free),
        "spec": to_dict(spec),
        "clipped_samples": clipped,
        "unreadable": [{"file": p, "reason": r} for p, r in bank.unreadable],
        "events": events,
        "noise": noise,
    }
    if bank.command_words != COMMANDS:  # the label file says which words it counts as commands (stream_labels.read_truth)
        truth["commands"] = list(bank.command_words)
    return audio, truth


def write_stream(path: str | Path, audio: np.ndarray, truth: Mapping) -> tuple[Path, Path]:
    """Write ``path`` (16-bit WAV) and its truth beside it as ``.json``, both atomically and together: both are
    written first, then renamed into place with Ctrl-C and SIGTERM held until both are (a stop between them left a new
    recording beside an earlier one's labels, scored against them without a word if its length was the same)."""
    from contextlib import ExitStack

    from voice_gru.audio import write_pcm16
    from voice_gru.fileio import atomic_path, json_text
    from voice_gru.signals import signals_held

    path = Path(path)
    if path.suffix.lower() != ".wav":
        raise ConfigError(f"{path}: a stream is written as WAV; give a file name ending in .wav")
    labels = labels_path_for(path)
    held = ExitStack()
    try:
        with atomic_path(path, suffix=".wav") as wav_tmp:
            # into the temps directly: an atomic write of a temp made a temp of its own, which SIGKILL left behind
            write_pcm16(wav_tmp, audio, int(truth.get("sample_rate", SAMPLE_RATE)))
            with atomic_path(labels, suffix=".json") as labels_tmp:
                labels_tmp.write_text(json_text(dict(truth)), encoding="utf-8")
                held.enter_context(signals_held())  # from here until both are renamed
    finally:
        held.close()  # a stop that came meanwhile acts now
    return path, labels


# a stream's truth: times may be off by this much (rounding, a re-encoded recording) and still be the recording's
# --------------------------------------------------------------------------------------------
# scoring


def _det(ev: Any) -> tuple[float, str, float | None]:
    if isinstance(ev, Mapping):
        return float(ev["t"]), str(ev["label"]), ev.get("score")
    return float(ev.t), str(ev.label), getattr(ev, "score", None)


def _quantiles(values: Sequence[float]) -> dict:
    if not values:
        return {"median": None, "p90": None, "mean": None, "values": []}
    v = np.asarray(values, dtype=np.float64)
    return {"median": round(float(np.median(v)), 4), "p90": round(float(np.percentile(v, 90)), 4),
            "mean": round(float(v.mean()), 4), "values": [round(float(x), 4) for x in values]}


def score_events(events: Iterable[Any], truth: Mapping, duration: float | None = None, after: float = 1.0) -> dict:
    """Hits, misses, wrong labels, false accepts (and per hour), recall and latency of detections.

    ``events`` are ``Command``s or dicts with ``t`` and ``label`` (a command, as the model names it:
    ``stream_labels.read_detections`` reads a file of them); ``truth`` is a stream's truth as
    ``stream_labels.read_truth`` returns it (12-class labels, checked times);
    ``duration`` (default: the truth's) is the audio length the false-accept rate is taken over.
    """
    if duration is None:
        duration = float(truth["duration"])
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 < duration < math.inf:
        raise ConfigError(f"duration = {duration!r}: must be a positive number of seconds (the rate per hour is over it)")
    if not (isinstance(after, (int, float)) and math.isfinite(after) and after >= 0):
        raise ConfigError(f"after = {after!r}: must be a finite number of seconds >= 0")
    order = sorted(range(len(truth["events"])), key=lambda k: float(truth["events"][k]["start"]))
    clips = [truth["events"][k] for k in order]
    # words own windows; a _silence_ span does not (it neither cuts the word before it nor makes a firing
    # inside it anything but a false accept outside the words)
    owners = [i for i, c in enumerate(clips) if c["label"] != SILENCE]
    starts = [float(clips[i]["start"]) for i in owners]
    ends = []
    for j, o in enumerate(owners):
        hi = float(clips[o]["end"]) + after
        if j + 1 < len(owners):
            hi = min(hi, starts[j + 1])
        ends.append(hi)
    is_cmd = [c["label"] not in (UNKNOWN, SILENCE) for c in clips]
    sources = [c.get("file") or f"clip {i}" for i, c in enumerate(clips)]  # a stream repeats its source clips
    fa_kinds = {"outside": 0, "unknown_word": 0, "repeat": 0}
    fa_clips: dict[tuple, int] = {}  # (source file, word, fired label) -> count
    per: dict[str, dict] = {}

    def cmd_stats(label: str) -> dict:
        return per.setdefault(label, {"clips": 0, "hits": 0, "misses": 0, "wrong_label_in": 0,
                                      "fired_wrongly": 0, "false_accepts": 0, "latency": []})

    for c, cmd in zip(clips, is_cmd):
        if cmd:
            cmd_stats(c["label"])["clips"] += 1
    fired = []  # (t, label, score, clip index or None)
    for t, label, score in sorted((_det(e) for e in events), key=lambda d: d[0]):
        if not math.isfinite(t):
            raise DatasetError(f"a detection at t = {t}: not a time in the recording")
        j = bisect.bisect_right(starts, t) - 1
        # 1 us of slack: end + after is a sum of rounded floats (0.7 + 0.1 < 0.8)
        fired.append((t, label, score, owners[j] if j >= 0 and t <= ends[j] + 1e-6 else None))
    # one outcome per command word: its first right firing is the hit; without one, its first firing is
    # the wrong label; every other firing on it is a repeat (the user got one more action: a false accept)
    hit_at: dict[int, float] = {}
    decides: dict[int, int] = {}  # clip -> index in ``fired`` of the firing that decides the word
    for k, (t, label, _, i) in enumerate(fired):
        if i is not None and is_cmd[i] and i not in hit_at:
            if label == clips[i]["label"]:
                hit_at[i], decides[i] = t, k
            else:
                decides.setdefault(i, k)
    wrong = 0
    detections = []
    for k, (t, label, score, i) in enumerate(fired):
        rec = {"t": round(t, 4), "label": label}
        if score is not None:
            rec["score"] = round(float(score), 4)
        kind = None
        if i is None:
            outcome, kind = "false_accept", "outside"
        else:
            rec["clip"], rec["event"] = i, order[i]  # position by start time; index in the truth's events
            c = clips[i]
            if not is_cmd[i]:
                outcome, kind = "false_accept", "unknown_word"
            elif decides[i] != k:
                outcome, kind = "false_accept", "repeat"
            elif i in hit_at:
                outcome = "hit"
                lat = t - float(c.get("speech_end", c["end"]))
                rec["latency"] = round(lat, 4)
                cmd_stats(label)["hits"] += 1
                cmd_stats(label)["latency"].append(lat)
            else:
                outcome = "wrong"
                wrong += 1
                cmd_stats(c["label"])["wrong_label_in"] += 1
                cmd_stats(label)["fired_wrongly"] += 1
        if kind:
            fa_kinds[kind] += 1
            rec["kind"] = kind
            cmd_stats(label)["false_accepts"] += 1
            if kind == "unknown_word" and i is not None:
                key = (sources[i], clips[i].get("word", UNKNOWN), label)
                fa_clips[key] = fa_clips.get(key, 0) + 1
        rec["outcome"] = outcome
        detections.append(rec)
    n_cmd = sum(is_cmd)
    # a command whose speech goes on past the next word's start can only be hit early: the words overlap
    cut = sum(1 for j, o in enumerate(owners) if is_cmd[o] and ends[j] < float(clips[o].get("speech_end", clips[o]["end"])))
    hits = len(hit_at)
    fas = sum(fa_kinds.values())
    hours = duration / 3600.0
    latencies = [hit_at[i] - float(clips[i].get("speech_end", clips[i]["end"])) for i in sorted(hit_at)]
    per_command = {}
    listed = commands_in(truth)  # the model's or the label file's commands, in their order
    for lab in sorted(per, key=lambda x: (listed.index(x) if x in listed else len(listed), x)):
        s = per[lab]
        s["misses"] = s["clips"] - s["hits"]
        s["recall"] = round(s["hits"] / s["clips"], 4) if s["clips"] else None
        q = _quantiles(s.pop("latency"))
        s["latency_median"] = q["median"]
        per_command[lab] = s
    return {
        "commands": n_cmd,
        "commands_cut_short": cut,
        "unknown_words": sum(c["label"] == UNKNOWN for c in clips),
        "detections": len(detections),
        "hits": hits,
        "misses": n_cmd - hits,
        "wrong": wrong,
        "false_accepts": fas,
        "false_accepts_by_kind": fa_kinds,
        # a stream repeats its source clips, so unknown-word false accepts come in clumps per clip
        "false_accepts_by_clip": [{"file": f, "word": w, "label": lab, "count": n}
                                  for (f, w, lab), n in sorted(fa_clips.items(), key=lambda kv: (-kv[1], kv[0]))],
        "unknown_clips": len({src for src, c in zip(sources, clips) if c["label"] == UNKNOWN}),
        "duration_s": round(duration, 3),
        "hours": round(hours, 6),
        "false_accepts_per_hour": round(fas / hours, 4) if hours > 0 else None,
        "wrong_per_hour": round(wrong / hours, 4) if hours > 0 else None,
        "recall": round(hits / n_cmd, 4) if n_cmd else None,
        "miss_rate": round(1 - hits / n_cmd, 4) if n_cmd else None,
        "latency": _quantiles(latencies),
        "per_command": per_command,
        "after_s": after,
        "events": detections,
    }


SILENT_END_COMMANDS = 10  # commands said after the last detection before a run is suspected of stopping early


def heard_part(truth: Mapping, until: float) -> dict:
    """The truth of a recording's first ``until`` seconds: the words that end by then, over that duration."""
    return {**truth, "duration": until, "events": [e for e in truth["events"] if float(e["end"]) <= until]}


def heard_detections(detections: Sequence[dict], truth: Mapping, until: float,
                     after: float) -> tuple[list[dict], int]:
    """The detections that belong to the first ``until`` seconds of a recording, and how many do not: those later than
    ``after`` past it, and those within a word that ends past it (from its start to ``after`` past its end)."""
    gone = [(float(e["start"]), float(e["end"]) + after) for e in truth["events"] if float(e["end"]) > until]
    kept = [d for d in detections
            if d["t"] <= until + after and not any(a <= d["t"] <= b for a, b in gone)]
    return kept, len(detections) - len(kept)


def silent_end(detections: Sequence[Mapping], truth: Mapping, after: float = 1.0) -> tuple[float, int, int] | None:
    """``(time of the last detection, commands said after it, the ``until`` that scores what was heard)`` where so many
    commands follow the last detection that listening most likely stopped before the recording ended (a run stopped
    early scored against its whole recording: every later word a miss, the rate per hour over audio never heard);
    else None. That ``until`` keeps the word of the last detection: up to ``after`` s past its end counts for it."""
    last = max((float(d["t"]) for d in detections), default=0.0)
    said = sum(1 for e in truth["events"] if e["label"] in commands_in(truth) and float(e["start"]) > last)
    ends = [float(e["end"]) for e in truth["events"] if float(e["start"]) <= last]
    until = min(math.ceil(max([last + after, *ends])), math.floor(float(truth["duration"])))
    return (last, said, until) if said >= SILENT_END_COMMANDS else None


def combine_scores(scores: Sequence[Mapping]) -> dict:
    """Totals over several scored streams (counts add; rates and recall are recomputed)."""
    keys = ("commands", "unknown_words", "detections", "hits", "misses", "wrong", "false_accepts")
    out: dict = {k: int(sum(s[k] for s in scores)) for k in keys}
    dur = float(sum(s["duration_s"] for s in scores))
    hours = dur / 3600.0
    out["duration_s"] = round(dur, 3)
    out["hours"] = round(hours, 6)
    out["false_accepts_per_hour"] = round(out["false_accepts"] / hours, 4) if hours > 0 else None
    out["wrong_per_hour"] = round(out["wrong"] / hours, 4) if hours > 0 else None
    out["recall"] = round(out["hits"] / out["commands"], 4) if out["commands"] else None
    out["miss_rate"] = round(1 - out["hits"] / out["commands"], 4) if out["commands"] else None
    out["latency"] = _quantiles([v for s in scores for v in s["latency"]["values"]])
    return out


# --------------------------------------------------------------------------------------------
# running the listen path


def array_chunks(audio: np.ndarray, chunk_ms: float = 100.0, sample_rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Consecutive chunks of an in-memory recording, sliced as ``live.file_chunks`` slices a file (the
    same samples for a file read by ``load_stream``, which decodes it block by block as ``file_chunks`` does)."""
    n = max(1, int(round(sample_rate * chunk_ms / 1000)))
    for i in range(0, audio.size, n):
        yield audio[i:i + n]


def decision_of(ckpt: Checkpoint | CheckpointData, decision_cfg: DecisionConfig | None = None) -> DecisionConfig:
    """The decision settings ``listen`` uses: explicit, else the checkpoint's, else the defaults."""
    if decision_cfg is not None:
        return decision_cfg
    if ckpt.decision:
        return from_dict(DecisionConfig, ckpt.decision, "checkpoint:decision")
    return DecisionConfig()


def make_detector(labels: Sequence[str], decision_cfg: DecisionConfig, thresholds: Mapping[str, float],
                  frame_seconds: float = 0.01, first_frame_end: float = 0.03) -> Detector:
    """A ``Detector`` with the timing of a checkpoint's front end."""
    from voice_gru.decision import Detector

    return Detector(labels, decision_cfg, thresholds, frame_seconds, first_frame_end)


def evaluate_stream(ckpt: str | Path | Checkpoint | CheckpointData, audio: np.ndarray, truth: Mapping,
                    decision_cfg: DecisionConfig | None = None,
                    thresholds: Mapping[str, float] | float | None = None, mode: str = "stream",
                    chunk_ms: float = 100.0, refresh_s: float | None = REFRESH_S, after: float = 1.0,
                    commands: Sequence[str] | None = None) -> dict:
    """Run a recording through the listen path and score it against its truth.

    ``thresholds``: per-command dict or one number overriding the checkpoint's calibrated values
    (None: the checkpoint's, as ``listen`` does). Returns ``score_events``'s dict plus ``rtf``
    (compute seconds / audio seconds), ``posteriors`` (``(frames, classes)`` float32 array),
    ``labels``, the thresholds and decision settings used, and the frame timing. ``commands``: only these
    can fire (``CommandSpotter``'s); ``listening_for`` then names them, ``can_fire`` gives their own hits and recall,
    and sweeps of the result keep the others off.
    """
    from voice_gru.checkpoint_data import read_checkpoint_data
    from voice_gru.live import listen_loop
    from voice_gru.spotter import CommandSpotter

    if isinstance(ckpt, (str, Path)):  # a path, as CommandSpotter takes one
        ckpt = read_checkpoint_data(ckpt)
    audio = np.asarray(audio)
    if audio.ndim != 1:  # (n, 2) read as mono would be twice as long: every rate and time wrong
        raise AudioFormatError(f"recording of shape {audio.shape}: give mono samples (samples,) at the model's rate "
                               "(voice_gru.streams.load_stream reads a file so)")
    f = ckpt.features
    frame_seconds, first_end = f.hop_ms / 1000, f.win_length / f.sample_rate
    posts: list[np.ndarray] = []
    spotter = CommandSpotter(ckpt, threshold=thresholds, decision=decision_cfg, mode=mode, refresh_s=refresh_s,
                             commands=commands)
    stats = listen_loop(array_chunks(audio, chunk_ms, f.sample_rate), spotter, lambda cmd: None, keep_posteriors=posts)
    dcfg, thr = spotter.decision, spotter.thresholds
    post = np.concatenate(posts) if posts else np.zeros((0, len(ckpt.labels)), dtype=np.float32)
    audio_s = audio.size / f.sample_rate
    out = score_events(stats.events, truth, float(truth.get("duration", audio_s)), after)
    out.update({
        "rtf": round(stats.real_time_factor, 5),
        "compute_s": round(stats.compute, 3),
        "audio_s": round(audio_s, 3),
        "mode": mode,
        "chunk_ms": chunk_ms,
        "refresh_s": refresh_s,
        "thresholds": thr,
        "decision": to_dict(dcfg),
        "labels": list(ckpt.labels),
        "listening_for": list(spotter.commands) if commands is not None else None,
        "frame_seconds": frame_seconds,
        "first_frame_end": first_end,
        "posteriors": post,
    })
    if commands is not None and out["commands"]:  # the others are off: their misses say nothing of these
        said = [out["per_command"][c] for c in spotter.commands if c in out["per_command"]]
        hits, clips = sum(v["hits"] for v in said), sum(v["clips"] for v in said)
        out["can_fire"] = {"commands": list(spotter.commands), "hits": hits, "commands_said": clips,
                           "recall": round(hits / clips, 4) if clips else None}
    return out


def detect(posteriors: np.ndarray, labels: Sequence[str], decision_cfg: DecisionConfig,
           thresholds: Mapping[str, float], frame_seconds: float = 0.01, first_frame_end: float = 0.03) -> list:
    """Rerun only the detector over stored posteriors; returns its ``Command`` events."""
    det = make_detector(labels, decision_cfg, thresholds, frame_seconds, first_frame_end)
    return det.update(posteriors)


def sweep_thresholds(posteriors: np.ndarray, labels: Sequence[str], truth: Mapping, duration: float | None = None,
                     decision_cfg: DecisionConfig = DecisionConfig(), thresholds: Sequence[float] = DEFAULT_SWEEP,
                     frame_seconds: float = 0.01, first_frame_end: float = 0.03, after: float = 1.0,
                     only: Sequence[str] | None = None) -> list[dict]:
    """Detection-error trade-off: one point per threshold (applied to every command, or to ``only`` these,
    the others off).

    Each point: threshold, hits, misses, wrong, false_accepts, false_accepts_per_hour, recall,
    miss_rate, latency_median. Raising the threshold never adds a detection run, so false
    accepts per hour fall (up to a few cooldown effects) and misses rise.
    """
    from voice_gru.decision import only_commands

    duration = float(truth["duration"]) if duration is None else duration
    points = []
    for x in thresholds:
        thr = only_commands({lab: float(x) for lab in commands_of(labels)}, only)
        s = score_events(detect(posteriors, labels, decision_cfg, thr, frame_seconds, first_frame_end), truth, duration, after)
        points.append({"threshold": round(float(x), 4), "hits": s["hits"], "misses": s["misses"], "wrong": s["wrong"],
                       "false_accepts": s["false_accepts"], "false_accepts_per_hour": s["false_accepts_per_hour"],
                       "recall": s["recall"], "miss_rate": s["miss_rate"], "latency_median": s["latency"]["median"]})
    return points


def false_accepts_at_operating_points(result: Mapping, truth: Mapping, points: Sequence[Mapping],
                                      after: float = 1.0) -> list[dict]:
    """False accepts an ``evaluate_stream`` result would have had at each calibrated operating point
    (``ckpt.meta["calibration"]["operating_points"]``): its posteriors replayed through the detector
    with each point's thresholds. Sorted by target rate."""
    dcfg = from_dict(DecisionConfig, result["decision"])
    out = []
    for p in sorted(points, key=lambda q: q["target_fa_per_hour"]):
        events = detect(result["posteriors"], result["labels"], dcfg, p["thresholds"],
                        result["frame_seconds"], result["first_frame_end"])
        s = score_events(events, truth, None, after)
        out.append({"target_fa_per_hour": p["target_fa_per_hour"], "expected_recall": p["recall"],
                    "false_accepts": s["false_accepts"], "false_accepts_per_hour": s["false_accepts_per_hour"],
                    "hits": s["hits"], "commands": s["commands"]})
    return out


def sweep_result(result: Mapping, truth: Mapping, after: float = 1.0,
                 thresholds: Sequence[float] = DEFAULT_SWEEP) -> list[dict]:
    """``sweep_thresholds`` over an ``evaluate_stream`` result's posteriors, with its decision settings (and its
    commands, where only some could fire)."""
    return sweep_thresholds(result["posteriors"], result["labels"], truth, None, from_dict(DecisionConfig, result["decision"]),
                            thresholds, result["frame_seconds"], result["first_frame_end"], after,
                            result.get("listening_for"))


def lowest_silent_threshold(points: Sequence[Mapping]) -> float | None:
    """The lowest threshold of a sweep from which it and every higher one has no false accept;
    None if the highest fires."""
    silent = None
    for p in sorted(points, key=lambda q: -q["threshold"]):
        if p["false_accepts"]:
            break
        silent = p["threshold"]
    return silent


def refined_silent_threshold(result: Mapping, truth: Mapping, points: Sequence[Mapping], after: float = 1.0,
                             step: float = 0.002) -> float | None:
    """``lowest_silent_threshold`` of a sweep to within ``step``: the detector replayed at every ``step`` between the
    sweep's highest firing threshold and its lowest silent one (the sweep is coarse where sure words settle)."""
    coarse = lowest_silent_threshold(points)
    if coarse is None:
        return None
    below = [float(q["threshold"]) for q in points if q["threshold"] < coarse]
    silent = coarse  # downwards: the lowest value from which every higher one is silent too
    for x in np.round(np.arange(coarse - step, max(below, default=coarse) + step / 2, -step), 6):
        if sweep_result(result, truth, after, [float(x)])[0]["false_accepts"]:
            break
        silent = float(x)
    return silent


def silent_per_command(result: Mapping, step: float = 0.01) -> dict[str, float]:
    """Per-command thresholds that keep an ``evaluate_stream`` result of a command-free recording
    silent while changing as little as possible: starting from the thresholds the run used, each
    command that fires is raised by ``step`` until nothing fires (the detector replayed on the stored
    posteriors; repeated, because a silenced command no longer starts a cooldown that hid another).
    Returns only the raised commands; {} if none fired. A value above 1 means no threshold silences
    that command (it fires even at 1: its smoothed posterior reaches 1 here)."""
    labels = list(result["labels"])
    dcfg = from_dict(DecisionConfig, result["decision"])
    _, n_min, n_cool = detector_frames(dcfg, result["frame_seconds"])
    smoothed = detector_scores(result["posteriors"], labels, dcfg, result["frame_seconds"])
    top, score = smoothed_top(smoothed)
    used = result["thresholds"]
    said = set(commands_of(labels))
    start = np.array([float(used[lab]) if lab in used and lab in said else np.inf for lab in labels])
    thr = start.copy()
    while True:
        fired = {k for _, k, _ in fast_events(smoothed, thr, n_min, n_cool, top, score,
                                              rearm_ratio=dcfg.rearm_ratio)}
        if not fired:
            break
        for k in fired:  # rounded: the advice is printed as COMMAND=VALUE and must replay the same
            # 1 is tried before giving up: a score of 0.995 is silenced by 1, not "by no threshold"
            thr[k] = OFF if thr[k] >= 1.0 else min(round(float(thr[k]) + step, 6), 1.0)
    return {labels[k]: float(thr[k]) for k in range(len(labels)) if thr[k] != start[k]}


def plot_det(points: Sequence[Mapping], path: str | Path, title: str = "") -> None:
    """PNG of a sweep: miss rate against false accepts per hour (or, on a command-free stream,
    false accepts per hour against threshold). Written atomically."""
    from voice_gru.plots import save_png, subplots

    if not points:
        raise ConfigError("plot_det: no sweep points to plot")
    fa = np.array([p["false_accepts_per_hour"] or 0.0 for p in points], dtype=float)
    thr = [p["threshold"] for p in points]
    fig, ax = subplots(figsize=(6.4, 4.6))
    if all(p.get("miss_rate") is None for p in points):
        ax.plot(thr, fa, "o-")
        ax.set_xlabel("threshold (every command)")
        ax.set_ylabel("false accepts per hour")
        ax.set_yscale("symlog", linthresh=1.0)
    else:
        miss = np.array([100 * p["miss_rate"] for p in points], dtype=float)
        ax.plot(fa, miss, "o-")
        step = max(1, len(points) // 8)
        for k in range(0, len(points), step):
            ax.annotate(f"{thr[k]:.2f}", (fa[k], miss[k]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("false accepts per hour")
        ax.set_ylabel("miss rate (%)")
        ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or "detection-error trade-off (labels: threshold)")
    save_png(fig, path)


# --------------------------------------------------------------------------------------------
# a fast, exact replay of the detector for threshold searches


def smoothed_scores(posteriors: np.ndarray, n_smooth: int) -> np.ndarray:
    """The Detector's moving average of the posteriors over the last ``n_smooth`` frames (float64)."""
    p = np.asarray(posteriors, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"smoothed_scores: posteriors must be (frames, classes), got shape {p.shape}")
    if not is_whole(n_smooth):
        raise ValueError(f"smoothed_scores: n_smooth must be a whole number of frames, at least 1, got {n_smooth!r}")
    if p.shape[0] == 0:
        return np.zeros((0,) + p.shape[1:])
    c = np.concatenate([np.zeros((1, p.shape[1])), np.cumsum(p, axis=0)])
    idx = np.arange(1, p.shape[0] + 1)
    lo = np.maximum(0, idx - n_smooth)
    return (c[idx] - c[lo]) / (idx - lo)[:, None]


def detector_scores(posteriors: np.ndarray, labels: Sequence[str], decision_cfg: DecisionConfig,
                    frame_seconds: float = 0.01) -> np.ndarray:
    """A whole stream's scores as the Detector compares them with its thresholds: its unknown-word veto, then its
    moving average (the replay paths use this, so they cannot drift from the live one)."""
    from voice_gru.decision import apply_unknown_veto

    n_smooth = detector_frames(decision_cfg, frame_seconds)[0]
    return smoothed_scores(apply_unknown_veto(posteriors, labels, decision_cfg, frame_seconds), n_smooth)


def smoothed_top(smoothed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(top class, its smoothed score) per frame."""
    top = smoothed.argmax(1) if smoothed.shape[0] else np.zeros(0, dtype=np.int64)
    return top, smoothed[np.arange(smoothed.shape[0]), top]


def fast_events(smoothed: np.ndarray, thr: np.ndarray, n_min: int, n_cool: int,
                top: np.ndarray | None = None, score: np.ndarray | None = None, *,
                rearm_ratio: float) -> list[tuple[int, int, float]]:
    """The Detector's firing rule over precomputed smoothed scores: ``(frame, class, score)``.

    A class fires on the frame where it has been the top class at/above its threshold
    ``thr[class]`` for ``n_min`` frames, unless within ``n_cool`` frames of the last firing; a
    class that fired re-arms only on a frame where its score is below ``rearm_ratio`` times its threshold.
    Equal to ``Detector`` (tested) up to rounding in the moving average; pass ``top``/``score`` from
    ``smoothed_top`` to save recomputing them.
    """
    if top is None or score is None:
        top, score = smoothed_top(smoothed)
    cond = score >= thr[top]
    idx = np.flatnonzero(cond)
    if idx.size == 0:
        return []
    lab = top[idx]
    breaks = np.flatnonzero((np.diff(idx) != 1) | (np.diff(lab) != 0)) + 1
    seg_start = np.concatenate([[0], breaks])
    seg_end = np.concatenate([breaks, [idx.size]])
    out = []
    cool_until = -1
    armed_from: dict[int, float] = {}  # class -> first frame at which it is armed again
    below: dict[int, np.ndarray] = {}
    for a_i, b_i in zip(seg_start, seg_end):
        a, b = int(idx[a_i]), int(idx[b_i - 1]) + 1  # frames a..b-1, one class, all at/above threshold
        k = int(top[a])
        if armed_from.get(k, -1) > a:  # fired earlier and not yet below its re-arm level since
            continue
        f = max(a + n_min - 1, cool_until + 1)
        if f < b:  # fires once; stays disarmed to the segment's end (its score is above threshold there)
            out.append((f, k, float(score[f])))
            cool_until = f + n_cool
            if k not in below:
                below[k] = np.flatnonzero(smoothed[:, k] < thr[k] * rearm_ratio)
            j = int(np.searchsorted(below[k], f, side="right"))
            armed_from[k] = int(below[k][j]) if j < below[k].size else np.inf
    return out


def detector_frames(decision_cfg: DecisionConfig, frame_seconds: float = 0.01) -> tuple[int, int, int]:
    """(smoothing, minimum-duration, cooldown) in frames, as the Detector rounds them."""
    n_smooth = max(1, int(round(decision_cfg.smooth_ms / 1000 / frame_seconds)))
    n_min = max(1, int(round(decision_cfg.min_duration_ms / 1000 / frame_seconds)))
    n_cool = int(round(decision_cfg.cooldown_ms / 1000 / frame_seconds))
    return n_smooth, n_min, n_cool


def public_result(result: Mapping) -> dict:
    """An ``evaluate_stream`` result without its arrays (for JSON)."""
    return {k: v for k, v in result.items() if not isinstance(v, np.ndarray)}


__all__ = [
    "StreamSpec", "ClipBank", "load_clip_bank", "speech_bounds", "make_stream", "write_stream", "read_truth",
    "load_stream", "command_free_truth", "false_accepts_at_operating_points", "lowest_silent_threshold",
    "refined_silent_threshold", "sweep_result",
    "labels_path_for", "score_events", "heard_part", "heard_detections", "silent_end", "combine_scores", "array_chunks", "evaluate_stream",
    "detect", "sweep_thresholds", "silent_per_command", "plot_det", "smoothed_scores", "detector_scores", "smoothed_top", "fast_events", "detector_frames", "public_result",
    "decision_of", "DEFAULT_SWEEP",
]
