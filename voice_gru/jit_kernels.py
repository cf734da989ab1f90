"""Compiled inner loops of the live path (numba): the GRU recurrence (one call per layer and chunk),
the spectral front end's convolution, the members' products, their min-combination, the detector's
smoothing and firing rule, and the MFCC after the FFT. ``voice_gru.kernels`` loads them (or falls back
to the NumPy code of each part).

In NumPy a GRU step is one matrix-vector product and nine ufunc calls on 128-element vectors, so
per frame the calls cost more than the arithmetic (~11 µs a layer on a 2-core AMD EPYC); here the
whole recurrence of a chunk is one call, with the gates fused into one loop (``scripts/bench_stream.py``
compares both). The other parts were a handful of NumPy calls each, whose overhead (~3x higher beside
the network than alone: cold caches) outweighed their arithmetic. Every kernel uses NumPy's error
model (``error_model="numpy"``): with Python's, each division checks for zero and raises, and that
branch kept the compiler from vectorising the gates (scalar code: 19 µs of gates a layer and chunk
against 3.6 µs vectorised). ``tanh`` and the logistic function use a rational approximation that the
compiler can vectorise (``math.tanh``/``math.exp`` are scalar calls without Intel's SVML):

    tanh(x) ≈ x · P(x²) / Q(x²)   for |x| ≤ 9 (±1 beyond: tanh(9) = 1 - 3·10⁻⁸),
    σ(x) = (1 + tanh(x / 2)) / 2,

P and Q of degree 4, fitted by iterated weighted least squares on [0, 9]; the largest error in
float32 is 3.3·10⁻⁷ (NumPy's float32 ``tanh``: 6·10⁻⁸; tests/test_jit_kernels.py checks it).

Compiled on first use and cached beside this file (or in numba's per-user cache where that is not
writable): ~10 s once (``scripts/setup.sh`` does it at install), ~0.5 s loading afterwards.
"""

from __future__ import annotations

import numba
import numpy as np

_P = tuple(np.float32(c) for c in (0.9999999214634543, 0.1338408278992229, 0.0034994647782900967,
                                   2.0682182892182033e-05, 1.3472813253923022e-08))
_Q = tuple(np.float32(c) for c in (1.0, 0.467173852346539, 0.02589110425615115,
                                   0.0003292381372275503, 7.821378770617171e-07))
_P0, _P1, _P2, _P3, _P4 = _P
_Q0, _Q1, _Q2, _Q3, _Q4 = _Q
_LIMIT = np.float32(9.0)
_HALF = np.float32(0.5)
_ONE = np.float32(1.0)


@numba.njit(inline="always", fastmath=True, cache=True, error_model="numpy")
def fast_tanh(x: np.float32) -> np.float32:
    """tanh of a float32 within 3.3e-7, in [-1, 1] (a branch-free rational function the compiler can vectorise)."""
    c = min(max(x, -_LIMIT), _LIMIT)
    s = c * c
    y = c * ((((_P4 * s + _P3) * s + _P2) * s + _P1) * s + _P0) / ((((_Q4 * s + _Q3) * s + _Q2) * s + _Q1) * s + _Q0)
    return min(max(y, -_ONE), _ONE)  # the fit overshoots 1 by up to 3e-7 near the ends


@numba.njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
def tanh_array(x: np.ndarray) -> np.ndarray:
    """``fast_tanh`` of every element of a 1-D float32 array (for tests)."""
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = fast_tanh(x[i])
    return out


@numba.njit(inline="always", fastmath=True, cache=True, error_model="numpy")
def _whh_h(whh_t: np.ndarray, h: np.ndarray, b: int, gh: np.ndarray) -> None:
    """``gh[b] = W_hh h[b]`` as a sum of W_hh's columns (rows of ``whh_t``) scaled by ``h[b]``, four at a
    time: one vectorised pass over ``gh[b]`` per four columns and no horizontal sums."""
    H, H3 = whh_t.shape
    for j in range(H3):
        gh[b, j] = 0.0
    fours = H - H % 4
    for k in range(0, fours, 4):
        h0, h1, h2, h3 = h[b, k], h[b, k + 1], h[b, k + 2], h[b, k + 3]
        for j in range(H3):
            gh[b, j] += whh_t[k, j] * h0 + whh_t[k + 1, j] * h1 + whh_t[k + 2, j] * h2 + whh_t[k + 3, j] * h3
    for k in range(fours, H):
        for j in range(H3):
            gh[b, j] += whh_t[k, j] * h[b, k]


@numba.njit(inline="always", fastmath=True, cache=True, error_model="numpy")
def _whh_h2(whh_t: np.ndarray, h: np.ndarray, b: int, gh: np.ndarray) -> None:
    """``_whh_h`` for streams ``b`` and ``b + 1`` in one pass over ``whh_t`` (the state refresh's pair:
    W_hh is read from L2 once for both)."""
    H, H3 = whh_t.shape
    for j in range(H3):
        gh[b, j] = 0.0
        gh[b + 1, j] = 0.0
    fours = H - H % 4
    for k in range(0, fours, 4):
        h0, h1, h2, h3 = h[b, k], h[b, k + 1], h[b, k + 2], h[b, k + 3]
        g0, g1, g2, g3 = h[b + 1, k], h[b + 1, k + 1], h[b + 1, k + 2], h[b + 1, k + 3]
        for j in range(H3):
            w0, w1, w2, w3 = whh_t[k, j], whh_t[k + 1, j], whh_t[k + 2, j], whh_t[k + 3, j]
            gh[b, j] += w0 * h0 + w1 * h1 + w2 * h2 + w3 * h3
            gh[b + 1, j] += w0 * g0 + w1 * g1 + w2 * g2 + w3 * g3
    for k in range(fours, H):
        for j in range(H3):
            gh[b, j] += whh_t[k, j] * h[b, k]
            gh[b + 1, j] += whh_t[k, j] * h[b + 1, k]


@numba.njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
def gru_recurrence(gi: np.ndarray, whh_t: np.ndarray, bhn: np.ndarray, h: np.ndarray, y: np.ndarray) -> None:
    """One GRU layer over a chunk: ``gi`` ``(B, T, 3H)`` input projections with ``b_ir + b_hr`` and
    ``b_iz + b_hz`` added (gate order r, z, n), or ``(1, T, 3H)``: one for every stream; ``whh_t``
    ``(H, 3H)``: ``W_hh`` transposed; ``bhn`` ``(H,)``; ``h`` ``(B, H)`` the state, updated in place to
    the last frame's; ``y`` ``(B, T, H)`` receives every frame's state. W_hh (192 kB for H = 128)
    streams from L2 once per frame and pair of streams, which sets the pace."""
    B, H = h.shape
    T = gi.shape[1]
    one = gi.shape[0] == 1
    gh = np.empty((B, 3 * H), np.float32)
    for t in range(T):
        for b in range(0, B - 1, 2):
            _whh_h2(whh_t, h, b, gh)
        if B % 2:
            _whh_h(whh_t, h, B - 1, gh)
        for b in range(B):
            gb = 0 if one else b
            for k in range(H):
                r = _HALF + _HALF * fast_tanh(_HALF * (gi[gb, t, k] + gh[b, k]))
                z = _HALF + _HALF * fast_tanh(_HALF * (gi[gb, t, H + k] + gh[b, H + k]))
                n = fast_tanh(gi[gb, t, 2 * H + k] + r * (gh[b, 2 * H + k] + bhn[k]))
                y[b, t, k] = n + z * (h[b, k] - n)
            for k in range(H):
                h[b, k] = y[b, t, k]


@numba.njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
def spectral_conv(y: np.ndarray, w: np.ndarray, bias: np.ndarray, stride: int, out: np.ndarray) -> None:
    """One causal Conv2d over (frame, mel band) + ReLU: ``y`` ``(B, L, C_in, bands_in)``, ``w``
    ``(C_in, kt, kf, C_out)`` (torch's weight with its output channels last), ``out``
    ``(B, L - kt + 1, C_out, bands)`` receives it; bands are zero-padded by ``kf // 2`` on each side."""
    B, L, C_in, nb_in = y.shape
    _, kt, kf, C_out = w.shape
    L2, nb = out.shape[1], out.shape[3]
    p = kf // 2
    acc = np.empty(C_out, np.float32)
    for b in range(B):
        for t in range(L2):
            for j in range(nb):
                for c in range(C_out):
                    acc[c] = bias[c]
                for ci in range(C_in):
                    for dt in range(kt):
                        for df in range(kf):
                            f = j * stride + df - p
                            if 0 <= f < nb_in:
                                v = y[b, t + dt, ci, f]
                                for c in range(C_out):  # output channels innermost: one vector operation
                                    acc[c] += w[ci, dt, df, c] * v
                for c in range(C_out):
                    out[b, t, c, j] = max(acc[c], np.float32(0.0))


@numba.njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
def dense(a: np.ndarray, w: np.ndarray, bias: np.ndarray, relu: bool, out: np.ndarray) -> None:
    """``out = a @ w + bias`` (then ReLU if ``relu``): ``a`` ``(M, K)`` (any strides: the conv's
    overlapping frame windows are a view), ``w`` ``(K, N)``, ``out`` ``(M, N)``.

    For the live path's few rows (M = 10 frames) OpenBLAS packs ``w`` on every call; here each row of
    ``w`` is read once per call, eight at a time, and added into every output row while it is in L1."""
    M, K = a.shape
    N = w.shape[1]
    for m in range(M):
        for j in range(N):
            out[m, j] = bias[j]
    eights = K - K % 8
    for k in range(0, eights, 8):
        for m in range(M):
            a0, a1, a2, a3 = a[m, k], a[m, k + 1], a[m, k + 2], a[m, k + 3]
            a4, a5, a6, a7 = a[m, k + 4], a[m, k + 5], a[m, k + 6], a[m, k + 7]
            for j in range(N):
                out[m, j] += ((w[k, j] * a0 + w[k + 1, j] * a1 + w[k + 2, j] * a2 + w[k + 3, j] * a3)
                              + (w[k + 4, j] * a4 + w[k + 5, j] * a5 + w[k + 6, j] * a6 + w[k + 7, j] * a7))
    for k in range(eights, K):
        for m in range(M):
            a0 = a[m, k]
            for j in range(N):
                out[m, j] += w[k, j] * a0
    if relu:
        for m in range(M):
            for j in range(N):
                out[m, j] = max(out[m, j], np.float32(0.0))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def mel_log_dct(spec: np.ndarray, fb: np.ndarray, lo: np.ndarray, hi: np.ndarray, dct: np.ndarray, offset: float,
                out: np.ndarray) -> None:
    """The MFCC of each frame's spectrum: ``spec`` ``(n, bins)`` (complex rFFT), ``fb`` ``(bins, mels)``
    mel filters whose band ``m`` is non-zero on bins ``lo[m]:hi[m]`` only, ``dct`` ``(mels, n_mfcc)``;
    ``out`` ``(n, n_mfcc)`` receives ``log(|spec|² fb + offset) dct``. In float64 like the NumPy front
    end, without fastmath, and only the filters' non-zero bins: ~2 multiply-adds a bin instead of 40."""
    n = spec.shape[0]
    M, K = dct.shape
    mel = np.empty(M)
    for i in range(n):
        for m in range(M):
            acc = 0.0
            for b in range(lo[m], hi[m]):
                z = spec[i, b]
                acc += (z.real * z.real + z.imag * z.imag) * fb[b, m]
            mel[m] = np.log(acc + offset)
        for k in range(K):
            acc = 0.0
            for m in range(M):
                acc += mel[m] * dct[m, k]
            out[i, k] = acc


@numba.njit(cache=True, nogil=True, error_model="numpy")
def softmax_min(logits: np.ndarray, q: np.ndarray, first: bool, residual: int) -> None:
    """One member's turn in ``model.min_combine``: ``q`` ``(B, T, C)`` becomes the softmax of
    ``logits`` (``first``) or its elementwise minimum with it; ``residual >= 0`` then gives that class
    what the minima leave of 1 (after the last member)."""
    B, T, C = logits.shape
    e = np.empty(C, np.float32)
    for b in range(B):
        for t in range(T):
            m = logits[b, t, 0]
            for c in range(1, C):
                m = max(m, logits[b, t, c])
            total = np.float32(0.0)
            for c in range(C):
                e[c] = np.exp(logits[b, t, c] - m)
                total += e[c]
            for c in range(C):
                v = e[c] / total
                q[b, t, c] = v if first else min(q[b, t, c], v)
            if residual >= 0:
                left = np.float32(1.0)
                for c in range(C):
                    left -= q[b, t, c]
                q[b, t, residual] += max(left, np.float32(0.0))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def detector_chunk(p: np.ndarray, hist: np.ndarray, k: int, thr: np.ndarray, rearm: np.ndarray, armed: np.ndarray,
                   st: np.ndarray, n_min: int, n_cool: int, smoothed: np.ndarray, events: np.ndarray,
                   scores: np.ndarray) -> tuple:
    """``voice_gru.decision.Detector.update`` over a chunk ``p`` ``(T, C)``: the moving average of
    the last ``hist.shape[0] + 1`` rows (``hist`` holds the last ``k`` rows before the chunk, updated
    in place), then the firing rule with ``st`` = (run label, run length, cooldown end, frames seen)
    and ``armed`` updated in place (a class re-arms on a frame below ``rearm``). ``smoothed`` receives the
    last frame's averages; ``events`` ``(T, 2)`` (frame, class) and ``scores`` ``(T,)`` the firings. Returns (events, rows now in ``hist``).
    Not fastmath: every window is summed oldest first, as NumPy sums it."""
    T, C = p.shape
    n = hist.shape[0] + 1
    rows = np.empty((k + T, C))
    for r in range(k):  # element loops: numba compiles a 2-D slice assignment for ~5 s, these in well under 1
        for c in range(C):
            rows[r, c] = hist[r, c]
    for r in range(T):
        for c in range(C):
            rows[k + r, c] = p[r, c]
    run_label, run, cool_until, frame = st[0], st[1], st[2], st[3]
    ne = 0
    for t in range(T):
        end = k + t + 1
        start = max(0, end - n)
        for c in range(C):
            acc = 0.0
            for r in range(start, end):
                acc += rows[r, c]
            smoothed[c] = acc / (end - start)
        top = 0
        for c in range(1, C):
            if smoothed[c] > smoothed[top]:
                top = c
        for c in range(C):
            if smoothed[c] < rearm[c]:
                armed[c] = True
        if smoothed[top] >= thr[top] and armed[top]:
            run = run + 1 if top == run_label else 1
            run_label = top
        else:
            run, run_label = 0, -1
        if run >= n_min and frame > cool_until:
            events[ne, 0], events[ne, 1] = frame, top
            scores[ne] = smoothed[top]
            ne += 1
            cool_until = frame + n_cool
            armed[top] = False
            run, run_label = 0, -1
        frame += 1
    st[0], st[1], st[2], st[3] = run_label, run, cool_until, frame
    keep = min(n - 1, k + T)
    for r in range(keep):
        for c in range(C):
            hist[r, c] = rows[k + T - keep + r, c]
    return ne, keep


def warm() -> None:
    """Compile, or load from numba's cache, every kernel for the array types the live path passes, so
    the first chunk of a stream does not wait for it (~1 s from the cache, several on a first run)."""
    f = np.float32
    gru_recurrence(np.zeros((1, 1, 3), f), np.zeros((3, 1), f), np.zeros(1, f), np.zeros((1, 1), f), np.zeros((1, 1, 1), f))
    spectral_conv(np.zeros((1, 1, 1, 1), f), np.zeros((1, 1, 1, 1), f), np.zeros(1, f), 1, np.zeros((1, 1, 1, 1), f))
    z = np.zeros((2, 2), f)
    for a in (z, np.ndarray((2, 2), f, np.zeros(3, f), 0, (4, 4))):  # contiguous rows; overlapping windows (a view)
        dense(a, z, np.zeros(2, f), True, np.zeros((2, 2), f))
    softmax_min(np.zeros((1, 1, 2), f), np.zeros((1, 1, 2), f), True, 0)
    i = np.zeros(1, np.int64)
    mel_log_dct(np.zeros((1, 1), np.complex128), np.zeros((1, 1)), i, i, np.zeros((1, 1)), 1.0, np.zeros((1, 1), f))
    detector_chunk(np.zeros((1, 2)), np.zeros((1, 2)), 0, np.zeros(2), np.zeros(2), np.ones(2, np.bool_),
                   np.zeros(4, np.int64), 1, 0, np.zeros(2), np.zeros((1, 2), np.int64), np.zeros(1))
