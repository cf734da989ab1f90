"""Speech Commands layouts, splits, the 12/35-class tasks, silence/unknown sampling, feature cache.

Two layouts are read:
* the v0.02 dataset root: one folder per word, ``_background_noise_``, and optionally
  ``validation_list.txt`` / ``testing_list.txt`` (authoritative when present; otherwise the
  official ``which_set`` hash decides);
* the official separate test-set layout: folders ``yes … go``, ``_unknown_``, ``_silence_``
  (``_unknown_`` files are named ``word_speaker_nohash_n.wav`` or ``....wav.wav``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import posixpath
import re
import shlex
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from voice_gru import COMMANDS, SILENCE, UNKNOWN
from voice_gru.config import DataConfig, FeatureConfig
from voice_gru.errors import AudioFormatError, DatasetError, first_line

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

WORDS_V2 = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "backward", "bed", "bird", "cat", "dog", "eight", "five", "follow", "forward", "four",
    "happy", "house", "learn", "marvin", "nine", "one", "seven", "sheila", "six", "three",
    "tree", "two", "visual", "wow", "zero",
)
BACKGROUND = "_background_noise_"
SPLITS = ("training", "validation", "testing")
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # ~134M, as in the reference TensorFlow input_data.py
FEATURE_CODE_VERSION = "mel-2"  # bump when the feature computation changes: old caches are ignored
AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".caf", ".au", ".snd",
                  ".w64", ".rf64")  # what libsndfile reads, by the names people give it
_NAME_RE = re.compile(r"^(?:(?P<word>[a-z_]+?)_)?(?P<speaker>[0-9a-f]{8})_nohash_(?P<n>\d+)$")


@dataclass(frozen=True)
class ClipRef:
    """One audio file of a labelled layout."""

    path: str
    word: str  # the spoken word, "_silence_" for silence files, "" when unknown
    speaker: str
    split: str
    label: str = ""  # set by the official test-set layout (folder name)


@dataclass(frozen=True)
class Example:
    """One classification example: a clip, or a silence cut from background noise."""

    label: str
    path: str = ""  # empty for silence
    noise: int = -1  # index of the background-noise file (silence examples)
    offset: int = 0  # sample offset into that file
    volume: float = 0.0
    word: str = ""  # the dataset word of a clip ("" for silence and synthetic clips)


def which_set(filename: str, validation_percentage: float = 10.0, testing_percentage: float = 10.0) -> str:
    """The official Speech Commands split of a file, from a hash of its speaker id."""
    base_name = os.path.basename(filename)
    hash_name = re.sub(r"_nohash_.*$", "", base_name)
    hashed = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    percentage_hash = (int(hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage_hash < validation_percentage:
        return "validation"
    if percentage_hash < testing_percentage + validation_percentage:
        return "testing"
    return "training"


def strip_audio_suffixes(name: str) -> str:
    """``bed_0c2ca723_nohash_0.wav.wav`` -> ``bed_0c2ca723_nohash_0``."""
    while True:
        stem, ext = os.path.splitext(name)
        if ext.lower() not in AUDIO_SUFFIXES:
            return name
        name = stem


def parse_name(path: str | Path) -> tuple[str, str]:
    """(word prefix or "", speaker id) of a Speech Commands file name; speaker falls back to the stem."""
    stem = strip_audio_suffixes(Path(path).name)
    m = _NAME_RE.match(stem)
    if not m:
        return "", stem
    return m.group("word") or "", m.group("speaker")


def is_audio_file(path: Path) -> bool:
    """A visible file with an audio suffix."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in AUDIO_SUFFIXES


def folder_label(name: str) -> str:
    """A label folder's label: a dataset word or ``_unknown_``/``_silence_`` in any case (``YES`` is ``yes``),
    else the name as it is."""
    lower = name.lower()
    return lower if lower in WORDS_V2 or lower in (UNKNOWN, SILENCE) else name


def is_test_set_layout(root: Path) -> bool:
    """True for the official separate test-set layout (``_unknown_``/``_silence_`` folders, in any case)."""
    return root.is_dir() and any(d.is_dir() and folder_label(d.name) in (UNKNOWN, SILENCE) for d in root.iterdir())


def uses_split_lists(root: Path) -> bool:
    """Whether a dataset root's splits are its lists (either file there, even empty: then every clip they do not name
    is training) rather than the speaker hash."""
    return (root / "validation_list.txt").is_file() or (root / "testing_list.txt").is_file()


def read_split_list(path: Path) -> set[str]:
    """The clips a split list (`validation_list.txt`, `testing_list.txt`) names, relative to its folder; none if absent."""
    if not path.is_file():
        return set()
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Notepad) hid the first line's clip
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise DatasetError(f"{path}: line {line} is not UTF-8 text (a split list names clips as relative paths, "
                           "one per line)") from None
    return {_list_entry(line, path.parent) for line in text.splitlines() if line.strip()}


def _list_entry(line: str, root: Path) -> str:
    """A split-list line as the clip path relative to ``root`` that it names: ``./yes/x.wav``, ``yes\\x.wav`` and an
    absolute path inside ``root`` read as ``yes/x.wav`` (they named no clip, and the split silently became training)."""
    entry = line.strip().replace("\\", "/")
    if entry.startswith("/"):
        for base in (root, root.resolve()):
            try:
                entry = Path(entry).relative_to(base).as_posix()
                break
            except ValueError:
                continue
    return posixpath.normpath(entry)


def missing_dataset(root: str | Path) -> DatasetError:
    """The error for a dataset root that is not there, with the way to name or fetch one."""
    if Path(root).exists():
        return DatasetError(f"{root}: is a file, not a dataset folder (--data-dir names the folder that holds the word "
                            "folders)")
    return DatasetError(f"{root}: dataset folder not found (--data-dir names it; `voice-gru data download --dest DIR` "
                        "fetches Speech Commands)")


def scan_dataset(root: str | Path) -> list[ClipRef]:
    """Every clip of a dataset root (either layout), with its word, speaker and split."""
    root = Path(root)
    if not root.is_dir():
        raise missing_dataset(root)
    if is_test_set_layout(root):
        return _scan_test_set(root)
    val, test = read_split_list(root / "validation_list.txt"), read_split_list(root / "testing_list.txt")
    use_lists = uses_split_lists(root)
    clips = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        for f in sorted(folder.iterdir()):
            if not is_audio_file(f):
                continue
            rel = f"{folder.name}/{f.name}"
            if use_lists:
                split = "validation" if rel in val else "testing" if rel in test else "training"
            else:
                split = which_set(f.name)
            # a word folder in any case is its word (`Yes/` is "yes", not an unknown word "Yes")
            clips.append(ClipRef(str(f), folder_label(folder.name), parse_name(f)[1], split))
    if not clips:  # one folder too high (the archive's own folder inside): say where the dataset is
        inner = sorted(p.parent for p in root.glob("*/validation_list.txt")) + \
            sorted(p.parent for p in root.glob("*/_background_noise_"))
        hint = f"; the dataset seems to be {inner[0]}" if inner else ""
        raise DatasetError(f"{root}: no word folders with audio clips (expected the Speech Commands layout){hint}")
    return clips


def unused_entries(root: str | Path) -> list[dict]:
    """What a dataset root holds or names that ``scan_dataset`` cannot read as a clip, as ``{"file", "reason"}``:
    entries of its word folders named like clips that are not files (a broken link, a folder) and split-list lines
    naming no clip on disk. Empty for the test-set layout (``evaluate`` names its odd entries itself)."""
    root = Path(root)
    if not root.is_dir() or is_test_set_layout(root):
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        if is_test_set_layout(folder):  # the official test set where `data download` unpacks it: not a word folder
            continue
        for f in sorted(folder.iterdir()):
            if f.name.startswith("."):
                continue
            if f.suffix.lower() not in AUDIO_SUFFIXES:  # clips one level down are not read: said, not dropped
                held = sum(1 for g in f.rglob("*") if is_audio_file(g)) if f.is_dir() and not f.is_symlink() else 0
                if held:
                    out.append({"file": str(f), "reason": f"a folder inside a word folder: its {held} clip(s) are "
                                                          "not read (clips go straight into their word's folder)"})
                continue
            if f.is_file():
                continue
            why = "a folder, not a clip" if f.is_dir() else "a broken link" if f.is_symlink() else \
                "not a regular file"
            out.append({"file": str(f), "reason": why})
    lists = {name: read_split_list(root / name) for name in ("validation_list.txt", "testing_list.txt")}
    for name, entries in lists.items():
        for rel in sorted(entries):
            if not (root / rel).exists() and not (root / rel).is_symlink():
                out.append({"file": str(root / rel), "reason": f"named in {name}, not on disk"})
            elif (root / rel).is_dir():  # not the folder's clips: a list names each clip (word/SPEAKER_nohash_N.wav)
                out.append({"file": str(root / rel), "reason": f"named in {name}: a folder, not a clip (a list names "
                                                               "each clip, as word/SPEAKER_nohash_N.wav)"})
    for rel in sorted(set.intersection(*lists.values())):  # validation wins: one clip, one split
        out.append({"file": str(root / rel), "reason": "named in both validation_list.txt and testing_list.txt: "
                                                       "used as a validation clip only"})
    return out


FINGERPRINT_EDGE = 4096  # bytes read at each end of a file for its content in the fingerprint


def dataset_fingerprint(root: str | Path, content: bool = True) -> str:
    """A digest of a dataset root's clips (path within the root, split, size, and the first and last 4 KiB of
    each: a clip replaced by another of the same size, as most one-second clips are) and background recordings:
    the same after the folder is moved or copied, different when a clip or a split list changes.
    ``content=False``: without the bytes (the digest runs recorded before 2026-12-06 hold)."""
    root = Path(root)
    h = hashlib.sha256()
    files = [(c.split, Path(c.path)) for c in scan_dataset(root)] + [("noise", f) for f in background_files(root)]
    # paths as found under the root, links not followed: a dataset of linked folders is still its own layout
    rows = sorted((split, Path(os.path.relpath(f, root)).as_posix(), f) for split, f in files)
    for split, rel, f in rows:
        size = f.stat().st_size
        h.update(f"{split}\t{rel}\t{size}\n".encode())
        if content:
            h.update(_edges(f, size))
    return h.hexdigest()


def _edges(path: Path, size: int) -> bytes:
    """A file's first and last ``FINGERPRINT_EDGE`` bytes (an unreadable one: nothing; it is reported elsewhere)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(FINGERPRINT_EDGE)
            if size > 2 * FINGERPRINT_EDGE:
                fh.seek(-FINGERPRINT_EDGE, os.SEEK_END)
            return head + fh.read(FINGERPRINT_EDGE)
    except OSError:
        return b""


def test_set_clip(path: Path) -> ClipRef:
    """A clip of a test-set layout's label folder: its folder is its label; an ``_unknown_`` clip's name gives its word."""
    label = folder_label(path.parent.name)
    word, speaker = parse_name(path)
    if label == SILENCE:
        word = SILENCE
    elif label != UNKNOWN:
        word = label
    return ClipRef(str(path), word, speaker, "testing", label=label)


def leads_up(folder: Path) -> bool:
    """A link to the folder it is in, or to one above: searching it would find the same clips again, under a
    label that is the link's name."""
    if not folder.is_symlink():
        return False
    target = folder.resolve()
    return target in (folder.parent.resolve(), *folder.parent.resolve().parents)


def _scan_test_set(root: Path) -> list[ClipRef]:
    clips = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and not leads_up(p)):
        if folder.name == BACKGROUND:
            continue
        try:
            inside = sorted(folder.iterdir())
        except OSError:  # evaluate names it among the folders not evaluated; the other folders are still read
            continue
        clips += [test_set_clip(f) for f in inside if is_audio_file(f)]
    if not clips:
        raise DatasetError(f"{root}: no audio files in the label folders")
    return clips


def check_speakers(clips: Iterable[ClipRef]) -> None:
    """Raise DatasetError when a speaker appears in more than one split."""
    splits: dict[str, set[str]] = defaultdict(set)
    for c in clips:
        if c.word != SILENCE:
            splits[c.speaker].add(c.split)
    leaks = sorted(s for s, v in splits.items() if len(v) > 1)
    if leaks:
        raise DatasetError(
            f"{len(leaks)} speaker(s) appear in more than one split (e.g. {leaks[0]}: "
            f"{', '.join(sorted(splits[leaks[0]]))}); fix validation_list.txt/testing_list.txt"
        )


def background_files(root: str | Path) -> list[Path]:
    """The background-noise recordings of a dataset root (may be empty)."""
    folder = Path(root) / BACKGROUND
    if not folder.is_dir():
        return []
    return sorted(f for f in folder.iterdir() if is_audio_file(f))


def task_labels(task: str, commands: Sequence[str] = COMMANDS) -> list[str]:
    """Class labels of a task, in model output order (``commands``: the "12" task's words, ``data.commands``)."""
    if task == "12":
        return [SILENCE, UNKNOWN, *commands]
    if task == "35":
        return list(WORDS_V2)
    raise DatasetError(f"unknown task '{task}' (expected '12' or '35')")


def label_of(clip: ClipRef, task: str, commands: Sequence[str] = COMMANDS) -> str:
    """The class of a clip for a task (``commands``: the "12" task's words; every other word is ``_unknown_``)."""
    if clip.label:
        said = said_command(clip.label, clip.word, commands) if task == "12" else None
        if said is not None:
            return said
        if task == "12" and clip.label not in (SILENCE, UNKNOWN, *commands):  # an official layout's folder of a word
            return UNKNOWN if clip.label in WORDS_V2 else clip.label  # that is not one of these commands
        return clip.label if task == "12" else clip.word
    if task == "35":
        return clip.word
    return clip.word if clip.word in commands else UNKNOWN


def missing_commands(found: Iterable[str], commands: Sequence[str]) -> list[str]:
    """The commands not among the words ``found`` (a misspelt word, or a folder the dataset lacks)."""
    have = set(found)
    return [w for w in commands if w not in have]


def record_hint(root: str | Path, split: str, words: Sequence[str], trained_on: str | None = None) -> str:
    """What to do when ``root``'s ``split`` has no clips of a model's own ``words`` (``trained_on``: the dataset its
    checkpoint names)."""
    where = f" ({trained_on})" if trained_on and Path(trained_on).resolve() != Path(root).resolve() else ""
    return (f"give the dataset the model was trained on{where}, or record a voice for this split "
            f"({record_command(root, split, words[0])})")


def record_command(root: str | Path, split: str, word: str) -> str:
    """The command that records another voice of ``word`` into ``root``'s ``split``."""
    return f"voice-gru record {shlex.quote(word)} --data-dir {shlex.quote(str(root))} --speaker NAME --split {split}"


def said_command(label: str, word: str, commands: Sequence[str]) -> str | None:
    """The command a clip of an ``_unknown_`` label folder says where its name gives one of ``commands`` as its word
    (the official test set's ``_unknown_/bed_0c2ca723_nohash_0.wav`` for a model whose command "bed" is), else None."""
    return word if label == UNKNOWN and word and word in commands else None


def dataset_stats(root: str | Path, cfg: DataConfig = DataConfig(), progress: bool = False) -> dict:
    """Clips on disk per split and word folder, how many of them cannot be read (headers only: no decoding), and
    class counts after silence/unknown sampling."""
    from tqdm.auto import tqdm

    from voice_gru.audio import audio_problem

    root = Path(root)
    clips = scan_dataset(root)
    problems = {c.path: why for c in tqdm(clips, desc="reading clip headers", unit="clip", disable=not progress,
                                          leave=False) if (why := audio_problem(c.path))}
    out: dict = {"root": str(root), "task": cfg.task, "layout": "test-set" if is_test_set_layout(root) else "dataset"}
    n_noise = len(background_files(root))
    all_words = sorted({c.word or UNKNOWN for c in clips}, key=_word_order)
    for split in SPLITS:
        sc = [c for c in clips if c.split == split]
        if not sc and split != "testing":
            continue
        found = Counter(c.word or UNKNOWN for c in sc)
        words = {w: found.get(w, 0) for w in all_words}
        ex = split_examples(clips, split, cfg, n_noise_files=n_noise, noise_lengths=None)
        classes = Counter(e.label for e in ex)
        out[split] = {
            "clips": len(sc),
            "unreadable": sum(c.path in problems for c in sc),  # counted among the clips on disk, and listed
            "speakers": len({c.speaker for c in sc if c.word != SILENCE}),
            "per_word_folder": words,
            "per_class": {lab: classes.get(lab, 0) for lab in task_labels(cfg.task, cfg.commands)},
        }
    out["background_noise_files"] = n_noise
    out["unused"] = unused_entries(root) + [{"file": p, "reason": why.removeprefix(f"{p}: ")}
                                            for p, why in problems.items()]
    return out


def format_stats(stats: dict) -> str:
    """A text table of ``dataset_stats`` output."""
    splits = [s for s in ("training", "validation", "testing") if s in stats]
    lines = [f"{stats['root']} ({stats['layout']} layout, {stats['background_noise_files']} background-noise files)", ""]
    words = list(stats[splits[0]]["per_word_folder"]) if splits else []
    head = f"{'word folder':<14}" + "".join(f"{s:>12}" for s in splits)
    lines += ["clips on disk per word folder", head, "-" * len(head)]
    for w in words:
        lines.append(f"{w:<14}" + "".join(f"{stats[s]['per_word_folder'].get(w, 0):>12}" for s in splits))
    lines.append(f"{'all clips':<14}" + "".join(f"{stats[s]['clips']:>12}" for s in splits))
    if any(stats[s].get("unreadable") for s in splits):  # on disk, so counted above, but training skips them
        lines.append(f"{'unreadable':<14}" + "".join(f"{stats[s]['unreadable']:>12}" for s in splits))
    lines.append(f"{'speakers':<14}" + "".join(f"{stats[s]['speakers']:>12}" for s in splits))
    by_class = f"{'class':<14}" + "".join(f"{s:>12}" for s in splits)
    n_classes = len(stats[splits[0]]["per_class"]) if splits else 0
    lines += ["", f"examples per class, {n_classes} classes (after silence/unknown sampling)", by_class,
              "-" * len(by_class)]
    for lab in stats[splits[0]]["per_class"] if splits else []:
        lines.append(f"{lab:<14}" + "".join(f"{stats[s]['per_class'].get(lab, 0):>12}" for s in splits))
    empty = [s for s in ("training", "validation", "testing") if s not in stats]
    if empty and stats.get("layout") != "test-set":  # its column is left out: said, not silently gone
        lines += ["", f"no clips in the {' or the '.join(empty)} split"]
    unused = stats.get("unused", [])
    if unused:
        lines += ["", f"not read as clips: {len(unused)}"] + [f"  {u['file']}: {u['reason']}" for u in unused[:10]]
        lines += [f"  ... and {len(unused) - 10} more (--json lists them all)"] if len(unused) > 10 else []
    return "\n".join(lines)


def _word_order(word: str) -> tuple[int, str]:
    return (WORDS_V2.index(word), "") if word in WORDS_V2 else (len(WORDS_V2), word)


def split_examples(
    clips: Sequence[ClipRef],
    split: str,
    cfg: DataConfig,
    n_noise_files: int,
    noise_lengths: Sequence[int] | None,
    all_unknown: bool = False,
) -> list[Example]:
    """Examples of one split: word clips, sampled unknowns and seeded silence cuts.

    Training keeps every unknown clip (the sampler weighs classes); validation/testing keep a
    seeded sample of ``unknown_ratio`` × commands, or every one with ``all_unknown`` (the silence
    cuts the same). Silence examples number ``silence_ratio`` × commands and are cut from the
    background noise at seeded offsets and volumes, so the validation and test sets are
    identical on every run.
    """
    sc = [c for c in clips if c.split == split]
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split) if split in SPLITS else 9])
    out: list[Example] = []
    if any(c.label for c in sc):  # the official test-set layout is taken as it is
        return [Example(label_of(c, cfg.task, cfg.commands), c.path) for c in sc if cfg.task == "12" or c.word in WORDS_V2]
    labelled = [(c, label_of(c, cfg.task, cfg.commands)) for c in sc]
    commands = [c for c, lab in labelled if lab != UNKNOWN]
    unknown = [c for c, lab in labelled if lab == UNKNOWN]
    out += [Example(lab, c.path, word=c.word) for c, lab in labelled if lab != UNKNOWN]
    if unknown:
        if split == "training":
            keep = unknown
        else:
            n = min(len(unknown), int(math.ceil(cfg.unknown_ratio * len(commands))))
            idx = rng.choice(len(unknown), size=n, replace=False)  # drawn either way: the silence cuts follow it
            keep = unknown if all_unknown else [unknown[i] for i in sorted(idx)]
        out += [Example(UNKNOWN, c.path, word=c.word) for c in keep]
    if cfg.task == "12" and n_noise_files:
        n_sil = int(math.ceil(cfg.silence_ratio * len(commands)))
        clip_len = int(cfg.clip_seconds * 16000)
        for _ in range(n_sil):
            k = int(rng.integers(n_noise_files))
            length = noise_lengths[k] if noise_lengths else clip_len
            offset = int(rng.integers(0, max(1, length - clip_len)))
            volume = float(silence_volume(rng))
            out.append(Example(SILENCE, "", k, offset, volume))
    return out


def silence_volume(rng: np.random.Generator) -> float:
    """Volume of a silence cut: digital silence 10% of the time, else log-uniform 0.001-1."""
    if rng.random() < 0.1:
        return 0.0
    return float(10 ** rng.uniform(-3, 0))


def class_weights(examples: Sequence[Example], labels: Sequence[str], cfg: DataConfig) -> np.ndarray:
    """Sampling weight per example: equal mass per class when balanced, else per example."""
    counts = Counter(e.label for e in examples)
    if not cfg.balanced:
        n_cmd = sum(v for k, v in counts.items() if k not in (SILENCE, UNKNOWN))
        mass = {k: float(v) for k, v in counts.items()}
        if UNKNOWN in counts:
            mass[UNKNOWN] = cfg.unknown_ratio * n_cmd
        if SILENCE in counts:
            mass[SILENCE] = cfg.silence_ratio * n_cmd
    else:
        mass = {k: cfg.unknown_weight if k == UNKNOWN else 1.0 for k in counts}
    w = np.array([mass[e.label] / counts[e.label] for e in examples], dtype=np.float64)
    if cfg.unknown_mix == "words":
        # the official test set's _unknown_ holds every other word about equally often, while this
        # subset's training clips are mostly "bed", "cat" and "happy": give each word an equal share
        # of the mass its real clips have together (synthetic clips keep theirs)
        real = [i for i, e in enumerate(examples) if e.label == UNKNOWN and e.word]
        per_word = Counter(examples[i].word for i in real)
        total = w[real].sum()
        for i in real:
            w[i] = total / len(per_word) / per_word[examples[i].word]
    return w / w.sum()


def fit_clip(audio: np.ndarray, n: int) -> np.ndarray:
    """Pad with zeros at the end (short clips) or cut the middle ``n`` samples (long ones)."""
    if audio.size >= n:
        start = (audio.size - n) // 2
        return audio[start:start + n]
    return np.pad(audio, (0, n - audio.size))


def cache_dir(explicit: str | Path | None = None) -> Path:
    """Feature-cache folder: explicit, else $XDG_CACHE_HOME/voice_gru, else ~/.cache/voice_gru."""
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "voice_gru"


def _key(parts: Iterable[str]) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


STALE_TEMP_S = 6 * 3600  # a cache temp this old is a killed run's (the full dataset's features take minutes)


def _remove_stale_cache_temps(folder: Path) -> None:
    """Delete feature-cache temps a killed run left (``.clips-<key>.pt.<random>.pt``, ~90 MB each for the full
    dataset); a younger one may be another run's, being written now."""
    from voice_gru.fileio import atomic_temps

    now = time.time()
    for tmp in atomic_temps(folder, "clips-*.pt"):
        try:
            if now - tmp.stat().st_mtime > STALE_TEMP_S:
                tmp.unlink()
        except OSError:  # gone meanwhile, or not ours to remove
            pass


def _file_signature(path: str) -> str:
    """What tells a clip's contents apart in the feature cache's key without reading it: size and times to the
    nanosecond (a clip of the same size replaced within a second kept its old features; the change time also moves
    when a copy keeps the modification time)."""
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}:-1"
    return f"{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def load_clip_mels(
    paths: Sequence[str],
    feat: FeatureConfig,
    clip_seconds: float = 1.0,
    speed: float = 1.0,
    cache: str | Path | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, dict[str, str]]:
    """Mel power ``(N, frames, n_mels)`` of fixed-length clips, cached on disk.

    Returns ``(mels, bad)`` where ``bad`` maps unreadable paths to the reason (their rows are
    zeros); the caller reports them, nothing is dropped silently.
    """
    import torch

    from voice_gru.fileio import atomic_path

    sig = [_file_signature(p) for p in paths]
    key = _key([FEATURE_CODE_VERSION, json.dumps(feat.__dict__, sort_keys=True), str(clip_seconds), f"{speed:.4f}", *sig])
    path = cache_dir(cache) / f"clips-{key}.pt"
    if path.is_file():
        try:
            blob = torch.load(path, weights_only=True)
            return blob["mels"], dict(blob["bad"])
        except Exception:  # a damaged cache is rebuilt, never trusted
            path.unlink(missing_ok=True)
    _remove_stale_cache_temps(path.parent)
    mels, bad = compute_clip_mels(paths, feat, clip_seconds, speed, progress)
    try:
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save({"mels": mels, "bad": list(bad.items())}, tmp)
    except (OSError, RuntimeError) as exc:  # a full or read-only cache disk: the features are in hand, the run goes on
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
        logger.warning("%s: not cached (%s): these features are used as computed, and computed again next run",
                       path, why)
    return mels, bad


def compute_clip_mels(paths: Sequence[str], feat: FeatureConfig, clip_seconds: float, speed: float,
                      progress: bool) -> tuple[torch.Tensor, dict[str, str]]:
    """Decode, speed-perturb, pad/cut and compute mel power for each clip (batched)."""
    import torch
    from tqdm.auto import tqdm

    from voice_gru.audio import load_audio, resample
    from voice_gru.features import mel_power

    n = int(round(clip_seconds * feat.sample_rate))
    bad: dict[str, str] = {}
    out = []
    batch: list[np.ndarray] = []
    for p in tqdm(paths, desc=f"features (speed {speed:g})", unit="clip", disable=not progress, leave=False):
        try:
            audio = load_audio(p, feat.sample_rate)
        except AudioFormatError as exc:
            bad[p] = str(exc)
            audio = np.zeros(n, dtype=np.float32)
        if speed != 1.0:
            audio = resample(audio, int(round(feat.sample_rate * speed)), feat.sample_rate)
        batch.append(fit_clip(audio, n))
        if len(batch) == 256:
            out.append(mel_power(torch.from_numpy(np.stack(batch)), feat))
            batch = []
    if batch:
        out.append(mel_power(torch.from_numpy(np.stack(batch)), feat))
    if not out:
        return torch.zeros(0, 0, feat.n_mels), bad
    return torch.cat(out), bad


def load_noise(root: str | Path, sample_rate: int = 16000) -> list[np.ndarray]:
    """Background-noise recordings of a dataset root as 16 kHz mono arrays."""
    from voice_gru.audio import load_audio

    return [load_audio(f, sample_rate) for f in background_files(root)]
