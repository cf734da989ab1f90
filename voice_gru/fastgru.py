"""Inference-only NumPy re-implementation of ``GRUClassifier.step`` for the live path.

The model is small (~235k multiply-adds per frame), so in PyTorch the per-operator and
per-timestep overhead dominates a 100 ms chunk. ``FastGRU`` does the same computation in few calls.
By default (``kernel="numba"``) each part is one compiled call (``voice_gru.jit_kernels``):

* the spectral front end: one matmul to mel bands, then per layer the compiled Conv2d + ReLU;
* the causal convolution of all ``T`` new frames: ``dense`` over the overlapping windows
  (``[x_{t-k+1} … x_t]`` flattened: rows of a strided view, no im2col copy), ReLU included;
* each GRU layer's input projection ``W_ih x + b_ih`` (with ``b_hr``, ``b_hz`` folded in) for all
  ``T·B`` frames: one ``dense``; then the recurrence (``W_hh h`` and the gates, frame by frame) in one
  call per layer and chunk;
* the head over all frames: one ``dense``; an ensemble's min-combination: one call per member.

With ``kernel="numpy"`` (also where numba cannot load) the products are ``np.dot`` over im2col'd
patches and the recurrence runs as NumPy calls in place on preallocated arrays, the state kept
"feature-major" (``(H, B)``) so every gate slice is one contiguous block.
``voice_gru.stream.Recognizer`` keeps NumPy's BLAS on the calling thread while it runs, since at
these sizes other threads cost more than they save.

Equations (PyTorch's ``nn.GRU``, gate order r, z, n in ``weight_ih``/``weight_hh``)::

    r = σ(W_ir x + b_ir + W_hr h + b_hr)
    z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    h = (1 - z) ⊙ n + z ⊙ h  =  n + z ⊙ (h - n)

Dropout is an identity (inference). The carried state has the semantics of
``voice_gru.model.State``: ``conv`` holds the last input frames the front ends need
``(B, context, n_in)`` (zeros at the start), ``h`` the hidden state of every layer ``(layers, B, hidden)``; ``None``
means zeros. ``step`` over consecutive chunks equals ``GRUClassifier.step`` to float32 rounding
(a test holds the logits within 1e-4).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional

import numpy as np

from voice_gru.checkpoint_data import CheckpointData
from voice_gru.config import ModelConfig
from voice_gru.kernels import check_kernel, compiled_kernels

if TYPE_CHECKING:
    from voice_gru.model import GRUClassifier, State


@functools.lru_cache(maxsize=1)
def _expit():
    """scipy's logistic ufunc, or None: one call per step for both sigmoid gates (without it: four).
    Only the NumPy path needs it, and importing scipy.special costs ~0.2 s of the live path's start-up."""
    try:  # scipy comes with the train extra
        from scipy.special import expit
    except ImportError:  # pragma: no cover - exercised only without scipy
        return None
    return expit


@dataclass
class FastState:
    """Carried state as NumPy arrays: like ``voice_gru.model.State`` (``None`` means zeros)."""

    conv: Optional[np.ndarray]  # (B, context, n_in) or None
    h: Optional[np.ndarray]  # (layers, B, hidden) or None

    @classmethod
    def from_torch(cls, state: State) -> "FastState":
        """From a ``voice_gru.model.State`` of tensors."""
        conv = None if state.conv is None else state.conv.detach().cpu().numpy().astype(np.float32)
        h = None if state.h is None else state.h.detach().cpu().numpy().astype(np.float32)
        return cls(conv, h)

    def to_torch(self) -> State:
        """As a ``voice_gru.model.State`` of tensors (for ``GRUClassifier.step``)."""
        import torch

        from voice_gru.model import State

        return State(None if self.conv is None else torch.from_numpy(self.conv.copy()),
                     None if self.h is None else torch.from_numpy(self.h.copy()))

    def take(self, b: int) -> "FastState":
        """Stream ``b`` of the batch alone, as a batch of one."""
        return FastState(None if self.conv is None else self.conv[b:b + 1].copy(),
                         None if self.h is None else self.h[:, b:b + 1].copy())

    def cat(self, other: "FastState") -> "FastState":
        """This batch followed by ``other``'s (both with their parts present, e.g. ``initial_state``)."""
        return FastState(_join(self.conv, other.conv, 0), _join(self.h, other.h, 1))


def _join(a: Optional[np.ndarray], b: Optional[np.ndarray], axis: int) -> Optional[np.ndarray]:
    """``a`` and ``b`` concatenated along ``axis``; None where both are None."""
    if a is None or b is None:
        if a is not b:
            raise ValueError("cannot join a state that has a part with one that lacks it")
        return None
    return np.concatenate((a, b), axis=axis)


@dataclass
class EnsembleState:
    """Carried state of a ``FastEnsemble``: one ``FastState`` per member."""

    members: tuple

    def take(self, b: int) -> "EnsembleState":
        """Stream ``b`` of the batch alone, in every member."""
        return EnsembleState(tuple(s.take(b) for s in self.members))

    def cat(self, other: "EnsembleState") -> "EnsembleState":
        """This batch followed by ``other``'s, in every member."""
        return EnsembleState(tuple(a.cat(b) for a, b in zip(self.members, other.members)))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis`` (float32 in, float32 out)."""
    e = x - x.max(axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def _sigmoid_(x: np.ndarray) -> None:
    """In-place logistic sigmoid."""
    expit = _expit()
    if expit is not None:
        expit(x, x)
    else:  # σ(x) = (1 + tanh(x/2)) / 2
        x *= 0.5
        np.tanh(x, out=x)
        x *= 0.5
        x += 0.5


class FastGRU:
    """``GRUClassifier.step`` in NumPy float32, built from a model's weights (inference only)."""

    dtype = np.float32  # float64 was measured too: ~1.5x slower per step, no accuracy needed

    def __init__(self, n_in: int, n_classes: int, hidden: int,
                 conv_weight: Optional[np.ndarray], conv_bias: Optional[np.ndarray],
                 gru: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                 head_weight: np.ndarray, head_bias: np.ndarray,
                 spectral: Optional[tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]], int]] = None,
                 kernel: str = "numba") -> None:
        """``conv_weight`` ``(C, width, k)`` as in ``nn.Conv1d`` (or None); ``gru``: per layer
        ``(weight_ih (3H, in), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,))`` as in ``nn.GRU``;
        ``head_weight`` ``(classes, H)``; ``spectral`` (or None): ``(map (bands, n_in), [(weight
        (C_out, C_in, kt, kf), bias (C_out,)) per layer], stride along bands)`` of the spectral Conv2d
        front end; ``kernel``: products, recurrence and spectral convolution compiled (``numba``) or
        as NumPy calls (``numpy``)."""
        check_kernel(kernel, "GRU")
        self._jit = compiled_kernels() if kernel == "numba" else None
        self.kernel = "numba" if self._jit is not None else "numpy"  # the one in use
        f = self.dtype
        H = hidden
        self.n_in, self.n_classes, self.hidden, self.layers = n_in, n_classes, hidden, len(gru)
        self.context = 0
        self._spec = None
        if spectral is not None:
            smap, layers, stride = spectral
            convs = []
            for sw, sb in layers:
                C, C_in, kt, kf = sw.shape
                # patch row [channels × frames (t-kt+1 … t) × bands (b-kf//2 … b+kf//2)] times Ws
                # gives the C channels at band b
                convs.append((np.ascontiguousarray(sw.reshape(C, C_in * kt * kf).T, dtype=f),
                              np.ascontiguousarray(sb, dtype=f), kt, kf,
                              np.ascontiguousarray(np.transpose(sw, (1, 2, 3, 0)), dtype=f)))  # for the compiled kernel
                self.context += kt - 1
            self._spec = (np.ascontiguousarray(np.transpose(smap), dtype=f), convs, stride)
        self._conv: tuple[np.ndarray, np.ndarray, int] | None = None  # (Wc, bias, kernel) of the Conv1d front end
        if conv_weight is not None:
            C, _, k = conv_weight.shape
            self.context += k - 1
            # window row [y_{t-k+1}, …, y_t] (each `width`) times Wc: out_t[c] = Σ_j Σ_i w[c, i, j] y_{t-k+1+j}[i]
            self._conv = (np.ascontiguousarray(np.transpose(conv_weight, (2, 1, 0)).reshape(-1, C), dtype=f),
                          np.ascontiguousarray(conv_bias, dtype=f), k)
        self._wih, self._bi, self._whh, self._bhn = [], [], [], []
        for w_ih, w_hh, b_ih, b_hh in gru:
            assert w_ih.shape[0] == 3 * H and w_hh.shape == (3 * H, H)
            bi = np.array(b_ih, dtype=np.float64)
            bi[:2 * H] += b_hh[:2 * H]  # r and z: both biases add outside any product
            self._wih.append(np.ascontiguousarray(np.transpose(w_ih), dtype=f))  # (in, 3H)
            self._bi.append(bi.astype(f))
            # the compiled recurrence reads W_hh transposed, (H, 3H); the NumPy one computes W_hh @ h, h as (H, B)
            self._whh.append(np.ascontiguousarray(np.transpose(w_hh) if self._jit is not None else w_hh, dtype=f))
            self._bhn.append(np.ascontiguousarray(b_hh[2 * H:], dtype=f))  # (H,)
        self._wo = np.ascontiguousarray(np.transpose(head_weight), dtype=f)  # (H, classes)
        self._bo = np.ascontiguousarray(head_bias, dtype=f)
        self._bhn_cache: dict = {}

    @classmethod
    def from_weights(cls, cfg: ModelConfig, weights: Mapping[str, np.ndarray], n_in: int,
                     kernel: str = "numba") -> "FastGRU":
        """From a ``GRUClassifier``'s config and ``state_dict`` as arrays (``checkpoint_data.weight_shapes`` names them)."""

        def a(name: str) -> np.ndarray:
            return np.asarray(weights[name], dtype=np.float64)

        conv_w, conv_b = (a("conv.weight"), a("conv.bias")) if cfg.conv_channels > 0 else (None, None)
        gru = [(a(f"gru.weight_ih_l{k}"), a(f"gru.weight_hh_l{k}"), a(f"gru.bias_ih_l{k}"), a(f"gru.bias_hh_l{k}"))
               for k in range(cfg.layers)]
        spectral = None
        if cfg.spectral_channels > 0:
            names = ["spectral", *(f"spectral_more.{i}" for i in range(cfg.spectral_layers - 1))]
            spectral = (a("spectral_map"), [(a(f"{n}.weight"), a(f"{n}.bias")) for n in names], cfg.spectral_stride)
        head_w = a("head.weight")
        return cls(n_in, head_w.shape[0], cfg.hidden, conv_w, conv_b, gru, head_w, a("head.bias"), spectral, kernel)

    @classmethod
    def from_model(cls, model: GRUClassifier, kernel: str = "numba") -> "FastGRU":
        """From a ``voice_gru.model.GRUClassifier`` (weights are copied; later training is not seen)."""
        weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        return cls.from_weights(model.cfg, weights, model.n_in, kernel)

    def initial_state(self, batch: int = 1) -> FastState:
        """Zero state for ``batch`` streams (equivalent to ``FastState(None, None)``)."""
        conv = np.zeros((batch, self.context, self.n_in), self.dtype) if self.context else None
        return FastState(conv, np.zeros((self.layers, batch, self.hidden), self.dtype))

    # ------------------------------------------------------------------------------------------

    def step(self, x: np.ndarray, state: FastState | None = None) -> tuple[np.ndarray, FastState]:
        """Logits ``(B, T, classes)`` for a chunk ``(B, T, n_in)`` continuing from ``state``."""
        f = self.dtype
        x = np.asarray(x, dtype=f)
        if state is None:
            state = FastState(None, None)
        B, T, _ = x.shape
        if T == 0:
            return np.zeros((B, 0, self.n_classes), f), state
        H = self.hidden
        # a batch of copies of one input (the recognizer's state refresh) whose front-end contexts are
        # equal: the front ends and the first layer's input projections are the same for every
        # copy, so they run once (the compiled recurrence reads one projection for all)
        shared = (B > 1 and self._jit is not None and x.strides[0] == 0
                  and (state.conv is None or bool((state.conv == state.conv[:1]).all())))
        Bf = 1 if shared else B  # streams through the front ends and the first projection
        xf = x[:1] if shared else x
        # ---- causal front ends over the new frames preceded by the last `context` input frames
        conv_buf = None
        spec, conv = self._spec, self._conv
        if spec is not None or conv is not None:
            buf = state.conv[:Bf] if state.conv is not None else np.zeros((Bf, self.context, self.n_in), f)
            xx = np.concatenate([buf.astype(f, copy=False), xf], axis=1)  # (Bf, context+T, n_in)
            # no past frames needed (1-frame kernels): no buffer, as initial_state has none to join with
            conv_buf = np.repeat(xx[:, T:, :], B // Bf, axis=0) if self.context else None
            y = self._spectral(xx, spec) if spec is not None else xx
            if conv is not None:  # one matmul over the k-frame windows
                wc, bc, k = conv
                y = np.ascontiguousarray(y)
                s0, s1, s2 = y.strides  # overlapping windows [y_{t-k+1} … y_t] of the contiguous y
                if self._jit is not None:  # each stream's windows are rows of one strided view: no copy
                    inp = np.empty((Bf * T, wc.shape[1]), f)
                    for b in range(Bf):
                        win2 = np.ndarray((T, k * y.shape[2]), f, y, b * s0, (s1, s2))
                        self._jit.dense(win2, wc, bc, True, inp[b * T:(b + 1) * T])
                else:
                    win = np.ndarray((Bf, T, k, y.shape[2]), f, y, 0, (s0, s1, s1, s2))
                    inp = np.dot(win.reshape(Bf * T, -1), wc)  # reshape copies: im2col
                    inp += bc
                    np.maximum(inp, 0.0, out=inp)
            else:
                inp = np.ascontiguousarray(y).reshape(Bf * T, -1)
        else:
            inp = xf.reshape(Bf * T, self.n_in)
        # ---- GRU layers: input projections for all frames at once, recurrences per frame
        h_out = np.empty((self.layers, B, H), f)
        for layer in range(self.layers):
            if self._jit is not None:  # stream-major throughout: no transposes
                g = np.empty((inp.shape[0], 3 * H), f)  # (B*T, 3H), rows b-major (Bf*T in the first layer)
                self._jit.dense(inp, self._wih[layer], self._bi[layer], False, g)
                h = np.array(state.h[layer], dtype=f) if state.h is not None else np.zeros((B, H), f)
                y = np.empty((B, T, H), f)
                self._jit.gru_recurrence(g.reshape(-1, T, 3 * H), self._whh[layer], self._bhn[layer], h, y)
                h_out[layer] = h
                inp = y.reshape(B * T, H)
                continue
            g = np.dot(inp, self._wih[layer])
            g += self._bi[layer]
            # time-major and feature-major per step: gi[t] is (3H, B), so every gate slice is one
            # contiguous block (a strided operand makes each ufunc call several times slower)
            if B == 1:
                gi = g.reshape(T, 3 * H, 1)
            else:
                gi = np.empty((T, 3 * H, B), f)
                g = g.reshape(B, T, 3 * H)
                for b in range(B):  # B strided copies: much faster than one 3-axis transpose
                    gi[:, :, b] = g[b]
            h0 = state.h[layer] if state.h is not None else None
            y = self._recur(gi, h0, layer, B, T)  # (T + 1, H, B); y[0] is the initial state
            h_out[layer] = y[T].T
            inp = np.ascontiguousarray(y[1:].transpose(2, 0, 1)).reshape(B * T, H)
        if self._jit is not None:
            logits = np.empty((inp.shape[0], self.n_classes), f)
            self._jit.dense(inp, self._wo, self._bo, False, logits)
        else:
            logits = np.dot(inp, self._wo)
            logits += self._bo
        return logits.reshape(B, T, self.n_classes), FastState(conv_buf, h_out)

    def posteriors(self, x: np.ndarray, state: FastState | None = None) -> tuple[np.ndarray, FastState]:
        """Posteriors ``(B, T, classes)`` (the softmax of ``step``'s logits) and the new state."""
        logits, new_state = self.step(x, state)
        return softmax(logits), new_state

    def _spectral(self, xx: np.ndarray, spec: tuple) -> np.ndarray:
        """The spectral Conv2d layers + ReLU over ``xx`` ``(B, L, n_in)``: ``(B, L', C·bands')`` in
        torch's (channel, band) order."""
        mt, convs, stride = spec
        B, L, _ = xx.shape
        y = np.dot(xx.reshape(B * L, self.n_in), mt).reshape(B, L, 1, -1)  # (B, L, channels, bands)
        for ws, bs, kt, kf, w_last in convs:
            if self._jit is not None:
                out = np.empty((B, y.shape[1] - kt + 1, w_last.shape[3], (y.shape[3] + 2 * (kf // 2) - kf) // stride + 1), self.dtype)
                self._jit.spectral_conv(y, w_last, bs, stride, out)
                y = out
            else:
                y = self._conv2d(y, ws, bs, kt, kf, stride)
        return y.reshape(B, y.shape[1], -1)

    def _conv2d(self, y: np.ndarray, ws: np.ndarray, bs: np.ndarray, kt: int, kf: int, stride: int) -> np.ndarray:
        """One causal Conv2d + ReLU, ``(B, L, C_in, bands)`` -> ``(B, L-kt+1, C_out, bands')``, as one
        matmul over im2col'd (channel × frame × band) patches."""
        f = self.dtype
        B, L, C_in, nb_in = y.shape
        p = kf // 2
        padded = np.zeros((B, L, C_in, nb_in + 2 * p), f)
        padded[..., p:p + nb_in] = y
        s0, s1, s2, s3 = padded.strides
        L2 = L - kt + 1
        nb = (nb_in + 2 * p - kf) // stride + 1
        patches = np.ndarray((B, L2, nb, C_in, kt, kf), f, padded, 0, (s0, s1, s3 * stride, s2, s1, s3))
        out = np.dot(patches.reshape(B * L2 * nb, C_in * kt * kf), ws)  # (B·L2·nb, C_out)
        out += bs
        np.maximum(out, 0.0, out=out)
        return out.reshape(B, L2, nb, -1).transpose(0, 1, 3, 2)

    def _recur(self, gi: np.ndarray, h0: Optional[np.ndarray], layer: int, B: int, T: int) -> np.ndarray:
        """One layer's recurrence over ``gi`` ``(T, 3H, B)`` (input projections with biases).

        Returns ``(T + 1, H, B)``: the initial state, then the hidden state after each frame."""
        f = self.dtype
        H = self.hidden
        H2 = 2 * H
        whh = self._whh[layer]
        bhn = self._bhn_b(layer, B)
        y = np.empty((T + 1, H, B), f)
        if h0 is None:
            y[0] = 0.0
        else:
            y[0] = h0.T
        gh = np.empty((3 * H, B), f)
        rz, r, z, n = gh[:H2], gh[:H], gh[H:H2], gh[H2:]
        dot, add, mul, sub, tanh, sig = np.dot, np.add, np.multiply, np.subtract, np.tanh, _sigmoid_
        for g_rz, g_n, h, hn in zip(gi[:, :H2], gi[:, H2:], y, y[1:]):
            dot(whh, h, gh)
            add(rz, g_rz, rz)
            sig(rz)
            add(n, bhn, n)
            mul(n, r, n)
            add(n, g_n, n)
            tanh(n, n)
            sub(h, n, hn)  # h' = n + z (h - n)
            mul(hn, z, hn)
            add(hn, n, hn)
        return y

    def _bhn_b(self, layer: int, B: int) -> np.ndarray:
        """``b_hn`` broadcast to ``(H, B)``, contiguous (a broadcast operand is slower per call)."""
        key = (layer, B)
        out = self._bhn_cache.get(key)
        if out is None:
            out = self._bhn_cache[key] = np.ascontiguousarray(np.broadcast_to(self._bhn[layer][:, None], (self.hidden, B)))
        return out


class FastEnsemble:
    """``voice_gru.model.Ensemble.step`` in NumPy: the members' logits averaged, or (``residual_class``
    given) each class's smallest posterior with the rest to that class (``model.min_combine``)."""

    def __init__(self, members: list[FastGRU], residual_class: int | None = None) -> None:
        self.members = list(members)
        self.n_in, self.n_classes = members[0].n_in, members[0].n_classes
        self.residual_class = residual_class

    def initial_state(self, batch: int = 1) -> EnsembleState:
        """Zero state for ``batch`` streams in every member."""
        return EnsembleState(tuple(m.initial_state(batch) for m in self.members))

    def step(self, x: np.ndarray, state: EnsembleState | None = None) -> tuple[np.ndarray, EnsembleState]:
        """Combined logits ``(B, T, classes)`` for a chunk continuing from ``state`` (for ``min``:
        log-posteriors, which a softmax gives back unchanged)."""
        combined, new_state = self._combined(x, state)
        if self.residual_class is not None:
            return np.log(np.maximum(combined, 1e-30)), new_state
        return combined, new_state

    def posteriors(self, x: np.ndarray, state: EnsembleState | None = None) -> tuple[np.ndarray, EnsembleState]:
        """Combined posteriors ``(B, T, classes)`` for a chunk continuing from ``state``."""
        combined, new_state = self._combined(x, state)
        return (combined if self.residual_class is not None else softmax(combined)), new_state

    def _combined(self, x: np.ndarray, state: EnsembleState | None) -> tuple[np.ndarray, EnsembleState]:
        """``min``: the combined posteriors; ``mean``: the mean logits."""
        states = state.members if state is not None else (None,) * len(self.members)
        outs = [m.step(x, s) for m, s in zip(self.members, states)]
        new_state = EnsembleState(tuple(o[1] for o in outs))
        jit = self.members[0]._jit
        if self.residual_class is not None and jit is not None:  # one compiled call a member
            q = np.empty_like(outs[0][0])
            last = len(outs) - 1
            for i, (logits, _) in enumerate(outs):
                jit.softmax_min(logits, q, i == 0, self.residual_class if i == last else -1)
            return q, new_state
        if self.residual_class is not None:
            q = softmax(outs[0][0])
            for o in outs[1:]:
                np.minimum(q, softmax(o[0]), out=q)
            q[..., self.residual_class] += np.maximum(1.0 - q.sum(-1), 0.0)
            return q, new_state
        logits = outs[0][0]
        for o in outs[1:]:
            logits += o[0]
        logits /= len(outs)
        return logits, new_state


def fast_model(model: CheckpointData | Any, kernel: str = "numba") -> FastGRU | FastEnsemble:
    """NumPy inference of a checkpoint's network (``CheckpointData``), or of a ``GRUClassifier`` or an
    ``Ensemble`` of them (weights copied)."""
    if isinstance(model, CheckpointData):
        nets = [FastGRU.from_weights(m.config, m.weights, model.n_in, kernel) for m in model.members]
        if not model.ensemble:
            return nets[0]
        return FastEnsemble(nets, model.residual_class if model.combine == "min" else None)
    members = getattr(model, "members", None)
    if members is not None:
        return FastEnsemble([FastGRU.from_model(m, kernel) for m in members], model.residual_class)
    return FastGRU.from_model(model, kernel)
