"""Offline evaluation: clips or folders in, accuracy / per-class metrics / confusions out.

Inputs may be a dataset root (one split of it), a folder of label folders (the official test-set
layout), a folder of unlabelled audio, or single files, at any sample rate and in any format the
audio reader accepts. An unreadable file is reported with its reason and counted, never dropped.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from voice_gru import COMMANDS, SILENCE, UNKNOWN, commands_of
from voice_gru.audio import load_audio, resample
from voice_gru.config import DataConfig
from voice_gru.data import (
    AUDIO_SUFFIXES, BACKGROUND, WORDS_V2, background_files, fit_clip, folder_label, is_audio_file, is_test_set_layout,
    leads_up, missing_commands, parse_name, record_hint, said_command, scan_dataset, split_examples, test_set_clip,
    unused_entries,
)
from voice_gru.errors import AudioFormatError, ConfigError, DatasetError
from voice_gru.metrics import confusion_matrix, per_class_prf, top_confusions
from voice_gru.model import Checkpoint, Ensemble, clip_posteriors

if TYPE_CHECKING:
    from voice_gru.stream import Recognizer

TAIL_SECONDS = 0.3  # silence appended after a clip: the model marks a word just after it ends
# silence put before a clip shorter than 1 s (as much as it lacks, up to this): a clip cut tight to its word starts on
# speech, where every training clip has a lead-in (validation clips cut so: 365 of 408 named right, 384 with it)
LEAD_SECONDS = 0.2
LONG_INPUT_S = 3.0  # an input longer than this is a recording, not a clip of one word: said
MAX_BATCH_SAMPLES = 4_000_000  # ~4 min at 16 kHz held at once: 128 one-second clips, or one long recording


@dataclass(frozen=True)
class EvalItem:
    """One input: a display name, its true label (or None), and how to get its audio."""

    name: str
    label: str | None
    load: Callable[[], np.ndarray] = field(repr=False, compare=False)
    word: str = ""  # the dataset word spoken, where the layout says it (an `_unknown_` clip's word)


def _file_item(path: Path, label: str | None, sr: int, word: str = "") -> EvalItem:
    if label != UNKNOWN:
        word = ""
    elif not word:  # the official test set names its `_unknown_` clips WORD_SPEAKER_nohash_N
        word = parse_name(path)[0]
    return EvalItem(str(path), label, functools.partial(load_audio, path, sr), word)


def is_dataset_root(d: Path) -> bool:
    """A Speech Commands root: split lists or background noise (not the official test-set layout)."""
    return (d / "validation_list.txt").is_file() or (d / "testing_list.txt").is_file() or (d / "_background_noise_").is_dir()


def collect_inputs(paths: Sequence[str | Path], split: str = "testing", labels: Sequence[str] = (),
                   sample_rate: int = 16000, all_unknown: bool = False,
                   ignored: list[dict] | None = None) -> list[EvalItem]:
    """Turn command-line paths into evaluation items (labelled where the layout says so).

    A dataset root's split is drawn for the task of ``labels``: the 35-word task for a model without ``_silence_``,
    else the 12-class task. ``all_unknown``: a dataset root's split keeps every clip of its other words instead of a
    sample. ``ignored``, where given, receives ``{"file", "reason"}`` for each file in a folder that is not evaluated (not audio, in
    a subfolder of a label folder, a broken link) and each file given more than once (evaluated once).
    """
    twelve = not labels or SILENCE in labels
    data_cfg = DataConfig(task="12", commands=commands_of(labels) or COMMANDS) if twelve else DataConfig(task="35")
    skipped: list[dict] = [] if ignored is None else ignored
    items: list[EvalItem] = []
    if isinstance(paths, (str, Path)):  # one path, not its characters (a lone "/" would scan the whole disk)
        paths = [paths]
    for raw in paths:
        p = Path(raw)
        if p.is_file() or (not p.exists() and p.suffix):
            items.append(_file_item(p, None, sample_rate))
        elif not p.exists():
            raise DatasetError(f"{p}: no such file or folder")
        elif not p.is_dir():  # a pipe or a device: said unreadable when loaded, with the rest evaluated
            items.append(_file_item(p, None, sample_rate))
        elif is_test_set_layout(p):
            found = _unread(p, label_folders=True)
            tried = [f for f in _suffixless_audio(found) if f.parent != p]  # one beside the label folders has no label
            try:
                listed = scan_dataset(p)
            except DatasetError:  # "no audio files in the label folders": every clip's name may lack its suffix
                if not tried:
                    raise
                listed = []
            for c in listed + [test_set_clip(f) for f in tried]:
                items.append(_file_item(Path(c.path), _label_for(c.label, Path(c.path), labels), sample_rate, c.word))
            skipped += [u for u in found if Path(u["file"]) not in tried]
        elif is_dataset_root(p):
            items += _dataset_items(p, split, data_cfg, sample_rate, all_unknown, skipped)
            skipped += unused_entries(p)
        else:
            subdirs = [d for d in sorted(p.iterdir()) if d.is_dir() and not d.name.startswith(".") and not leads_up(d)
                       and _holds_audio(d)]
            for d in subdirs:
                label = folder_label(d.name)  # its class: _label_for
                for f in sorted(d.iterdir()):
                    if is_audio_file(f):
                        items.append(_file_item(f, _label_for(label, f, labels), sample_rate,
                                                label if label in WORDS_V2 else ""))
            found = _unread(p, label_folders=bool(subdirs))
            tried = _suffixless_audio(found)
            files = [f for f in sorted(p.iterdir()) if is_audio_file(f)] + tried
            for f in files:  # one in a label folder is that folder's clip
                folder = _folder_class(f.parent.name, labels or ()) if f.parent != p else None
                items.append(_file_item(f, None if folder is None else _map_label(folder, labels), sample_rate,
                                        folder if folder in WORDS_V2 else ""))
            skipped += [u for u in found if Path(u["file"]) not in files]
            if not subdirs and not files:
                inner = [d for d in sorted(p.iterdir()) if d.is_dir() and (is_test_set_layout(d) or is_dataset_root(d))]
                raise DatasetError(f"{p}: folder holds no audio files" + (f"; {inner[0]} is a dataset or test-set layout: "
                                                                          f"give that folder" if inner else ""))
    kept: dict[str, int] = {}
    unique: list[EvalItem] = []
    for it in items:  # one file named twice (a folder and a clip in it, a layout given twice) counts once,
        key = _same_file_key(it.name)  # with its label where one of the names gives it
        if not Path(it.name).exists():  # a silence cut of a dataset root's noise: made, never given twice
            unique.append(it)
            continue
        if key in kept:
            i = kept[key]
            if _rank(it) < _rank(unique[i]):
                unique[i], it = it, unique[i]
            first = unique[i]
            skipped.append({"file": it.name, "reason": "given more than once (evaluated once)"
                            if it.label in (None, first.label) else
                            f"the same recording as {first.name}: evaluated once, as {first.label}, not {it.label}"})
            continue
        kept[key] = len(unique)
        unique.append(it)
    return unique


def _rank(it: EvalItem) -> tuple[bool, bool]:
    """Which of two names of one file is evaluated: a labelled one, then one that is no link (a clip linked into
    another label folder is scored under the folder that holds the file)."""
    p = Path(it.name)
    return it.label is None, p.resolve() != p.absolute()


def relabelled_unknown(items: Sequence[EvalItem]) -> list[EvalItem]:
    """Clips of an ``_unknown_`` label folder scored as a command because their name says one (``_label_for``)."""
    return [it for it in items if _folder_class(Path(it.name).parent.name) == UNKNOWN and it.label not in (None, UNKNOWN)]


def _label_for(label: str, path: Path, labels: Sequence[str]) -> str:
    """A label folder's clip's class for a model of ``labels``: a clip of ``_unknown_/`` whose name says a word that
    is one of the model's commands (``bed_0c2ca723_nohash_0.wav``, as the official test set names them) is that
    command."""
    label = _folder_class(label, labels)
    said = said_command(label, parse_name(path)[0], commands_of(labels)) if labels else None
    return said or (label if label in labels else _map_label(label, labels))


def _map_label(name: str, labels: Sequence[str]) -> str:
    if not labels or name in labels:
        return name
    same = [lab for lab in labels if lab.casefold() == name.casefold()]  # label folders are matched in any case
    if same:  # (a model's own word, `Hello/` for `hello`, was a class of its own that every clip missed)
        return same[0]
    if name in WORDS_V2 and UNKNOWN in labels:
        return UNKNOWN
    return name  # a label the model does not know: counted as an error of that class


def clips_below(items: Sequence[EvalItem], sample_rate: int) -> dict[int, int]:
    """How many of the items' files are recorded below ``sample_rate``, by their rate (unreadable ones are
    left to the evaluation to report)."""
    from voice_gru.audio import file_rate

    out: dict[int, int] = {}
    for it in items:
        if not Path(it.name).is_file():
            continue
        try:
            rate = file_rate(it.name)
        except AudioFormatError:
            continue
        if rate < sample_rate:
            out[rate] = out.get(rate, 0) + 1
    return out


def _folder_class(name: str, labels: Sequence[str] = ()) -> str:
    """A label folder's class in a folder given to evaluate: ``folder_label``'s, and ``unknown/`` and ``silence/``
    without their underscores in any case (a class of their own, every clip a miss, until 2026-12-07) unless the
    model of ``labels`` has a command of that name; a dataset's word folders of those names stay words."""
    if any(lab.casefold() == name.casefold() for lab in labels):
        return folder_label(name)
    return {UNKNOWN.strip("_"): UNKNOWN, SILENCE.strip("_"): SILENCE}.get(name.lower().strip("_"), folder_label(name))


def _same_file_key(name: str) -> str:
    """One key for every name of one file: links of either kind (a hard link has no target to resolve)."""
    try:
        st = os.stat(name)
    except OSError:  # silence cuts of a dataset root are named, not files
        return name
    return f"{st.st_dev}:{st.st_ino}"


_NOT_AUDIO = f"not an audio file (suffixes read: {' '.join(AUDIO_SUFFIXES)})"
_NOT_FILE = "not a regular file (a pipe or a device: not opened)"
_HIDDEN = "hidden (the name starts with a dot)"


def _no_suffix_audio(path: str) -> bool:
    """A file without a suffix that the audio reader can open."""
    import soundfile as sf

    if Path(path).suffix or not Path(path).is_file():  # a pipe would be waited on for ever
        return False
    try:
        sf.info(path)
    except Exception:  # libsndfile says "not audio" in several exception types
        return False
    return True


def _suffixless_audio(unread: Sequence[dict]) -> list[Path]:
    """The files of ``_unread``'s list without a suffix that hold audio: a recorder's or a script's WAV without its
    name's end is read as a clip."""
    return [Path(u["file"]) for u in unread if u["reason"] == _NOT_AUDIO and _no_suffix_audio(u["file"])]


def _holds_audio(folder: Path) -> bool:
    """A folder with an audio file in it, its name's suffix or not (one that cannot be listed holds none that could
    be read)."""
    try:
        return any(is_audio_file(f) or _no_suffix_audio(str(f)) for f in folder.iterdir())
    except OSError:
        return False


def _unread(root: Path, label_folders: bool) -> list[dict]:
    """The visible entries of a folder (and, for a folder of label folders, of each of them) that are not read:
    files without an audio suffix, broken links, folders inside a label folder, and files beside the label folders."""
    out = []
    layout = label_folders and is_test_set_layout(root)

    def note(f: Path, reason: str) -> None:
        out.append({"file": str(f), "reason": reason})

    for f in sorted(root.iterdir()):
        if f.name == BACKGROUND or (f.name.startswith(".") and f.is_dir()):
            continue
        if f.name.startswith("."):
            note(f, _HIDDEN)
            continue
        if f.is_dir():
            if not label_folders or leads_up(f):
                note(f, "a link to a folder above it (not searched)" if leads_up(f)
                     else "a folder inside a folder of clips (not searched)")
                continue
            try:
                inside = sorted(f.iterdir())
            except OSError as exc:
                note(f, f"a folder that cannot be read ({exc.strerror or exc})")
                continue
            for g in inside:
                if g.name.startswith("."):
                    if not g.is_dir():
                        note(g, _HIDDEN)
                elif g.is_dir():
                    note(g, "a folder inside a label folder (not searched)")
                elif not g.exists():
                    note(g, "a broken link")
                elif not g.is_file():
                    note(g, _NOT_FILE)
                elif not is_audio_file(g):
                    note(g, _NOT_AUDIO)
        elif not f.exists():
            note(f, "a broken link")
        elif not f.is_file():
            note(f, _NOT_FILE)
        elif not is_audio_file(f):
            note(f, _NOT_AUDIO)
        elif layout:
            note(f, "beside the label folders (no label)")
    return out


def _dataset_items(root: Path, split: str, cfg: DataConfig, sr: int, all_unknown: bool = False,
                   skipped: list[dict] | None = None) -> list[EvalItem]:
    from voice_gru.audio import audio_problem

    clips = scan_dataset(root)
    noise_paths = []
    for f in background_files(root):  # one damaged noise file ended the whole evaluation in a traceback
        why = audio_problem(f)
        if why is None:
            noise_paths.append(f)
        elif skipped is not None:
            skipped.append({"file": str(f), "reason": f"background noise that cannot be read "
                                                      f"({why.removeprefix(f'{f}: ')}): no _silence_ clip is cut from it"})
    noise_cache: dict[int, np.ndarray] = {}

    def noise(k: int) -> np.ndarray:
        if k not in noise_cache:
            noise_cache[k] = load_audio(noise_paths[k], sr)
        return noise_cache[k]

    def silence_clip(k: int, offset: int, volume: float) -> np.ndarray:
        return fit_clip(noise(k)[offset:offset + n], n) * volume

    lengths = None
    if noise_paths:
        import soundfile as sf

        infos = [sf.info(str(f)) for f in noise_paths]
        lengths = [i.frames * sr // i.samplerate for i in infos]
    ex = split_examples(clips, split, cfg, len(noise_paths), lengths, all_unknown)
    if not ex:
        missing = missing_commands((c.word for c in clips if c.split == split), cfg.commands)
        if any(c.split == split for c in clips) and missing and cfg.commands != COMMANDS:
            raise DatasetError(f"{root}: the '{split}' split has no clips of {', '.join(missing)} (the model's "
                               f"commands): {record_hint(root, split, missing)}")
        raise DatasetError(f"{root}: the '{split}' split is empty")
    n = int(cfg.clip_seconds * sr)
    items = []
    for e in ex:
        if e.path:
            items.append(_file_item(Path(e.path), e.label, sr, e.word))
        else:
            name = f"{noise_paths[e.noise].name}@{e.offset}x{e.volume:.3f}"
            items.append(EvalItem(name, e.label, functools.partial(silence_clip, e.noise, e.offset, e.volume)))
    return items


def noise_recordings(paths: Sequence[str | Path], sample_rate: int = 16000) -> list[np.ndarray]:
    """Noise for ``with_noise``: audio files, folders of them, or dataset roots (their ``_background_noise_``)."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            found = background_files(p) or [f for f in sorted(p.iterdir()) if f.is_file() and is_audio_file(f)]
            if not found:
                raise DatasetError(f"{p}: no noise recordings (no audio files, no _background_noise_ folder)")
            files += found
        else:
            raise DatasetError(f"{p}: no such noise file or folder")
    out = []
    for f in files:
        a = load_audio(f, sample_rate)
        if a.size == 0 or not np.any(a):
            raise DatasetError(f"{f}: noise recording is empty or digital silence")
        out.append(a)
    return out


def _perturbed(items: Sequence[EvalItem], perturb: Callable[[np.ndarray, np.random.Generator], np.ndarray], seed: int) -> list[EvalItem]:
    """``items`` with ``perturb`` applied to every clip not labelled ``_silence_``.

    Each clip's random draw depends only on ``seed`` and its position, so runs are repeatable
    and two models see exactly the same audio.
    """
    def changed(it: EvalItem, i: int) -> EvalItem:
        if it.label == SILENCE:
            return it
        return EvalItem(it.name, it.label, lambda: perturb(it.load(), np.random.default_rng([seed, i])), it.word)

    return [changed(it, i) for i, it in enumerate(items)]


def _finite(where: str, **values: float) -> None:
    """Refuse a perturbation setting that is no finite number (NaN passed every range check by failing it)."""
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ConfigError(f"{where}: {name} must be a finite number, got {v!r}")


def with_noise(items: Sequence[EvalItem], noises: Sequence[np.ndarray], snr_db: float, seed: int = 0) -> list[EvalItem]:
    """The same items with noise mixed into every clip not labelled ``_silence_`` at ``snr_db``."""
    from voice_gru.mixing import mix_random

    _finite("with_noise", snr_db=snr_db)
    return _perturbed(items, lambda a, rng: mix_random(a, noises, snr_db, rng), seed)


def with_reverb(items: Sequence[EvalItem], rt60_s: float, drr_db: float, sample_rate: int, seed: int = 0) -> list[EvalItem]:
    """The same items played in a simulated room (``mixing.room_impulse_response``), ``_silence_`` excepted."""
    from voice_gru.mixing import reverberate, room_impulse_response

    _finite("with_reverb", rt60_s=rt60_s, drr_db=drr_db, sample_rate=sample_rate)
    if rt60_s <= 0 or sample_rate <= 0:
        raise ConfigError(f"with_reverb: rt60_s ({rt60_s:g}) and sample_rate ({sample_rate:g}) must be positive")
    return _perturbed(items, lambda a, rng: reverberate(a, room_impulse_response(rt60_s, drr_db, sample_rate, rng)), seed)


def with_speed(items: Sequence[EvalItem], factor: float, sample_rate: int) -> list[EvalItem]:
    """The same items spoken ``factor`` times faster (tempo and pitch together, as training's speed
    perturbation: resampled from ``factor × sample_rate``), ``_silence_`` excepted."""
    _finite("with_speed", factor=factor, sample_rate=sample_rate)
    if factor <= 0 or sample_rate <= 0:
        raise ConfigError(f"with_speed: the factor ({factor:g}) and sample_rate ({sample_rate:g}) must be positive")
    if factor == 1.0:
        return list(items)
    return _perturbed(items, lambda a, rng: resample(a, int(round(sample_rate * factor)), sample_rate), 0)


def with_peak(items: Sequence[EvalItem], peak_dbfs: float) -> list[EvalItem]:
    """The same items with every clip not labelled ``_silence_`` scaled so that its loudest sample is at
    ``peak_dbfs`` (above 0: driven over full scale and clipped at ±1, as an input gain set too high does)."""
    _finite("with_peak", peak_dbfs=peak_dbfs)
    gain = 10.0 ** (peak_dbfs / 20.0)

    def level(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        peak = float(np.max(np.abs(a))) if a.size else 0.0
        return np.clip(a * (gain / peak), -1.0, 1.0).astype(np.float32) if peak > 0 else a

    return _perturbed(items, level, 0)


def lead_samples(n: int, sample_rate: int) -> int:
    """The silence put before a clip of ``n`` samples: as much as it lacks of a second, up to ``LEAD_SECONDS``."""
    return min(int(LEAD_SECONDS * sample_rate), max(0, sample_rate - n))


def clip_input(audio: np.ndarray, sample_rate: int, lead_in: bool = True) -> np.ndarray:
    """The samples a clip is named from: a clip shorter than 1 s with ``lead_samples`` of silence before it
    (``lead_in``) and padded to 1 s after, a longer one whole; then ``TAIL_SECONDS`` of silence."""
    lead = lead_samples(audio.size, sample_rate) if lead_in else 0
    body = fit_clip(np.pad(audio, (lead, 0)), sample_rate) if audio.size <= sample_rate else audio
    return np.concatenate([body, np.zeros(int(TAIL_SECONDS * sample_rate), dtype=np.float32)])


@torch.no_grad()
def classify(ckpt: Checkpoint, audios: Sequence[np.ndarray], batch_size: int = 128) -> np.ndarray:
    """Clip posteriors ``(N, classes)`` for 16 kHz clips (short clips padded to 1 s)."""
    from voice_gru.features import mfcc

    if batch_size < 1:
        raise ConfigError(f"batch_size {batch_size}: must be at least 1")
    sr = ckpt.features.sample_rate
    out = np.zeros((len(audios), len(ckpt.labels)), dtype=np.float32)
    by_len: dict[int, list[int]] = {}
    prepared = []
    for i, a in enumerate(audios):
        a = np.asarray(a)
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all():
            raise AudioFormatError(f"clip {i}: shape {a.shape}, dtype {a.dtype}: clips are mono float samples in [-1, 1], "
                                   "all finite (voice_gru.audio.load_audio reads a file so)")
        prepared.append(clip_input(a, sr))
        by_len.setdefault(prepared[-1].size, []).append(i)  # clips under a second are one batch
    for idx in by_len.values():
        for s in range(0, len(idx), batch_size):
            chunk = idx[s:s + batch_size]
            x = ckpt.normalizer(mfcc(torch.from_numpy(np.stack([prepared[i] for i in chunk])), ckpt.features))
            # naming a clip is a forced choice: an ensemble's members are averaged here even where the
            # live path takes their minimum (validation, shipped pair: mean 95.3%, min 92.4%)
            logits = ckpt.model(x, combine="mean") if isinstance(ckpt.model, Ensemble) else ckpt.model(x)
            post = clip_posteriors(logits, ckpt.pooling, ckpt.silence_index)
            out[chunk] = post.numpy()
    return out


def classify_streaming(recognizer: Recognizer, audios: Sequence[np.ndarray]) -> np.ndarray:
    """Clip posteriors ``(N, classes)`` from one continuous stream: each clip (padded to 1 s, then
    ``TAIL_SECONDS`` of silence) is pushed through the live ``Recognizer`` right after the previous
    one, its state carried over as in a live session, and pooled over the frames it completes."""
    ckpt = recognizer.ckpt
    sr = ckpt.features.sample_rate
    out = np.full((len(audios), len(ckpt.labels)), 1.0 / len(ckpt.labels), dtype=np.float32)
    for i, a in enumerate(audios):
        if i == 0:  # from zero state: the silence a short clip lacks goes first, its frames pooled for no clip
            recognizer.push(np.zeros(lead_samples(a.size, sr), dtype=np.float32))
        # no lead inside the clip: a later clip's state comes out of the last one's silence, and a lead moved a short
        # word's after-word `_unknown_` into the next clip's frames (the example folder's "no" was named `_unknown_`)
        post = recognizer.push(clip_input(a, sr, lead_in=False))
        if post.shape[0]:
            # the pooling functions take logits: log-posteriors give back the same softmax
            logp = torch.log(torch.from_numpy(post).clamp_min(1e-12))
            out[i] = clip_posteriors(logp[None], ckpt.pooling, ckpt.silence_index)[0].numpy()
    return out


def evaluate_items(ckpt: Checkpoint, items: Sequence[EvalItem], progress: bool = True, batch_size: int = 128,
                   streaming: bool = False) -> dict:
    """Predict every item; report accuracy, per-class metrics, confusions, errors and throughput.

    ``streaming``: all clips as one continuous stream through the live recognizer (state carried
    from clip to clip) instead of each clip on its own from zero state.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:  # range() would refuse 0, and a negative step would name no clip at all
        raise ConfigError(f"batch_size {batch_size}: must be at least 1")
    recognizer: Any = None  # a Recognizer wherever it is used (streaming)
    if streaming:
        from voice_gru.stream import Recognizer

        recognizer = Recognizer(ckpt)
    labels = list(ckpt.labels)
    t0 = time.perf_counter()
    preds: list[dict] = []
    errors: list[dict] = []
    chunk: list[EvalItem] = []
    audios: list[np.ndarray] = []
    long: list[dict] = []

    def run_batch() -> None:
        post = classify_streaming(recognizer, audios) if streaming else classify(ckpt, audios, batch_size)
        for it, p in zip(chunk, post):
            k = int(np.argmax(p))
            preds.append({"file": it.name, "label": it.label, "predicted": labels[k], "score": float(p[k]),
                          **({"word": it.word} if it.word else {})})
        chunk.clear()
        audios.clear()

    for it in tqdm(items, desc="evaluating", unit="clip", disable=not progress, leave=False):
        try:
            audio = it.load()
        except AudioFormatError as exc:
            errors.append({"file": it.name, "error": str(exc), "label": it.label})
            continue
        if audio.size > LONG_INPUT_S * ckpt.features.sample_rate:
            long.append({"file": it.name, "seconds": round(audio.size / ckpt.features.sample_rate, 2)})
        # a batch of long recordings would hold them all at once (128 five-minute files: 2.5 GB, then their features)
        if chunk and (len(chunk) >= batch_size or sum(a.size for a in audios) + audio.size > MAX_BATCH_SAMPLES):
            run_batch()
        audios.append(audio)
        chunk.append(it)
    if chunk:
        run_batch()
    seconds = time.perf_counter() - t0
    report: dict = {"mode": "streaming" if streaming else "clips", "n_inputs": len(items), "n_errors": len(errors), "errors": errors,
                    "seconds": seconds, "clips_per_second": len(preds) / seconds if seconds else 0.0}
    if long:
        report["long_inputs"] = long
    scored = [p for p in preds if p["label"] is not None]
    if scored:
        known = labels + sorted({p["label"] for p in scored} - set(labels))
        ix = {lab: i for i, lab in enumerate(known)}
        conf = confusion_matrix([ix[p["label"]] for p in scored], [ix[p["predicted"]] for p in scored], len(known))
        report.update({
            "model_labels": labels,
            "accuracy": float(np.trace(conf) / conf.sum()),
            "n": int(conf.sum()),
            "per_class": per_class_prf(conf, known),
            "confusion": {"labels": known, "matrix": conf.tolist()},
            "most_confused": top_confusions(conf, known, 8),
        })
        report.update(unknown_by_word(scored))
        balanced = official_layout_recall(report)
        if balanced is not None:
            report["official_layout_recall"] = balanced
    report["predictions"] = preds
    return report


def official_layout_recall(report: dict) -> float | None:
    """The mean of the model's class recalls with ``_unknown_``'s taken with every other word equally often, as the
    official test set holds them (None without word-named ``_unknown_`` clips, or when a class has no clips)."""
    per_class, balanced = report.get("per_class", {}), report.get("unknown_word_balanced_recall")
    labels = report.get("model_labels", [])
    if balanced is None or not labels or any(per_class.get(lab, {}).get("n", 0) == 0 for lab in labels):
        return None
    return float(np.mean([balanced if lab == UNKNOWN else per_class[lab]["recall"] for lab in labels]))


def unknown_by_word(preds: Sequence[dict]) -> dict:
    """`_unknown_` recall per spoken word and over words equally weighted, where clips name their word.

    The official test set holds every other word about equally often; a split of this subset
    mostly "bed", "cat" and "happy". The word-balanced recall is what the first would see.
    """
    by: dict[str, list[int]] = {}
    for p in preds:
        if p["label"] == UNKNOWN and p.get("word"):
            by.setdefault(p["word"], [0, 0])
            by[p["word"]][0] += p["predicted"] == UNKNOWN
            by[p["word"]][1] += 1
    if len(by) < 2:
        return {}
    return {"unknown_by_word": {w: {"right": r, "n": n} for w, (r, n) in sorted(by.items())},
            "unknown_word_balanced_recall": float(np.mean([r / n for r, n in by.values()]))}


def format_report(report: dict) -> str:
    """Human-readable summary of ``evaluate_items`` output."""
    from voice_gru.metrics import format_confusion

    lines = []

    def row(p: dict) -> str:
        return f"{p['file']}\t{p['predicted']}\t{p['score']:.3f}"

    if "accuracy" in report:
        how = " (streaming: one continuous stream, state carried)" if report.get("mode") == "streaming" else ""
        lines.append(f"accuracy {report['accuracy']:.4f} on {report['n']} labelled clips{how}")
        lines.append(f"{'class':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'n':>6}")
        predicted = np.array(report["confusion"]["matrix"]).sum(0)

        def cell(x: float, defined: bool) -> str:  # undefined (no clips / no predictions) is not 0
            return f"{x:>10.3f}" if defined else f"{'-':>10}"

        for i, (lab, m) in enumerate(report["per_class"].items()):
            lines.append(f"{lab:<12}{cell(m['precision'], predicted[i] > 0)}{cell(m['recall'], m['n'] > 0)}"
                         f"{cell(m['f1'], m['n'] > 0 and predicted[i] > 0)}{m['n']:>6}")
        foreign = [lab for lab in report["confusion"]["labels"] if lab not in report["model_labels"]]
        if foreign:
            lines.append(f"not labels of this model: {', '.join(foreign)} (each of their clips counts as an error; "
                         "audio without a label goes in a folder of files, not of folders)")
        empty = [lab for lab in report["model_labels"] if report["per_class"].get(lab, {}).get("n", 0) == 0]
        if empty:
            lines.append(f"no clips for: {', '.join(empty)} (their recall is not measured)")
        lines += ["", "confusion (rows: true, columns: predicted)",
                  format_confusion(np.array(report["confusion"]["matrix"]), report["confusion"]["labels"])]
        if report["most_confused"]:
            lines.append("most confused: " + ", ".join(f"{c['true']}->{c['predicted']} ({c['count']})" for c in report["most_confused"]))
        if "unknown_by_word" in report:
            words = report["unknown_by_word"]
            worst = sorted(words.items(), key=lambda kv: (kv[1]["right"] / kv[1]["n"], -kv[1]["n"]))
            missed = [f"{w} {v['right']}/{v['n']}" for w, v in worst if v["right"] < v["n"]]
            official = (f"; the mean of the {len(report['model_labels'])} class recalls with it: "
                        f"{report['official_layout_recall']:.3f}" if "official_layout_recall" in report else "")
            misses = ("missed: " + ", ".join(missed[:10]) + (", ..." if len(missed) > 10 else "")) if missed else "none missed"
            lines.append(f"_unknown_ by word ({len(words)} words, {sum(v['n'] for v in words.values())} clips): recall "
                         f"{report['unknown_word_balanced_recall']:.3f} with every word equally often (as in the official "
                         f"test set{official}); {misses}")
        bare = [p for p in report["predictions"] if p["label"] is None]
        if bare:  # given beside labelled clips: named here too, not only in --json / --csv
            lines += [f"without a label ({len(bare)}; predictions only):"] + [row(p) for p in bare]
    else:
        lines += [row(p) for p in report["predictions"]]
    for e in report["errors"]:
        lines.append(f"skipped: {e['error']}")
    by_reason: dict[str, list[str]] = {}
    for f in report.get("ignored", []):
        by_reason.setdefault(f["reason"], []).append(f["file"])
    for reason, files in by_reason.items():
        lines.append(f"not evaluated: {len(files)} {reason}: {', '.join(files[:3])}" + (", ..." if len(files) > 3 else ""))
    lines.append(f"{len(report['predictions'])} clips classified, {report['n_errors']} unreadable, "
                 f"{report['clips_per_second']:.0f} clips/s")
    return "\n".join(lines)
