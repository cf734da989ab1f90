"""A checkpoint's contents as plain values and NumPy arrays, read without PyTorch.

The live path (``listen``, ``CommandSpotter``) runs the network in NumPy/numba (``fastgru``) and needs
only the arrays; importing torch to read them would cost more than everything else it does (torch
alone: ~650 MB resident and ~2.3 s to import on this machine, against ~130 MB for the rest). A
checkpoint is a ``torch.save`` zip archive whose pickle holds plain values and tensors (a tensor:
``torch._utils._rebuild_tensor_v2`` over a typed storage kept as raw bytes beside the pickle);
``read_checkpoint_data`` reads it with an unpickler that knows exactly those names and refuses any
other, so no code from a file ever runs, as with ``torch.load(weights_only=True)``. Whatever this
reader does not know (a future torch's pickle, a big-endian file) goes to torch's own weights-only
loader instead. ``voice_gru.model.load_checkpoint`` builds its PyTorch model from the same reading.
"""

from __future__ import annotations

import collections
import math
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from voice_gru import SILENCE
from voice_gru.config import OFF, POOLINGS, DecisionConfig, FeatureConfig, ModelConfig, from_dict
from voice_gru.errors import CheckpointError, ConfigError, first_line
from voice_gru.stream_features import Normalizer

FORMAT = "voice_gru.checkpoint/1"
ENSEMBLE_FORMAT = "voice_gru.checkpoint/2"  # /1 plus a list of members instead of one set of weights
BUFFERS = ("spectral_map",)  # state_dict entries that are fixed, not trained
COMBINES = ("mean", "min")  # how an ensemble's members are combined per frame (voice_gru.model.Ensemble)


def silence_index(labels: Sequence[str]) -> int | None:
    """Index of ``_silence_`` among ``labels`` (None: a model without it)."""
    return list(labels).index(SILENCE) if SILENCE in labels else None


@dataclass(frozen=True)
class MemberData:
    """One network: its model config and its weights by ``state_dict`` name."""

    config: ModelConfig
    weights: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class CheckpointData:
    """Everything ``voice_gru.model.Checkpoint`` holds, with the network as arrays (``members``: one
    for a single model; ``ensemble`` says whether it is an ``Ensemble``, even of one)."""

    members: tuple[MemberData, ...]
    labels: tuple[str, ...]
    features: FeatureConfig
    normalizer: Normalizer
    n_in: int
    ensemble: bool = False
    combine: str = "mean"
    residual_class: Optional[int] = None
    pooling: str = "max"
    thresholds: Optional[dict] = None
    decision: Optional[dict] = None
    meta: Optional[dict] = None

    @property
    def silence_index(self) -> int | None:
        """Index of ``_silence_`` among the labels (None: a model without it)."""
        return silence_index(self.labels)

    @property
    def n_parameters(self) -> int:
        """Trainable parameters of all members (``model.count_parameters``; buffers are not counted)."""
        return sum(int(v.size) for m in self.members for k, v in m.weights.items() if k not in BUFFERS)

    def data(self) -> "CheckpointData":
        """Itself (``Checkpoint.data()`` gives the same kind from a model in memory)."""
        return self


def trained_on(meta: Mapping | None) -> str | None:
    """The dataset folder a checkpoint was trained on (an ensemble's: where its members agree), as training named it;
    None where the checkpoint does not say."""
    meta = meta or {}
    if "ensemble_of" in meta:
        found = {trained_on(m) for m in meta["ensemble_of"] if isinstance(m, Mapping)}
        return found.pop() if len(found) == 1 else None
    where = meta.get("data_dir")
    return where if isinstance(where, str) and where else None


def default_model_path() -> Path:
    """The model shipped inside the package."""
    return Path(__file__).parent / "models" / "default.pt"


def read_checkpoint_data(path: str | Path | None) -> CheckpointData:
    """Read ``path`` (None: the shipped default model) without running code from it or importing torch."""
    if path is None:
        path = default_model_path()
        if not path.is_file():
            raise CheckpointError(f"{path}: the shipped default model is missing; train one with `voice-gru train` and pass --model")
    path = Path(path)
    if path.is_dir():  # a run folder: its checkpoints are inside
        inside = _run_checkpoints(path)
        raise CheckpointError(f"{path}: is a folder; give a checkpoint file" +
                              (f" such as {inside[0]}" if inside else " (a .pt file that voice-gru train writes)"))
    if not path.is_file():
        raise CheckpointError(f"{path}: " + ("not a regular file (a checkpoint is a .pt file)" if path.exists()
                                             else "checkpoint file not found"))
    try:
        blob = _read_archive(path)
    except _NoTorchFile as exc:  # (a compressed storage: a megabyte that inflates to a gigabyte)
        raise CheckpointError(f"{path}: not a voice_gru checkpoint ({exc})") from None
    except Exception as exc:  # not what this reader knows: torch's weights-only loader decides (and words the error)
        if isinstance(exc, zipfile.BadZipFile) and "CRC" in str(exc):  # torch's loader reads damaged bytes unchecked
            raise CheckpointError(f"{path}: damaged checkpoint ({first_line(exc)})") from None
        with open(path, "rb") as f:
            start = f.read(2)
        if not zipfile.is_zipfile(path) and start[:1] != b"\x80":  # torch's old format is a pickle: 0x80, protocol
            why = "the file is empty" if not start else "not a PyTorch file, or one cut short: no zip archive, no pickle"
            raise CheckpointError(f"{path}: not a voice_gru checkpoint ({why})") from None
        try:
            import torch  # noqa: F401
        except ImportError:  # the base install: this reader's reason is the only one
            raise CheckpointError(f"{path}: not a readable voice_gru checkpoint ({first_line(exc)})") from None
        blob = _read_with_torch(path)
    return parse_blob(blob, path)


def _run_checkpoints(run: Path) -> list[Path]:
    """The checkpoints ``voice-gru train`` leaves in a run folder, best first."""
    return [run / n for n in ("best.pt", "last.pt") if (run / n).is_file()]


def parse_blob(blob: Any, path: str | Path) -> CheckpointData:
    """The checkpoint in a loaded ``save_checkpoint`` dict (tensors as arrays), checked."""
    if isinstance(blob, dict) and "format" not in blob and {"model", "optimizer", "epoch"} <= blob.keys():
        use = _run_checkpoints(Path(path).parent)  # train's state.pt: weights, optimiser, history; no labels or features
        where = f"{use[0]}{' or ' + use[1].name if len(use) > 1 else ''}" if use else "its run's best.pt or last.pt"
        raise CheckpointError(f"{path}: is a training state (for resuming), not a model: use {where}")
    if not isinstance(blob, dict) or blob.get("format") not in (FORMAT, ENSEMBLE_FORMAT):
        got = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(f"{path}: unsupported checkpoint format {got!r} (expected {FORMAT!r} or {ENSEMBLE_FORMAT!r})")
    try:
        if not all(isinstance(x, str) for x in blob["labels"]):
            raise CheckpointError(f"{path}: damaged checkpoint (labels {list(blob['labels'])[:12]!r}: not all text)")
        labels = tuple(blob["labels"])

        def member(d: dict, where: str) -> MemberData:
            weights = {str(k): np.asarray(v) for k, v in d["weights"].items()}
            cfg = from_dict(ModelConfig, d["model_config"], where)
            want = weight_shapes(cfg, int(blob["n_in"]), len(labels))
            for name in sorted(set(want) | set(weights)):
                got = weights[name].shape if name in weights else None
                if got != want.get(name):
                    raise CheckpointError(f"{path}: damaged checkpoint (weight {name}: shape {got}, its model config "
                                          f"and {len(labels)} labels need {want.get(name)})")
            return MemberData(cfg, weights)

        ensemble = blob["format"] == ENSEMBLE_FORMAT
        if ensemble:
            members = tuple(member(d, f"{path}:members[{i}]") for i, d in enumerate(blob["members"]))
        else:
            members = (member(blob, f"{path}:model_config"),)
        residual = blob.get("residual_class")
        combine = str(blob.get("combine", "mean")) if ensemble else "mean"
        if combine not in COMBINES or (combine == "min" and not (residual is not None and 0 <= int(residual) < len(labels))):
            raise CheckpointError(f"{path}: damaged checkpoint (members combined by {combine!r} with residual class {residual!r})")
        data = CheckpointData(
            members, labels, from_dict(FeatureConfig, blob["features"], f"{path}:features"),
            Normalizer.from_dict(blob["normalizer"]), int(blob["n_in"]), ensemble,
            combine, None if residual is None or combine != "min" else int(residual),
            str(blob.get("pooling", "max")), *(dict(blob.get(k) or {}) for k in ("thresholds", "decision", "meta")))
        _check_contents(data, path)
        return data
    except CheckpointError:
        raise
    except ConfigError as exc:  # a stored config out of range: it names the file and key already
        raise CheckpointError(str(exc)) from None
    except KeyError as exc:  # its message is only the key's repr
        raise CheckpointError(f"{path}: damaged checkpoint (missing key {exc.args[0]!r})") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: damaged checkpoint ({first_line(exc)})") from None


def _check_contents(data: CheckpointData, path: str | Path) -> None:
    """What the live path would otherwise meet only as NaN posteriors, silence or a broadcast error:
    labels, normaliser, weights, stored thresholds and decision settings."""
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path}: damaged checkpoint ({what})")

    if not data.members:
        raise bad("an ensemble without members")
    if not data.labels or len(set(data.labels)) != len(data.labels):
        raise bad(f"labels {list(data.labels)}: empty or repeated")
    if data.pooling not in POOLINGS:
        raise bad(f"clip pooling {data.pooling!r}: not one of {', '.join(POOLINGS)}")
    if data.n_in != data.features.n_mfcc:
        raise bad(f"n_in {data.n_in}, but its features give {data.features.n_mfcc} coefficients")
    mean, std = np.asarray(data.normalizer.mean, float), np.asarray(data.normalizer.std, float)
    if mean.shape != (data.n_in,) or std.shape != (data.n_in,) or not (np.isfinite(mean).all() and (std > 0).all()
                                                                         and np.isfinite(std).all()):
        raise bad(f"normaliser of {mean.size}/{std.size} values for {data.n_in} coefficients, or not finite, or std not above 0")
    for i, m in enumerate(data.members):
        for name, w in m.weights.items():
            if w.dtype.kind != "f":  # integers would run, and score every word wrong
                raise bad(f"weight {name}{f' of member {i}' if data.ensemble else ''} holds {w.dtype}, not floating point")
            if not np.isfinite(w).all():
                raise bad(f"weight {name}{f' of member {i}' if data.ensemble else ''} is not finite")
    for name, value in (data.thresholds or {}).items():
        if name not in data.labels or not isinstance(value, (int, float)) or not 0 <= value <= OFF:
            raise bad(f"stored threshold {name}={value!r}: not a label's posterior between 0 and 1")
    if data.decision:
        from_dict(DecisionConfig, data.decision, f"{path}:decision")
    meta = data.meta or {}
    if "calibration" in meta:
        _check_calibration(meta["calibration"], data.labels, bad)


def _check_calibration(cal: Any, labels: tuple[str, ...], bad: Any) -> None:
    """``meta["calibration"]`` as ``voice_gru.calibrate`` writes it, as far as ``listen`` and ``evaluate-stream``
    read it (the start-up line, ``--false-accepts-per-hour``, the advice on command-free audio)."""
    def numbers(d: Any, keys: tuple[str, ...], where: str) -> None:
        if not isinstance(d, Mapping):
            raise bad(f"{where}: not a mapping")
        for k in keys:
            v = d.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise bad(f"{where}: {k} is {v!r}, not a number of at least 0")

    numbers(cal, ("target_fa_per_hour", "achieved_fa_per_hour", "recall"), "calibration")
    if cal.get("command_free_hours") is not None:  # the upper bound of a few commands' rate divides by it
        numbers(cal, ("command_free_hours",), "calibration")
        if not cal["command_free_hours"] > 0:
            raise bad("calibration: command_free_hours is 0, not a length of audio")
    if "expected_fa_per_hour" in cal or "expected_recall" in cal:
        numbers(cal, ("expected_fa_per_hour", "expected_recall"), "calibration")
    points = cal.get("operating_points", [])
    if not isinstance(points, list):
        raise bad("calibration: operating_points is not a list")
    for i, point in enumerate(points):
        where = f"calibration operating point {i}"
        numbers(point, ("target_fa_per_hour", "fa_per_hour", "recall"), where)
        thresholds = point.get("thresholds")
        if not isinstance(thresholds, Mapping) or not all(
                k in labels and isinstance(v, (int, float)) and 0 <= v <= OFF for k, v in thresholds.items()):
            raise bad(f"{where}: thresholds are not a mapping of labels to posteriors between 0 and 1")
        by_command = point.get("by_command")
        if by_command is not None:
            if not isinstance(by_command, Mapping):
                raise bad(f"{where}: by_command is not a mapping")
            for c, figures in by_command.items():
                if not isinstance(figures, Mapping):
                    raise bad(f"{where}: by_command.{c} is not a mapping")
                given = tuple(k for k in ("fa_per_hour", "recall") if figures.get(k) is not None)  # None: not measured
                numbers(figures, given, f"{where} by_command.{c}")


def weight_shapes(cfg: ModelConfig, n_in: int, n_classes: int) -> dict[str, tuple[int, ...]]:
    """The ``state_dict`` of ``voice_gru.model.GRUClassifier(n_in, n_classes, cfg)``: each name's shape."""
    out: dict[str, tuple[int, ...]] = {}
    width = n_in
    if cfg.spectral_channels > 0:
        kt, kf = cfg.spectral_kernel
        out["spectral_map"] = (n_in, n_in)
        bands, c_in = n_in, 1
        for i in range(cfg.spectral_layers):
            c = cfg.spectral_channels * 2 ** i
            name = "spectral" if i == 0 else f"spectral_more.{i - 1}"
            out[f"{name}.weight"], out[f"{name}.bias"] = (c, c_in, kt, kf), (c,)
            bands, c_in = (bands + 2 * (kf // 2) - kf) // cfg.spectral_stride + 1, c
        width = c_in * bands
    if cfg.conv_channels > 0:
        out["conv.weight"], out["conv.bias"] = (cfg.conv_channels, width, cfg.conv_kernel), (cfg.conv_channels,)
        width = cfg.conv_channels
    h3 = 3 * cfg.hidden
    for k in range(cfg.layers):
        out[f"gru.weight_ih_l{k}"] = (h3, width if k == 0 else cfg.hidden)
        out[f"gru.weight_hh_l{k}"] = (h3, cfg.hidden)
        out[f"gru.bias_ih_l{k}"] = out[f"gru.bias_hh_l{k}"] = (h3,)
    out["head.weight"], out["head.bias"] = (n_classes, cfg.hidden), (n_classes,)
    return out


def _read_with_torch(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with the tensors as arrays; a failure is one CheckpointError."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4 ...": two lines before the one that says it all
            warnings.simplefilter("ignore", UserWarning)
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors of every kind mean the same thing to a user
        first = first_line(exc)
        if first.startswith("Weights only load failed"):  # torch's advice here is to run the file's code: never
            first = "it is not a PyTorch file of tensors and plain values; code in a file is never run"
        raise CheckpointError(f"{path}: not a readable voice_gru checkpoint ({first})") from None

    done: dict[int, Any] = {}  # a list held twice is converted once: 64 such levels were 2**64 steps, a hang

    def arrays(x: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise CheckpointError(f"{path}: not a voice_gru checkpoint (values nested over {MAX_DEPTH} deep)")
        if id(x) in done:
            return done[id(x)]
        out: Any
        if isinstance(x, torch.Tensor):  # NumPy has no bfloat16: such weights are read as float32
            out = x.detach().cpu().float().numpy() if x.dtype == torch.bfloat16 else x.detach().cpu().numpy()
        elif isinstance(x, dict):
            out = {k: arrays(v, depth + 1) for k, v in x.items()}
        elif isinstance(x, list):
            out = [arrays(v, depth + 1) for v in x]
        else:
            return x
        done[id(x)] = out
        return out

    return arrays(blob)


MAX_DEPTH = 32  # a checkpoint's values nest ~5 deep


class _NoTorchFile(ValueError):
    """What torch.save never writes, and torch's own loader would read whole before refusing it."""


class _Storage:
    """A storage type named in the pickle (``torch.FloatStorage`` …): only its element type matters. A new one each
    time it is named: a pickle may set attributes on it, which a shared one would keep for every later file."""

    def __init__(self, dtype: str) -> None:
        self.dtype = np.dtype(dtype)


_STORAGES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "LongStorage": "<i8",
             "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?"}


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    """``torch._utils._rebuild_tensor_v2``: a strided view of a storage, as an array of its own."""
    if not size:
        return np.array(storage[offset])
    if any(n == 0 for n in size):
        return np.zeros(size, storage.dtype)
    need = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride))
    if not (offset >= 0 and min(stride) >= 0 and need <= storage.size):
        raise ValueError("a tensor reaches outside its storage")
    if math.prod(size) > storage.size:  # strides of 0: 2 KB of file copied into gigabytes of memory
        raise ValueError("a tensor of more elements than its storage holds")
    view = np.lib.stride_tricks.as_strided(storage[offset:], tuple(size), tuple(s * storage.itemsize for s in stride))
    return np.array(view)


class _Unpickler(pickle.Unpickler):
    """Knows plain values, ``OrderedDict``, torch's tensors and storages; refuses every other name."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(file)
        self._archive, self._prefix = archive, prefix
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGES:
            return _Storage(_STORAGES[name])
        raise pickle.UnpicklingError(f"{module}.{name} is not a tensor or a plain value")

    def persistent_load(self, pid: Any) -> np.ndarray:
        kind, storage, key, _location, numel = pid
        if kind != "storage" or not isinstance(storage, _Storage):
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        if key not in self._storages:
            name = f"{self._prefix}/data/{key}"
            info = self._archive.getinfo(name)
            # torch.save stores storages as they are: a compressed one (a megabyte that inflates to a gigabyte) or
            # one of another length is no torch file
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != int(numel) * storage.dtype.itemsize:
                raise _NoTorchFile(f"its storage {key} is compressed or not {numel} elements long")
            self._storages[key] = np.frombuffer(self._archive.read(name), storage.dtype, count=int(numel))
        return self._storages[key]


def _read_archive(path: Path) -> Any:
    """The object ``torch.save`` wrote to ``path``, its tensors as NumPy arrays (zip format only)."""
    with zipfile.ZipFile(path) as archive:
        pkl = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise ValueError("not a torch zip archive")
        prefix = pkl[0].split("/")[0]
        names = set(archive.namelist())
        if f"{prefix}/byteorder" in names and archive.read(f"{prefix}/byteorder") != b"little":
            raise ValueError("storages are not little-endian")
        with archive.open(pkl[0]) as f:
            return _Unpickler(f, archive, prefix).load()
