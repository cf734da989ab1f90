"""GRU classifier over normalised MFCC frames, and the one-file checkpoint.

Per frame ``t`` with input ``x_t`` (after optional causal convolutions) each GRU layer computes

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)          reset gate
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)          update gate
    n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))  candidate state
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

(PyTorch's ``nn.GRU``), and a linear layer maps the top ``h_t`` to per-frame class logits. The
model is unidirectional and the convolutions are causal, so ``step`` over consecutive chunks with
carried state gives exactly ``forward`` over the whole sequence: that is the streaming recognizer.

The optional *spectral* front end maps each normalised MFCC frame back to standardised log-mel
bands (a fixed inverse DCT, ``spectral_map``) and convolves over time × mel band with a small
kernel strided along the bands: features local in frequency shift with a speaker's formants
where cepstral coefficients change everywhere. ``spectral_layers`` stacks more such convolutions,
each doubling the channels and striding along the bands again. Its output (channels × bands per
frame) feeds the Conv1d front end or the GRU.

An ``Ensemble`` runs several such models on the same frames and averages their logits (a
normalised geometric mean of their posteriors) or, for detection, takes each class's smallest
posterior (``min_combine``); it has the same ``forward``/``step`` interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union, cast

import numpy as np
import torch
from torch import nn

from voice_gru import UNKNOWN
from voice_gru.checkpoint_data import (COMBINES, ENSEMBLE_FORMAT, FORMAT, CheckpointData, MemberData,
                                       default_model_path, read_checkpoint_data, silence_index)
from voice_gru.config import POOLINGS, FeatureConfig, ModelConfig, to_dict
from voice_gru.errors import CheckpointError, first_line
from voice_gru.features import Normalizer

__all__ = ["FORMAT", "ENSEMBLE_FORMAT", "POOLINGS", "COMBINES", "State", "GRUClassifier", "Ensemble", "Model", "Checkpoint",
           "spectral_map", "min_combine", "describe_model", "count_parameters", "clip_posteriors", "save_checkpoint",
           "load_checkpoint", "checkpoint_from_data", "make_ensemble", "default_model_path", "resolve_model"]


@dataclass
class State:
    """Carried streaming state: the convolution's last input frames and the GRU hidden state."""

    conv: Optional[torch.Tensor]  # the last input frames the front ends need (B, context, n_in), or None
    h: Optional[torch.Tensor]  # (layers, B, hidden) or None


class GRUClassifier(nn.Module):
    """Optional causal spectral Conv2d and Conv1d front ends -> stacked unidirectional GRU -> per-frame logits."""

    spectral_map: torch.Tensor  # buffer (n_in, bands), present with a spectral front end

    def __init__(self, n_in: int, n_classes: int, cfg: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_in = n_in
        self.n_classes = n_classes
        width = n_in
        self.spectral = None
        self.spectral_more = nn.ModuleList()
        if cfg.spectral_channels > 0:
            kt, kf = cfg.spectral_kernel
            # normalised MFCC -> per-band standardised log-mel; fixed, set from the training data
            self.register_buffer("spectral_map", torch.eye(n_in))
            if cfg.spectral_layers < 1:
                raise ValueError(f"model.spectral_layers must be at least 1 (got {cfg.spectral_layers})")

            def conv2d(c_in: int, c_out: int) -> nn.Conv2d:
                return nn.Conv2d(c_in, c_out, (kt, kf), stride=(1, cfg.spectral_stride), padding=(0, kf // 2))

            self.spectral = conv2d(1, cfg.spectral_channels)
            channels = [cfg.spectral_channels * 2 ** i for i in range(cfg.spectral_layers)]
            self.spectral_more = nn.ModuleList(conv2d(a, b) for a, b in zip(channels, channels[1:]))
            bands = n_in
            for _ in channels:
                bands = (bands + 2 * (kf // 2) - kf) // cfg.spectral_stride + 1
            width = channels[-1] * bands
        self.conv = None
        if cfg.conv_channels > 0:
            self.conv = nn.Conv1d(width, cfg.conv_channels, cfg.conv_kernel)
            width = cfg.conv_channels
        self.context = ((cfg.spectral_kernel[0] - 1) * cfg.spectral_layers if self.spectral is not None else 0) + \
            (cfg.conv_kernel - 1 if self.conv is not None else 0)
        self.gru = nn.GRU(width, cfg.hidden, cfg.layers, batch_first=True,
                          dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, n_classes)

    def set_spectral_map(self, m: torch.Tensor) -> None:
        """Fix the linear map from input frames to the spectral convolution's mel bands."""
        if self.spectral is None:
            raise ValueError("this model has no spectral front end")
        self.spectral_map.copy_(m.to(self.spectral_map))

    def _front(self, x: torch.Tensor, buf: Optional[torch.Tensor]) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Front ends over ``x`` preceded by the last ``context`` input frames; returns the new buffer."""
        if self.spectral is None and self.conv is None:
            return x, None
        if buf is None:
            buf = x.new_zeros(x.shape[0], self.context, x.shape[2])
        xx = torch.cat([buf, x], dim=1)
        y = xx
        if self.spectral is not None:
            bands = (y @ self.spectral_map.T).unsqueeze(1)  # (B, 1, T', bands)
            y = torch.relu(self.spectral(bands))
            for layer in self.spectral_more:
                y = torch.relu(layer(y))
            y = y.permute(0, 2, 1, 3).flatten(2)  # (B, T'', C·bands')
        if self.conv is not None:
            y = torch.relu(self.conv(y.transpose(1, 2))).transpose(1, 2)
        return self.drop(y), xx[:, x.shape[1]:, :]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame logits ``(B, T, classes)`` of a whole sequence ``(B, T, n_in)`` from zero state."""
        return self.step(frames, State(None, None))[0]

    def step(self, frames: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Logits for a chunk ``(B, T, n_in)`` continuing from ``state`` (None: zero state); returns the new state."""
        if state is None:
            state = State(None, None)
        if frames.shape[1] == 0:
            return frames.new_zeros(frames.shape[0], 0, self.n_classes), state
        x, conv_buf = self._front(frames, state.conv)
        y, h = self.gru(x, state.h)
        return self.head(self.drop(y)), State(conv_buf, h)


def spectral_map(features: FeatureConfig, normalizer: Normalizer) -> torch.Tensor:
    """Matrix ``M`` ``(n_mels, n_mfcc)``: ``x @ M.T`` turns normalised MFCC frames back into log-mel
    frames, centred and scaled per band (inverse DCT; the band variances assume uncorrelated
    coefficients, which is what the DCT is for). Needs ``n_mfcc == n_mels`` (an invertible DCT)."""
    import torchaudio

    if features.n_mfcc != features.n_mels:
        raise ValueError(f"a spectral front end needs n_mfcc == n_mels (got {features.n_mfcc} and {features.n_mels})")
    dct = torchaudio.functional.create_dct(features.n_mfcc, features.n_mels, norm="ortho").double()  # mfcc = logmel @ dct
    std = torch.tensor(normalizer.std, dtype=torch.float64)
    m = dct * std  # (n_mels, n_mfcc): logmel - mean = (x ⊙ std) @ dct.T
    return (m / m.pow(2).sum(1, keepdim=True).sqrt()).float()




def min_combine(logits: torch.Tensor, residual_class: int) -> torch.Tensor:
    """Log-posteriors ``(..., classes)`` from members' logits ``(members, ..., classes)``: each class
    gets the smallest of the members' posteriors, and what that leaves of 1 goes to ``residual_class``.

    A class is only as likely as the least convinced member says, so one member's confident mistake
    is vetoed by the other; where they disagree, the missing mass means "none of the named classes".
    The result is a distribution, so ``softmax`` of the returned log-posteriors gives it back.
    """
    q = logits.softmax(-1).min(0).values
    q[..., residual_class] += (1.0 - q.sum(-1)).clamp_min(0.0)
    return q.clamp_min(1e-30).log()


class Ensemble(nn.Module):
    """Models over the same inputs and labels, combined per frame: ``mean`` averages their logits,
    ``min`` takes each class's smallest posterior (``min_combine``; the rest to ``residual_class``).

    ``min`` is for detection (is a command being said at all?); naming a clip is a forced choice,
    where ``evaluate`` asks for the ``mean`` whatever the ensemble's own combination.
    """

    def __init__(self, members: Sequence[GRUClassifier], combine: str = "mean", residual_class: int | None = None) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        shapes = {(m.n_in, m.n_classes) for m in members}
        if len(shapes) != 1:
            raise ValueError(f"ensemble members differ in inputs/classes: {sorted(shapes)}")
        if combine not in COMBINES:
            raise ValueError(f"unknown ensemble combination '{combine}' (expected one of {', '.join(COMBINES)})")
        self.members = nn.ModuleList(members)
        self.n_in, self.n_classes = shapes.pop()
        if combine == "min" and (residual_class is None or not 0 <= residual_class < self.n_classes):
            raise ValueError(f"combine 'min' needs a residual class index in [0, {self.n_classes}) (got {residual_class})")
        self.combine = combine
        self.residual_class = residual_class if combine == "min" else None

    def _combine(self, logits: list[torch.Tensor], combine: str | None = None) -> torch.Tensor:
        stacked = torch.stack(logits)
        if (combine or self.combine) == "mean":
            return stacked.mean(0)
        if self.residual_class is None:
            raise ValueError("combine 'min' needs the ensemble's residual class (make it with combine='min')")
        return min_combine(stacked, self.residual_class)

    def parts(self) -> list[GRUClassifier]:
        """The member models (``members`` is the ModuleList that registers them)."""
        return cast(list[GRUClassifier], list(self.members))

    def forward(self, frames: torch.Tensor, combine: str | None = None) -> torch.Tensor:
        """Combined per-frame logits ``(B, T, classes)`` of a whole sequence from zero state
        (``combine``: ``mean`` or ``min`` instead of the ensemble's own)."""
        return self._combine([m(frames) for m in self.members], combine)

    def step(self, frames: torch.Tensor, state: Optional[tuple[State, ...]]) -> tuple[torch.Tensor, tuple[State, ...]]:
        """Combined logits for a chunk continuing from ``state`` (one ``State`` per member, or None)."""
        states = state if state is not None else tuple(State(None, None) for _ in self.members)
        outs = [m.step(frames, s) for m, s in zip(self.parts(), states)]
        return self._combine([o[0] for o in outs]), tuple(o[1] for o in outs)


Model = Union[GRUClassifier, Ensemble]


def describe_model(model: Model) -> str:
    """One line: the architecture (of each member, for an ensemble) and the parameter count."""
    def one(m: GRUClassifier) -> str:
        c = m.cfg
        chans = "-".join(str(c.spectral_channels * 2 ** i) for i in range(c.spectral_layers))
        spec = f"spectral conv {chans}x{c.spectral_kernel[0]}x{c.spectral_kernel[1]} + " if c.spectral_channels else ""
        conv = f"conv {c.conv_channels}x{c.conv_kernel} + " if c.conv_channels else ""
        return f"{spec}{conv}GRU {c.hidden}x{c.layers}"

    if isinstance(model, Ensemble):
        parts = [one(m) for m in model.parts()]
        how = " (min of posteriors)" if model.combine == "min" else ""
        body = f"ensemble of {len(parts)}{how}: " + ", ".join(parts)
    else:
        body = one(model)
    return f"{body} ({count_parameters(model):,} parameters)"


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def clip_posteriors(logits: torch.Tensor, pooling: str = "max", silence_index: int | None = 0) -> torch.Tensor:
    """Clip-level scores ``(B, classes)`` from per-frame logits ``(B, T, classes)``.

    ``max``: each class's peak posterior over time, with silence scored as one minus the best
    other peak (the model marks a word just after it ends, then returns to silence);
    ``mean``: average posterior; ``last``: posterior of the last frame.
    """
    p = logits.softmax(-1)
    if pooling == "last":
        return p[:, -1]
    if pooling == "mean":
        return p.mean(1)
    if pooling != "max":
        raise ValueError(f"unknown pooling '{pooling}' (expected one of {', '.join(POOLINGS)})")
    peak = p.max(1).values
    if silence_index is not None:
        others = torch.cat([peak[:, :silence_index], peak[:, silence_index + 1:]], 1)
        peak[:, silence_index] = 1.0 - others.max(1).values
    return peak


@dataclass(frozen=True)
class Checkpoint:
    """Everything needed to run a model: weights, labels, feature/model config, normaliser, metadata."""

    model: Model
    labels: tuple[str, ...]
    features: FeatureConfig
    normalizer: Normalizer
    pooling: str = "max"
    thresholds: Optional[dict] = None  # calibrated per-command thresholds, or None
    decision: Optional[dict] = None  # decision settings the model was calibrated with
    meta: Optional[dict] = None

    @property
    def silence_index(self) -> int | None:
        """Index of ``_silence_`` among the labels (None: a model without it)."""
        return silence_index(self.labels)

    def data(self) -> CheckpointData:
        """The same checkpoint with its weights as NumPy arrays (what the live path runs)."""
        m = self.model
        ens = m if isinstance(m, Ensemble) else None
        members = tuple(MemberData(p.cfg, _weights(p)) for p in (ens.parts() if ens else [cast(GRUClassifier, m)]))
        return CheckpointData(members, self.labels, self.features, self.normalizer, m.n_in, ens is not None,
                              ens.combine if ens else "mean", ens.residual_class if ens else None, self.pooling,
                              self.thresholds, self.decision, self.meta)


def _weights(m: nn.Module) -> dict:
    """A model's ``state_dict`` as NumPy arrays (copies)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in m.state_dict().items()}


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> None:
    """Write a checkpoint atomically as a plain dict of tensors and primitives."""
    from voice_gru.fileio import atomic_path

    def weights(m: nn.Module) -> dict:
        return {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}

    blob = {
        "format": FORMAT,
        "labels": list(ckpt.labels),
        "features": to_dict(ckpt.features),
        "n_in": ckpt.model.n_in,
        "normalizer": ckpt.normalizer.to_dict(),
        "pooling": ckpt.pooling,
        "thresholds": dict(ckpt.thresholds or {}),
        "decision": dict(ckpt.decision or {}),
        "meta": dict(ckpt.meta or {}),
    }
    if isinstance(ckpt.model, Ensemble):
        blob["format"] = ENSEMBLE_FORMAT
        blob["members"] = [{"model_config": to_dict(m.cfg), "weights": weights(m)} for m in ckpt.model.members]
        blob["combine"] = ckpt.model.combine
        blob["residual_class"] = ckpt.model.residual_class
    else:
        blob["model_config"] = to_dict(ckpt.model.cfg)
        blob["weights"] = weights(ckpt.model)
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(blob, tmp)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint without executing code from it (``checkpoint_data.read_checkpoint_data``)."""
    return checkpoint_from_data(read_checkpoint_data(Path(path)), path)


def checkpoint_from_data(data: CheckpointData, path: str | Path = "checkpoint") -> Checkpoint:
    """The PyTorch model of a checkpoint read as arrays (``path`` names it in errors)."""
    try:
        def member(d: MemberData) -> GRUClassifier:
            m = GRUClassifier(data.n_in, len(data.labels), d.config)
            m.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in d.weights.items()})
            return m

        model: Model
        if data.ensemble:
            model = Ensemble([member(d) for d in data.members], data.combine, data.residual_class)
        else:
            model = member(data.members[0])
    except Exception as exc:
        raise CheckpointError(f"{path}: damaged checkpoint ({first_line(exc)})") from None
    model.eval()
    return Checkpoint(model, data.labels, data.features, data.normalizer, data.pooling, data.thresholds, data.decision,
                      data.meta)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Whether two models hold the same parameters."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k]) for k in sa)


def make_ensemble(ckpts: Sequence[Checkpoint], names: Sequence[str] = (), combine: str | None = None) -> Checkpoint:
    """One checkpoint combining the members (``combine``: ``mean`` of logits, or ``min`` of posteriors
    with the rest to ``_unknown_``; None: the inputs' own where all are ensembles combined alike, else ``mean``);
    they must share labels, features, normaliser, and be two different models or more (an ensemble given is
    taken apart into its members).

    Calibrated thresholds are not carried over: an ensemble's scores are its own, so calibrate it.
    """
    names = list(names) or [f"member {i}" for i in range(len(ckpts))]
    if not ckpts:
        raise CheckpointError("an ensemble needs at least one checkpoint")
    if combine is None:  # an ensemble given again (to add a member) keeps how it combines: `min` silently became `mean`
        own = {c.model.combine for c in ckpts if isinstance(c.model, Ensemble)}
        combine = own.pop() if len(own) == 1 and all(isinstance(c.model, Ensemble) for c in ckpts) else "mean"
    if combine not in COMBINES:
        raise CheckpointError(f"unknown ensemble combination '{combine}' (expected one of {', '.join(COMBINES)})")
    first = ckpts[0]
    for name, c in zip(names[1:], ckpts[1:]):
        if c.labels != first.labels:
            raise CheckpointError(f"{name}: labels {list(c.labels)} differ from {names[0]}'s {list(first.labels)}")
        if c.features != first.features:
            raise CheckpointError(f"{name}: feature settings differ from {names[0]}'s")
        a = torch.tensor(first.normalizer.mean + first.normalizer.std)
        b = torch.tensor(c.normalizer.mean + c.normalizer.std)
        if not torch.allclose(a, b, rtol=1e-4, atol=1e-5):
            raise CheckpointError(f"{name}: normaliser statistics differ from {names[0]}'s (trained on other data)")
        if c.pooling != first.pooling:
            raise CheckpointError(f"{name}: clip pooling '{c.pooling}' differs from {names[0]}'s '{first.pooling}'")
    members: list[GRUClassifier] = []
    for c in ckpts:
        members += c.model.parts() if isinstance(c.model, Ensemble) else [c.model]
    if len(members) < 2:
        raise CheckpointError(f"{' '.join(map(str, names))}: one model: an ensemble needs two members or more")
    for i, part in enumerate(members):  # a byte copy, or a member already inside an ensemble given
        twin = next((j for j in range(i) if _same_weights(members[j], part)), None)
        if twin is not None:
            raise CheckpointError(f"members {twin + 1} and {i + 1} of {' '.join(map(str, names))} have the same weights "
                                  "(a copy, or a member already inside an ensemble given): a copy adds nothing but compute")
    meta = {"ensemble_of": [dict(c.meta or {}) for c in ckpts], "sources": [str(n) for n in names]}
    residual = None
    if combine == "min":
        if UNKNOWN not in first.labels:
            raise CheckpointError(f"combine 'min' gives the members' disagreement to '{UNKNOWN}', which {names[0]} lacks")
        residual = first.labels.index(UNKNOWN)
    model = Ensemble(members, combine, residual).eval()
    return Checkpoint(model, first.labels, first.features, first.normalizer, first.pooling, {}, dict(first.decision or {}), meta)


def resolve_model(path: str | Path | None) -> Checkpoint:
    """Load ``path`` or, when None, the shipped default model."""
    return checkpoint_from_data(read_checkpoint_data(path), path or default_model_path())
