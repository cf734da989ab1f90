"""GRUClassifier (forward == step, the documented GRU equations), clip pooling, checkpoints."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

torch.set_num_threads(1)  # small ops are ~1000x slower with oversubscribed threads on a 2-core box

from voice_gru.checkpoint_data import _read_archive  # noqa: E402
from voice_gru.config import FeatureConfig, ModelConfig  # noqa: E402
from voice_gru.data import task_labels  # noqa: E402
from voice_gru.errors import CheckpointError  # noqa: E402
from voice_gru.features import Normalizer, mfcc  # noqa: E402
from voice_gru.model import (ENSEMBLE_FORMAT, FORMAT, Checkpoint, Ensemble, GRUClassifier, State,  # noqa: E402
                             clip_posteriors, count_parameters, load_checkpoint, make_ensemble, min_combine, resolve_model,
                             save_checkpoint)

LABELS = tuple(task_labels("12"))
N_IN = FeatureConfig().n_mfcc


@pytest.fixture(scope="module")
def normalizer(clip_paths) -> Normalizer:
    """Normaliser fitted on the MFCC frames of the real clips in tests/data."""
    from voice_gru.audio import load_audio

    frames = torch.cat([mfcc(load_audio(p)) for p in clip_paths.values()])
    return Normalizer.fit(frames)


def make_model(conv: int, layers: int = 2, hidden: int = 24, seed: int = 0, kernel: int = 5,
               spectral: int = 0, spectral_layers: int = 1) -> GRUClassifier:
    torch.manual_seed(seed)
    cfg = ModelConfig(conv_channels=conv, conv_kernel=kernel, hidden=hidden, layers=layers, dropout=0.2,
                      spectral_channels=spectral, spectral_layers=spectral_layers)
    model = GRUClassifier(N_IN, len(LABELS), cfg).eval()
    if spectral:  # any fixed map will do here; test_spectral_map checks the real one
        model.set_spectral_map(torch.randn(N_IN, N_IN) / N_IN ** 0.5)
    return model


def make_ckpt(normalizer: Normalizer, conv: int = 16, spectral: int = 0) -> Checkpoint:
    return Checkpoint(make_model(conv, spectral=spectral), LABELS, FeatureConfig(), normalizer, "max",
                      {"yes": 0.61, "stop": 0.93}, {"smooth_ms": 120.0, "cooldown_ms": 500.0},
                      {"epoch": 3, "note": "unit test"})


# --------------------------------------------------------------------------------------------
# forward == step


@pytest.mark.parametrize("conv,kernel,spectral,spectral_layers",
                         [(0, 5, 0, 1), (16, 5, 0, 1), (8, 3, 0, 1), (0, 5, 4, 1), (8, 3, 4, 1), (8, 3, 4, 2)])
def test_step_over_chunks_equals_forward(conv, kernel, spectral, spectral_layers):
    model = make_model(conv, kernel=kernel, spectral=spectral, spectral_layers=spectral_layers)
    torch.manual_seed(1)
    x = torch.randn(3, 50, N_IN)  # batch > 1, rows differ
    with torch.no_grad():
        full = model(x)
        state = State(None, None)
        outs = []
        start = 0
        for size in (1, 7, 13, x.shape[1] - 21):
            y, state = model.step(x[:, start:start + size], state)
            assert y.shape == (3, size, len(LABELS))
            outs.append(y)
            start += size
    assert start == x.shape[1]
    stepped = torch.cat(outs, 1)
    assert full.shape == (3, 50, len(LABELS))
    assert (stepped - full).abs().max().item() < 1e-5
    assert state.h.shape == (2, 3, 24)
    context = (kernel - 1 if conv else 0) + (2 * spectral_layers if spectral else 0)  # spectral kernel (3, 5)
    assert model.context == context
    if context:
        assert state.conv.shape == (3, context, N_IN)
        # the carried buffer is the last input frames the front ends look back on
        assert torch.equal(state.conv, x[:, -context:])
    else:
        assert state.conv is None
    # batch rows are independent: row 1 alone gives the same logits
    with torch.no_grad():
        alone = model(x[1:2])
    assert (alone[0] - full[1]).abs().max().item() < 1e-5


def test_step_with_empty_chunk_keeps_state():
    model = make_model(16)
    x = torch.randn(2, 10, N_IN)
    with torch.no_grad():
        _, state = model.step(x, State(None, None))
        y, same = model.step(x[:, :0], state)
    assert y.shape == (2, 0, len(LABELS))
    assert same is state


def test_gru_matches_documented_equations():
    """An independent numpy implementation of the docstring's equations (1 layer, no conv)."""
    model = make_model(0, layers=1, hidden=16, seed=3)
    g = model.gru
    W_ih = g.weight_ih_l0.detach().double().numpy()
    W_hh = g.weight_hh_l0.detach().double().numpy()
    b_ih = g.bias_ih_l0.detach().double().numpy()
    b_hh = g.bias_hh_l0.detach().double().numpy()
    H = 16
    W_ir, W_iz, W_in = W_ih[:H], W_ih[H:2 * H], W_ih[2 * H:]
    W_hr, W_hz, W_hn = W_hh[:H], W_hh[H:2 * H], W_hh[2 * H:]
    b_ir, b_iz, b_in = b_ih[:H], b_ih[H:2 * H], b_ih[2 * H:]
    b_hr, b_hz, b_hn = b_hh[:H], b_hh[H:2 * H], b_hh[2 * H:]

    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 30, N_IN)).astype(np.float32)
    hs = np.zeros((2, 30, H))
    for b in range(2):
        h = np.zeros(H)
        for t in range(30):
            xt = x[b, t].astype(np.float64)
            r = sigmoid(W_ir @ xt + b_ir + W_hr @ h + b_hr)
            z = sigmoid(W_iz @ xt + b_iz + W_hz @ h + b_hz)
            n = np.tanh(W_in @ xt + b_in + r * (W_hn @ h + b_hn))
            h = (1 - z) * n + z * h
            hs[b, t] = h
    W_o = model.head.weight.detach().double().numpy()
    b_o = model.head.bias.detach().double().numpy()
    ref_logits = hs @ W_o.T + b_o

    with torch.no_grad():
        y, h_last = model.gru(torch.from_numpy(x))
        logits = model(torch.from_numpy(x))
    assert np.abs(y.double().numpy() - hs).max() < 1e-5
    assert np.abs(h_last[0].double().numpy() - hs[:, -1]).max() < 1e-5
    assert np.abs(logits.double().numpy() - ref_logits).max() < 1e-5


def test_conv_front_end_is_causal_relu_conv():
    """The conv front end: output frame t sees input frames t-k+1..t (zeros before the start)."""
    model = make_model(8, kernel=3, seed=4)
    x = torch.randn(1, 12, N_IN)
    with torch.no_grad():
        y, _ = model._front(x, None)
        w, b = model.conv.weight, model.conv.bias  # (C, n_in, k)
        padded = torch.cat([torch.zeros(1, 2, N_IN), x], 1)
        ref = torch.stack([torch.relu(torch.einsum("cik,ki->c", w, padded[0, t:t + 3]) + b) for t in range(12)])
        # changing a future frame leaves earlier outputs untouched
        x2 = x.clone()
        x2[0, 8] += 5.0
        y2, _ = model._front(x2, None)
    assert (y[0] - ref).abs().max().item() < 1e-5
    assert torch.equal(y2[0, :8], y[0, :8])
    assert not torch.equal(y2[0, 8:11], y[0, 8:11])


def test_spectral_front_end_is_conv_over_time_and_bands():
    """Output frame t, channel c, band b: ReLU of the kernel over bands b·s-2..b·s+2 (zero-padded) of
    the mapped frames t-2..t (zeros before the start), in (channel, band) order; causal."""
    model = make_model(0, spectral=3, seed=5)
    x = torch.randn(1, 10, N_IN)
    with torch.no_grad():
        y, _ = model._front(x, None)
        w, b = model.spectral.weight[:, 0], model.spectral.bias  # (C, 3, 5)
        z = torch.cat([torch.zeros(2, N_IN), x[0]]) @ model.spectral_map.T  # (12, bands)
        z = torch.nn.functional.pad(z, (2, 2))
        n_out = (N_IN - 1) // 2 + 1
        ref = torch.zeros(10, 3, n_out)
        for t in range(10):
            for c in range(3):
                for j in range(n_out):
                    ref[t, c, j] = torch.relu((w[c] * z[t:t + 3, 2 * j:2 * j + 5]).sum() + b[c])
        x2 = x.clone()
        x2[0, 6] += 5.0
        y2, _ = model._front(x2, None)
    assert y.shape == (1, 10, 3 * n_out)
    assert (y[0] - ref.reshape(10, -1)).abs().max().item() < 1e-5
    assert torch.equal(y2[0, :6], y[0, :6])


def test_second_spectral_layer_doubles_channels_and_halves_bands():
    """``spectral_layers: 2``: a second causal Conv2d (3 channels -> 6, stride 2 along the bands) over
    the first one's ReLU output, the input preceded by zero frames as for one layer."""
    model = make_model(0, spectral=3, spectral_layers=2, seed=6)
    x = torch.randn(1, 10, N_IN)
    with torch.no_grad():
        y, _ = model._front(x, None)
        z = (torch.cat([torch.zeros(4, N_IN), x[0]]) @ model.spectral_map.T)[None, None]  # (1, 1, 14, bands)
        conv1, conv2 = model.spectral, model.spectral_more[0]
        h = torch.relu(F.conv2d(F.pad(z, (2, 2)), conv1.weight, conv1.bias, stride=(1, 2)))  # (1, 3, 12, 20)
        ref = torch.relu(F.conv2d(F.pad(h, (2, 2)), conv2.weight, conv2.bias, stride=(1, 2)))  # (1, 6, 10, 10)
    assert conv2.weight.shape == (6, 3, 3, 5)
    assert ref.shape == (1, 6, 10, 10)
    assert y.shape == (1, 10, 60)
    assert (y[0] - ref[0].permute(1, 0, 2).reshape(10, -1)).abs().max().item() < 1e-5


def test_spectral_map_inverts_the_dct(clip_paths):
    """``x @ M.T`` of normalised MFCC frames is the log-mel spectrum (computed without any DCT)
    minus the per-band mean the normaliser implies, over the per-band scale; zero mean per band."""
    from voice_gru.audio import load_audio
    from voice_gru.features import mel_power
    from voice_gru.model import spectral_map

    feat = FeatureConfig()
    audio = [load_audio(p) for p in clip_paths.values()]
    frames = torch.cat([mfcc(a) for a in audio]).double()
    logmel = torch.cat([torch.log(mel_power(a, feat).double() + feat.log_offset) for a in audio])
    norm = Normalizer.fit(frames)
    m = spectral_map(feat, norm).double()
    z = norm(frames) @ m.T
    assert z.shape == logmel.shape
    assert z.mean(0).abs().max().item() < 1e-6  # centred per band
    assert 0.5 < z.std(0).mean().item() < 2.0  # scaled to about unit variance
    # undo the per-band scale: what remains is log-mel minus its mean, to float32 MFCC precision
    scale = (logmel - logmel.mean(0)).std(0) / z.std(0)
    assert ((z * scale - (logmel - logmel.mean(0))).abs().max() / logmel.std()).item() < 1e-3
    with pytest.raises(ValueError, match="n_mfcc == n_mels"):
        spectral_map(FeatureConfig(n_mfcc=13), norm)


# --------------------------------------------------------------------------------------------
# clip pooling


def _logits(probs) -> torch.Tensor:
    return torch.log(torch.tensor(probs, dtype=torch.float64))


PROBS = [  # (B=2, T=3, C=3)
    [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.5, 0.2, 0.3]],
    [[0.6, 0.3, 0.1], [0.4, 0.2, 0.4], [0.9, 0.05, 0.05]],
]


def test_clip_posteriors_last_and_mean():
    p = np.array(PROBS)
    last = clip_posteriors(_logits(PROBS), "last").numpy()
    mean = clip_posteriors(_logits(PROBS), "mean").numpy()
    np.testing.assert_allclose(last, p[:, -1], atol=1e-12)
    np.testing.assert_allclose(mean, p.mean(1), atol=1e-12)


def test_clip_posteriors_max_with_silence_index():
    got = clip_posteriors(_logits(PROBS), "max", silence_index=0).numpy()
    # clip 0: peaks 0.8, 0.7, 0.3 -> silence = 1 - max(0.7, 0.3) = 0.3
    # clip 1: peaks 0.9, 0.3, 0.4 -> silence = 1 - 0.4 = 0.6
    np.testing.assert_allclose(got, [[0.3, 0.7, 0.3], [0.6, 0.3, 0.4]], atol=1e-12)
    # silence at another index
    got2 = clip_posteriors(_logits(PROBS), "max", silence_index=2).numpy()
    np.testing.assert_allclose(got2, [[0.8, 0.7, 0.2], [0.9, 0.3, 0.1]], atol=1e-12)
    # no silence class: plain peaks
    got3 = clip_posteriors(_logits(PROBS), "max", silence_index=None).numpy()
    np.testing.assert_allclose(got3, [[0.8, 0.7, 0.3], [0.9, 0.3, 0.4]], atol=1e-12)


def test_clip_posteriors_unknown_pooling():
    with pytest.raises(ValueError, match="attention"):
        clip_posteriors(_logits(PROBS), "attention")


def test_the_poolings_a_config_accepts_are_the_ones_clip_posteriors_knows():
    """model.pooling is checked when a recipe is loaded: a typo once trained an epoch, then KeyError: 'val_acc_avg'."""
    from voice_gru.config import POOLINGS as CONFIG_POOLINGS
    from voice_gru.errors import ConfigError
    from voice_gru.model import POOLINGS

    assert POOLINGS is CONFIG_POOLINGS
    for p in POOLINGS:
        assert ModelConfig(pooling=p).pooling == p
        assert clip_posteriors(_logits(PROBS), p).shape == (2, 3)
    with pytest.raises(ConfigError, match=r"^ModelConfig.pooling = 'avg': must be one of max, mean, last$"):
        ModelConfig(pooling="avg")


# --------------------------------------------------------------------------------------------
# checkpoints


def test_checkpoint_round_trip(tmp_path, normalizer):
    for conv, spectral in ((0, 0), (16, 0), (16, 4)):
        ckpt = make_ckpt(normalizer, conv, spectral)
        path = tmp_path / f"m{conv}_{spectral}.pt"
        save_checkpoint(path, ckpt)
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp left
        got = load_checkpoint(path)
        assert not got.model.training
        assert got.labels == LABELS
        assert got.features == FeatureConfig()
        assert got.model.cfg == ckpt.model.cfg
        assert got.normalizer == normalizer
        assert got.pooling == "max"
        assert got.thresholds == {"yes": 0.61, "stop": 0.93}
        assert got.decision == {"smooth_ms": 120.0, "cooldown_ms": 500.0}
        assert got.meta == {"epoch": 3, "note": "unit test"}
        assert got.silence_index == 0
        x = torch.randn(2, 33, N_IN)
        with torch.no_grad():
            assert torch.equal(got.model(x), ckpt.model(x))
        for k, v in ckpt.model.state_dict().items():
            assert torch.equal(got.model.state_dict()[k], v)


def test_checkpoint_empty_extras_round_trip(tmp_path, normalizer):
    ckpt = Checkpoint(make_model(0), LABELS, FeatureConfig(), normalizer)
    save_checkpoint(tmp_path / "m.pt", ckpt)
    got = load_checkpoint(tmp_path / "m.pt")
    assert got.thresholds == {} and got.decision == {} and got.meta == {}


def _raises_with_path(path: Path, match: str | None = None) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    if match:
        assert match in str(info.value)
    return info.value


def test_load_missing_file(tmp_path):
    _raises_with_path(tmp_path / "nope.pt", "not found")


def test_load_text_file(tmp_path):
    p = tmp_path / "notes.pt"
    p.write_text("this is not a checkpoint\n")
    _raises_with_path(p)


def test_load_truncated_checkpoint(tmp_path, normalizer):
    p = tmp_path / "m.pt"
    save_checkpoint(p, make_ckpt(normalizer))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    _raises_with_path(p)


def test_load_wrong_format(tmp_path, normalizer):
    p = tmp_path / "other.pt"
    torch.save({"format": "someone_else/9", "weights": {}}, p)
    _raises_with_path(p, "someone_else/9")
    q = tmp_path / "list.pt"
    torch.save([1, 2, 3], q)
    _raises_with_path(q, "format")
    r = tmp_path / "state_dict.pt"  # a bare state dict, as torch.save(model.state_dict()) writes
    torch.save(make_model(0).state_dict(), r)
    _raises_with_path(r, "format")


class _Evil:
    """Unpickling this calls open(marker, 'w'): creating the marker file proves code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_load_malicious_pickle_does_not_execute(tmp_path):
    marker = tmp_path / "pwned"
    raw = tmp_path / "evil_raw.pt"
    raw.write_bytes(pickle.dumps({"format": FORMAT, "x": _Evil(marker)}, protocol=2))
    zipped = tmp_path / "evil_zip.pt"
    torch.save({"format": FORMAT, "x": _Evil(marker)}, zipped)
    assert not marker.exists()
    for p in (raw, zipped):
        _raises_with_path(p)
        assert not marker.exists(), f"loading {p.name} executed code from the file"
    # the torch-free reader refuses the name itself (torch's weights-only loader then refuses it too)
    with pytest.raises(pickle.UnpicklingError, match="not a tensor or a plain value"):
        _read_archive(zipped)
    assert not marker.exists()
    # the payload is live: an unsafe load does run it (so the check above means something)
    with open(raw, "rb") as f:
        pickle.load(f).get("x").close()
    assert marker.exists()


def _tampered(tmp_path: Path, normalizer: Normalizer, edit) -> Path:
    src = tmp_path / "good.pt"
    save_checkpoint(src, make_ckpt(normalizer, conv=16))
    blob = torch.load(src, weights_only=True)
    edit(blob)
    out = tmp_path / "tampered.pt"
    torch.save(blob, out)
    return out


@pytest.mark.parametrize("edit", [
    lambda b: b["model_config"].update(hidden=48),  # weights of a 24-unit GRU, config says 48
    lambda b: b["model_config"].update(conv_channels=0),  # unexpected conv weights
    lambda b: b.update(n_in=13),
    lambda b: b.update(labels=b["labels"][:-1]),  # head has 12 outputs, 11 labels
    lambda b: b["weights"].pop("head.bias"),
    lambda b: b["features"].update(n_mfcc_typo=40),
    lambda b: b.pop("normalizer"),
    lambda b: b.update(thresholds=5),
], ids=["hidden", "conv", "n_in", "labels", "missing-weight", "features-key", "no-normalizer", "thresholds-type"])
def test_load_inconsistent_checkpoint(tmp_path, normalizer, edit):
    _raises_with_path(_tampered(tmp_path, normalizer, edit))


def test_resolve_model(tmp_path, normalizer, monkeypatch):
    import voice_gru.checkpoint_data as data_mod

    missing = tmp_path / "models" / "default.pt"
    monkeypatch.setattr(data_mod, "default_model_path", lambda: missing)
    with pytest.raises(CheckpointError) as info:
        resolve_model(None)
    assert str(missing) in str(info.value) and "train" in str(info.value)
    save_checkpoint(missing, make_ckpt(normalizer))
    assert resolve_model(None).labels == LABELS
    other = tmp_path / "other.pt"
    save_checkpoint(other, make_ckpt(normalizer, conv=0))
    assert resolve_model(other).model.conv is None
    _raises_with_path(tmp_path / "absent.pt")


# --------------------------------------------------------------------------------------------
# ensembles


def test_ensemble_forward_and_step():
    members = [make_model(16, seed=1), make_model(0, layers=1, seed=2), make_model(8, kernel=3, seed=3)]
    ens = Ensemble(members).eval()
    x = torch.randn(2, 40, N_IN)
    with torch.no_grad():
        want = (members[0](x) + members[1](x) + members[2](x)) / 3  # the mean of the members' logits
        assert torch.allclose(ens(x), want, atol=1e-6)
        state, outs = None, []
        for a, b in ((0, 1), (1, 8), (8, 8), (8, 40)):  # an empty chunk, then carried state
            y, state = ens.step(x[:, a:b], state)
            outs.append(y)
    assert torch.allclose(torch.cat(outs, 1), want, atol=1e-5)
    assert len(state) == 3 and state[1].conv is None
    assert count_parameters(ens) == sum(count_parameters(m) for m in members)



def test_min_combine_by_hand():
    # two members, classes (silence, unknown, yes, no): their posteriors chosen, logits = log of them
    p1 = torch.tensor([0.05, 0.05, 0.85, 0.05])  # sure of "yes"
    p2 = torch.tensor([0.10, 0.60, 0.20, 0.10])  # thinks it is some other word
    q = min_combine(torch.stack([p1.log(), p2.log()]), residual_class=1).exp()
    # min per class: 0.05, 0.05, 0.20, 0.05 (sum 0.35); the missing 0.65 goes to _unknown_
    assert torch.allclose(q, torch.tensor([0.05, 0.70, 0.20, 0.05]), atol=1e-6)
    assert torch.allclose(q.log().softmax(-1), q, atol=1e-6)  # a distribution: softmax gives it back
    same = min_combine(torch.stack([p1.log(), p1.log()]), residual_class=1).exp()  # agreement: unchanged
    assert torch.allclose(same, p1, atol=1e-6)


def test_min_ensemble_forward_and_step():
    members = [make_model(16, seed=1), make_model(0, layers=1, seed=2), make_model(8, kernel=3, seed=3)]
    ens = Ensemble(members, "min", residual_class=1).eval()
    x = torch.randn(2, 40, N_IN)
    with torch.no_grad():
        p = torch.stack([m(x).softmax(-1) for m in members])
        want = p.min(0).values
        want[..., 1] = 1 - (want.sum(-1) - want[..., 1])
        assert torch.allclose(ens(x).softmax(-1), want, atol=1e-6)
        state, outs = None, []
        for a, b in ((0, 1), (1, 8), (8, 8), (8, 40)):
            y, state = ens.step(x[:, a:b], state)
            outs.append(y)
    assert torch.allclose(torch.cat(outs, 1).softmax(-1), want, atol=1e-5)
    with pytest.raises(ValueError, match="residual class"):
        Ensemble(members, "min")
    with pytest.raises(ValueError, match="combination"):
        Ensemble(members, "median", 1)

def test_ensemble_rejects_mismatched_members():
    with pytest.raises(ValueError, match="differ"):
        Ensemble([make_model(0), GRUClassifier(N_IN, 5, ModelConfig(hidden=8, layers=1))])
    with pytest.raises(ValueError):
        Ensemble([])


def test_make_ensemble_round_trip(tmp_path, normalizer):
    a, b = make_ckpt(normalizer, 16), make_ckpt(normalizer, 0)
    ens = make_ensemble([a, b], ["a.pt", "b.pt"])
    assert ens.thresholds == {}  # an ensemble must be calibrated on its own scores
    assert ens.decision == a.decision and ens.meta["sources"] == ["a.pt", "b.pt"]
    save_checkpoint(tmp_path / "ens.pt", ens)
    assert torch.load(tmp_path / "ens.pt", weights_only=True)["format"] == ENSEMBLE_FORMAT
    got = load_checkpoint(tmp_path / "ens.pt")
    assert isinstance(got.model, Ensemble) and not got.model.training
    x = torch.randn(1, 30, N_IN)
    with torch.no_grad():
        assert torch.equal(got.model(x), ens.model(x))
        assert torch.allclose(got.model(x), (a.model(x) + b.model(x)) / 2, atol=1e-6)
    # an ensemble of an ensemble and a model is flat: three members
    assert len(make_ensemble([got, make_ckpt(normalizer, 8)]).model.members) == 3
    with pytest.raises(CheckpointError, match="members 1 and 3 of .* have the same weights"):
        make_ensemble([got, a])  # a member already inside: a copy adds nothing but compute
    with pytest.raises(CheckpointError, match="one model: an ensemble needs two members or more"):
        make_ensemble([a])
    assert make_ensemble([make_ensemble([a, b], combine="min"), make_ckpt(normalizer, 8)]).model.combine == "mean"
    assert make_ensemble([make_ensemble([a, b], combine="min")], combine=None).model.combine == "min"  # kept
    # min combination survives the round trip; checkpoints written before it load as mean
    mn = make_ensemble([a, b], combine="min")
    save_checkpoint(tmp_path / "min.pt", mn)
    got_min = load_checkpoint(tmp_path / "min.pt")
    assert (got_min.model.combine, got_min.model.residual_class) == ("min", LABELS.index("_unknown_"))
    with torch.no_grad():
        assert torch.equal(got_min.model(x), mn.model(x)) and not torch.allclose(got_min.model(x), got.model(x))
    old = torch.load(tmp_path / "ens.pt", weights_only=True)
    del old["combine"], old["residual_class"]
    torch.save(old, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").model.combine == "mean"
    # a damaged member is reported with its position
    blob = torch.load(tmp_path / "ens.pt", weights_only=True)
    blob["members"][1]["weights"].pop("head.bias")
    torch.save(blob, tmp_path / "bad.pt")
    _raises_with_path(tmp_path / "bad.pt", "damaged")


def test_make_ensemble_mismatches(normalizer):
    a = make_ckpt(normalizer, 16)
    other_labels = Checkpoint(GRUClassifier(N_IN, 3), ("a", "b", "c"), FeatureConfig(), normalizer)
    with pytest.raises(CheckpointError, match="b.pt: labels"):
        make_ensemble([a, other_labels], ["a.pt", "b.pt"])
    shifted = Normalizer(tuple(m + 1.0 for m in normalizer.mean), normalizer.std)
    with pytest.raises(CheckpointError, match="normaliser"):
        make_ensemble([a, Checkpoint(make_model(0), LABELS, FeatureConfig(), shifted, "max")])
    with pytest.raises(CheckpointError, match="feature"):
        make_ensemble([a, Checkpoint(make_model(0), LABELS, FeatureConfig(f_max=7000.0), normalizer, "max")])
    with pytest.raises(CheckpointError, match="pooling"):
        make_ensemble([a, Checkpoint(make_model(0), LABELS, FeatureConfig(), normalizer, "last")])
