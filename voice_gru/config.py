"""Frozen, typed configuration loaded from ``configs/*.yaml``; unknown keys are errors."""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from voice_gru import COMMANDS
from voice_gru.errors import ConfigError, not_a_file

# Each config's ranges, checked when it is built (from YAML, a checkpoint or code): a value outside them
# would not fail loudly later but train, listen or decide wrongly (a negative smoothing window, hop 0, ...).
_ABOVE_0, _AT_LEAST_0, _AT_LEAST_1 = ("above 0", lambda v: v > 0), ("at least 0", lambda v: v >= 0), ("at least 1", lambda v: v >= 1)
_FRACTION, _BELOW_1 = ("between 0 and 1", lambda v: 0 <= v <= 1), ("at least 0 and below 1", lambda v: 0 <= v < 1)
_ANY = ("a finite number", lambda v: True)


def _between(lo: float, hi: float) -> tuple[str, Any]:
    """A rule for values from ``lo`` to ``hi``: the upper ends keep a typo (a batch of 64000, a 1000 s clip) from
    running out of memory minutes into a run instead of failing here."""
    return f"from {lo:g} to {hi:g}", lambda v: lo <= v <= hi


# numpy's and torch's generators take seeds of 0 to 2**32 - 1; outside them the run failed after its features
_SEED = ("a whole number from 0 to 4294967295", lambda v: v == int(v) and 0 <= v < 2**32)


def _check(obj: Any, rules: Mapping[str, tuple[str, Any]], ranges: tuple[str, ...] = ()) -> None:
    """Raise ``ConfigError`` naming ``Class.key`` for the first value outside its rule (numbers must be
    finite; for each name in ``ranges`` a (low, high) pair must not be reversed)."""
    for key, (what, ok) in rules.items():
        value = getattr(obj, key)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (finite(v) and ok(v)):
                why = "too large a number" if isinstance(v, int) and not finite(v) else f"must be {what}"
                raise ConfigError(f"{type(obj).__name__}.{key} = {shown_value(value)}: {why}")
    for key in ranges:
        lo, hi = getattr(obj, key)
        if lo > hi:
            raise ConfigError(f"{type(obj).__name__}.{key} = {shown_value((lo, hi))}: the low end is above the high end")


def finite(value: int | float) -> bool:
    """Whether a number is finite and within a float's range (math.isfinite raises OverflowError on a whole number of
    400 digits)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _require(obj: Any, ok: bool, key: str, what: str) -> None:
    """``ConfigError`` naming ``Class.key`` and its value unless ``ok``."""
    if not ok:
        raise ConfigError(f"{type(obj).__name__}.{key} = {shown_value(getattr(obj, key))}: {what}")


def _one_of(obj: Any, key: str, choices: tuple[str, ...]) -> None:
    """``ConfigError`` naming ``Class.key`` and its value unless it is one of ``choices``."""
    _require(obj, getattr(obj, key) in choices, key,
             f"must be {' or '.join(repr(c) for c in choices)}" if len(choices) == 2 else f"must be one of {', '.join(choices)}")


TASKS = ("12", "35")  # data.task: the commands + _silence_ + _unknown_, or all 35 words (voice_gru.data.task_labels)
MAX_COMMANDS = 100  # data.commands: more is a word list pasted by mistake, not a command set
POOLINGS = ("max", "mean", "last")  # model.pooling: how a clip decision is read from per-frame outputs (model.clip_posteriors)


def shown_value(value: Any) -> str:
    """A value as a message shows it: tuples as lists, a whole number of many digits cut short."""
    if isinstance(value, tuple):
        return "[" + ", ".join(shown_value(v) for v in value) + "]"
    text = repr(value)
    return f"{text[:8]}... ({len(text)} digits)" if isinstance(value, int) and len(text) > 24 else text



@dataclass(frozen=True)
class FeatureConfig:
    """MFCC front end. Travels inside every checkpoint; inference never rereads YAML for it."""

    sample_rate: int = 16000
    win_ms: float = 30.0
    hop_ms: float = 10.0
    n_fft: int = 512
    n_mels: int = 40
    n_mfcc: int = 40
    f_min: float = 20.0
    f_max: float = 7600.0
    log_offset: float = 1e-6

    @property
    def win_length(self) -> int:
        """Samples per analysis window."""
        return int(round(self.sample_rate * self.win_ms / 1000))

    @property
    def hop_length(self) -> int:
        """Samples between the starts of consecutive frames."""
        return int(round(self.sample_rate * self.hop_ms / 1000))

    def __post_init__(self) -> None:
        # upper ends: `n_fft: 100000000` took 23 GB before it was killed
        ms = ("above 0 and at most 1000 ms", lambda v: 0 < v <= 1000)  # a frame is milliseconds, a word a second
        _check(self, {"sample_rate": _between(1000, 384000), "win_ms": ms, "hop_ms": ms,
                      "n_fft": _between(1, 65536), "n_mels": _between(1, 1024), "n_mfcc": _between(1, 1024),
                      "f_min": _AT_LEAST_0, "log_offset": _ABOVE_0})
        _require(self, self.win_length <= self.n_fft, "n_fft", f"must hold the {self.win_length}-sample window")
        _require(self, self.hop_length >= 1, "hop_ms", "must be at least one sample")
        _require(self, self.hop_ms <= self.win_ms, "hop_ms", f"must be at most win_ms ({self.win_ms:g}): a longer hop "
                 "leaves audio between frames that no frame sees")
        _require(self, self.n_mfcc <= self.n_mels, "n_mfcc", f"must be at most n_mels ({self.n_mels})")
        _require(self, self.f_min < self.f_max <= self.sample_rate / 2, "f_max",
                 f"must lie above f_min ({self.f_min:g}) and at most half the sample rate ({self.sample_rate / 2:g})")


def command_words_problem(words: Any) -> str | None:
    """What is wrong with a list of command words (``data.commands``, ``--commands``), or None."""
    if not isinstance(words, tuple) or not 1 <= len(words) <= MAX_COMMANDS:
        return f"expected a list of 1 to {MAX_COMMANDS} words"
    for word in words:
        if not isinstance(word, str) or word.strip() != word or word == "" or "/" in word or "\\" in word \
                or not word.isprintable() or word.startswith((".", "_")):
            return (f"{word!r} is not a word folder's name (no spaces at its ends, '/', '\\', control characters, or "
                    "leading '.' or '_')")
    folded = [w.casefold() for w in words]  # label files and detections are read in any case
    twice = sorted({w for w in words if folded.count(w.casefold()) > 1})
    return f"{', '.join(map(repr, twice))} given twice (in any case)" if twice else None


@dataclass(frozen=True)
class DataConfig:
    """Which task, and how silence/unknown examples are drawn."""

    task: str = "12"  # "12" (the commands + _silence_ + _unknown_) or "35" (all words)
    # the words the "12" task names (its other classes: _silence_, _unknown_ for every other word): any word
    # folders of the dataset, the 10 Speech Commands commands by default (then the task has 12 classes)
    commands: tuple[str, ...] = COMMANDS
    silence_ratio: float = 0.1  # silence examples per word example, per split
    unknown_ratio: float = 0.1  # unknown examples kept per command example in training
    balanced: bool = True  # class-balanced sampling in training
    clip_seconds: float = 1.0
    unknown_weight: float = 1.0  # balanced sampling: mass of _unknown_ relative to every other class
    synthetic_unknown: int = 0  # espeak-ng clips of other words added to training's _unknown_ (voice_gru/synth.py)
    reversed_unknown: float = 0.0  # share of _unknown_'s training draws that are command clips played backwards
    unknown_mix: str = "clips"  # _unknown_'s real clips: each equally often, or "words": each word equally often
    seed: int = 59185

    def __post_init__(self) -> None:
        # silence examples are made, ratio x commands of them (100000: 20 GB); unknown ones only drawn from the clips
        _check(self, {"silence_ratio": _between(0, 10), "unknown_ratio": _AT_LEAST_0, "clip_seconds": _between(0.1, 10),
                      "unknown_weight": _AT_LEAST_0, "synthetic_unknown": _AT_LEAST_0, "reversed_unknown": _BELOW_1,
                      "seed": _SEED})
        _require(self, self.task in TASKS, "task", "expected " + " or ".join(repr(t) for t in TASKS))
        _one_of(self, "unknown_mix", ("clips", "words"))
        problem = command_words_problem(self.commands)
        _require(self, problem is None, "commands", problem or "")


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation (validation and test are never augmented)."""

    time_shift_ms: float = 100.0
    noise_prob: float = 0.8
    noise_level: tuple[float, float] = (0.0, 0.1)  # amplitude of the background noise mixed in
    snr_prob: float = 0.0  # of the noisy word examples, this share gets its noise at an SNR instead ...
    snr_db: tuple[float, float] = (0.0, 30.0)  # ... drawn uniformly from this range (speech vs noise power)
    silence_gain_db: tuple[float, float] = (0.0, 0.0)  # extra gain on silence examples' noise (louder rooms)
    gain_db: tuple[float, float] = (-12.0, 6.0)
    speeds: tuple[float, ...] = (1.0,)  # speed-perturbed copies in the feature cache
    vtlp: tuple[float, float] = (1.0, 1.0)  # range of vocal tract length warps (1, 1: off)
    reverb_prob: float = 0.0  # share of word examples heard in a reverberant room ...
    rt60_s: tuple[float, float] = (0.2, 0.8)  # ... with a reverberation time drawn from this range ...
    drr_db: tuple[float, float] = (0.0, 15.0)  # ... and a direct-to-reverberant energy ratio from this one
    eq_db: float = 0.0  # microphones: a smooth random gain curve over the mel bands, up to about this many dB
    lowpass_prob: float = 0.0  # narrowband channels (telephone, Bluetooth headsets, 8 kHz recorders): this share of
    lowpass_hz: tuple[float, float] = (3400.0, 7000.0)  # examples, noise included, has nothing above a cutoff from here
    freq_masks: int = 2
    freq_mask_width: int = 6
    time_masks: int = 2
    time_mask_width: int = 10
    context_prob: float = 0.5  # probability that another clip precedes the training clip
    context_seconds: tuple[float, float] = (0.2, 1.5)  # noise/other speech before the clip

    def __post_init__(self) -> None:
        _check(self, {"time_shift_ms": _AT_LEAST_0, "noise_prob": _FRACTION, "noise_level": _AT_LEAST_0, "snr_prob": _FRACTION,
                      "snr_db": _ANY, "silence_gain_db": _ANY, "gain_db": _ANY, "speeds": _between(0.5, 2), "vtlp": _ABOVE_0,
                      "reverb_prob": _FRACTION, "rt60_s": _ABOVE_0, "drr_db": _ANY, "eq_db": _AT_LEAST_0,
                      "lowpass_prob": _FRACTION, "lowpass_hz": _ABOVE_0,
                      "freq_masks": _AT_LEAST_0, "freq_mask_width": _AT_LEAST_0, "time_masks": _AT_LEAST_0,
                      "time_mask_width": _AT_LEAST_0, "context_prob": _FRACTION, "context_seconds": _between(0, 10)},
               ("noise_level", "snr_db", "silence_gain_db", "gain_db", "vtlp", "rt60_s", "drr_db", "context_seconds",
                "lowpass_hz"))
        _require(self, len(self.speeds) >= 1, "speeds", "must list at least one speed")


@dataclass(frozen=True)
class ModelConfig:
    """GRU classifier over normalised MFCC frames."""

    spectral_channels: int = 0  # 0: off; else a causal Conv2d over (time, mel band) before conv/GRU
    spectral_kernel: tuple[int, int] = (3, 5)  # (frames, mel bands)
    spectral_stride: int = 2  # along the mel bands
    spectral_layers: int = 1  # each further Conv2d doubles the channels and strides along the bands again
    conv_channels: int = 0  # 0: no convolutional front end
    conv_kernel: int = 5
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.1
    pooling: str = "last"  # how a clip decision is made from the per-frame outputs: last|mean|max

    def __post_init__(self) -> None:
        _check(self, {"spectral_channels": _between(0, 1024), "spectral_kernel": _between(1, 64),
                      "spectral_stride": _between(1, 64), "spectral_layers": _between(1, 16),
                      "conv_channels": _between(0, 4096), "conv_kernel": _between(1, 64),
                      "hidden": _between(1, 4096), "layers": _between(1, 32), "dropout": _BELOW_1})
        _one_of(self, "pooling", POOLINGS)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    seed: int = 0
    tail_frames: int = 20  # frames after the end of speech that carry the label
    grad_clip: float = 5.0
    ema: float = 0.0  # decay of an exponential moving average of the weights (0: off)
    target: str = "frames"  # frames: per-frame targets for streaming; last: one label on the last frame
    background_weight: float = 0.5  # weight of an example's background frames relative to its word
    teacher: str = ""  # checkpoint (one model or an ensemble) whose per-frame posteriors the run also learns
    distill_weight: float = 0.5  # share of the loss from the teacher (with a teacher only)
    distill_temperature: float = 2.0  # both sides' logits are divided by it before they are compared
    init: str = ""  # start from this checkpoint's weights instead of random ones (fine-tuning) ...
    init_member: int = 0  # ... from this member of it where it is an ensemble
    # inside other words (frames otherwise unlabelled), a command's posterior above ``inside_cap`` is
    # penalised with this weight: "hap" of "happy" may sound like "up", but must not be sure of it
    inside_unknown_weight: float = 0.0
    inside_cap: float = 0.5
    after_unknown_weight: float = 0.0  # the same cap after other words (where they are labelled _unknown_), this weight

    def __post_init__(self) -> None:
        _check(self, {"epochs": _AT_LEAST_1, "batch_size": _between(1, 8192), "lr": _ABOVE_0, "weight_decay": _AT_LEAST_0,
                      "label_smoothing": _BELOW_1, "tail_frames": _between(0, 1000), "grad_clip": _ABOVE_0, "ema": _BELOW_1,
                      "background_weight": _AT_LEAST_0, "distill_weight": _FRACTION, "distill_temperature": _ABOVE_0,
                      "init_member": _AT_LEAST_0, "inside_unknown_weight": _AT_LEAST_0, "inside_cap": _FRACTION,
                      "after_unknown_weight": _AT_LEAST_0, "seed": _SEED})
        _one_of(self, "target", ("frames", "last"))
        # word frames train nothing under per-frame targets: the command is taught only after the word ends
        _require(self, self.target == "last" or self.tail_frames >= 1, "tail_frames",
                 "must be at least 1 with target: frames (the frames after each word carry its label; with none, no "
                 "frame names a command)")


# seconds between the live path's GRU state refreshes: a state never reset drifts from the lengths it was trained on
REFRESH_S = 3.0
OFF = 1.01  # a threshold above any posterior: the command is switched off (calibration's "no value met the budget")
# The lowest threshold a person may set: at 0 a command fires whenever it is the top class, and once fired never
# re-arms (its score never falls below rearm_ratio x 0), so it fired once a stream.
MIN_THRESHOLD = 0.01
THRESHOLD_RANGE = f"a posterior from {MIN_THRESHOLD:g} to 1 ({OFF:g}: off)"


def threshold_ok(value: Any) -> bool:
    """Whether ``value`` is a threshold a person may set: a number from ``MIN_THRESHOLD`` to ``OFF``."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and MIN_THRESHOLD <= value <= OFF


@dataclass(frozen=True)
class DecisionConfig:
    """Posteriors -> Command events."""

    smooth_ms: float = 150.0
    threshold: float = 0.7
    thresholds: Mapping[str, float] = field(default_factory=dict)
    min_duration_ms: float = 40.0
    cooldown_ms: float = 800.0
    # a command cannot fire while _unknown_'s posterior reached unknown_veto within the last unknown_veto_ms:
    # a word the model first heard as another word is not taken for a command a moment later (above 1: off)
    unknown_veto: float = OFF
    unknown_veto_ms: float = 300.0
    # a command that fired fires again only after its score fell below rearm_ratio x its threshold: a word
    # hovering at the threshold is one event, not two across the cooldown (between utterances the score is ~0)
    rearm_ratio: float = 0.5

    def __post_init__(self) -> None:
        # a window or duration longer than a spoken word (~1 s) is a typo that would silence every command
        word = ("from 0 to 2000 ms (longer than any word: nothing would fire)", lambda v: 0 <= v <= 2000)
        _check(self, {"smooth_ms": word, "threshold": (THRESHOLD_RANGE, threshold_ok), "min_duration_ms": word,
                      "cooldown_ms": ("from 0 to 60000 ms", lambda v: 0 <= v <= 60000),
                      "unknown_veto": ("between 0 and 1.01 (off)", lambda v: 0 <= v <= OFF),
                      "unknown_veto_ms": ("from 0 to 2000 ms", lambda v: 0 <= v <= 2000),
                      "rearm_ratio": ("above 0 and at most 1", lambda v: 0 < v <= 1)})
        for name, value in self.thresholds.items():
            _require(self, threshold_ok(value), "thresholds", f"{name}'s threshold must be {THRESHOLD_RANGE}")


@dataclass(frozen=True)
class Config:
    """Everything a recipe sets."""

    name: str = "default"
    features: FeatureConfig = FeatureConfig()
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    decision: DecisionConfig = DecisionConfig()


# what only the 12-class task has: _silence_ and _unknown_ classes to draw, weigh, synthesise and cap
_TWELVE_CLASS_ONLY = {"data": ("commands", "silence_ratio", "unknown_ratio", "unknown_weight", "synthetic_unknown",
                               "reversed_unknown", "unknown_mix"),
                      "train": ("inside_unknown_weight", "after_unknown_weight", "inside_cap")}


def settings_without_effect(cfg: Config) -> list[str]:
    """The recipe's keys set away from their defaults that its task ignores (``data.unknown_weight`` in the
    35-word task, which has no ``_unknown_`` class)."""
    if cfg.data.task == "12":
        return []
    return [f"{section}.{key}" for section, keys in _TWELVE_CLASS_ONLY.items() for key in keys
            if getattr(getattr(cfg, section), key) != getattr(getattr(Config(), section), key)]


_SECTIONS = frozenset(k for k, tp in typing.get_type_hints(Config).items() if dataclasses.is_dataclass(tp))


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; build nested dataclasses."""
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if value is None:  # a section whose keys are all commented out: YAML reads it as null, meaning "no changes"
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (collections.abc.Mapping, dict) or tp is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = typing.get_args(tp) or (str, Any)
        return {_convert(kt, k, where): _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            spelled = number_in_text(value)
            hint = f" (YAML reads that as text: write {spelled:.1e})" if spelled is not None else ""
            raise ConfigError(f"{where}: expected a number, got {value!r}{hint}")
        if not finite(value) and isinstance(value, int):
            raise ConfigError(f"{where}: {shown_value(value)}: too large a number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{where}: unsupported type {tp}")  # pragma: no cover


def from_dict(cls: type, data: Mapping[str, Any], where: str = "config") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys by name."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(names))})")
        kwargs[key] = _convert(hints[key], value, f"{where}.{key}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a range check: "Class.key = ..." becomes "where.key = ..."
        raise ConfigError(str(exc).replace(f"{cls.__name__}.", f"{where}.", 1)) from None


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-dict form of a config dataclass (tuples become lists) for checkpoints and YAML."""
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(obj)


def yaml_loader() -> type:
    """A YAML SafeLoader whose booleans are only true/false and whose whole numbers are decimal unless 0x/0o (YAML
    1.2), not yes/no/on/off, octal 010 or base-60 1:30; and where a key given twice in one mapping is an error.

    PyYAML's default (YAML 1.1) reads the command words ``yes``, ``no``, ``on``, ``off`` as
    booleans, so ``thresholds: {yes: 0.5, on: 0.6}`` would silently become ``{True: 0.6}``; and it keeps the last
    of two equal keys, so a second ``train:`` section silently replaced the whole first one.
    """
    import yaml

    bool_tag, int_tag, float_tag = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        ch: [(tag, rx) for tag, rx in resolvers if tag not in (bool_tag, int_tag, float_tag)]
        for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(bool_tag, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
    # YAML 1.1 also read 010 as 8 (octal) and 1:30 as 90 (base 60): an epoch count or a word of digits silently changed
    Loader.add_implicit_resolver(int_tag, re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                                 list("-+0123456789"))
    Loader.add_implicit_resolver(float_tag, re.compile(
        r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))

    def construct_int(loader, node):
        text = loader.construct_scalar(node).replace("_", "")
        return int(text, 16 if text.startswith("0x") else 8 if text.startswith("0o") else 10)

    Loader.add_constructor(int_tag, construct_int)

    def construct_mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                dup = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the mapping's own construction says so
                continue
            if dup:
                raise yaml.constructor.ConstructorError(None, None, f"key '{key}' given twice", key_node.start_mark)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return Loader


def yaml_problem(exc: Exception) -> str:
    """A YAML error as ``at line N (what)`` for a one-line message (the line only where the parser knows it)."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    where = f" at line {mark.line + 1}" if mark is not None else ""
    return f"{where} ({problem or ' '.join(str(exc).split())})"


def number_in_text(value: Any) -> float | None:
    """The number a string spells (PyYAML, YAML 1.1, reads 3e-3 as text: a number needs a point and a signed
    exponent), else None."""
    if not isinstance(value, str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _read_yaml(path: str | Path) -> Mapping[str, Any]:
    """A recipe file's top-level mapping; errors name the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {not_a_file(path, 'config file')}")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml_loader()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML{yaml_problem(exc)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except RecursionError:  # thousands of nested brackets: the parser's own recursion gives out first
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return raw


def _resolved_yaml(path: str | Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe's mapping with ``extends: OTHER.yaml`` (relative to the file) resolved: the file's
    sections are laid key by key over the other recipe's, so a variant lists only what it changes."""
    path = Path(path)
    # a section with every key commented out is null in YAML: empty, so a variant's keeps its base's keys
    raw = {k: {} if v is None and k in _SECTIONS else v for k, v in _read_yaml(path).items()}
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: extends: expected the path of another recipe, got {base!r}")
    base_path = path.parent / base
    if base_path.resolve() in seen + (path.resolve(),):
        raise ConfigError(f"{path}: extends: {base} extends this file again (a cycle)")
    try:
        merged = _resolved_yaml(base_path, seen + (path.resolve(),))
        _checked(merged, base_path)  # a bad key in the base is named there, not in this file
    except ConfigError as exc:
        raise ConfigError(f"{path}: extends: {exc}") from None
    for key, value in raw.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _checked(raw: Mapping[str, Any], path: str | Path) -> Config:
    try:
        return from_dict(Config, raw, where="")
    except ConfigError as exc:
        msg = str(exc).lstrip(".").removeprefix(": ")
        raise ConfigError(f"{path}: {msg}") from None


def load_config(path: str | Path) -> Config:
    """Load a ``Config`` from a YAML file (``extends`` resolved); errors name the file and the key."""
    raw = _resolved_yaml(path)
    if not raw:  # trained the dataclasses' defaults, which are not configs/default.yaml's recipe, without a word
        raise ConfigError(f"{path}: holds no settings (empty, or only comments): give a recipe such as "
                          "configs/default.yaml, or one that says `extends: default.yaml` and what it changes")
    return _checked(raw, path)


def load_decision(path: str | Path, base: DecisionConfig) -> tuple[DecisionConfig, frozenset[str]]:
    """``base`` with the keys that recipe ``path``'s ``decision`` section sets (and which those are):
    a recipe that sets only ``cooldown_ms`` must not reset a model's calibrated smoothing to defaults."""
    raw = _resolved_yaml(path)
    section = _checked(raw, path).decision
    keys = frozenset((raw.get("decision") or {}).keys())
    return dataclasses.replace(base, **{k: getattr(section, k) for k in keys}), keys
