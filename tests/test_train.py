"""Training on a tiny dataset: run files, checkpoint contents, reproducibility, resume, kill -9,
Ctrl-C and DDP under torchrun.

The dataset (tests/tiny_data.py) is 30 one-second clips built from tests/data plus generated noise;
the recipe is configs/tiny.yaml (a 16-unit GRU, 2 epochs). Every run uses one torch thread: the
numbers are then identical from run to run on one machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from tiny_data import REPO, TINY_CONFIG, make_tiny_dataset
from voice_gru import SILENCE, UNKNOWN, VoiceGruError
import voice_gru.train as train_module
from voice_gru.cli import main
from voice_gru.config import load_config, to_dict
from voice_gru.data import dataset_fingerprint, task_labels
from voice_gru.errors import CheckpointError, ConfigError, DatasetError
from voice_gru.features import Normalizer
from voice_gru.model import load_checkpoint, save_checkpoint
from voice_gru.train import train

PNG = b"\x89PNG\r\n\x1a\n"
VAL_KEYS = ("val_acc_max", "val_acc_mean", "val_acc_last")


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "speech_commands")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("feature_cache")


@pytest.fixture(scope="module")
def tiny_cfg():
    return load_config(TINY_CONFIG)


@pytest.fixture(scope="module")
def baseline(tiny_root, tiny_cfg, cache, tmp_path_factory):
    """One uninterrupted tiny run: (run dir, summary)."""
    out = tmp_path_factory.mktemp("baseline") / "run"
    torch.set_num_threads(2)
    summary = train(tiny_cfg, tiny_root, out, cache=cache, quiet=True, threads=1)
    assert torch.get_num_threads() == 2  # the caller's setting is back (a notebook keeps its threads)
    return out, summary


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def comparable(rows: list[dict]) -> list[dict]:
    """Metrics without the wall-clock field."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def leftovers(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


def check_run_files(run: Path, epochs: int) -> list[dict]:
    """Every run file exists and loads; returns the metrics rows."""
    for name in ("best.pt", "last.pt", "state.pt", "metrics.jsonl", "curves.png", "config.yaml", "summary.json"):
        assert (run / name).is_file(), name
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))
    for r in rows:
        assert isinstance(r["train_loss"], float) and r["train_loss"] > 0
        for k in VAL_KEYS:
            assert 0.0 <= r[k] <= 1.0
    assert (run / "curves.png").read_bytes()[:8] == PNG
    state = torch.load(run / "state.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == epochs - 1 and len(state["history"]) == epochs
    best, last = load_checkpoint(run / "best.pt"), load_checkpoint(run / "last.pt")
    assert last.meta["epoch"] == epochs and last.meta["val_acc"] == rows[-1]["val_acc_max"]
    assert best.meta["val_acc"] == max(r["val_acc_max"] for r in rows)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_done"] == epochs
    assert not leftovers(run)
    return rows


# ---------------------------------------------------------------- one run: files and checkpoint


@pytest.mark.parametrize("layers", [1, 2])
def test_spectral_front_end_trains_with_the_map_of_its_normaliser(tiny_root, tiny_cfg, cache, tmp_path, layers):
    """A spectral model's fixed input map is built from the run's normaliser, survives EMA and the
    checkpoint, and is not trained; n_mfcc != n_mels or no spectral layer is refused before anything
    is written."""
    from voice_gru.errors import ConfigError
    from voice_gru.model import spectral_map

    cfg = replace(tiny_cfg, model=replace(tiny_cfg.model, spectral_channels=2, spectral_kernel=(2, 3),
                                          spectral_layers=layers),
                  train=replace(tiny_cfg.train, epochs=1, ema=0.9))
    train(cfg, tiny_root, tmp_path / "run", cache=cache, quiet=True, threads=1)
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt.model.spectral is not None
    assert torch.allclose(ckpt.model.spectral_map, spectral_map(cfg.features, ckpt.normalizer), atol=1e-6)
    assert "spectral_map" not in dict(ckpt.model.named_parameters())
    assert len(ckpt.model.spectral_more) == layers - 1
    bad = replace(cfg, features=replace(cfg.features, n_mfcc=13))
    with pytest.raises(ConfigError, match="n_mfcc == features.n_mels"):
        train(bad, tiny_root, tmp_path / "bad", cache=cache, quiet=True, threads=1)
    with pytest.raises(ConfigError, match="spectral_layers = 0: must be from 1 to 16"):  # refused when built
        replace(cfg.model, spectral_layers=0)
    assert not (tmp_path / "bad").exists()




def test_run_writes_all_files(baseline, tiny_cfg):
    run, summary = baseline
    rows = check_run_files(run, tiny_cfg.train.epochs)
    assert len(rows) == 2
    assert summary["epochs_done"] == 2 and not summary["interrupted"]
    assert summary["best_epoch"] in (1, 2)
    assert summary["best_val_acc"] == max(r["val_acc_max"] for r in rows)  # tiny.yaml pools with max
    assert json.loads((run / "summary.json").read_text()) == summary
    # config.yaml is the resolved recipe and loads back to the same config
    assert yaml.safe_load((run / "config.yaml").read_text()) == to_dict(tiny_cfg)
    assert load_config(run / "config.yaml") == tiny_cfg


def test_best_checkpoint_has_labels_normalizer_and_meta(baseline, tiny_cfg, tiny_root):
    run, summary = baseline
    ckpt = load_checkpoint(run / "best.pt")
    assert list(ckpt.labels) == task_labels("12") == summary["labels"]
    assert ckpt.labels[0] == SILENCE and UNKNOWN in ckpt.labels
    assert ckpt.features == tiny_cfg.features
    assert ckpt.pooling == tiny_cfg.model.pooling
    assert ckpt.model.cfg == tiny_cfg.model
    assert ckpt.normalizer.to_dict()["mean"] is not None
    assert ckpt.meta["seed"] == tiny_cfg.train.seed
    assert ckpt.meta["epoch"] == summary["best_epoch"]
    assert ckpt.meta["val_acc"] == summary["best_val_acc"]
    assert ckpt.meta["config_name"] == "tiny"
    assert ckpt.meta["data_dir"] == str(tiny_root)
    x = torch.randn(2, 50, tiny_cfg.features.n_mfcc)
    assert ckpt.model(x).shape == (2, 50, len(ckpt.labels))


def test_same_seed_gives_identical_metrics_and_weights(baseline, tiny_root, tiny_cfg, cache, tmp_path):
    run, _ = baseline
    train(tiny_cfg, tiny_root, tmp_path / "again", cache=cache, quiet=True, threads=1)
    assert comparable(read_metrics(tmp_path / "again")) == comparable(read_metrics(run))
    a = load_checkpoint(run / "best.pt").model.state_dict()
    b = load_checkpoint(tmp_path / "again" / "best.pt").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_starts_from_a_checkpoints_weights_and_statistics(baseline, tiny_root, tiny_cfg, cache, tmp_path):
    run, _ = baseline
    trained = load_checkpoint(run / "best.pt")
    # statistics this data would not give: the run must keep the ones its weights came with
    norm = Normalizer(tuple(m + 0.5 for m in trained.normalizer.mean), tuple(s * 1.5 for s in trained.normalizer.std))
    save_checkpoint(tmp_path / "start.pt", replace(trained, normalizer=norm))
    start = load_checkpoint(tmp_path / "start.pt")
    # a learning rate of ~0: what the fine-tuned run saves is the checkpoint it started from
    cfg = replace(tiny_cfg, train=replace(tiny_cfg.train, init=str(tmp_path / "start.pt"), lr=1e-12, epochs=1, seed=7))
    train(cfg, tiny_root, tmp_path / "ft", cache=cache, quiet=True, threads=1)
    got = load_checkpoint(tmp_path / "ft" / "best.pt")
    a, b = start.model.state_dict(), got.model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert got.normalizer == norm
    # without init, the same seed starts elsewhere
    fresh = replace(cfg, train=replace(cfg.train, init=""))
    train(fresh, tiny_root, tmp_path / "fresh", cache=cache, quiet=True, threads=1)
    c = load_checkpoint(tmp_path / "fresh" / "best.pt").model.state_dict()
    assert not all(torch.allclose(a[k], c[k], atol=1e-3) for k in a)


def test_cli_init_flags_override_the_recipe(baseline, tiny_root, cache, tmp_path, capsys):
    run, _ = baseline
    argv = ["train", "--config", str(TINY_CONFIG), "--data-dir", str(tiny_root), "--cache-dir", str(cache),
            "--threads", "1", "--quiet", "--epochs", "1"]
    assert main([*argv, "--out", str(tmp_path / "ft"), "--init", str(run / "best.pt"), "--init-member", "0"]) == 0
    recorded = yaml.safe_load((tmp_path / "ft" / "config.yaml").read_text())["train"]
    assert recorded["init"] == str(run / "best.pt") and recorded["init_member"] == 0
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "bad"), "--init", str(run / "best.pt"), "--init-member", "2"]) == 2
    assert capsys.readouterr().err == (f"voice-gru: error: train.init_member: 2: {run / 'best.pt'} has 1 member(s), "
                                       "numbered from 0\n")


def test_bad_init_is_one_line_before_anything_is_written(baseline, tiny_root, tiny_cfg, cache, tmp_path):
    run, _ = baseline
    ck = str(run / "best.pt")
    for train_kw, model_kw, message in [
        ({"init": str(tmp_path / "missing.pt")}, {}, "train.init: .*missing.pt: checkpoint file not found"),
        ({"init": ck, "init_member": 1}, {}, "train.init_member: 1: .* has 1 member\\(s\\), numbered from 0"),
        ({"init": ck}, {"hidden": 24}, "train.init: .*best.pt: its model differs from this recipe's"),
    ]:
        cfg = replace(tiny_cfg, train=replace(tiny_cfg.train, **train_kw), model=replace(tiny_cfg.model, **model_kw))
        with pytest.raises(ConfigError, match=message) as info:
            train(cfg, tiny_root, tmp_path / "run", cache=cache, quiet=True, threads=1)
        assert "\n" not in str(info.value)
        assert not (tmp_path / "run").exists()
    cfg = replace(tiny_cfg, data=replace(tiny_cfg.data, task="35"), train=replace(tiny_cfg.train, init=ck))
    with pytest.raises(ConfigError, match="train.init: .*best.pt: labels .* differ from this recipe's"):
        train(cfg, tiny_root, tmp_path / "run", cache=cache, quiet=True, threads=1)
    assert not (tmp_path / "run").exists()
    # a run folder for its checkpoint: it was "checkpoint file not found" (it is there, and a folder)
    cfg = replace(tiny_cfg, train=replace(tiny_cfg.train, init=str(run)))
    with pytest.raises(CheckpointError, match=f"^train.init: {run}: is a folder; give a checkpoint file such as "
                                              f"{run / 'best.pt'}$"):
        train(cfg, tiny_root, tmp_path / "run", cache=cache, quiet=True, threads=1)


def test_settings_the_35_word_task_ignores_are_warned_before_anything(tiny_root, tiny_cfg, tmp_path, capsys):
    cfg = replace(tiny_cfg, data=replace(tiny_cfg.data, task="35", unknown_weight=3.0),
                  train=replace(tiny_cfg.train, init=str(tmp_path / "missing.pt")))
    with pytest.raises(ConfigError, match="checkpoint file not found"):
        train(cfg, tiny_root, tmp_path / "run", quiet=True, threads=1)
    err = capsys.readouterr().err
    assert "warning: the 35-word task has no _silence_ or _unknown_ class: data.unknown_weight has no effect\n" in err


def test_init_member_without_init_is_refused(tiny_root, tiny_cfg, tmp_path, capsys):
    """--init-member without --init was silently ignored: there is no ensemble to pick a member of."""
    cfg = replace(tiny_cfg, train=replace(tiny_cfg.train, init_member=5))
    with pytest.raises(ConfigError) as info:
        train(cfg, tiny_root, tmp_path / "run", quiet=True, threads=1)
    assert str(info.value) == ("--init-member 5 (train.init_member) needs --init (train.init): "
                               "the ensemble checkpoint whose member to start from")
    rc = main(["train", "--config", str(TINY_CONFIG), "--data-dir", str(tiny_root), "--out", str(tmp_path / "run"),
               "--threads", "1", "--init-member", "5"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("voice-gru: error: --init-member") and "--init " in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"threads": -1}, "--threads -1: must be at least 1"),
    ({"threads": 0}, "--threads 0: must be at least 1"),  # all cores is --threads left out
    ({"device": "foo"}, "--device foo: not a training device (cpu, cuda or cuda:N)"),
    ({"device": "999"}, "--device 999: not a training device"),  # a microphone index, as `listen --device` takes
    ({"device": "meta"}, "--device meta: not a training device"),
    ({"device": "cpu:5"}, "--device cpu:5: the CPU is one device (cpu); --threads sets how many cores it uses"),
])
def test_bad_threads_or_device_is_one_line_before_anything_is_written(tiny_root, tiny_cfg, tmp_path, kwargs, message):
    with pytest.raises(ConfigError) as info:
        train(tiny_cfg, tiny_root, tmp_path / "run", quiet=True, **{"threads": 1, **kwargs})
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()


def test_cli_bad_device_is_one_line(tiny_root, tmp_path, capsys):
    rc = main(["train", "--config", str(TINY_CONFIG), "--data-dir", str(tiny_root), "--out", str(tmp_path / "run"),
               "--threads", "1", "--device", "foo"])
    err = capsys.readouterr().err
    assert rc == 2 and err == "voice-gru: error: --device foo: not a training device (cpu, cuda or cuda:N)\n"


def test_run_folder_inside_the_dataset_is_refused_before_anything_is_written(tiny_root, tiny_cfg):
    for out in (tiny_root / "runs" / "a", tiny_root):  # its files would sit among the word folders
        with pytest.raises(ConfigError) as info:
            train(tiny_cfg, tiny_root, out, quiet=True, threads=1)
        assert str(info.value) == f"--out {out}: is inside the dataset folder {tiny_root}; write the run elsewhere"
    assert not (tiny_root / "runs").exists() and not (tiny_root / "summary.json").exists()


def test_run_or_cache_folder_that_is_a_file_is_refused_before_the_features(tiny_root, tiny_cfg, tmp_path):
    """Found at the first write before, after every clip's features were computed."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, cache, says in ((afile, tmp_path / "cache", f"--out {afile}: exists and is not a folder"),
                             (afile / "run", tmp_path / "cache", f"--out {afile / 'run'}: {afile} is a file, not a folder"),
                             (tmp_path / "run", afile, f"--cache-dir {afile}: exists and is not a folder")):
        with pytest.raises(ConfigError) as info:
            train(tiny_cfg, tiny_root, out, cache=cache, quiet=True, threads=1)
        assert str(info.value) == says
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without a GPU")
def test_cuda_without_a_gpu_is_one_line(tiny_root, tiny_cfg, tmp_path):
    for device in ("cuda", "cuda:1"):
        with pytest.raises(VoiceGruError, match=f"--device {device}: no CUDA GPU is available"):
            train(tiny_cfg, tiny_root, tmp_path / "run", device=device, quiet=True, threads=1)
    assert not (tmp_path / "run").exists()


def test_cuda_index_past_the_gpu_count_is_one_line(tiny_root, tiny_cfg, tmp_path, monkeypatch):
    # a machine with two GPUs, simulated: the check is torch's count, not a device opened
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError) as info:
        train(tiny_cfg, tiny_root, tmp_path / "run", device="cuda:2", quiet=True, threads=1)
    assert str(info.value) == "--device cuda:2: this machine has 2 CUDA GPU(s), numbered from cuda:0"
    assert not (tmp_path / "run").exists()


def test_unreadable_clips_are_left_out_warned_even_when_quiet_and_listed_in_the_summary(tiny_cfg, tmp_path, capsys):
    root = make_tiny_dataset(tmp_path / "speech_commands")
    cfg = replace(tiny_cfg, train=replace(tiny_cfg.train, epochs=1))
    clean = train_module.prepare(cfg, root, tmp_path / "cache", quiet=True)
    bad = [root / "yes" / "abc00003_nohash_1.wav", root / "no" / "abc00004_nohash_1.wav"]  # training, validation
    for path in bad:
        path.write_bytes(b"RIFF, but not a wave file")
    with open(root / "validation_list.txt", "a") as f:
        f.write("no/abc00004_nohash_1.wav\nstop/lost_nohash_0.wav\n")
    (root / "yes" / "gone_nohash_0.wav").symlink_to(tmp_path / "nowhere.wav")
    named = bad + [root / "stop" / "lost_nohash_0.wav", root / "yes" / "gone_nohash_0.wav"]  # no clip: said too
    prep = train_module.prepare(cfg, root, tmp_path / "cache", quiet=True)
    # neither trained nor scored (as a silent clip under its word's label)
    assert prep.epoch_size == clean.epoch_size and len(prep.train_weights) == len(clean.train_weights)
    assert torch.equal(prep.val_labels, clean.val_labels)
    capsys.readouterr()
    summary = train(cfg, root, tmp_path / "run", cache=tmp_path / "cache", quiet=True, threads=1)
    captured = capsys.readouterr()
    assert captured.out == ""  # --quiet: no progress
    warnings = [ln for ln in captured.err.splitlines() if ln.startswith("warning: skipped unreadable clip: ")]
    assert len(warnings) == 2 and all(any(str(p) in w for w in warnings) for p in bad)
    assert sorted(summary["skipped_clips"]) == sorted(map(str, bad)) and all(summary["skipped_clips"].values())
    # what names no clip is not an unreadable clip: said as what it is
    said = [ln for ln in captured.err.splitlines() if ln.startswith("warning: not read as a clip: ")]
    assert len(said) == 2 and all(any(str(p) in w for w in said) for p in named[2:])
    assert summary["not_read"][str(named[2])].endswith("named in validation_list.txt, not on disk")
    assert summary["not_read"][str(named[3])].endswith("a broken link")
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (written["skipped_clips"], written["not_read"]) == (summary["skipped_clips"], summary["not_read"])


# ---------------------------------------------------------------- resume


def test_stop_after_then_rerun_continues_and_matches(baseline, tiny_root, tiny_cfg, cache, tmp_path, capsys):
    run, summary = baseline
    out = tmp_path / "run"
    first = train(tiny_cfg, tiny_root, out, cache=cache, quiet=True, threads=1, stop_after=1)
    assert first["epochs_done"] == 1
    assert len(read_metrics(out)) == 1
    assert torch.load(out / "state.pt", weights_only=True)["epoch"] == 0
    (out / ".state.pt.k9x2ab.pt").write_bytes(b"half a file")  # what a kill -9 during a save leaves
    (out / ".best.pt.q1w2e3.pt").write_bytes(b"")
    capsys.readouterr()
    second = train(tiny_cfg, tiny_root, out, cache=cache, quiet=False, threads=1)
    log = capsys.readouterr().out
    assert "resuming" in log and "after epoch 1 of 2" in log
    assert "epoch   1" not in log and "epoch   2" in log  # epoch 1 is not trained again
    assert comparable(read_metrics(out)) == comparable(read_metrics(run))
    assert {k: v for k, v in second.items() if k not in ("run", "train_seconds")} == \
           {k: v for k, v in summary.items() if k not in ("run", "train_seconds")}
    a = load_checkpoint(run / "best.pt").model.state_dict()
    b = load_checkpoint(out / "best.pt").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a finished run rerun is a no-op that keeps its files
    third = train(tiny_cfg, tiny_root, out, cache=cache, quiet=True, threads=1)
    assert third["epochs_done"] == 2
    check_run_files(out, 2)


def test_a_resumed_run_stopped_in_its_last_plot_leaves_no_old_summary_or_curves(tiny_root, tiny_cfg, cache, tmp_path,
                                                                                 monkeypatch):
    """summary.json was written before curves.png, and a resumed run kept the earlier session's: a kill in the final
    plot left a run found "already trained" for ever with the curves of its first epoch."""
    import voice_gru.train as train_module

    out = tmp_path / "run"
    train(tiny_cfg, tiny_root, out, cache=cache, quiet=True, threads=1, stop_after=1)
    assert (out / "summary.json").is_file() and (out / "curves.png").is_file()

    def killed(*a, **kw):
        raise RuntimeError("killed while drawing")

    monkeypatch.setattr(train_module, "plot_curves", killed)
    with pytest.raises(RuntimeError):
        train(tiny_cfg, tiny_root, out, cache=cache, quiet=True, threads=1)
    assert not (out / "summary.json").exists() and not (out / "curves.png").exists()
    monkeypatch.undo()
    assert train(tiny_cfg, tiny_root, out, cache=cache, quiet=True, threads=1)["epochs_done"] == 2
    check_run_files(out, 2)


def test_a_teacher_replaced_between_runs_is_refused_on_resume(baseline, tiny_root, tiny_cfg, cache, tmp_path):
    """The teacher is named by its path: another model copied over it taught the rest of the run unsaid."""
    teacher = tmp_path / "teacher.pt"
    shutil.copy(baseline[0] / "best.pt", teacher)
    cfg = replace(tiny_cfg, train=replace(tiny_cfg.train, teacher=str(teacher)))
    out = tmp_path / "run"
    train(cfg, tiny_root, out, cache=cache, quiet=True, threads=1, stop_after=1)
    shutil.copy(out / "last.pt", teacher)
    with pytest.raises(VoiceGruError, match=f"train.teacher {teacher}: not the file the run started with"):
        train(cfg, tiny_root, out, cache=cache, quiet=True, threads=1)


def test_a_trained_model_without_its_state_is_not_replaced_unasked(baseline, tiny_root, tiny_cfg, cache, tmp_path):
    """A run folder copied without state.pt (or with it deleted to save space): its best.pt was removed and trained
    again without a word. The same recipe's run killed in its first save, before state.pt, still starts afresh."""
    run = tmp_path / "run"
    shutil.copytree(baseline[0], run)
    (run / "state.pt").unlink()
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    other = replace(tiny_cfg, train=replace(tiny_cfg.train, seed=7))
    for cfg in (tiny_cfg, other):
        with pytest.raises(VoiceGruError, match=f"^{run}: holds best.pt and last.pt but no state.pt, so it cannot be "
                                                "resumed; pass --restart to replace them, or choose another --out$"):
            train(cfg, tiny_root, run, cache=cache, quiet=True, threads=1)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    assert train(other, tiny_root, run, cache=cache, quiet=True, threads=1, restart=True)["epochs_done"] == 2
    (run / "state.pt").unlink()  # as a kill between best.pt and state.pt in the first epoch's save leaves it
    (run / "metrics.jsonl").unlink()
    assert train(other, tiny_root, run, cache=cache, quiet=True, threads=1, stop_after=1)["epochs_done"] == 1
    with pytest.raises(VoiceGruError, match="but no state.pt"):  # that, but with another recipe
        (run / "state.pt").unlink(), (run / "metrics.jsonl").unlink()
        train(tiny_cfg, tiny_root, run, cache=cache, quiet=True, threads=1)


def test_run_from_before_a_new_setting_resumes(baseline, tiny_root, tiny_cfg, cache, tmp_path):
    """A setting added to the recipe since a run started (at its default) does not block resuming."""
    out = tmp_path / "run"
    train(tiny_cfg, tiny_root, out, cache=cache, quiet=True, threads=1, stop_after=1)
    state = torch.load(out / "state.pt", weights_only=True)
    del state["config"]["augment"]["vtlp"]  # as written by the version before vtlp existed
    torch.save(state, out / "state.pt")
    assert train(tiny_cfg, tiny_root, out, cache=cache, quiet=True, threads=1)["epochs_done"] == 2


def test_run_dir_with_a_different_config_is_a_clear_error(baseline, tiny_root, tiny_cfg, cache, tmp_path, capsys):
    run, _ = baseline
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    other = replace(tiny_cfg, train=replace(tiny_cfg.train, seed=2))
    with pytest.raises(VoiceGruError, match="different config.*--restart") as info:
        train(other, tiny_root, run, cache=cache, quiet=True, threads=1)
    # what differs is named, as the old run -> this command
    assert str(info.value) == f"{run}: holds a run with a different config (train.seed 1 -> 2); " \
                              f"pass --restart or choose another --out"
    # through the CLI: exit status 2, one line, and the run is untouched
    cfg_file = tmp_path / "other.yaml"
    raw = yaml.safe_load(TINY_CONFIG.read_text())
    raw["train"]["epochs"] = 3
    cfg_file.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    rc = main(["train", "--config", str(cfg_file), "--data-dir", str(tiny_root), "--out", str(run),
               "--cache-dir", str(cache), "--threads", "1", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("voice-gru: error: ") and err.count("\n") == 1 and "different config" in err
    assert "(train.epochs 2 -> 3)" in err
    # --epochs and --seed on the command line: both named, in the recipe's order
    rc = main(["train", "--config", str(TINY_CONFIG), "--data-dir", str(tiny_root), "--out", str(run),
               "--cache-dir", str(cache), "--threads", "1", "--quiet", "--seed", "3", "--epochs", "4"])
    assert rc == 2 and capsys.readouterr().err == (f"voice-gru: error: {run}: holds a run with a different config "
                                                   f"(train.epochs 2 -> 4, train.seed 1 -> 3); "
                                                   f"pass --restart or choose another --out\n")
    # many changes: the first three, and how many more
    many = replace(tiny_cfg, name="many", model=replace(tiny_cfg.model, hidden=8, pooling="last"),
                   train=replace(tiny_cfg.train, lr=0.01, seed=4))
    with pytest.raises(VoiceGruError, match=r"\(name 'tiny' -> 'many', model.hidden 16 -> 8, model.pooling 'max' -> "
                                            r"'last' and 2 more\); pass --restart"):
        train(many, tiny_root, run, cache=cache, quiet=True, threads=1)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_run_dir_with_another_dataset_is_a_clear_error(baseline, tiny_root, tiny_cfg, cache, tmp_path, capsys):
    """A finished run rerun with another --data-dir was reported done: the run records its dataset's folder
    and a digest of its clips, so a moved or copied dataset resumes and a changed one is refused."""
    old, _ = baseline
    run = tmp_path / "run"
    shutil.copytree(old, run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    saved = torch.load(run / "state.pt", weights_only=True)
    assert saved["data_dir"] == str(tiny_root.resolve()) and saved["world"] == 1
    assert saved["data_fingerprint"] == dataset_fingerprint(tiny_root)
    # a copy elsewhere holds the same clips: the run is found done, with a note on where its data now is
    copy = shutil.copytree(tiny_root, tmp_path / "moved_speech_commands")
    assert dataset_fingerprint(copy) == saved["data_fingerprint"]
    assert train(tiny_cfg, copy, run, cache=cache, quiet=True, threads=1)["epochs_done"] == 2
    err = capsys.readouterr().err
    assert f"the dataset moved from {tiny_root.resolve()}: the same clips, resuming on {copy.resolve()}" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    # one clip fewer is another dataset
    other = shutil.copytree(tiny_root, tmp_path / "other_speech_commands")
    next(p for p in sorted(other.glob("yes/*.wav"))).unlink()
    with pytest.raises(VoiceGruError) as info:
        train(tiny_cfg, other, run, cache=cache, quiet=True, threads=1)
    assert str(info.value) == (f"{run}: holds a run with a different setting (--data-dir {tiny_root.resolve()} -> "
                               f"{other.resolve()}); pass --restart or choose another --out")
    seeded = replace(tiny_cfg, train=replace(tiny_cfg.train, seed=2))
    with pytest.raises(VoiceGruError, match=r"different config \(train.seed 1 -> 2, --data-dir .* -> .*other_speech"):
        train(seeded, other, run, cache=cache, quiet=True, threads=1)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    # the same folder with its clips changed in place is another dataset too
    changed = tmp_path / "changed_run"
    shutil.copytree(old, changed)
    state = torch.load(changed / "state.pt", weights_only=True)
    state["data_fingerprint"] = "0" * 64  # as if a clip had been added since the run started
    torch.save(state, changed / "state.pt")
    with pytest.raises(VoiceGruError, match=r"different setting \(the clips in .* \(added, removed, changed or moved to "
                                            r"another split\)\); pass --restart"):
        train(tiny_cfg, tiny_root, changed, cache=cache, quiet=True, threads=1)
    # the same folder by another spelling is the same dataset: the finished run is done
    same = tiny_root.parent / ".." / tiny_root.parent.name / tiny_root.name
    assert train(tiny_cfg, same, run, cache=cache, quiet=True, threads=1)["epochs_done"] == 2
    assert "already trained (2 of 2 epochs; best " in capsys.readouterr().err  # and nothing rewritten
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    # a run whose state.pt holds the digest of before 2026-12-06 (no clip bytes) is compared as it was recorded
    old_style = tmp_path / "old_style_run"
    shutil.copytree(run, old_style)
    state = torch.load(old_style / "state.pt", weights_only=True)
    state["data_fingerprint"] = dataset_fingerprint(tiny_root, content=False)
    del state["data_fingerprint_content"]
    torch.save(state, old_style / "state.pt")
    assert train(tiny_cfg, tiny_root, old_style, cache=cache, quiet=True, threads=1)["epochs_done"] == 2
    assert "already trained (2 of 2 epochs" in capsys.readouterr().err
    # a run from before the folder was recorded resumes as before (nothing to compare with)
    state = torch.load(run / "state.pt", weights_only=True)
    del state["data_dir"], state["data_fingerprint"]
    torch.save(state, run / "state.pt")
    assert train(tiny_cfg, other, run, cache=cache, quiet=True, threads=1)["epochs_done"] == 2
    # a run started by torchrun with 2 processes: its learning-rate schedule counts both (it crashed or silently
    # trained on with the wrong rate when resumed by one)
    state["world"] = 2
    torch.save(state, run / "state.pt")
    capsys.readouterr()  # finished: nothing to count steps for, so it says so (it said the processes differed)
    assert train(tiny_cfg, tiny_root, run, cache=cache, quiet=True, threads=1)["already_done"]
    assert "already trained (2 of 2 epochs" in capsys.readouterr().err
    state["epoch"] = 0  # one epoch of two left
    torch.save(state, run / "state.pt")
    with pytest.raises(VoiceGruError, match=r"different setting \(processes 2 -> 1 \(resume with as many as it started"):
        train(tiny_cfg, tiny_root, run, cache=cache, quiet=True, threads=1)


def test_damaged_state_file_is_a_clear_error(tiny_root, tiny_cfg, cache, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "state.pt").write_bytes(b"garbage, not a torch file")
    with pytest.raises(VoiceGruError, match="state.pt.*--restart"):
        train(tiny_cfg, tiny_root, out, cache=cache, quiet=True, threads=1)


def test_truncated_state_file_is_one_clean_line(baseline, tiny_root, tiny_cfg, cache, tmp_path, capsys):
    """torch's message runs on with advice and was cut mid-sentence ("... your checkpoint file is)")."""
    run, _ = baseline
    out = tmp_path / "run"
    out.mkdir()
    (out / "state.pt").write_bytes((run / "state.pt").read_bytes()[:3000])  # a copy cut short
    with pytest.raises(VoiceGruError) as info:
        train(tiny_cfg, tiny_root, out, cache=cache, quiet=True, threads=1)
    msg = str(info.value)
    assert msg.startswith(f"{out / 'state.pt'}: cannot resume from this file: damaged or truncated (torch: ")
    assert msg.endswith("); pass --restart or choose another --out") and "\n" not in msg
    torch_says = msg.split("(torch: ", 1)[1].split(");", 1)[0]
    assert torch_says and "." not in torch_says and "checkpoint file is" not in torch_says  # its first sentence only
    # a torch file that is not a training state
    torch.save([1, 2, 3], out / "state.pt")
    with pytest.raises(VoiceGruError, match=r"state.pt: cannot resume from this file: not a training state"):
        train(tiny_cfg, tiny_root, out, cache=cache, quiet=True, threads=1)


class Killed(BaseException):
    """A kill -9 at a chosen line: nothing after it runs, no handler cleans up."""


def test_restart_killed_after_its_config_leaves_a_fresh_run_not_a_mix(baseline, tiny_root, tiny_cfg, cache,
                                                                      tmp_path, monkeypatch):
    old, _ = baseline
    run = tmp_path / "run"
    shutil.copytree(old, run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    # a dataset or a teacher that is refused leaves the old run as it was, even with --restart
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError):
        train(tiny_cfg, tmp_path / "empty", run, cache=cache, quiet=True, threads=1, restart=True)
    other = replace(tiny_cfg, features=replace(tiny_cfg.features, f_max=7000.0),
                    train=replace(tiny_cfg.train, teacher=str(old / "best.pt")))
    with pytest.raises(ConfigError, match="feature settings differ"):
        train(other, tiny_root, run, cache=cache, quiet=True, threads=1, restart=True)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    seeded = replace(tiny_cfg, train=replace(tiny_cfg.train, seed=5))
    write_text = train_module.write_text

    def write_then_die(path, text):
        write_text(path, text)
        if Path(path).name == "config.yaml":
            raise Killed

    monkeypatch.setattr(train_module, "write_text", write_then_die)
    with pytest.raises(Killed):
        train(seeded, tiny_root, run, cache=cache, quiet=True, threads=1, restart=True)
    monkeypatch.undo()
    # only the new config: no old state.pt to resume, no old best.pt or metrics beside it
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]
    assert load_config(run / "config.yaml").train.seed == 5
    # the same command without --restart (the way to resume) trains the seed-5 run from its start
    summary = train(seeded, tiny_root, run, cache=cache, quiet=True, threads=1)
    assert summary["epochs_done"] == 2
    check_run_files(run, 2)
    assert torch.load(run / "state.pt", weights_only=True)["config"]["train"]["seed"] == 5
    assert load_checkpoint(run / "best.pt").meta["seed"] == 5


def test_signals_stop_after_saving_and_handlers_come_back(tiny_root, tiny_cfg, cache, tmp_path, monkeypatch):
    """SIGTERM stops a run as Ctrl-C does; the caller's handlers, SIGINT ignored included, are restored."""
    save_state = train_module._save_state

    def save_then_term(*args, **kwargs):
        save_state(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # as a batch system stops a job, right after epoch 1 is saved

    def caller_handler(signum, frame):
        raise AssertionError("the caller's SIGTERM handler ran during training")

    monkeypatch.setattr(train_module, "_save_state", save_then_term)
    old = signal.signal(signal.SIGTERM, caller_handler), signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt):
            train(tiny_cfg, tiny_root, tmp_path / "run", cache=cache, quiet=True, threads=1)
        assert signal.getsignal(signal.SIGTERM) is caller_handler
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, old[0])
        signal.signal(signal.SIGINT, old[1])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["epochs_done"] == 1
    assert len(read_metrics(tmp_path / "run")) == 1


def test_cli_train_and_restart(tiny_root, cache, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--config", str(TINY_CONFIG), "--data-dir", str(tiny_root), "--out", str(out),
            "--cache-dir", str(cache), "--threads", "1", "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "best validation accuracy" in printed and str(out / "best.pt") in printed
    rows = check_run_files(out, 2)
    # --restart starts again from scratch (same seed: same numbers) even over a different config's run
    raw = yaml.safe_load(TINY_CONFIG.read_text())
    raw["train"]["epochs"] = 1
    one = tmp_path / "one.yaml"
    one.write_text(yaml.safe_dump(raw))
    assert main([*args[:2], str(one), *args[3:]]) == 2
    assert main([*args[:2], str(one), *args[3:], "--restart"]) == 0
    assert len(read_metrics(out)) == 1
    assert load_config(out / "config.yaml").train.epochs == 1
    assert torch.load(out / "state.pt", weights_only=True)["config"]["train"]["epochs"] == 1
    assert len(rows) == 2
    # --seed: another member of an ensemble; the run records the seed it used, and the weights differ
    seeded = tmp_path / "seeded"
    assert main([*args[:2], str(one), "--data-dir", str(tiny_root), "--out", str(seeded), *args[7:], "--seed", "7"]) == 0
    assert load_config(seeded / "config.yaml").train.seed == 7
    assert load_checkpoint(seeded / "best.pt").meta["seed"] == 7
    a, b = (load_checkpoint(d / "best.pt").model.state_dict() for d in (out, seeded))
    assert not torch.equal(a["head.weight"], b["head.weight"])
    # --epochs: the same recipe on another schedule, without a copy of its YAML
    short = tmp_path / "short"
    assert main([*args[:6], str(short), *args[7:], "--epochs", "1"]) == 0
    assert load_config(short / "config.yaml").train.epochs == 1 and len(read_metrics(short)) == 1
    assert main([*args[:6], str(short), *args[7:], "--epochs", "0"]) == 2  # main returns argparse's status
    assert "--epochs: expected a whole number of at least 1, got '0'" in capsys.readouterr().err


# ---------------------------------------------------------------- kill -9, Ctrl-C, torchrun (subprocesses)


def long_config(tmp_path: Path, epochs: int = 20) -> Path:
    raw = yaml.safe_load(TINY_CONFIG.read_text())
    raw["train"]["epochs"] = epochs
    path = tmp_path / f"tiny{epochs}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def cli_env(cache: Path) -> dict:
    return {**os.environ, "XDG_CACHE_HOME": str(cache), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def train_cmd(cfg: Path, data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "voice_gru.cli", "train", "--config", str(cfg), "--data-dir", str(data),
            "--out", str(out), "--threads", "1", "--quiet"]


def start_and_signal(cmd: list[str], env: dict, out: Path, sig: int, timeout: float = 120.0):
    """Start ``cmd``, wait for its first metrics line, send ``sig``; returns (returncode, stderr)."""
    # SIGINT ignored in the child, as `voice-gru train &` from a script inherits it: it must still stop
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + timeout
    try:
        while True:
            m = out / "metrics.jsonl"
            if m.is_file() and m.read_text().strip():
                break
            assert proc.poll() is None, f"training exited early: {proc.communicate()}"
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before the signal: give it more epochs"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


@pytest.mark.slow
def test_kill_9_then_rerun_resumes_to_the_uninterrupted_result(tiny_root, tiny_cfg, cache, tmp_path):
    cfg_path = long_config(tmp_path, 20)
    out = tmp_path / "run"
    cmd = train_cmd(cfg_path, tiny_root, out)
    env = cli_env(tmp_path / "xdg")
    rc, _ = start_and_signal(cmd, env, out, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    # whatever the moment of the kill, the files under their final names are whole
    state = torch.load(out / "state.pt", map_location="cpu", weights_only=True)
    done = state["epoch"] + 1
    assert 1 <= done < 20
    assert len(state["history"]) == done
    load_checkpoint(out / "best.pt")
    assert len(read_metrics(out)) in (done - 1, done)  # written right after state.pt
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = check_run_files(out, 20)  # also: no temp files left beside them
    # the same as a run that was never killed
    ref = train(load_config(cfg_path), tiny_root, tmp_path / "ref", cache=cache, quiet=True, threads=1)
    assert comparable(rows) == comparable(read_metrics(tmp_path / "ref"))
    assert json.loads((out / "summary.json").read_text())["best_val_acc"] == ref["best_val_acc"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_saves_the_run_exits_130_and_rerun_resumes(tiny_root, tmp_path, sig):
    cfg_path = long_config(tmp_path, 20)
    out = tmp_path / "run"
    cmd = train_cmd(cfg_path, tiny_root, out)
    env = cli_env(tmp_path / "xdg")
    rc, err = start_and_signal(cmd, env, out, sig)
    assert rc == 130, err
    assert "Traceback" not in err
    assert "interrupted: the run is saved after epoch" in err  # said even with --quiet
    state = torch.load(out / "state.pt", map_location="cpu", weights_only=True)
    done = state["epoch"] + 1
    assert 1 <= done < 20 and len(read_metrics(out)) == done
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["epochs_done"] == done
    load_checkpoint(out / "best.pt")
    assert not leftovers(out)
    res = subprocess.run([*cmd[:-1]], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)  # not quiet
    assert res.returncode == 0, res.stderr
    assert f"resuming {out} after epoch {done} of 20" in res.stdout
    check_run_files(out, 20)
    assert json.loads((out / "summary.json").read_text())["interrupted"] is False


@pytest.mark.slow
def test_ddp_under_torchrun_with_gloo(tiny_root, tmp_path, baseline):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        pytest.skip("torchrun is not installed beside this Python")
    out = tmp_path / "run"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "voice_gru.cli", "train",
           "--config", str(TINY_CONFIG), "--data-dir", str(tiny_root), "--out", str(out), "--quiet"]
    res = subprocess.run(cmd, cwd=REPO, env=cli_env(tmp_path / "xdg"), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = check_run_files(out, 2)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["best.pt", "last.pt", "state.pt", "metrics.jsonl", "curves.png", "config.yaml", "summary.json"])
    # one summary line (rank 0), and it reports the real best, not a non-validating rank's placeholder
    lines = [ln for ln in res.stdout.splitlines() if "best validation accuracy" in ln]
    assert len(lines) == 1, res.stdout
    best = max(r["val_acc_max"] for r in rows)
    assert f"best validation accuracy {best:.4f}" in lines[0]
    # the loss and frame accuracy logged are of both processes' batches (they were rank 0's half): an epoch of E
    # examples is 8 x ceil(E / 8) in one process, 2 x 8 x ceil(E / 16) in two: the same or 8 more (rank 0 alone: fewer)
    alone = read_metrics(baseline[0])
    for r, a in zip(rows, alone):
        assert r["train_examples"] - a["train_examples"] in (0, 8), (r, a)
    # the same command again: a finished run says so and writes nothing (it rewrote its end files before)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = subprocess.run(cmd, cwd=REPO, env=cli_env(tmp_path / "xdg"), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stderr.count("already trained (2 of 2 epochs") == 1  # rank 0's line alone
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.slow
def test_sigterm_to_torchrun_stops_every_rank_after_saving(tiny_root, tmp_path):
    """torchrun passes a SIGTERM on to its workers: they stop as on Ctrl-C, with no collective
    after the stop (a peer may be blocked mid-step), long before torchrun's 30 s SIGKILL."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        pytest.skip("torchrun is not installed beside this Python")
    out = tmp_path / "run"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "voice_gru.cli", "train",
           "--config", str(long_config(tmp_path, 200)), "--data-dir", str(tiny_root), "--out", str(out), "--quiet"]
    t0 = time.monotonic()
    _, err = start_and_signal(cmd, cli_env(tmp_path / "xdg"), out, signal.SIGTERM)
    assert time.monotonic() - t0 < 60, err
    assert "interrupted: the run is saved after epoch" in err
    assert err.count("voice-gru: interrupted") == 2, err  # both ranks stopped cleanly
    state = torch.load(out / "state.pt", map_location="cpu", weights_only=True)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["epochs_done"] == state["epoch"] + 1 == len(read_metrics(out))


@pytest.mark.parametrize("stop", ["before the summary", "before metrics.jsonl", "Ctrl-C in the summary"])
def test_a_stop_in_the_last_epochs_save_is_finished_by_the_rerun(baseline, tiny_root, tiny_cfg, cache, tmp_path,
                                                                  capsys, stop):
    """kill -9 (or Ctrl-C) after the last state.pt but before the end's files: the rerun said "already trained"
    and never wrote them. It now writes them, training no epoch, as the uninterrupted run did."""
    done, _ = baseline
    run = Path(shutil.copytree(done, tmp_path / "run"))
    (run / "summary.json").unlink()
    (run / "curves.png").unlink()
    (run / ".summary.json.x7k2.tmp").write_text("{")  # a kill's half-written temp
    if stop == "before metrics.jsonl":
        lines = (run / "metrics.jsonl").read_text().splitlines()
        (run / "metrics.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    if stop == "Ctrl-C in the summary":
        (run / "summary.json").write_text(json.dumps({**json.loads((done / "summary.json").read_text()),
                                                      "interrupted": True}))
    best = (run / "best.pt").read_bytes()
    summary = train(tiny_cfg, tiny_root, run, cache=cache, quiet=True, threads=1)
    assert "writing the files its last save did not finish" in capsys.readouterr().err
    want = json.loads((done / "summary.json").read_text())
    got = json.loads((run / "summary.json").read_text())
    assert {k: v for k, v in got.items() if k not in ("run", "train_seconds")} == \
        {k: v for k, v in want.items() if k not in ("run", "train_seconds")} and summary["epochs_done"] == 2
    assert comparable(read_metrics(run)) == comparable(read_metrics(done)) and (run / "curves.png").is_file()
    assert leftovers(run) == [] and (run / "best.pt").read_bytes() == best  # no epoch trained again
    train(tiny_cfg, tiny_root, run, cache=cache, quiet=True, threads=1)  # now complete: nothing to do
    assert "already trained (2 of 2 epochs" in capsys.readouterr().err


def test_a_second_run_on_a_folder_being_written_is_refused(baseline, tiny_root, tiny_cfg, cache, tmp_path):
    """Two trainings writing one --out (a second command, or a killed torchrun's workers) would mix their files."""
    import fcntl

    done, _ = baseline
    run = Path(shutil.copytree(done, tmp_path / "run"))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    fd = os.open(run, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a run in progress holds it
        with pytest.raises(VoiceGruError) as info:
            train(replace(tiny_cfg, train=replace(tiny_cfg.train, epochs=3)), tiny_root, run, cache=cache, quiet=True,
                  threads=1)
        assert str(info.value) == (f"{run}: another training run is writing this folder; wait for it to end (or "
                                   "stop it), or choose another --out")
    finally:
        os.close(fd)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    assert train(tiny_cfg, tiny_root, run, cache=cache, quiet=True, threads=1)["epochs_done"] == 2  # released: runs


def test_a_torchrun_worker_stops_when_its_launcher_is_killed(tmp_path):
    """PR_SET_PDEATHSIG: a worker whose parent dies gets SIGTERM (train stops on it as on Ctrl-C)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    code = ("import os, signal, sys, time\n"
            "from voice_gru.train import _stop_with_the_launcher\n"
            "_stop_with_the_launcher()\n"
            "signal.signal(signal.SIGTERM, lambda *a: (print('stopped', flush=True), sys.exit(0)))\n"
            "print('ready', flush=True)\n"
            "time.sleep(30)\n"
            "print('orphan', flush=True)\n")
    launcher = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time\n"
                                 f"subprocess.Popen([sys.executable, '-c', {code!r}])\n"
                                 "time.sleep(30)\n"], stdout=subprocess.PIPE, text=True)
    assert launcher.stdout.readline().strip() == "ready"
    launcher.kill()  # kill -9 of the launcher
    assert launcher.stdout.readline().strip() == "stopped"  # the worker, told at once


def test_a_short_run_averages_its_last_quarter_and_the_shipped_recipes_keep_their_ema():
    """0.998 over 336 steps left half the average's weight on the untrained start: a user's 4-epoch run named every
    clip `_silence_`. A run from scratch now averages at most its last quarter; the shipped recipes' runs are
    long enough to keep 0.998, and a fine-tune from trained weights keeps it at any length."""
    assert train_module.ema_decay(0.998, 336) == pytest.approx(1 - 4 / 336)
    assert 0.998 ** 335 > 0.5 and (1 - 4 / 336) ** 335 < 0.02  # the start's share of the average, before and after
    assert train_module.ema_decay(0.998, 336, from_scratch=False) == 0.998
    assert train_module.ema_decay(0.998, 3) == 0.0  # shorter than four steps: the last weights
    data = REPO.parent / "shared" / "speech_commands"
    if not data.is_dir():
        pytest.skip("needs ../shared/speech_commands")
    from voice_gru.data import load_noise, scan_dataset, split_examples

    cfg = load_config(REPO / "configs" / "default.yaml")
    noise = load_noise(data, cfg.features.sample_rate)
    n = len(split_examples(scan_dataset(data), "training", cfg.data, len(noise), [len(x) for x in noise]))
    steps = -(-(n + cfg.data.synthetic_unknown) // cfg.train.batch_size)
    assert steps * 35 == 3220  # the default recipe; the shipped members ran 80 epochs
    for epochs in (35, 80):
        assert train_module.ema_decay(cfg.train.ema, steps * epochs) == cfg.train.ema == 0.998


def test_a_short_run_with_a_weight_average_says_so_and_resumes_to_the_same_weights(baseline, tiny_root, tiny_cfg,
                                                                                   cache, tmp_path, capsys):
    cfg = replace(tiny_cfg, train=replace(tiny_cfg.train, ema=0.998))
    whole = tmp_path / "whole"
    train(cfg, tiny_root, whole, cache=cache, quiet=False, threads=1)
    assert "remembers its last quarter instead" in capsys.readouterr().out
    out = tmp_path / "run"
    train(cfg, tiny_root, out, cache=cache, quiet=True, threads=1, stop_after=1)
    train(cfg, tiny_root, out, cache=cache, quiet=False, threads=1)
    assert "remembers its last quarter" not in capsys.readouterr().out  # said once, when the run starts
    a = load_checkpoint(whole / "last.pt").model.state_dict()
    b = load_checkpoint(out / "last.pt").model.state_dict()
    raw = torch.load(whole / "state.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], raw[k]) for k in raw)  # the average, not the last weights


def test_a_threshold_for_a_word_the_recipe_lacks_is_refused_before_anything(tiny_root, tiny_cfg, tmp_path, capsys):
    cfg = replace(tiny_cfg, decision=replace(tiny_cfg.decision, thresholds={"stop": 0.8, "foo": 0.5}))
    with pytest.raises(ConfigError, match=r"decision.thresholds.foo: not a command of this recipe \(yes, no, up"):
        train(cfg, tiny_root, tmp_path / "run", quiet=True, threads=1)
    assert not (tmp_path / "run").exists()
    # from the command line the recipe is named, and where the words came from
    from voice_gru.cli import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"extends: {TINY_CONFIG}\ndecision:\n  thresholds: {{banana: 0.9}}\n", encoding="utf-8")
    assert main(["train", "--config", str(recipe), "--data-dir", str(tiny_root), "--out", str(tmp_path / "run"),
                 "--commands", "yes", "no"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"voice-gru: error: {recipe}: decision.thresholds.banana: not a command of this recipe "
                           "(yes, no) (--commands gave the words)")


def test_a_finished_run_whose_checkpoint_was_damaged_says_so(baseline, tiny_root, tiny_cfg, cache, tmp_path):
    """`listen --events runs/a/best.pt` once turned a best.pt into JSON; the rerun then said "already trained"."""
    run, _ = baseline
    out = tmp_path / "run"
    shutil.copytree(run, out)
    (out / "best.pt").write_text('{"label": "stop", "t": 1.0}\n')
    with pytest.raises(VoiceGruError, match=r"finished, but best.pt is not readable any more .*--restart trains"):
        train(tiny_cfg, tiny_root, out, cache=cache, quiet=True, threads=1)


def test_the_curves_of_a_one_epoch_run_show_its_points(tmp_path):
    """The README's smoke run (`--epochs 1`) drew empty axes: a line of one point is nothing, and the epoch axis read
    0.96-1.04. Its points are drawn now: pixels of the loss line's colour (matplotlib's first, #1f77b4) are there."""
    import matplotlib.image

    from voice_gru.train import plot_curves

    row = {"epoch": 1, "train_loss": 2.2, "train_frame_acc": 0.6, "val_acc_max": 0.08, "val_acc_mean": 0.1,
           "val_acc_last": 0.09}
    plot_curves([row], tmp_path / "curves.png")
    rgb = matplotlib.image.imread(str(tmp_path / "curves.png"))[..., :3]
    blue = (abs(rgb - [0x1f / 255, 0x77 / 255, 0xb4 / 255]).max(-1) < 0.05).sum()
    assert blue > 160  # the two legends' lines alone are 118 pixels; the markers of the two panels add ~90
