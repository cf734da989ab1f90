"""The compiled live-path kernels against independent references: NumPy's float64 tanh, torch's GRU."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from voice_gru import fastgru
from voice_gru.jit_kernels import dense, gru_recurrence, spectral_conv, tanh_array

torch.set_num_threads(1)


def test_fast_tanh_is_within_float32_rounding_of_tanh():
    x = np.concatenate([np.linspace(-30, 30, 600_001), [-np.inf, -9.0, 0.0, 9.0, np.inf]]).astype(np.float32)
    got = tanh_array(x).astype(np.float64)
    err = np.abs(got - np.tanh(x.astype(np.float64)))
    assert err.max() <= 4e-7, x[err.argmax()]
    assert np.all(np.abs(got) <= 1.0)
    np.testing.assert_array_equal(np.sign(got), np.sign(x))  # odd, and exactly 0 at 0


@pytest.mark.parametrize("batch,H", [(1, 32), (2, 32), (3, 32), (2, 19)])  # 19: columns left after fours
def test_gru_recurrence_equals_torch_gru(batch, H):
    torch.manual_seed(batch)
    n_in, T = 20, 17
    gru = torch.nn.GRU(n_in, H, batch_first=True)
    with torch.no_grad():  # larger than the default init, so that gates saturate and errors would show
        for p in gru.parameters():
            p.mul_(3.0)
    x = torch.randn(batch, T, n_in)
    h0 = torch.randn(1, batch, H) * 0.5
    with torch.no_grad():
        ref, ref_h = gru(x, h0)
    w_ih, w_hh, b_ih, b_hh = (t.detach().numpy() for t in (gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0))
    gi = (x.numpy() @ w_ih.T + b_ih).astype(np.float32)
    gi[..., :2 * H] += b_hh[:2 * H]
    h = h0[0].numpy().copy()
    y = np.empty((batch, T, H), np.float32)
    gru_recurrence(np.ascontiguousarray(gi), np.ascontiguousarray(w_hh.T), np.ascontiguousarray(b_hh[2 * H:]), h, y)
    assert np.abs(y - ref.numpy()).max() <= 2e-6
    np.testing.assert_array_equal(h, y[:, -1])  # the state is left at the last frame's
    assert np.abs(h - ref_h[0].numpy()).max() <= 2e-6


def test_a_broken_numba_falls_back_to_numpy(monkeypatch):
    from voice_gru.config import ModelConfig
    from voice_gru.model import GRUClassifier

    monkeypatch.setitem(sys.modules, "voice_gru.jit_kernels", None)  # import raises ImportError
    model = GRUClassifier(40, 12, ModelConfig(conv_channels=0, hidden=16, layers=1, spectral_channels=4)).eval()
    with pytest.warns(RuntimeWarning, match="compiled kernels unavailable"):
        net = fastgru.FastGRU.from_model(model)
    assert net.kernel == "numpy"
    x = torch.randn(1, 9, 40)
    with torch.no_grad():
        ref = model(x)
    assert np.abs(net.step(x.numpy())[0] - ref.numpy()).max() <= 1e-4
    with pytest.raises(ValueError, match="unknown GRU kernel 'cuda'"):
        fastgru.FastGRU.from_model(model, "cuda")


@pytest.mark.parametrize("c_in,kt,kf,stride", [(1, 3, 5, 2), (4, 2, 3, 1), (2, 1, 4, 3)])
def test_spectral_conv_equals_torch_conv2d(c_in, kt, kf, stride):
    torch.manual_seed(kt)
    conv = torch.nn.Conv2d(c_in, 6, (kt, kf), stride=(1, stride), padding=(0, kf // 2))
    y = torch.randn(2, c_in, 9, 13)  # (B, C_in, frames, bands), torch's layout
    with torch.no_grad():
        ref = torch.relu(conv(y)).permute(0, 2, 1, 3).numpy()  # (B, frames', C_out, bands')
    out = np.empty(ref.shape, np.float32)
    w = np.ascontiguousarray(conv.weight.detach().numpy().transpose(1, 2, 3, 0))
    spectral_conv(np.ascontiguousarray(y.permute(0, 2, 1, 3).numpy()), w, conv.bias.detach().numpy(), stride, out)
    assert np.abs(out - ref).max() <= 1e-5
    assert (out == 0).any() and (out > 0).any()  # the ReLU both cut and passed


@pytest.mark.parametrize("K,relu", [(64, False), (37, True)])  # 37: rows of w left after eights
def test_dense_equals_float64_product(K, relu):
    rng = np.random.default_rng(K)
    a = rng.standard_normal((10, K)).astype(np.float32)
    w = rng.standard_normal((K, 24)).astype(np.float32)
    bias = rng.standard_normal(24).astype(np.float32)
    ref = a.astype(np.float64) @ w + bias
    if relu:
        ref = np.maximum(ref, 0.0)
    out = np.empty((10, 24), np.float32)
    dense(a, w, bias, relu, out)
    assert np.abs(out - ref).max() <= 1e-4  # float32 sums of up to 64 products of magnitude ~3
    # overlapping windows of a longer array (the conv's frames): each row starts 3 values after the last
    flat = rng.standard_normal(3 * 9 + K).astype(np.float32)
    win = np.ndarray((10, K), np.float32, flat, 0, (12, 4))
    dense(win, w, bias, relu, out)
    ref = np.stack([flat[3 * i:3 * i + K] for i in range(10)]).astype(np.float64) @ w + bias
    assert np.abs(out - (np.maximum(ref, 0.0) if relu else ref)).max() <= 1e-4


@pytest.mark.parametrize("smooth_ms,min_ms,cool_ms", [(10, 10, 0), (250, 120, 800), (70, 30, 250)])
def test_compiled_detector_equals_numpy_detector(smooth_ms, min_ms, cool_ms):
    """The same events, scores and smoothed rows, whatever the chunking (the compiled detector is the
    live default; the NumPy one runs where numba cannot load)."""
    from test_decision import LABELS, _random_stream

    from voice_gru.config import DecisionConfig
    from voice_gru.decision import Detector

    p = np.concatenate([_random_stream(s, 1500) for s in (5, 6)])
    cfg = DecisionConfig(smooth_ms=smooth_ms, threshold=0.55, thresholds={"no": 0.7}, min_duration_ms=min_ms,
                         cooldown_ms=cool_ms)
    a, b = Detector(LABELS, cfg, kernel="numba"), Detector(LABELS, cfg, kernel="numpy")
    assert (a.kernel, b.kernel) == ("numba", "numpy")
    cuts = np.sort(np.random.default_rng(smooth_ms).choice(np.arange(1, p.shape[0]), size=300, replace=False))
    got_a, got_b = [], []
    for part in np.split(p, cuts):
        got_a += a.update(part)
        got_b += b.update(part)
        np.testing.assert_allclose(a.smoothed, b.smoothed, rtol=0, atol=1e-12)
    assert len(got_a) >= 10 and [(e.label, e.t) for e in got_a] == [(e.label, e.t) for e in got_b]
    np.testing.assert_allclose([e.score for e in got_a], [e.score for e in got_b], rtol=0, atol=1e-12)
    assert a.n == b.n == p.shape[0]


def test_building_a_net_compiles_every_kernel_its_steps_use():
    """Compilation (or loading from numba's cache) happens when the net is built, never in a live
    chunk: a step, alone or as a shared batch of two, the min-combination, the detector and the front
    end find every kernel already compiled for their arrays. In a fresh interpreter, so that no other test has compiled them first."""
    script = """
import numpy as np
from voice_gru.config import ModelConfig
from voice_gru.fastgru import FastEnsemble, FastGRU
from voice_gru.decision import Detector
from voice_gru.features import StreamingMFCC
from voice_gru.jit_kernels import dense, detector_chunk, gru_recurrence, mel_log_dct, softmax_min, spectral_conv
from voice_gru.model import GRUClassifier

model = GRUClassifier(40, 12, ModelConfig(conv_channels=8, hidden=16, layers=2, spectral_channels=4)).eval()
assert not gru_recurrence.signatures
net = FastGRU.from_model(model)
def signatures():
    return [list(k.signatures) for k in (gru_recurrence, spectral_conv, dense, detector_chunk, mel_log_dct, softmax_min)]
compiled = signatures()
x = np.random.default_rng(0).standard_normal((1, 10, 40)).astype(np.float32)
_, state = net.step(x)
_, state = net.step(np.broadcast_to(x, (2, 10, 40)), state.cat(state))
logits, _ = net.step(np.concatenate((x, x)), state)
det = Detector([str(i) for i in range(12)])
det.update(logits[0])
det.update(logits[0, :1].astype(np.float32))
FastEnsemble([net, net], residual_class=1).posteriors(x)
StreamingMFCC().push(np.zeros(1600, np.float32))
assert all(compiled) and signatures() == compiled, (compiled, signatures())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
