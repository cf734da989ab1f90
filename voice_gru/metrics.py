"""Classification metrics as pure functions of label arrays and counts."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """``m[i, j]`` = number of examples of class ``i`` predicted as ``j``."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    for name, a in (("y_true", t), ("y_pred", p)):  # -1 would count in the last class, 2.7 in class 2
        if a.size and (not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= n_classes):
            raise ValueError(f"confusion_matrix: {name} must hold class indices 0 to {n_classes - 1}")
    if t.shape != p.shape:
        raise ValueError(f"confusion_matrix: {t.size} true labels but {p.size} predictions")
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (t.astype(np.int64), p.astype(np.int64)), 1)
    return m


def share_upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper–Pearson upper bound on a share after ``k`` successes in ``n`` trials."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"share_upper_bound: need 0 <= k <= n and n > 0 (got k={k}, n={n})")
    if not 0 < confidence < 1:
        raise ValueError(f"share_upper_bound: confidence {confidence!r} must lie between 0 and 1")
    if k == n:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(confidence, k + 1, n - k))


def rate_upper_bound(events: float, hours: float, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound (Garwood) on a Poisson rate per hour after ``events`` in ``hours``: the
    rate at which ``events`` or fewer would be seen with probability ``1 - confidence`` (fractional counts too)."""
    if not (0 < hours < math.inf and 0 <= events < math.inf and 0 < confidence < 1):  # NaN fails each
        raise ValueError(f"rate_upper_bound: need events >= 0, hours > 0 and 0 < confidence < 1 "
                         f"(got events={events}, hours={hours}, confidence={confidence})")
    # P(X <= k | mean m) = Q(k + 1, m), the regularized upper incomplete gamma function; it falls with m, so
    # bisection finds m. Pure Python: the listening install has no SciPy.
    a = events + 1.0
    lo, hi = 0.0, a + 10.0 * math.sqrt(a) + 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 1.0 - _gamma_p(a, mid) > 1.0 - confidence else (lo, mid)
    return (lo + hi) / 2 / hours


def _gamma_p(a: float, x: float) -> float:
    """The regularized lower incomplete gamma function P(a, x) by its power series (x up to a few hundred)."""
    if x <= 0:
        return 0.0
    term = total = 1.0 / a
    n = 0
    while abs(term) > 1e-16 * abs(total) and n < 10_000:
        n += 1
        term *= x / (a + n)
        total += term
    return min(1.0, math.exp(a * math.log(x) - x - math.lgamma(a)) * total)


def per_class_prf(conf: np.ndarray, labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class from a confusion matrix (0 where undefined)."""
    tp = np.diag(conf).astype(float)
    pred = conf.sum(0).astype(float)
    true = conf.sum(1).astype(float)
    out = {}
    for i, lab in enumerate(labels):
        p = tp[i] / pred[i] if pred[i] else 0.0
        r = tp[i] / true[i] if true[i] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        out[lab] = {"precision": p, "recall": r, "f1": f, "n": int(true[i])}
    return out


def top_confusions(conf: np.ndarray, labels: Sequence[str], k: int = 5) -> list[dict]:
    """The ``k`` most frequent (true, predicted) pairs off the diagonal."""
    off = conf.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:k]
    pairs = []
    for flat in order:
        i, j = np.unravel_index(flat, off.shape)
        if off[i, j] == 0:
            break
        pairs.append({"true": labels[i], "predicted": labels[j], "count": int(off[i, j])})
    return pairs


def format_confusion(conf: np.ndarray, labels: Sequence[str]) -> str:
    """Text confusion matrix (rows: true, columns: predicted)."""
    short = [lab.strip("_")[:5] for lab in labels]
    w = max(6, max(len(s) for s in short) + 1)
    lines = [" " * 8 + "".join(f"{s:>{w}}" for s in short)]
    for i, s in enumerate(short):
        lines.append(f"{s:<8}" + "".join(f"{v:>{w}}" for v in conf[i]))
    return "\n".join(lines)


def plot_confusion(conf: np.ndarray, labels: Sequence[str], path: str, title: str = "") -> None:
    """Confusion matrix PNG (row-normalised colours, counts written in the cells)."""
    from voice_gru.plots import save_png, subplots

    norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    n = len(labels)
    # at most ~30 inches: 1,200 labels (a folder per speaker) asked for a 27 GB image
    cell = min(0.55, 30 / max(n, 1))
    fig, ax = subplots(figsize=(2.0 + cell * n, 1.8 + cell * n))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    small = min(10.0, 18 * cell)  # points: names a cell high
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=small)
    ax.set_yticks(range(n), labels, fontsize=small)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n if cell >= 0.3 else 0):  # counts in cells too small to read them: colour only
        for j in range(n):
            if conf[i, j]:
                ax.text(j, i, str(conf[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title)
    save_png(fig, path)
