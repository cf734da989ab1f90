"""One-second takes of a word, cut out of a microphone or a recording: a dataset of your own command words.

A person says the word again and again with a pause after each. Every stretch of sound that stands out of the
room's noise floor, long enough for a word, short enough for one clip and clear of its neighbours, becomes a take
of ``clip_s`` seconds with the sound in its middle, as Speech Commands' clips hold theirs. A frame's level is its
power over 10 ms about its mean (a DC offset is no sound); the noise floor is the 10th percentile of the last 2 s of
frame levels, digital silence left out: a word (under a second) does not lift it, a fan that starts is floor again
within 2 s, and a dropout (digital zeros: a recorder starting, a clip's own padding) does not sink it, as a running
minimum would, until the room's own noise counts as sound.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from voice_gru.errors import ConfigError


@dataclass(frozen=True)
class TakeConfig:
    """What counts as a word's sound and the pause around it."""

    clip_s: float = 1.0  # a take's length, the sound in its middle
    above_floor_db: float = 12.0  # a frame is sound this far above the noise floor ...
    min_level_dbfs: float = -65.0  # ... and above this (digital silence has no floor to stand out of)
    silence_dbfs: float = -100.0  # frames below it are digital silence (16-bit's own noise is ~-101 dBFS): no floor
    min_sound_s: float = 0.08  # shorter: a click or a knock, not a word
    max_sound_s: float = 0.95  # longer: more than one word, or one that does not fit its second
    pause_s: float = 0.3  # this long without sound ends a sound
    warm_up_s: float = 0.3  # the room heard this long before anything counts as sound
    floor_window_s: float = 2.0  # the noise floor: a low percentile of the frame levels over this long ...
    floor_percentile: float = 10.0  # ... this one
    frame_ms: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.min_sound_s <= self.max_sound_s <= self.clip_s:
            raise ConfigError(f"takes: expected 0 < min_sound_s <= max_sound_s <= clip_s (got {self.min_sound_s:g}, "
                              f"{self.max_sound_s:g}, {self.clip_s:g})")
        if self.pause_s <= 0 or self.frame_ms <= 0 or self.floor_window_s <= 0 or not 0 <= self.floor_percentile <= 100:
            raise ConfigError("takes: pause_s, frame_ms and floor_window_s must be positive, floor_percentile 0-100")


@dataclass(frozen=True)
class Take:
    """A word's second of audio and where its sound lay in the stream."""

    audio: np.ndarray  # clip_s seconds, the sound centred
    start_s: float  # the sound's first and last frame, seconds from the stream's start
    end_s: float
    peak_dbfs: float  # the loudest sample of the sound


@dataclass(frozen=True)
class Skipped:
    """A sound that did not become a take, and why."""

    start_s: float
    end_s: float
    reason: str


Found = Union[Take, Skipped]


class TakeCutter:
    """Push audio chunks (16 kHz float mono) in; takes come out once the second after their sound has arrived.

    Memory stays bounded: only the audio a pending take or the sound being heard can still need is kept."""

    def __init__(self, sample_rate: int = 16000, cfg: TakeConfig = TakeConfig()) -> None:
        self.rate = sample_rate
        self.cfg = cfg
        self.hop = max(1, round(sample_rate * cfg.frame_ms / 1000))
        self.clip = round(sample_rate * cfg.clip_s)
        self._audio = np.zeros(0, np.float32)
        self._origin = 0  # stream sample of _audio[0]
        self._frames = 0  # frames judged so far
        self._levels = np.zeros(max(1, round(cfg.floor_window_s * 1000 / cfg.frame_ms)))  # a ring of frame levels
        self._heard = 0  # frames of sound or room noise (not digital silence) put in it
        self._digital = np.zeros(self._levels.size, bool)  # a ring: which of the frames since the first heard were
        self._since = 0  # digital silence, and how many there were
        self._warm = max(1, round(cfg.warm_up_s * 1000 / cfg.frame_ms))  # no sound before the floor is known
        self.missed_at_start = False  # a sound while the floor was being learnt: not heard, and said
        self._warm_sound = -(10 ** 12)  # its last frame: a sound heard within a pause of it is its rest, cut off
        self._warm_levels: list[tuple[int, float]] = []  # (frame, level) of the warm-up, judged again once the
        self._floor = cfg.min_level_dbfs  # floor is known: a word from the first sample makes the warm-up's floor
        self._sound: list[int] | None = None  # first and last loud frame of the sound being heard
        self._last_end = -(10 ** 12)  # stream sample where the last word-long sound ended
        self._pending: list[tuple[int, int, int]] = []  # (clip start, sound start, sound end) waiting for audio

    @property
    def waiting(self) -> int:
        """Sounds heard that are not yet a take or skipped (their second, or their pause, has not ended)."""
        return len(self._pending) + (self._sound is not None)

    def _s(self, sample: int) -> float:
        return sample / self.rate

    def push(self, chunk: np.ndarray) -> list[Found]:
        """Take the next chunk; return the takes and skipped sounds it completed, in stream order."""
        self._audio = np.concatenate([self._audio, np.asarray(chunk, np.float32).reshape(-1)])
        out: list[Found] = []
        cfg, hop = self.cfg, self.hop
        pause = max(1, round(cfg.pause_s * 1000 / cfg.frame_ms))
        while (self._frames + 1) * hop - self._origin <= self._audio.size:
            a = self._frames * hop - self._origin
            x = self._audio[a:a + hop]
            level = 10 * math.log10(float(np.var(x)) + 1e-13)
            i = self._frames
            self._frames += 1
            digital = level <= cfg.silence_dbfs
            if not digital:
                self._levels[self._heard % self._levels.size] = level
                self._heard += 1
            if self._heard:  # digital silence before anything was heard is a recorder starting: no room at all
                self._digital[self._since % self._digital.size] = digital
                self._since += 1
            if self._since and self._digital[:self._since].mean() > 0.5:
                # a noise-gated microphone's pauses are digital silence: a floor of its words alone let only their
                # loudest part stand out
                floor = cfg.min_level_dbfs - cfg.above_floor_db
            else:
                floor = (float(np.percentile(self._levels[:self._heard], cfg.floor_percentile)) if self._heard
                         else cfg.min_level_dbfs)
            self._floor = floor
            if self._heard == self._levels.size:  # the first floor window is full: judged once more, then never
                self._judge_warm_up()
                self._warm_levels = []
            if self._frames < self._warm:  # digital silence counts: a gated microphone's first word was its warm-up
                self._warm_levels.append((i, level))
                if self._heard > 1 and level > max(floor + cfg.above_floor_db, cfg.min_level_dbfs):
                    self.missed_at_start = True
                    self._warm_sound = i
            elif level > max(floor + cfg.above_floor_db, cfg.min_level_dbfs):
                if self._sound is None:
                    self._sound = [i, i]
                self._sound[1] = i
            elif self._sound is not None and i - self._sound[1] >= pause:
                out += self._sound_ends()
            if self._pending:
                out += self._ready(self._frames * hop)
        self._trim()
        return out

    def flush(self) -> list[Found]:
        """The stream has ended: finish what is pending (a second running past the end is padded with zeros). A sound
        still going, or without its pause after it, is skipped: the word may have been cut off."""
        out: list[Found] = []
        self._judge_warm_up()
        if self._sound is not None and (self._sound[1] + 1 - self._sound[0]) * self.hop < self.cfg.min_sound_s * self.rate:
            out += self._sound_ends()  # a click: said as one
        elif self._sound is not None:
            start = self._sound[0] * self.hop
            out += self._overrun_by(start)
            out.append(Skipped(self._s(start), self._s((self._sound[1] + 1) * self.hop),
                               "the recording ends during it or within its pause: it may be cut off"))
            self._sound = None
        end = self._origin + self._audio.size
        need = max([c + self.clip for c, _, _ in self._pending], default=end)
        if need > end:
            self._audio = np.concatenate([self._audio, np.zeros(need - end, np.float32)])
        return out + self._ready(need)

    def _sound_ends(self) -> list[Found]:
        assert self._sound is not None
        first, last = self._sound
        self._sound = None
        self._judge_warm_up()
        cut = first - self._warm_sound <= round(self.cfg.pause_s * 1000 / self.cfg.frame_ms)
        start, end = first * self.hop, (last + 1) * self.hop
        took = (end - start) / self.rate
        if took < self.cfg.min_sound_s:  # a click inside a take's second leaves it a take
            return [Skipped(self._s(start), self._s(end), f"{took * 1000:.0f} ms of sound: a click or a knock, "
                                                          "or a word too quiet to stand out of the room's noise")]
        out = self._overrun_by(start)
        last_end, self._last_end = self._last_end, end
        if took > self.cfg.max_sound_s:
            return out + [Skipped(self._s(start), self._s(end), f"{took:.2f} s of sound: longer than the "
                                  f"{self.cfg.max_sound_s:g} s a {self.cfg.clip_s:g} s take holds (say the word alone, "
                                  "then pause)")]
        if cut:
            return out + [Skipped(self._s(start), self._s(end), f"it began in the first {self.cfg.warm_up_s:g} s, while "
                                  "the room's noise was being learnt: it may be cut off at its start")]
        clip_start = (start + end) // 2 - self.clip // 2
        if last_end > clip_start:
            return out + [Skipped(self._s(start), self._s(end), "the sound before it ended within its second: pause "
                                                                "longer between takes")]
        self._pending.append((clip_start, start, end))
        return out

    def _judge_warm_up(self) -> None:
        """Judge the warm-up's frames by the floor as it is now, until the first floor window is full: a word said from
        the recording's first sample set the floor of its own warm-up, so none of its frames stood out then (later, a
        room that grew quieter would make its ordinary noise look like a sound)."""
        loud = [i for i, level in self._warm_levels if level > max(self._floor + self.cfg.above_floor_db,
                                                                    self.cfg.min_level_dbfs)]
        if loud:
            self.missed_at_start = True
            self._warm_sound = max(self._warm_sound, loud[-1])

    def _overrun_by(self, start: int) -> list[Found]:
        """Skip the pending takes whose second a word-long sound starting at stream sample ``start`` enters."""
        hit = [p for p in self._pending if start < p[0] + self.clip]
        self._pending = [p for p in self._pending if p not in hit]
        return [Skipped(self._s(s), self._s(e), "the next sound began within its second: pause longer after each take")
                for _, s, e in hit]

    def _ready(self, heard: int) -> list[Found]:
        """Pending takes whose whole second is in (up to stream sample ``heard``), with no sound begun inside it
        that may still prove word-long."""
        out: list[Found] = []
        for c, s, e in list(self._pending):
            if c + self.clip > heard or (self._sound is not None and self._sound[0] * self.hop < c + self.clip):
                continue
            self._pending.remove((c, s, e))
            lo = max(c, self._origin)
            audio = np.concatenate([np.zeros(lo - c, np.float32),
                                    self._audio[lo - self._origin:c + self.clip - self._origin]])
            peak = 20 * math.log10(float(np.abs(self._audio[s - self._origin:e - self._origin]).max()) + 1e-12)
            out.append(Take(audio, self._s(s), self._s(e), peak))
        return out

    def _trim(self) -> None:
        """Drop audio nothing can need any more: before pending takes, the sound being heard and the last second."""
        keep = self._frames * self.hop - self.clip
        if self._sound is not None:  # its start, while it may still be a word
            first, last = self._sound
            if (last + 1 - first) * self.hop <= self.cfg.max_sound_s * self.rate:
                keep = min(keep, first * self.hop - self.clip)
        keep = min([keep] + [c for c, _, _ in self._pending])
        if keep > self._origin:
            self._audio = self._audio[keep - self._origin:]
            self._origin = keep


def cut_takes(audio: np.ndarray, sample_rate: int = 16000, cfg: TakeConfig = TakeConfig()) -> list[Found]:
    """Every take (and every skipped sound) of a whole recording."""
    cutter = TakeCutter(sample_rate, cfg)
    return cutter.push(audio) + cutter.flush()


def speaker_id(name: str) -> str:
    """A person's name as a Speech Commands speaker id (8 hex digits: the layout's file names need one)."""
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]


def split_for(root: str | Path, speaker: str, wanted: str | None = None, name: str = "") -> str:
    """The split a speaker's new takes belong to in a dataset root: where the speaker's clips already are (a speaker
    stays in one split, as the dataset keeps them apart), else ``wanted`` (default training). A root without split
    lists splits by the speaker id's hash, which ``wanted`` cannot change. ``name``: the person, for the messages."""
    from voice_gru.data import SPLITS, read_split_list, uses_split_lists, which_set

    root = Path(root)
    who = f"'{name}' (speaker {speaker})" if name else f"speaker {speaker}"
    if wanted is not None and wanted not in SPLITS:
        raise ConfigError(f"split '{wanted}': expected one of {', '.join(SPLITS)}")
    if not uses_split_lists(root):
        hashed = which_set(f"{speaker}_nohash_0.wav")
        if wanted is not None and wanted != hashed:
            raise ConfigError(f"{root} has no validation_list.txt or testing_list.txt: its splits go by each speaker "
                              f"id's hash, which puts {who} in {hashed}; leave out --split, choose another --speaker, "
                              "or give the dataset split lists")
        return hashed
    val, test = read_split_list(root / "validation_list.txt"), read_split_list(root / "testing_list.txt")
    mine = re.compile(rf"[^/]+/{speaker}_nohash_[^/]*")
    have = sorted({"validation" if rel in val else "testing" if rel in test else "training"
                   for rel in (p.relative_to(root).as_posix() for p in root.glob(f"*/{speaker}_nohash_*"))}
                  # a line whose clip was never written (a run stopped between the two) still holds the speaker there
                  | {"validation" for rel in val if mine.fullmatch(rel)} | {"testing" for rel in test if mine.fullmatch(rel)})
    if len(have) > 1 or (have and wanted is not None and have != [wanted]):
        raise ConfigError(f"{root}: {who} already has clips in the {' and '.join(have)} split"
                          f"{'s' if len(have) > 1 else ''}: a speaker's clips stay in one split (validation and "
                          f"testing measure voices never heard in training); "
                          + (f"use --split {have[0]} or another --speaker" if len(have) == 1 else
                             "fix validation_list.txt/testing_list.txt"))
    return have[0] if have else wanted or "training"


def start_split_lists(root: str | Path) -> bool:
    """Give a new dataset root (no clips, no split lists) two empty split lists, so that each speaker's split is
    chosen (``--split``) rather than hashed from the speaker id; True if it did."""
    from voice_gru.data import is_audio_file, uses_split_lists
    from voice_gru.fileio import write_text

    root = Path(root)
    if uses_split_lists(root) or any(is_audio_file(f) for d in root.iterdir()
                                     if d.is_dir() and not d.name.startswith((".", "_")) for f in d.iterdir()):
        return False  # clips already split by their speakers' hash (_background_noise_ is no clip)
    inner = sorted(p.parent for p in [*root.glob("*/validation_list.txt"), *root.glob("*/_background_noise_")])
    if inner:  # one folder too high: lists here would start a second, empty dataset around the real one
        raise ConfigError(f"{root}: holds a dataset one folder down ({inner[0]}): record into that one")
    for name in ("validation_list.txt", "testing_list.txt"):
        write_text(root / name, "")
    return True


def word_folder(root: Path, word: str) -> Path:
    """Where takes of ``word`` go: its folder in any case if there is one (a word folder in any case is its word:
    `record Happy` beside happy/ made a second folder whose clips had the same names), else one in lower case."""
    try:
        found = [d for d in root.iterdir() if d.name.lower() == word.lower() and not d.name.startswith(".")]
    except OSError:
        found = []
    exact = [d for d in found if d.name == word]
    return (exact or sorted(found) or [root / word.lower()])[0]


def remove_half_written(folder: str | Path, speaker: str) -> None:
    """Delete the takes of ``speaker`` a killed run left half-written in a word folder (the temps of ``save_take``)."""
    from voice_gru.fileio import atomic_temps, folder_lock

    folder = Path(folder)
    if not folder.is_dir():
        return
    with folder_lock(folder.parent):  # a run saving a take now holds it: its temp is not half-written
        for stale in atomic_temps(folder, f"{speaker}_nohash_*.wav"):
            stale.unlink(missing_ok=True)


def next_take_path(folder: str | Path, speaker: str) -> Path:
    """The first free ``SPEAKER_nohash_N.wav`` in a word folder (numbering goes on after earlier sessions, and past
    names a split list holds without their clip)."""
    from voice_gru.data import read_split_list

    folder = Path(folder)
    names = [p.name for p in folder.glob(f"{speaker}_nohash_*")] + [
        rel.split("/", 1)[1] for lst in ("validation_list.txt", "testing_list.txt")
        for rel in read_split_list(folder.parent / lst) if rel.startswith(f"{folder.name}/")]
    taken = [int(m.group(1)) for n in names if (m := re.fullmatch(rf"{speaker}_nohash_(\d+)\.\w+", n))]
    return folder / f"{speaker}_nohash_{max(taken, default=-1) + 1}.wav"


def same_take(folder: str | Path, speaker: str, audio: np.ndarray, sample_rate: int = 16000) -> Path | None:
    """A take of ``speaker`` in the word folder with the same samples as ``audio`` (to 16-bit precision), or None:
    ``record --input`` run twice on one recording saved every take again."""
    import soundfile as sf

    want = np.clip(np.asarray(audio, dtype=np.float32), -1, 1)
    for path in sorted(Path(folder).glob(f"{speaker}_nohash_*.wav")):
        try:
            info = sf.info(str(path))
            if info.frames != want.size or info.samplerate != sample_rate or info.channels != 1:
                continue
            have = sf.read(str(path), dtype="float32")[0]
        except (RuntimeError, OSError):  # unreadable: not the same as anything
            continue
        if np.abs(have - want).max(initial=0.0) <= 2 / 32768:
            return path
    return None


def save_take(root: str | Path, word: str, speaker: str, split: str, take: Take, sample_rate: int = 16000) -> Path:
    """Write a take into ``root/word/`` as 16-bit WAV, named into ``split``: the clip is written, then its list line,
    then the clip is renamed into place (a run stopped between the last two leaves a line naming no clip, which the
    dataset tools report and ``split_for`` heeds, never a clip in the wrong split). A split list that is a link (a
    copy of a dataset made of links) becomes a file of its own: the original dataset is not changed."""
    from voice_gru.audio import write_pcm16
    from voice_gru.data import uses_split_lists
    from voice_gru.fileio import atomic_path, folder_lock, write_text

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    # runs recording into one dataset at once would take the same free name, and each would write back the split
    # list as it read it, without the other's line (a validation clip read as training): one take at a time
    with folder_lock(root):
        path = next_take_path(root / word, speaker)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".wav") as tmp:
            write_pcm16(tmp, take.audio, sample_rate)
            if split != "training" and uses_split_lists(root):
                listed = root / f"{split}_list.txt"
                old = listed.read_text(encoding="utf-8") if listed.is_file() else ""
                # a link replaced in one rename: unlinked first, a stop between left the copy without its list
                write_text(listed, old + ("" if old.endswith("\n") or not old else "\n") + f"{word}/{path.name}\n",
                           through_links=False)
    return path


def word_splits(root: str | Path, word: str, scanned: Sequence | None = None) -> dict[str, tuple[int, int]]:
    """(clips, speakers) of one word folder in each split of a dataset root, as training will read them
    (``scanned``: ``scan_dataset(root)`` already made)."""
    from voice_gru.data import SPLITS, scan_dataset

    clips = [c for c in (scan_dataset(root) if scanned is None else scanned) if Path(c.path).parent.name == word]
    return {s: (sum(c.split == s for c in clips), len({c.speaker for c in clips if c.split == s})) for s in SPLITS}
