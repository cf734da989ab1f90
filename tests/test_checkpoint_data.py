"""Reading checkpoints without torch (``voice_gru.checkpoint_data``) and the live path that runs on it."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from voice_gru.checkpoint_data import CheckpointData, _read_archive, read_checkpoint_data, weight_shapes
from voice_gru.config import FeatureConfig, ModelConfig
from voice_gru.data import task_labels
from voice_gru.errors import CheckpointError
from voice_gru.features import Normalizer
from voice_gru.model import (Checkpoint, GRUClassifier, count_parameters, default_model_path, load_checkpoint, make_ensemble,
                             save_checkpoint)

REPO = Path(__file__).resolve().parents[1]
LABELS = tuple(task_labels("12"))
N_IN = FeatureConfig().n_mfcc
NORM = Normalizer(tuple(float(i) for i in range(N_IN)), tuple(1.0 + i / 10 for i in range(N_IN)))

CONFIGS = [
    ModelConfig(hidden=24, layers=1),
    ModelConfig(conv_channels=8, conv_kernel=3, hidden=16, layers=2),
    ModelConfig(spectral_channels=4, conv_channels=8, conv_kernel=3, hidden=16, layers=2),
    ModelConfig(spectral_channels=4, spectral_layers=3, spectral_kernel=(3, 3), spectral_stride=2, hidden=12, layers=3),
]


def _ckpt(cfg: ModelConfig, seed: int = 0) -> Checkpoint:
    torch.manual_seed(seed)
    model = GRUClassifier(N_IN, len(LABELS), cfg).eval()
    if cfg.spectral_channels:
        model.set_spectral_map(torch.randn(N_IN, N_IN))
    return Checkpoint(model, LABELS, FeatureConfig(), NORM, "max", {"yes": 0.6}, {"smooth_ms": 120.0}, {"epoch": 2})


@pytest.mark.parametrize("cfg", CONFIGS)
def test_weight_shapes_are_the_models(cfg):
    model = GRUClassifier(N_IN, len(LABELS), cfg)
    assert weight_shapes(cfg, N_IN, len(LABELS)) == {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("combine", [None, "mean", "min"])
def test_read_equals_torch_load(tmp_path, combine):
    if combine is None:
        ckpt = _ckpt(CONFIGS[2])
    else:
        ckpt = make_ensemble([_ckpt(CONFIGS[2], 0), _ckpt(CONFIGS[1], 1)], combine=combine)
    path = tmp_path / "m.pt"
    save_checkpoint(path, ckpt)
    got = read_checkpoint_data(path)
    blob = torch.load(path, weights_only=True)
    members = blob["members"] if combine else [blob]
    assert len(got.members) == len(members) and got.ensemble == (combine is not None)
    for m, ref in zip(got.members, members):
        assert set(m.weights) == set(ref["weights"])
        for k, v in ref["weights"].items():
            assert m.weights[k].dtype == np.float32 and np.array_equal(m.weights[k], v.numpy()), k
    assert (got.labels, got.features, got.normalizer, got.n_in) == (LABELS, FeatureConfig(), NORM, N_IN)
    assert got.n_parameters == count_parameters(ckpt.model)
    assert got.combine == (combine or "mean") and got.residual_class == (LABELS.index("_unknown_") if combine == "min" else None)
    assert (got.thresholds, got.decision, got.meta) == (dict(blob["thresholds"]), dict(blob["decision"]), dict(blob["meta"]))
    # the same arrays as the model in memory gives, and the same model built back from them
    mem = ckpt.data()
    for a, b in zip(mem.members, got.members):
        assert a.config == b.config and all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)
    back = load_checkpoint(path)
    for k, v in ckpt.model.state_dict().items():
        assert torch.equal(back.model.state_dict()[k], v), k


def test_a_bfloat16_checkpoint_is_read_as_float32(tmp_path):
    """NumPy has no bfloat16: torch's reader gave such weights to .numpy() and a TypeError came out of loading."""
    from voice_gru.stream import Recognizer

    ckpt = _ckpt(CONFIGS[1])
    ckpt.model.to(torch.bfloat16)
    path = tmp_path / "bf16.pt"
    save_checkpoint(path, ckpt)
    got = read_checkpoint_data(path)
    for k, v in ckpt.model.state_dict().items():
        assert got.members[0].weights[k].dtype == np.float32 and np.array_equal(got.members[0].weights[k], v.float().numpy())
    rows = Recognizer(got).push(np.random.default_rng(0).uniform(-0.1, 0.1, 16000).astype(np.float32))
    assert rows.shape[0] > 90 and np.isfinite(rows).all()


def test_reader_rebuilds_views_dtypes_and_shared_storage(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    obj = {
        "transposed": base.t(), "slice": base[1:, 2:5], "row": base[2], "step": base[::2, ::3], "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3), "f64": torch.linspace(0, 1, 7, dtype=torch.float64), "i64": torch.arange(-3, 4),
        "i32": torch.tensor([1, -2], dtype=torch.int32), "bool": torch.tensor([True, False, True]),
        "f16": torch.tensor([0.5, -2.0], dtype=torch.float16), "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "ordered": collections.OrderedDict(a=1, b=[2.5, "x", None, (1, 2)]),
    }
    path = tmp_path / "mixed.pt"
    torch.save(obj, path)
    got = _read_archive(path)
    assert set(got) == set(obj)
    for k, v in obj.items():
        if isinstance(v, torch.Tensor):
            assert got[k].dtype == v.numpy().dtype and got[k].shape == tuple(v.shape), k
            assert np.array_equal(got[k], v.numpy()), k
    assert got["ordered"] == obj["ordered"]
    got["row"][0] = -1  # views of one storage come back as arrays of their own
    assert got["transposed"][0, 2] == 12.0


@pytest.mark.parametrize("edit,needle", [
    (lambda b: b["model_config"].update(hidden=48), "gru.bias_hh_l0"),
    (lambda b: b.update(labels=b["labels"][:-1]), "head.bias"),
    (lambda b: b["weights"].pop("conv.bias"), "conv.bias"),
    (lambda b: b["weights"].update(extra=torch.zeros(2)), "extra"),
    (lambda b: b.update(n_in=13), "conv.weight"),
    # contents that loaded before and then gave NaN posteriors, silence or a broadcast error
    (lambda b: b["normalizer"].update(mean=b["normalizer"]["mean"][:-1]), "normaliser of 39/40 values"),
    (lambda b: b["normalizer"].update(std=[0.0] * 40), "std not above 0"),
    (lambda b: b["weights"]["head.bias"].__setitem__(0, float("nan")), "weight head.bias is not finite"),
    (lambda b: b.update(labels=["yes"] * len(b["labels"])), "repeated"),
    (lambda b: b.update(thresholds={"yes": float("nan")}), "stored threshold yes=nan"),
    (lambda b: b.update(thresholds={"maybe": 0.5}), "stored threshold maybe=0.5"),
    (lambda b: b.update(decision={"smooth_ms": -250.0}), "decision.smooth_ms = -250.0: must be from 0 to 2000 ms"),
    (lambda b: b["features"].update(hop_ms=0.0), "features.hop_ms = 0.0: must be above 0"),
])
def test_inconsistent_contents_are_named(tmp_path, edit, needle):
    """The live path builds its network from these arrays without torch's load_state_dict: a
    mismatch or a value it would misread is one error naming the file and what is wrong, not a
    failure (or NaN posteriors, or silence) inside the first chunk."""
    src = tmp_path / "good.pt"
    save_checkpoint(src, _ckpt(CONFIGS[1]))
    blob = torch.load(src, weights_only=True)
    edit(blob)
    bad = tmp_path / "bad.pt"
    torch.save(blob, bad)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint_data(bad)
    assert str(bad) in str(info.value) and needle in str(info.value), info.value


def test_bytes_damaged_inside_the_archive_are_refused(tmp_path):
    """torch's own loader does not check the archive's CRCs: a flipped byte in a weight would load."""
    src = tmp_path / "good.pt"
    save_checkpoint(src, _ckpt(CONFIGS[1]))
    with zipfile.ZipFile(src) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)  # the largest storage: weights
    raw = bytearray(src.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + info.file_size // 2] ^= 0xFF
    bad = tmp_path / "bad.pt"
    bad.write_bytes(bytes(raw))
    torch.load(bad, weights_only=True)  # torch reads it without complaint ...
    with pytest.raises(CheckpointError, match="damaged checkpoint .Bad CRC"):  # ... this reader does not
        read_checkpoint_data(bad)


@pytest.mark.parametrize("edit", [
    lambda b: b.update(combine="median"),
    lambda b: b.update(residual_class=None),
    lambda b: b.update(residual_class=12),
], ids=["combine", "no-residual", "residual-out-of-range"])
def test_inconsistent_combination_is_refused(tmp_path, edit):
    """A min-combined ensemble without its residual class would run as a mean in the live path: refused."""
    src = tmp_path / "min.pt"
    save_checkpoint(src, make_ensemble([_ckpt(CONFIGS[1], 0), _ckpt(CONFIGS[1], 1)], combine="min"))
    blob = torch.load(src, weights_only=True)
    edit(blob)
    bad = tmp_path / "bad.pt"
    torch.save(blob, bad)
    with pytest.raises(CheckpointError, match="damaged checkpoint .members combined by"):
        read_checkpoint_data(bad)


def test_default_model_reads_as_data():
    data = read_checkpoint_data(None)
    assert isinstance(data, CheckpointData) and data.data() is data
    assert data.labels == load_checkpoint(default_model_path()).labels


# the base install: none of pyproject.toml's `train` extra can be imported
_BASE_INSTALL = "import sys\nfrom voice_gru.cli import TRAIN_EXTRA, main\nsys.modules.update(dict.fromkeys(TRAIN_EXTRA))\n"
_NO_TORCH = _BASE_INSTALL + """
import json
import numpy as np
import soundfile as sf
from voice_gru import CommandSpotter
audio, sr = sf.read(sys.argv[1], dtype="float32")
spotter = CommandSpotter()
events = [c for i in range(0, audio.size, 1600) for c in spotter.process(audio[i:i + 1600])]
print(json.dumps([[c.label, c.t, c.score] for c in events]))
"""


def test_live_path_runs_without_torch():
    """CommandSpotter and `voice-gru listen` on the shipped model run on the base install (no torch,
    torchaudio, librosa, scipy, matplotlib or tqdm), and hear what the same spotter hears with the
    model loaded through torch."""
    example = REPO / "voice_gru" / "assets" / "example.wav"
    run = subprocess.run([sys.executable, "-c", _NO_TORCH, str(example)], capture_output=True, text=True, cwd=REPO,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    alone = json.loads(run.stdout.strip().splitlines()[-1])
    import soundfile as sf

    from voice_gru.spotter import CommandSpotter

    audio, _ = sf.read(example, dtype="float32")
    spotter = CommandSpotter(load_checkpoint(default_model_path()))
    with_torch = [c for i in range(0, audio.size, 1600) for c in spotter.process(audio[i:i + 1600])]
    assert len(alone) == len(with_torch) >= 2
    for (label, t, score), c in zip(alone, with_torch):
        assert label == c.label and abs(t - c.t) < 1e-9 and abs(score - c.score) < 1e-5

    cli = _BASE_INSTALL + f"sys.exit(main(['listen', '--input', {str(example)!r}, '--no-view']))"
    run = subprocess.run([sys.executable, "-c", cli], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    printed = [line.split() for line in run.stdout.splitlines() if line.strip().endswith(tuple("0123456789")) and "score" in line]
    assert [(p[1], p[0]) for p in printed] == [(label, f"{t:.2f}s") for label, t, _ in alone]
    # a set of commands' point (its rate's upper bound) needs no SciPy either
    cli = _BASE_INSTALL + (f"sys.exit(main(['listen', '--input', {str(example)!r}, '--no-view', '--commands', 'stop', "
                           "'go', '--false-accepts-per-hour', '1']))")
    run = subprocess.run([sys.executable, "-c", cli], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0 and "at 95% confidence" in run.stderr, run.stderr[-2000:]



def test_a_room_stream_is_made_without_the_train_extra(tmp_path):
    """`make-stream --rt60` (a room's echo) is the base install's too: the convolution is NumPy's."""
    from tests.tiny_data import make_tiny_dataset

    root = make_tiny_dataset(tmp_path / "data")
    argv = ["make-stream", "--data-dir", str(root), "--split", "testing", "--minutes", "0.2", "--rt60", "0.5",
            "--out", str(tmp_path / "room.wav")]
    run = subprocess.run([sys.executable, "-c", _BASE_INSTALL + f"sys.exit(main({argv!r}))"], capture_output=True,
                         text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "room.wav").stat().st_size > 0 and json.loads((tmp_path / "room.json").read_text())["events"]

def test_base_install_errors_are_one_line(tmp_path):
    """Without the `train` extra: a training-side command names what to install; a file that is not a
    checkpoint is reported as such (not as missing torch, which would only have read it the same way)."""
    example = REPO / "voice_gru" / "assets" / "example.wav"
    bad = tmp_path / "notes.pt"
    bad.write_text("not a checkpoint\n")
    cases = [
        (["evaluate", str(example)], "voice-gru: error: `voice-gru evaluate` needs torch, which is not installed (the base "
         "install listens; training, evaluation and calibration need the train extra: from a clone, "
         "pip install -c constraints.txt '.[train]', or scripts/setup.sh)"),
        (["evaluate-stream", "--input", str(example), "--det", str(tmp_path / "det.png")],
         "voice-gru: error: `voice-gru evaluate-stream` needs matplotlib, which is not installed (the base "
         "install listens; training, evaluation and calibration need the train extra: from a clone, "
         "pip install -c constraints.txt '.[train]', or scripts/setup.sh)"),
        (["listen", "--input", str(example), "--model", str(bad), "--no-view"],
         f"voice-gru: error: {bad}: not a voice_gru checkpoint (not a PyTorch file, or one cut short: no zip archive, no pickle)"),
    ]
    for argv, line in cases:
        run = subprocess.run([sys.executable, "-c", _BASE_INSTALL + f"sys.exit(main({argv!r}))"], capture_output=True,
                             text=True, cwd=REPO, timeout=300)
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
        assert run.stderr.strip().splitlines()[-1] == line


def test_train_extra_is_what_the_cli_names():
    import re

    from voice_gru.cli import TRAIN_EXTRA

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower() for d in project["optional-dependencies"]["train"]}
    assert names == set(TRAIN_EXTRA)
    base = {re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    assert not base & names and "torch" not in base


@pytest.mark.parametrize("edit, message", [
    (lambda b: b.pop("members"), "missing key 'members'"),  # was "damaged checkpoint ('members')", a KeyError's repr
    (lambda b: b["members"][1].pop("weights"), "missing key 'weights'"),
    (lambda b: b.update(pooling="avg"), "clip pooling 'avg': not one of max, mean, last"),
    (lambda b: b["members"][0]["model_config"].update(pooling="avg"), "pooling = 'avg': must be one of max, mean, last"),
    # each of these once ended `listen` in a traceback or let it score every word wrong
    (lambda b: b.update(members=[]), "an ensemble without members"),
    (lambda b: b.update(labels=list(range(len(b["labels"])))), "labels [0, 1, 2"),  # was "stored threshold yes=..."
    (lambda b: b["members"][0]["weights"].update(
        {"head.bias": b["members"][0]["weights"]["head.bias"].to(torch.int64)}), "head.bias of member 0 holds int64"),
    (lambda b: b.update(meta={"calibration": {"target_fa_per_hour": 1.0}}),
     "calibration: achieved_fa_per_hour is None, not a number"),
    (lambda b: b.update(meta={"calibration": {"target_fa_per_hour": 1.0, "achieved_fa_per_hour": 0.5, "recall": 0.8,
                                              "operating_points": [{"target_fa_per_hour": 1.0, "fa_per_hour": 0.5,
                                                                    "recall": 0.8, "thresholds": {"stop": "high"}}]}}),
     "calibration operating point 0: thresholds are not a mapping of labels"),
    # read by `listen --commands ... --false-accepts-per-hour`: a traceback there
    (lambda b: b.update(meta={"calibration": {"target_fa_per_hour": 1.0, "achieved_fa_per_hour": 0.5, "recall": 0.8,
                                              "command_free_hours": -1.0}}),
     "calibration: command_free_hours is -1.0, not a number of at least 0"),
    (lambda b: b.update(meta={"calibration": {"target_fa_per_hour": 1.0, "achieved_fa_per_hour": 0.5, "recall": 0.8,
                                              "operating_points": [{"target_fa_per_hour": 1.0, "fa_per_hour": 0.5,
                                                                    "recall": 0.8, "thresholds": {},
                                                                    "by_command": {"stop": {"fa_per_hour": "0.1",
                                                                                            "recall": None}}}]}}),
     "calibration operating point 0 by_command.stop: fa_per_hour is '0.1'"),
], ids=["no-members", "member-without-weights", "pooling", "member-pooling", "empty-ensemble", "integer-labels",
        "integer-weights",
        "calibration-keys", "calibration-point", "calibration-hours", "calibration-by-command"])
def test_missing_keys_and_unknown_choices_are_named(tmp_path, edit, message):
    src = tmp_path / "ens.pt"
    save_checkpoint(src, make_ensemble([_ckpt(CONFIGS[1], 0), _ckpt(CONFIGS[1], 1)]))
    blob = torch.load(src, weights_only=True)
    edit(blob)
    bad = tmp_path / "bad.pt"
    torch.save(blob, bad)
    for read in (read_checkpoint_data, load_checkpoint):
        with pytest.raises(CheckpointError) as info:
            read(bad)
        assert str(info.value).startswith(f"{bad}") and message in str(info.value) and "\n" not in str(info.value)


def _run_folder(tmp_path: Path, *names: str) -> Path:
    """A run folder as voice_gru.train leaves it: state.pt (weights, optimiser, history; no labels) and ``names``."""
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    model = GRUClassifier(N_IN, len(LABELS), CONFIGS[0])
    opt = torch.optim.AdamW(model.parameters())
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": {}, "epoch": 0,
                "history": [], "best": {"epoch": 1, "score": 0.5}, "config": {}, "ema": None}, run / "state.pt")
    for name in names:
        save_checkpoint(run / name, _ckpt(CONFIGS[0]))
    return run


@pytest.mark.parametrize("names, use", [
    (("best.pt", "last.pt"), "use {run}/best.pt or last.pt"),
    (("last.pt",), "use {run}/last.pt"),
    ((), "use its run's best.pt or last.pt"),
])
def test_a_training_state_is_not_a_model(tmp_path, names, use):
    """--model runs/r/state.pt was "unsupported checkpoint format None (expected 'voice_gru.checkpoint/1' ...)"."""
    run = _run_folder(tmp_path, *names)
    for read in (read_checkpoint_data, load_checkpoint):
        with pytest.raises(CheckpointError) as info:
            read(run / "state.pt")
        assert str(info.value) == f"{run}/state.pt: is a training state (for resuming), not a model: " + use.format(run=run)


def test_a_folder_is_not_a_checkpoint(tmp_path):
    """--model runs/r was "runs/r: checkpoint file not found"."""
    run = _run_folder(tmp_path, "best.pt", "last.pt")
    with pytest.raises(CheckpointError) as info:
        read_checkpoint_data(run)
    assert str(info.value) == f"{run}: is a folder; give a checkpoint file such as {run}/best.pt"
    (run / "best.pt").unlink()
    with pytest.raises(CheckpointError, match=f"^{run}: is a folder; give a checkpoint file such as {run}/last.pt$"):
        load_checkpoint(run)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint_data(tmp_path / "runs")  # best.pt is named only where it is
    assert str(info.value) == f"{tmp_path}/runs: is a folder; give a checkpoint file (a .pt file that voice-gru train writes)"
    with pytest.raises(CheckpointError, match="^/dev/null: not a regular file"):  # it exists: "not found" misled
        read_checkpoint_data("/dev/null")


def test_a_plain_pickle_as_a_model_is_one_line(tmp_path):
    """torch's "Detected pickle protocol 4" warning came as two lines before the error."""
    import pickle

    bad = tmp_path / "plain.pt"
    bad.write_bytes(pickle.dumps({"weights": [1, 2]}, protocol=4))
    example = REPO / "voice_gru" / "assets" / "example.wav"
    # a process of its own: pytest would have caught the warning, not let it reach stderr
    run = subprocess.run([sys.executable, "-m", "voice_gru.cli", "listen", "--input", str(example), "--model", str(bad),
                          "--no-view"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert f"{bad}: not a readable voice_gru checkpoint" in run.stderr


def test_crafted_files_cost_no_memory_hang_or_harm_to_later_reads(tmp_path):
    """A security review's files: a stride-0 tensor of 2 KB copied into gigabytes; a compressed storage inflated
    (by torch's loader, before its own size check) from 1 MB to 1 GB; lists nested 64 deep, each held twice, walked
    2**64 times; a pickle that set the dtype of the storage type every later file shared."""
    bomb = tmp_path / "stride.pt"
    torch.save({"x": torch.zeros(1).expand(2000, 1500)}, bomb)
    with pytest.raises(ValueError, match="more elements than its storage"):
        _read_archive(bomb)
    inflated = tmp_path / "zip.pt"
    torch.save({"x": torch.zeros(10, dtype=torch.uint8)}, tmp_path / "plain.pt")
    with zipfile.ZipFile(tmp_path / "plain.pt") as src, zipfile.ZipFile(inflated, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info.filename, data, zipfile.ZIP_DEFLATED if info.filename.endswith("/data/0") else zipfile.ZIP_STORED)
    with pytest.raises(CheckpointError, match="its storage 0 is compressed"):
        read_checkpoint_data(inflated)
    nested = tmp_path / "nested.pt"
    script = ("import torch; a = [1]\n"
              "for _ in range(64): a = [a, a]\n"
              f"torch.save({{'x': a, 's': torch.Size([1])}}, {str(nested)!r})\n"
              "from voice_gru.checkpoint_data import read_checkpoint_data\n"
              f"read_checkpoint_data({str(nested)!r})")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "CheckpointError" in run.stderr and "nested over 32 deep" in run.stderr, run.stderr[-500:]

    def text(x: str) -> bytes:
        return b"X" + len(x.encode()).to_bytes(4, "little") + x.encode()

    poison = tmp_path / "poison.pt"
    with zipfile.ZipFile(poison, "w") as z:  # BUILD {"dtype": "<f2"} onto torch.FloatStorage
        z.writestr("archive/data.pkl", b"\x80\x02ctorch\nFloatStorage\n}" + text("dtype") + text("<f2") + b"sb0}.")
        z.writestr("archive/byteorder", "little")
    before = read_checkpoint_data(default_model_path())
    with pytest.raises(CheckpointError):
        read_checkpoint_data(poison)
    after = read_checkpoint_data(default_model_path())
    assert all(np.array_equal(before.members[0].weights[k], after.members[0].weights[k]) for k in before.members[0].weights)
