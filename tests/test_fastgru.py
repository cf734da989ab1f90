"""FastGRU (NumPy inference) equals GRUClassifier.step: every config shape, chunked with carried state,
both recurrence kernels (compiled, NumPy), both sigmoids; and the Recognizer built on it equals offline torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # small ops are ~1000x slower with oversubscribed threads on a 2-core box

import voice_gru.fastgru as fastgru  # noqa: E402
from voice_gru.config import FeatureConfig, ModelConfig  # noqa: E402
from voice_gru.fastgru import FastEnsemble, FastGRU, FastState, fast_model, softmax  # noqa: E402
from voice_gru.kernels import KERNELS  # noqa: E402
from voice_gru.model import Ensemble, GRUClassifier, State, default_model_path, load_checkpoint  # noqa: E402

N_IN = FeatureConfig().n_mfcc
N_CLASSES = 12
TOL = 1e-4  # max |logit difference| (float32; observed ~1e-6)


def make_model(conv: int, layers: int, hidden: int = 24, kernel: int = 5, seed: int = 0,
               spectral: int = 0, spectral_kernel: tuple[int, int] = (3, 5), stride: int = 2,
               spectral_layers: int = 1) -> GRUClassifier:
    torch.manual_seed(seed)
    cfg = ModelConfig(conv_channels=conv, conv_kernel=kernel, hidden=hidden, layers=layers, dropout=0.3,
                      spectral_channels=spectral, spectral_kernel=spectral_kernel, spectral_stride=stride,
                      spectral_layers=spectral_layers)
    model = GRUClassifier(N_IN, N_CLASSES, cfg).eval()
    if spectral:
        model.set_spectral_map(torch.randn(N_IN, N_IN) / N_IN ** 0.5)
    with torch.no_grad():  # larger than the default init, so that gates saturate and errors would show
        for p in model.parameters():
            p.mul_(2.0)
    return model


def chunked(model: GRUClassifier, net: FastGRU, x: torch.Tensor, sizes=(1, 7, 13)) -> tuple[float, State, FastState]:
    """Max |logit diff| over chunks ``sizes`` + the rest, each continuing from its carried state."""
    state, fstate = State(None, None), FastState(None, None)
    err, start = 0.0, 0
    for size in (*sizes, x.shape[1] - sum(sizes)):
        with torch.no_grad():
            ref, state = model.step(x[:, start:start + size], state)
        got, fstate = net.step(x[:, start:start + size].numpy(), fstate)
        assert got.shape == ref.shape and got.dtype == np.float32
        err = max(err, float(np.abs(got - ref.numpy()).max()))
        start += size
    return err, state, fstate


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("conv,kernel", [(0, 5), (16, 5), (8, 3)])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("recurrence", KERNELS)
def test_step_equals_torch_over_chunks(conv, kernel, layers, batch, recurrence):
    model = make_model(conv, layers, kernel=kernel, seed=layers * 10 + conv)
    net = FastGRU.from_model(model, recurrence)
    assert net.kernel == recurrence
    torch.manual_seed(1)
    x = torch.randn(batch, 60, N_IN) * 1.5  # rows differ
    err, state, fstate = chunked(model, net, x)
    assert err <= TOL
    # the carried state has the torch state's meaning: last kernel-1 input frames, h per layer
    assert fstate.h.shape == tuple(state.h.shape) == (layers, batch, 24)
    assert np.abs(fstate.h - state.h.numpy()).max() <= TOL
    if conv:
        assert fstate.conv.shape == tuple(state.conv.shape) == (batch, kernel - 1, N_IN)
        np.testing.assert_array_equal(fstate.conv, state.conv.numpy())
    else:
        assert fstate.conv is None


@pytest.mark.parametrize("conv,kernel", [(0, 5), (8, 3)])
@pytest.mark.parametrize("spectral_kernel,stride", [((3, 5), 2), ((2, 3), 3), ((1, 4), 1)])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("spectral_layers", [1, 2, 3])
def test_spectral_front_end_equals_torch_over_chunks(conv, kernel, spectral_kernel, stride, batch, spectral_layers):
    model = make_model(conv, 2, kernel=kernel, spectral=4, spectral_kernel=spectral_kernel, stride=stride, seed=7,
                       spectral_layers=spectral_layers)
    net = FastGRU.from_model(model)
    assert net.context == model.context
    torch.manual_seed(3)
    x = torch.randn(batch, 60, N_IN)
    err, state, fstate = chunked(model, net, x)
    assert err <= TOL
    if model.context:
        np.testing.assert_array_equal(fstate.conv, state.conv.numpy())


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("recurrence", KERNELS)
def test_shipped_size_model(batch, recurrence):
    """Hidden 128, conv 64: the shipped model's shape, in 1-, 10- and 150-frame chunks (the window mode's reruns)."""
    model = make_model(64, 2, hidden=128, seed=3)
    net = FastGRU.from_model(model, recurrence)
    torch.manual_seed(2)
    x = torch.randn(batch, 200, N_IN)
    err, _, _ = chunked(model, net, x, sizes=(1, 10, 150))
    assert err <= TOL


def test_sigmoid_without_scipy(monkeypatch):
    monkeypatch.setattr(fastgru, "_expit", lambda: None)
    x = np.linspace(-30, 30, 1001, dtype=np.float32)
    y = x.copy()
    fastgru._sigmoid_(y)
    np.testing.assert_allclose(y, torch.sigmoid(torch.from_numpy(x)).numpy(), atol=1e-6)
    model = make_model(16, 2)
    torch.manual_seed(4)
    err, _, _ = chunked(model, FastGRU.from_model(model, "numpy"), torch.randn(2, 40, N_IN))
    assert err <= TOL


@pytest.mark.parametrize("recurrence", KERNELS)
def test_state_conversions_and_edge_cases(recurrence):
    model = make_model(16, 2)
    net = FastGRU.from_model(model, recurrence)
    torch.manual_seed(5)
    x = torch.randn(2, 30, N_IN)
    with torch.no_grad():
        _, tstate = model.step(x[:, :12], State(None, None))
        ref, _ = model.step(x[:, 12:], tstate)
    # continue from a torch state; and back: FastState -> State continues the torch model
    got, fstate = net.step(x[:, 12:].numpy(), FastState.from_torch(tstate))
    assert np.abs(got - ref.numpy()).max() <= TOL
    _, f12 = net.step(x[:, :12].numpy(), None)
    with torch.no_grad():
        ref2, _ = model.step(x[:, 12:], f12.to_torch())
    assert np.abs(got - ref2.numpy()).max() <= TOL
    # explicit zero state == None state; empty chunk returns no frames and the same state
    a, _ = net.step(x.numpy(), net.initial_state(2))
    b, _ = net.step(x.numpy(), FastState(None, None))
    np.testing.assert_array_equal(a, b)
    empty, same = net.step(np.zeros((2, 0, N_IN), np.float32), fstate)
    assert empty.shape == (2, 0, N_CLASSES) and same is fstate
    # a broadcast (stride-0) batch and float64 input are accepted
    one = x[:1].numpy()
    c, _ = net.step(np.broadcast_to(one, (2,) + one.shape[1:]), None)
    d, _ = net.step(one.astype(np.float64), None)
    # equal to float32 rounding: BLAS kernels may round the rows of one product differently
    # (OpenBLAS's Haswell kernels on an AMD EPYC: 3.6e-7)
    assert np.abs(c[0] - c[1]).max() <= 1e-6
    assert np.abs(c[0] - d[0]).max() <= 1e-6
    # the input is never modified
    before = x.numpy().copy()
    net.step(x.numpy(), fstate)
    np.testing.assert_array_equal(x.numpy(), before)


def test_softmax_matches_torch():
    rng = np.random.default_rng(0)
    z = (rng.standard_normal((7, 12)) * 30).astype(np.float32)
    p = softmax(z)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, torch.from_numpy(z).softmax(-1).numpy(), atol=1e-7)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-6)


# --------------------------------------------------------------------------------------------
# the shipped model, through the Recognizer


def test_recognizer_with_shipped_model_equals_offline_torch():
    path = default_model_path()
    if not Path(path).is_file():
        pytest.skip(f"no trained model at {path}")
    from voice_gru.features import mfcc
    from voice_gru.stream import Recognizer

    ckpt = load_checkpoint(path)
    rng = np.random.default_rng(7)
    audio = (0.05 * rng.standard_normal(3 * 16000)).astype(np.float32)
    rec = Recognizer(ckpt, refresh_s=None)
    post = torch.from_numpy(np.concatenate([rec.push(audio[i:i + 1600]) for i in range(0, audio.size, 1600)]))
    with torch.no_grad():
        ref = ckpt.model(ckpt.normalizer(mfcc(audio, ckpt.features))[None])[0].softmax(-1)
    assert isinstance(post, torch.Tensor) and post.dtype == torch.float32
    assert post.shape == ref.shape
    assert (post - ref).abs().max().item() <= 1e-5
    # default refresh: identical to offline until the first switch of state copy (frame 300)
    rec = Recognizer(ckpt)
    post3 = torch.from_numpy(np.concatenate([rec.push(audio[i:i + 1600]) for i in range(0, audio.size, 1600)]))
    assert (post3[:300] - ref[:300]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("recurrence", KERNELS)
@pytest.mark.parametrize("combine", ["mean", "min"])
def test_ensemble_equals_torch_over_chunks(combine, recurrence):
    members = [make_model(16, 2, seed=1), make_model(0, 1, seed=2), make_model(8, 3, kernel=3, seed=3)]
    ens = Ensemble(members, combine, 1 if combine == "min" else None).eval()
    net = fast_model(ens, recurrence)
    assert all(m.kernel == recurrence for m in net.members)
    assert isinstance(net, FastEnsemble) and isinstance(fast_model(ens.members[0]), FastGRU)
    torch.manual_seed(4)
    x = torch.randn(2, 50, N_IN) * 1.5
    state, fstate, start = None, None, 0
    for size in (1, 7, 0, 13, 29):
        with torch.no_grad():
            ref, state = ens.step(x[:, start:start + size], state)
        got, fstate = net.step(x[:, start:start + size].numpy(), fstate)
        assert got.shape == ref.shape
        assert size == 0 or np.abs(got - ref.numpy()).max() <= TOL
        start += size
    # stream 0 of the batch followed by a fresh stream: stream 1 starts afresh, stream 0 continues
    z = fstate.take(0).cat(net.initial_state(1))
    more = x[:, :9].numpy()
    got, _ = net.step(more, z)
    fresh, _ = net.step(more[1:], None)
    cont, _ = net.step(more, fstate)
    assert np.abs(got[1] - fresh[0]).max() <= TOL and np.abs(got[0] - cont[0]).max() <= TOL
    assert np.abs(fstate.members[0].h).max() > 0  # take() copied: the original is untouched
    # posteriors: the softmax of step's logits, computed without the round trip through log
    with torch.no_grad():
        ref = ens.step(x[:, :20], None)[0].softmax(-1).numpy()
    post, _ = net.posteriors(x[:, :20].numpy(), None)
    assert np.abs(post - ref).max() <= 1e-5 and np.abs(post.sum(-1) - 1).max() <= 1e-5
    single, _ = net.members[0].posteriors(x[:, :20].numpy(), None)
    assert np.abs(single - softmax(net.members[0].step(x[:, :20].numpy(), None)[0])).max() == 0



def test_copies_of_one_input_share_the_front_end():
    """The recognizer's refresh runs two states on one input: once their front-end contexts agree, the
    front end runs once; the result equals running both streams in full."""
    model = make_model(8, 2, kernel=3, spectral=4, seed=11)
    net = FastGRU.from_model(model)
    torch.manual_seed(6)
    x = torch.randn(1, 30, N_IN).numpy()
    _, old = net.step(x[:, :20], None)  # a stream 20 frames in ...
    _, new = net.step(x[:, 16:20], None)  # ... and a fresh copy that has seen only its last 4 frames
    both = old.cat(new)
    assert net.context == 4 and np.array_equal(both.conv[0], both.conv[1])  # same front-end context
    front_batches = []
    spectral = net._spectral
    net._spectral = lambda xx, spec: front_batches.append(xx.shape[0]) or spectral(xx, spec)
    shared, s_state = net.step(np.broadcast_to(x[:, 20:], (2, 10, N_IN)), both)
    full, f_state = net.step(np.concatenate((x[:, 20:], x[:, 20:])), both)
    assert front_batches == [1, 2]
    assert np.abs(shared - full).max() <= 1e-6 and np.abs(shared[0] - shared[1]).max() > 1e-3  # the states differ
    assert np.abs(s_state.h - f_state.h).max() <= 1e-6 and np.array_equal(s_state.conv, f_state.conv)
    # different contexts (a copy that has just started from zeros) are not shared
    front_batches.clear()
    net.step(np.broadcast_to(x[:, 20:], (2, 10, N_IN)), old.cat(net.initial_state(1)))
    assert front_batches == [2]


@pytest.mark.parametrize("recurrence", KERNELS)
@pytest.mark.parametrize("cfg", [ModelConfig(conv_channels=16, conv_kernel=1, hidden=32),
                                 ModelConfig(spectral_channels=4, spectral_kernel=(1, 5), hidden=32)],
                         ids=["1-frame conv", "1-frame spectral"])
def test_a_front_end_without_past_frames_streams_past_a_state_refresh(cfg, recurrence):
    """A front end of 1-frame kernels carried an empty buffer where a fresh state has none: the live recognizer's
    first state refresh (1.5 s in) could not join them and ended the stream with a ValueError."""
    from voice_gru.model import Checkpoint
    from voice_gru.stream import Recognizer

    shipped = load_checkpoint(default_model_path())
    torch.manual_seed(0)
    model = GRUClassifier(N_IN, len(shipped.labels), cfg).eval()
    net = FastGRU.from_model(model, recurrence)
    assert net.context == 0 and net.initial_state().conv is None
    _, state = net.step(np.zeros((1, 5, N_IN), np.float32))
    assert state.conv is None  # the same form as a fresh state
    rec = Recognizer(Checkpoint(model, shipped.labels, shipped.features, shipped.normalizer), kernel=recurrence)
    audio = np.random.default_rng(0).standard_normal(16000 * 5).astype(np.float32) * 0.05
    rows = [rec.push(audio[i:i + 1600]) for i in range(0, audio.size, 1600)]
    assert rec.n == 498 and np.isfinite(np.concatenate(rows)).all()
