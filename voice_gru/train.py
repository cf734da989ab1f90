"""Training: cached features, augmented sequences with per-frame targets, resume, DDP under torchrun.

A run directory holds ``state.pt`` (everything needed to resume after the last completed
epoch), ``best.pt`` (the best checkpoint on validation), ``last.pt`` (the last epoch's),
``metrics.jsonl`` (one line per epoch),
``curves.png`` and ``config.yaml``. Every file is written atomically, so ``kill -9`` at any
moment leaves a run that the same command resumes.
"""

from __future__ import annotations

import gc
import json
import math
import os
import re
import signal
import sys
import time
import dataclasses
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, cast

import numpy as np
import torch
import torch.nn.functional as F

from voice_gru import COMMANDS, SILENCE, UNKNOWN
from voice_gru.augment import IGNORE, INSIDE_OTHER, ClipBank, SequenceBuilder, eval_features
from voice_gru.checkpoint_data import weight_shapes
from voice_gru.config import Config, FeatureConfig, from_dict, settings_without_effect, to_dict
from voice_gru.data import (
    background_files, cache_dir, check_speakers, class_weights, dataset_fingerprint, load_clip_mels, load_noise, missing_dataset, scan_dataset,
    missing_commands, record_hint, split_examples, task_labels, unused_entries,
)
from voice_gru.errors import CheckpointError, ConfigError, DatasetError, VoiceGruError
from voice_gru.features import Normalizer, front_end, mel_power
from voice_gru.fileio import (RUN_CHECKPOINTS, atomic_path, can_lock, check_folder, is_within, lock_exclusive, write_json,
                              write_text)
from voice_gru.model import (POOLINGS, Checkpoint, Ensemble, GRUClassifier, clip_posteriors, count_parameters,
                             describe_model, load_checkpoint, save_checkpoint, spectral_map)


@dataclass
class Prepared:
    """Everything training needs in memory: clip banks, noise spectra, normaliser, labels."""

    labels: list[str]
    train: ClipBank
    train_weights: np.ndarray
    val_mels: torch.Tensor
    val_labels: torch.Tensor
    noise_mels: list[torch.Tensor]
    normalizer: Normalizer
    bad_files: dict  # clips that could not be read, left out: path -> why
    not_read: dict  # what the dataset names or holds that is not read as a clip (``data.unused_entries``): path -> why
    n_train_speakers: int
    epoch_size: int  # draws per epoch: the dataset's examples (added reversed clips do not lengthen an epoch)


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, flush=True)


def _warn(msg: str) -> None:
    """What the user must see even with --quiet (which silences progress only): on stderr."""
    print(msg, file=sys.stderr, flush=True)


FEW_TAKES = 20  # README, *Recording your own word*: twenty takes are worth it, five are not


def _check_own_takes(clips: Sequence, commands: Sequence[str], data_dir: str | Path) -> None:
    """Refuse own command words without validation takes (training picks its epoch on a voice it does not learn,
    and with none a one-word model found its validation split empty only after its features were made); warn of
    words with few training takes."""
    missing = missing_commands((c.word for c in clips if c.split == "validation"), commands)
    if missing:
        raise DatasetError(f"{data_dir}: data.commands: no validation clips of {', '.join(map(repr, missing))}: "
                           f"training chooses its epoch on a voice it does not learn: "
                           f"{record_hint(data_dir, 'validation', missing)}")
    counts = Counter(c.word for c in clips if c.split == "training")
    few = [f"{w} {counts[w]}" for w in commands if counts[w] < FEW_TAKES]
    if few and _dist()[1] == 0:
        _warn(f"warning: {data_dir}: few training takes ({', '.join(few)}): a model of a word needs about "
              f"{FEW_TAKES}, from as many voices as will use it (README: Recording your own word)")


def prepare(cfg: Config, data_dir: str | Path, cache: str | Path | None = None, quiet: bool = False) -> Prepared:
    """Scan the dataset, draw the examples, load (or compute and cache) their mel spectra."""
    clips = scan_dataset(data_dir)
    check_speakers(clips)
    if not background_files(data_dir) and cfg.data.task == "12":
        raise DatasetError(f"{data_dir}: no _background_noise_ folder: silence examples cannot be made")
    noise = load_noise(data_dir, cfg.features.sample_rate)
    noise_mels = [mel_power(n, cfg.features) for n in noise]
    lengths = [len(n) for n in noise]
    labels = task_labels(cfg.data.task, cfg.data.commands)
    if cfg.data.task == "12":
        missing = missing_commands((c.word for c in clips if c.split == "training"), cfg.data.commands)
        if missing and cfg.data.commands != COMMANDS:  # a word of one's own list misspelt, or not in this dataset
            words = sorted({c.word for c in clips if c.split == "training" and c.word}, key=str.lower)
            raise DatasetError(f"{data_dir}: data.commands: no training clips of {', '.join(map(repr, missing))} "
                               f"(word folders with training clips: {', '.join(words)})")
        if missing and _dist()[1] == 0:  # a subset of the dataset: those classes are never named (one line per run)
            _warn(f"warning: {data_dir}: no training clips of {', '.join(missing)}: the model will not learn "
                  f"{'it' if len(missing) == 1 else 'them'}")
        if cfg.data.commands != COMMANDS:  # one's own words: recorded takes, checked before an hour of work
            _check_own_takes(clips, cfg.data.commands, data_dir)
    index = {lab: i for i, lab in enumerate(labels)}
    train_ex = split_examples(clips, "training", cfg.data, len(noise), lengths)
    if cfg.data.synthetic_unknown > 0 and UNKNOWN in index:
        from voice_gru.data import Example
        from voice_gru.synth import synthesize_unknown

        synth = synthesize_unknown(cfg.data.synthetic_unknown, cache_dir(cache) / "synthetic", cfg.data.seed,
                                   progress=not quiet, exclude=cfg.data.commands)
        train_ex += [Example(UNKNOWN, p) for p in synth]
    val_ex = split_examples(clips, "validation", cfg.data, len(noise), lengths)
    if not train_ex or not val_ex:
        raise DatasetError(f"{data_dir}: need clips in both the training and the validation split")
    bad: dict = {}
    banks = []
    train_paths = [e.path for e in train_ex if e.path]
    rows = [i for i, e in enumerate(train_ex) if e.path]  # examples with a clip (silence examples have none)
    for speed in cfg.augment.speeds:
        mels, b = load_clip_mels(train_paths, cfg.features, cfg.data.clip_seconds, speed, cache, progress=not quiet)
        bad.update(b)
        full = torch.zeros(len(train_ex), mels.shape[1], mels.shape[2])
        full[rows] = mels
        banks.append(full)
    not_read = {u["file"]: f"{u['file']}: {u['reason']}" for u in unused_entries(data_dir)}
    if bad:  # left out (and reported): kept, an unreadable clip would train as silence under its word's label
        keep = [i for i, e in enumerate(train_ex) if e.path not in bad]
        train_ex = [train_ex[i] for i in keep]
        banks = [b[keep] for b in banks]
        rows = [i for i, e in enumerate(train_ex) if e.path]
        if not rows:
            raise DatasetError(f"{data_dir}: no readable clip in the training split")
    normalizer = Normalizer.fit(front_end(cfg.features).mfcc_from_mel(banks[0][rows]))
    weights = class_weights(train_ex, labels, cfg.data)
    targets = [index[e.label] for e in train_ex]
    if cfg.data.reversed_unknown > 0 and UNKNOWN in index:
        banks, targets, weights = add_reversed_unknown(banks, targets, weights, labels, cfg.data.reversed_unknown)
    bank = ClipBank.build(banks, targets)
    val_paths = [e.path for e in val_ex if e.path]
    vm, b = load_clip_mels(val_paths, cfg.features, cfg.data.clip_seconds, 1.0, cache, progress=not quiet)
    bad.update(b)
    val_mels = torch.zeros(len(val_ex), vm.shape[1], vm.shape[2])
    hop = cfg.features.hop_length
    it = iter(vm)
    for i, e in enumerate(val_ex):
        if e.path:
            val_mels[i] = next(it)
        else:  # silence: a seeded cut of background noise at a seeded volume
            o = e.offset // hop
            seg = noise_mels[e.noise][o:o + vm.shape[1]]
            val_mels[i, :seg.shape[0]] = seg * e.volume**2
    if b:  # left out (and reported), not scored as a silent clip of its word
        keep = [i for i, e in enumerate(val_ex) if e.path not in b]
        val_ex = [val_ex[i] for i in keep]
        val_mels = val_mels[keep]
    return Prepared(
        labels, bank, weights, val_mels,
        torch.tensor([index[e.label] for e in val_ex]), noise_mels, normalizer, bad, not_read,
        len({c.speaker for c in clips if c.split == "training"}), len(train_ex),
    )


# Each is roughly the other played backwards: as `_unknown_` they would teach the model to reject its own commands.
_NOT_REVERSED = ("no", "on")


def add_reversed_unknown(banks: list[torch.Tensor], targets: list[int], weights: np.ndarray, labels: list[str],
                         share: float) -> tuple[list[torch.Tensor], list[int], np.ndarray]:
    """Append the command clips played backwards as `_unknown_`, drawn for ``share`` of its sampling mass.

    Real voices that say no command: the model must reject speech with a command's spectra
    but not its sequence. Time runs along dim 1 of each ``(N, frames, mels)`` bank.
    """
    unk = labels.index(UNKNOWN)
    skip = {labels.index(w) for w in (*_NOT_REVERSED, UNKNOWN, SILENCE) if w in labels}
    rows = [i for i, t in enumerate(targets) if t not in skip]
    if not rows:
        return banks, targets, weights
    is_unk = np.asarray(targets) == unk
    mass = float(weights[is_unk].sum())
    w = weights.copy()
    w[is_unk] *= 1.0 - share
    w = np.concatenate([w, np.full(len(rows), share * mass / len(rows))])
    banks = [torch.cat([b, b[rows].flip(1)]) for b in banks]
    return banks, targets + [unk] * len(rows), w / w.sum()


@torch.no_grad()
def evaluate_mels(model: GRUClassifier, mels: torch.Tensor, labels: torch.Tensor, prep_norm: Normalizer,
                  cfg: Config, silence_index: int | None, device: str = "cpu") -> dict:
    """Validation loss and clip accuracy for each pooling rule."""
    model.eval()
    out = {p: 0 for p in POOLINGS}
    for i in range(0, len(labels), 256):
        x = eval_features(mels[i:i + 256], cfg.features, prep_norm).to(device)
        logits = model(x).cpu()
        for p in POOLINGS:
            out[p] += int((clip_posteriors(logits, p, silence_index).argmax(1) == labels[i:i + 256]).sum())
    return {f"val_acc_{p}": out[p] / len(labels) for p in POOLINGS}


def _dist():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return world, rank


def ema_decay(ema: float, total_steps: int, from_scratch: bool = True) -> float:
    """The weight average's decay for a run of ``total_steps``: ``ema``, or from scratch a memory of at most the last
    quarter of the run (``1 - 4 / total_steps``): a run shorter than four memories of ``ema`` would otherwise be
    evaluated mostly on its untrained start (0.998 over 336 steps: half its weight). Recipes of 2,000 steps or more
    (the shipped members': 3,220 and 7,360) and fine-tunes from trained weights keep ``ema``."""
    if not from_scratch:
        return ema
    return max(0.0, min(ema, 1.0 - 4.0 / max(total_steps, 1)))


def _check_device(device: str) -> None:
    """Refuse a device that training cannot use, in one line (torch's own error is a traceback)."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device}: not a training device (cpu, cuda or cuda:N)")
    if dev.type == "cpu" and dev.index not in (None, 0):  # torch ignores a CPU's index: cpu:5 would mean cpu
        raise ConfigError(f"--device {device}: the CPU is one device (cpu); --threads sets how many cores it uses")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise VoiceGruError(f"--device {device}: no CUDA GPU is available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                              f"numbered from cuda:0")


def train(
    cfg: Config,
    data_dir: str | Path,
    out_dir: str | Path,
    device: str = "cpu",
    cache: str | Path | None = None,
    quiet: bool = False,
    restart: bool = False,
    stop_after: int | None = None,
    threads: int | None = None,
) -> dict:
    """Train (or resume) a run; returns the summary also written to ``summary.json``.

    SIGINT and SIGTERM stop it as Ctrl-C does (the run is saved after its last completed epoch,
    then ``KeyboardInterrupt`` is raised), even when it was started in the background with SIGINT
    ignored; the caller's signal handlers and torch thread count are back when it returns.
    """
    from voice_gru.signals import stop_on_signals

    if threads is not None and threads < 1:  # torch's own refusal is a traceback
        raise ConfigError(f"--threads {threads}: must be at least 1")
    if cfg.train.init_member and not cfg.train.init:  # else silently ignored: there is nothing to pick a member of
        raise ConfigError(f"--init-member {cfg.train.init_member} (train.init_member) needs --init (train.init): "
                          f"the ensemble checkpoint whose member to start from")
    check_thresholds(cfg)
    _check_device(device)
    threads_before = torch.get_num_threads()
    held: list[int] = []  # the run folder's lock, once taken
    try:
        with stop_on_signals():
            return _train(cfg, data_dir, Path(out_dir), device, cache, quiet, restart, stop_after, threads, held)
    finally:  # a notebook or program that trains keeps its own thread setting afterwards
        torch.set_num_threads(threads_before)
        for fd in held:
            os.close(fd)  # releases the lock


def check_thresholds(cfg: Config) -> None:
    """``ConfigError`` for a ``decision.thresholds`` key that is not one of the recipe's commands (listen --config
    refuses them; calibrate --config would have carried them into the model unnoticed)."""
    words = task_labels(cfg.data.task, cfg.data.commands)
    stray = sorted(set(cfg.decision.thresholds) - set(words))
    if stray:
        raise ConfigError(f"decision.thresholds.{stray[0]}: not a command of this recipe "
                          f"({', '.join(w for w in words if not w.startswith('_'))})")


def _lock_run_folder(out: Path, held: list[int]) -> None:
    """Hold an exclusive lock on the run folder itself (no file is made) while this run writes it: a second
    ``train`` on the same --out (or the workers of a killed torchrun) would otherwise write over its files."""
    if not can_lock():  # Windows: nothing to hold, and a folder cannot even be opened there
        return
    held.append(lock_exclusive(os.open(out, os.O_RDONLY), f"{out}: another training run is writing this folder; wait "
                                                          "for it to end (or stop it), or choose another --out"))


def _stop_with_the_launcher() -> None:
    """Under torchrun: a worker whose launcher dies (kill -9) gets SIGTERM, which stops it as Ctrl-C does,
    instead of training on into --out with nobody watching (Linux; elsewhere nothing changes)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _train(cfg: Config, data_dir: str | Path, out: Path, device: str, cache: str | Path | None, quiet: bool,
           restart: bool, stop_after: int | None, threads: int | None, held: list[int]) -> dict:
    import yaml
    from tqdm.auto import tqdm

    world, rank = _dist()
    ddp = world > 1
    if ddp:
        import torch.distributed as dist

        _stop_with_the_launcher()
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend)
        if device.startswith("cuda"):
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
            torch.cuda.set_device(device)
    main_proc = rank == 0
    quiet = quiet or not main_proc
    # Oversubscribed cores make torch's small CPU kernels many times slower: one thread per
    # process under torchrun, all cores (or --threads) otherwise.
    torch.set_num_threads(threads or (1 if ddp else max(1, os.cpu_count() or 1)))
    cfg_dict = to_dict(cfg)
    if not Path(data_dir).is_dir():  # before anything is written to --out
        raise missing_dataset(data_dir)
    check_folder("--out", out, writable=True)
    check_folder("--cache-dir", cache_dir(cache))
    if is_within(out, data_dir):  # its files would sit among the word folders
        raise ConfigError(f"--out {out}: is inside the dataset folder {data_dir}; write the run elsewhere")
    if cfg.model.spectral_channels and cfg.features.n_mfcc != cfg.features.n_mels:
        raise ConfigError(f"model.spectral_channels needs features.n_mfcc == features.n_mels "
                          f"(got {cfg.features.n_mfcc} and {cfg.features.n_mels})")
    if cfg.train.teacher:  # missing, damaged or of another task: said before the features, not minutes after
        _compatible("train.teacher", cfg.train.teacher, task_labels(cfg.data.task, cfg.data.commands), cfg.features)
    ignored = settings_without_effect(cfg)
    if ignored and main_proc:
        _warn(f"warning: the {cfg.data.task}-word task has no _silence_ or _unknown_ class: {', '.join(ignored)} "
              f"{'has' if len(ignored) == 1 else 'have'} no effect")
    init = load_init(cfg) if cfg.train.init else None
    state_path = out / "state.pt"
    data_path = str(Path(data_dir).resolve())  # recorded in state.pt: a run resumes on the data it started on
    data_print = dataset_fingerprint(data_dir)  # ... wherever that data has moved since
    # a teacher is named by its path: another model copied over it would teach the rest of the run unsaid
    teacher_print = _file_digest(cfg.train.teacher) if cfg.train.teacher else None
    state = None
    if main_proc and out.is_dir():  # a run writing here now: said before the features load, not minutes after
        _lock_run_folder(out, held)
    if state_path.is_file() and not restart:
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # damaged by hand, by a full disk or a copy cut short: say so, never a traceback
            raise VoiceGruError(f"{state_path}: cannot resume from this file: damaged or truncated "
                                f"(torch: {_first_sentence(exc)}); pass --restart or choose another --out") from None
        if not isinstance(state, dict) or "config" not in state:
            raise VoiceGruError(f"{state_path}: cannot resume from this file: not a training state (no 'config'); "
                                f"pass --restart or choose another --out")
        saved_cfg = state["config"]
        try:  # settings added since the run started take their defaults, as when it was written
            saved_cfg = to_dict(from_dict(Config, saved_cfg, str(state_path)))
        except VoiceGruError:
            pass  # a key this version does not know: the configs differ
        changes = config_changes(saved_cfg, cfg_dict)
        saved_data = state.get("data_dir")  # None: a run from before it was recorded
        saved_print = state.get("data_fingerprint")  # None: a run from before it was recorded
        now_print = data_print  # what it is compared with: as it was recorded (before 2026-12-06 without the bytes)
        if saved_print is not None and not state.get("data_fingerprint_content"):
            now_print = dataset_fingerprint(data_dir, content=False)
        if saved_data is not None and saved_data != data_path:
            if saved_print != now_print:
                changes.append(f"--data-dir {saved_data} -> {data_path}")
            else:
                _warn(f"{out}: the dataset moved from {saved_data}: the same clips, resuming on {data_path}")
        elif saved_print is not None and saved_print != now_print:
            changes.append(f"the clips in {data_path} (added, removed, changed or moved to another split)")
        if state.get("teacher_digest") not in (None, teacher_print):  # None: a run from before it was recorded
            changes.append(f"train.teacher {cfg.train.teacher}: not the file the run started with")
        saved_world = state.get("world")  # the learning-rate schedule counts steps of all processes together
        trained = int(state["epoch"]) + 1 >= cfg.train.epochs  # nothing left to count: "already trained" says it
        if saved_world is not None and saved_world != world and not trained:
            changes.append(f"processes {saved_world} -> {world} (resume with as many as it started with)")
        if changes or saved_cfg != cfg_dict:
            what = "config" if saved_cfg != cfg_dict else "setting"
            shown = ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")
            shown = f" ({shown})" if shown else ""
            raise VoiceGruError(f"{out}: holds a run with a different {what}{shown}; "
                                f"pass --restart or choose another --out")
    if state is None and not restart:
        _refuse_models_without_state(out, cfg_dict)
    done = int(state["epoch"]) + 1 if state is not None else 0
    finished = done >= cfg.train.epochs and main_proc and _run_files_complete(out, done)
    if ddp:  # every rank stops, or none: rank 0 has looked at the run's files
        said = [finished]
        torch.distributed.broadcast_object_list(said, src=0)
        finished = bool(said[0])
    if finished and state is not None:  # nothing to train: say so instead of "resuming"
        if main_proc:
            from voice_gru.checkpoint_data import read_checkpoint_data

            for name in ("best.pt", "last.pt"):  # what the run is for: damaged since (a typo'd output over it), say so
                try:
                    read_checkpoint_data(out / name)
                except VoiceGruError as exc:
                    raise VoiceGruError(f"{out}: finished, but {name} is not readable any more ({exc}); --restart "
                                        "trains the run again") from None
            _warn(f"{out}: already trained ({done} of {cfg.train.epochs} epochs; best {state['best']['score']:.4f} at "
                  f"epoch {state['best']['epoch']}): nothing to do (--restart trains it again)")
        if ddp:
            torch.distributed.destroy_process_group()
        return {"run": str(out), "best_epoch": state["best"]["epoch"], "best_val_acc": state["best"]["score"],
                "epochs_done": done, "interrupted": False, "already_done": True}
    if done >= cfg.train.epochs and main_proc:
        # stopped in its last save (after state.pt, before the summary and curves): train no epoch, write them
        _warn(f"{out}: all {done} epochs are trained; writing the files its last save did not finish")
    t0 = time.time()
    # a dataset or teacher refused here leaves --out as it was (with --restart, the old run too)
    prep = prepare(cfg, data_dir, cache, quiet)
    labels = prep.labels
    if init is not None:  # the weights were trained on frames normalised with the statistics they came with
        prep = dataclasses.replace(prep, normalizer=init.normalizer)
    teacher = load_teacher(cfg.train.teacher, labels, cfg.features, prep.normalizer, device) if cfg.train.teacher else None
    if main_proc:
        out.mkdir(parents=True, exist_ok=True)
        if not held:  # a new folder: locked as soon as it exists, before anything in it is removed or written
            _lock_run_folder(out, held)
        _remove_stale_temps(out)
        if state is None:
            # a fresh start (--restart, or no state.pt to resume) removes the old run's files before
            # it writes anything, state.pt first (it alone makes a folder resumable): a kill at any
            # moment leaves the old run or a fresh one, never a mix of the two
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
        else:  # an earlier session's (an interrupted one's): a kill before this one's end would leave them beside
            for name in ("summary.json", "curves.png"):  # a best.pt they contradict
                (out / name).unlink(missing_ok=True)
        write_text(out / "config.yaml", yaml.safe_dump(cfg_dict, sort_keys=False))
        for what, found in (("skipped unreadable clip", prep.bad_files), ("not read as a clip", prep.not_read)):
            whys = [why for _, why in sorted(found.items())]
            for why in whys[:10]:
                _warn(f"warning: {what}: {why}")
            if len(whys) > 10:
                _warn(f"warning: ... and {len(whys) - 10} more (summary.json lists them all)")
    sil = labels.index(SILENCE) if SILENCE in labels else None
    torch.manual_seed(cfg.train.seed)
    model = GRUClassifier(cfg.features.n_mfcc, len(labels), cfg.model)
    if model.spectral is not None:
        model.set_spectral_map(spectral_map(cfg.features, prep.normalizer))
    if init is not None and state is None:
        model.load_state_dict(init.model.state_dict())
    model = model.to(device)
    net: torch.nn.Module = model
    if ddp:
        net = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    epoch_size = prep.epoch_size
    steps_per_epoch = max(1, math.ceil(epoch_size / (cfg.train.batch_size * world)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.train.lr, total_steps=steps_per_epoch * cfg.train.epochs,
                                                pct_start=0.15)
    ema = None
    if cfg.train.ema > 0:  # an exponential moving average of the weights is what gets evaluated and shipped
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        decay = ema_decay(cfg.train.ema, steps_per_epoch * cfg.train.epochs, from_scratch=init is None)
        if decay < cfg.train.ema and state is None and main_proc:
            _log(f"a run of {steps_per_epoch * cfg.train.epochs} steps: the weight average (train.ema "
                 f"{cfg.train.ema:g}, ~{1 / (1 - cfg.train.ema):.0f} steps) remembers its last quarter instead "
                 f"(ema {decay:.4f}), not the untrained start", quiet)
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))
    eval_model = cast(GRUClassifier, ema.module) if ema is not None else model
    history: list[dict] = []
    best = {"epoch": -1, "score": -1.0}
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        history = list(state["history"])
        best = dict(state["best"])
        start_epoch = int(state["epoch"]) + 1
        _log(f"resuming {out} after epoch {start_epoch} of {cfg.train.epochs}", quiet)
    capped = cfg.train.inside_unknown_weight > 0 or cfg.train.after_unknown_weight > 0
    inside = labels.index(UNKNOWN) if capped and UNKNOWN in labels else None
    commands = torch.tensor([i for i, w in enumerate(labels) if w not in (SILENCE, UNKNOWN)], device=device)
    builder = SequenceBuilder(prep.train, prep.noise_mels, cfg.features, cfg.augment, prep.normalizer, sil,
                              cfg.train.tail_frames, cfg.train.target, inside_index=inside)
    if start_epoch == 0:
        _log(f"{len(labels)} classes, {epoch_size} training examples/epoch, {len(prep.val_labels)} validation; "
             f"model {count_parameters(model):,} parameters; features ready in {time.time() - t0:.1f}s", quiet)
    meta = {"config_name": cfg.name, "data_dir": str(data_dir), "train_speakers": prep.n_train_speakers,
            "parameters": count_parameters(model), "seed": cfg.train.seed, "torch": str(torch.__version__)}
    interrupted = False
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, cfg.train.epochs):
            if stop_after is not None and epoch >= stop_after:
                break
            te = time.time()
            rng = np.random.default_rng([cfg.train.seed, epoch])
            torch.manual_seed(cfg.train.seed * 1000 + epoch)
            order = rng.choice(len(prep.train_weights), size=steps_per_epoch * cfg.train.batch_size * world,
                               p=prep.train_weights)
            order = order.reshape(steps_per_epoch, world, cfg.train.batch_size)[:, rank]
            brng = np.random.default_rng([cfg.train.seed, epoch, rank, 7])
            net.train()
            tot_loss = tot_ok = tot_n = 0.0
            examples = len(order) * cfg.train.batch_size
            bar = tqdm(order, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", unit="batch", disable=quiet, leave=False)
            for idx in bar:
                x, y = builder.batch(idx, brng)
                x, y = x.to(device), y.to(device)
                logits = net(x)
                is_inside = y == INSIDE_OTHER
                y = y.masked_fill(is_inside, IGNORE)
                loss = sequence_loss(logits, y, sil, cfg.train.label_smoothing, cfg.train.background_weight)
                if inside is not None:
                    if cfg.train.inside_unknown_weight > 0:
                        loss = loss + cfg.train.inside_unknown_weight * inside_penalty(logits, is_inside, commands,
                                                                                       cfg.train.inside_cap)
                    if cfg.train.after_unknown_weight > 0:  # the frames labelled _unknown_ after other words
                        loss = loss + cfg.train.after_unknown_weight * inside_penalty(logits, y == inside, commands,
                                                                                      cfg.train.inside_cap)
                if teacher is not None:
                    a = cfg.train.distill_weight
                    loss = (1 - a) * loss + a * distill_loss(logits, teacher(x), y, sil, cfg.train.background_weight,
                                                             cfg.train.distill_temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
                opt.step()
                sched.step()
                if ema is not None:
                    ema.update_parameters(model)
                mask = y != IGNORE
                tot_loss += float(loss.detach()) * int(mask.sum())
                tot_ok += int(((logits.argmax(-1) == y) & mask).sum())
                tot_n += int(mask.sum())
                bar.set_postfix(loss=f"{tot_loss / max(tot_n, 1):.3f}", acc=f"{tot_ok / max(tot_n, 1):.3f}")
            if ddp:  # every process's batches: the log showed rank 0's half of the epoch
                sums = torch.tensor([tot_loss, tot_ok, tot_n, examples], dtype=torch.float64, device=device)
                dist.all_reduce(sums)
                tot_loss, tot_ok, tot_n, examples = sums.tolist()
            if main_proc:
                val = evaluate_mels(eval_model, prep.val_mels, prep.val_labels, prep.normalizer, cfg, sil, device)
                row = {"epoch": epoch + 1, "train_loss": tot_loss / max(tot_n, 1), "train_frame_acc": tot_ok / max(tot_n, 1),
                       "train_examples": int(examples), "train_frames": int(tot_n), **val, "lr": sched.get_last_lr()[0], "seconds": time.time() - te}
                history.append(row)
                score = val[f"val_acc_{cfg.model.pooling}"]
                now = Checkpoint(eval_model, tuple(labels), cfg.features, prep.normalizer, cfg.model.pooling, {}, {},
                                 {**meta, "epoch": epoch + 1, "val_acc": score})
                if score > best["score"]:
                    best = {"epoch": epoch + 1, "score": score}
                    save_checkpoint(out / "best.pt", now)
                # validation's clip accuracy is not every goal (a fine-tuning run's is elsewhere): the end too
                save_checkpoint(out / "last.pt", now)
                _save_state(state_path, model, opt, sched, epoch, history, best, cfg_dict, ema, data_path, world,
                            data_print, teacher_print)
                write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
                _log(f"epoch {epoch + 1:3d}  loss {row['train_loss']:.3f}  frame acc {row['train_frame_acc']:.3f}  "
                     f"val acc {score:.4f} ({cfg.model.pooling})  best {best['score']:.4f}@{best['epoch']}  "
                     f"{row['seconds']:.0f}s", quiet)
            if ddp:
                torch.distributed.barrier()
    except KeyboardInterrupt:
        interrupted = True
        if main_proc:
            # the signal may land anywhere in an epoch's saving: report what a rerun resumes from
            history, best = _saved_progress(state_path)
            _warn(("" if quiet else "\n")  # off the progress bar's line
                  + (f"interrupted: the run is saved after epoch {len(history)}; rerun the same command to resume"
                     if history else "interrupted before the first epoch finished: nothing to resume; the same "
                     "command starts it again"))
    summary = {"run": str(out), "best_epoch": best["epoch"], "best_val_acc": best["score"], "epochs_done": len(history),
               "parameters": count_parameters(model), "train_seconds": sum(r["seconds"] for r in history),
               "interrupted": interrupted, "labels": labels, "skipped_clips": dict(sorted(prep.bad_files.items())),
               "not_read": dict(sorted(prep.not_read.items()))}
    if main_proc and history:
        # a stop may have landed between state.pt and metrics.jsonl (now, or in the last save of an earlier run
        # that this one only finishes): make them agree
        write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
        plot_curves(history, out / "curves.png")
        write_json(out / "summary.json", summary)  # last: it marks the run's files complete (_run_files_complete)
    if ddp:
        if not interrupted:  # after a stop, a peer may be blocked in a step's all-reduce: no collective
            box = [summary]  # only rank 0 validates: every rank returns rank 0's summary
            torch.distributed.broadcast_object_list(box, src=0)
            summary = box[0]
        # free the DDP wrapper (its reducer holds the process group) while Python is fully alive:
        # left to the interpreter's final clean-up, gloo's threads once aborted a finished run
        del net
        gc.collect()
        torch.distributed.destroy_process_group()
    if interrupted:
        raise KeyboardInterrupt
    return summary


def _looked_in(path: str | Path) -> str:
    """Where a relative checkpoint path of a recipe was looked for (the current folder, not the recipe's own, which
    ``extends`` is relative to)."""
    return "" if Path(path).is_absolute() else f" (looked for in the current folder, {Path.cwd()})"


def _compatible(key: str, path: str | Path, labels: Sequence[str], features: FeatureConfig) -> Checkpoint:
    """The checkpoint a recipe key names, refused in one line unless it has the recipe's labels and features."""
    if not Path(path).exists():  # a folder is said by the reader (a run folder: its best.pt)
        raise ConfigError(f"{key}: {path}: checkpoint file not found{_looked_in(path)}")
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as exc:  # which setting named it: --init and --teacher may both be given
        raise CheckpointError(f"{key}: {exc}") from None
    if list(ckpt.labels) != list(labels):
        raise ConfigError(f"{key}: {path}: labels {list(ckpt.labels)} differ from this recipe's {list(labels)}")
    if ckpt.features != features:
        raise ConfigError(f"{key}: {path}: feature settings differ from this recipe's")
    return ckpt


def load_init(cfg: Config) -> Checkpoint:
    """The model ``train.init`` (member ``train.init_member``) names, with its normaliser, refused in one
    line if it is missing, damaged or not the recipe's model (labels, features, architecture), before
    any data is read."""
    labels = task_labels(cfg.data.task, cfg.data.commands)
    init = _compatible("train.init", cfg.train.init, labels, cfg.features)
    members = [cast(GRUClassifier, m) for m in init.model.members] if isinstance(init.model, Ensemble) else [init.model]
    if cfg.train.init_member >= len(members):
        raise ConfigError(f"train.init_member: {cfg.train.init_member}: {cfg.train.init} has {len(members)} "
                          f"member(s), numbered from 0")
    member = members[cfg.train.init_member]
    if len(members) > 1 and _dist()[1] == 0:
        print(f"train.init: member {cfg.train.init_member} of the {len(members)} in {cfg.train.init} "
              "(--init-member picks another)", flush=True)
    # into a model of the recipe: its architecture must be the member's, tensor for tensor
    if {k: tuple(v.shape) for k, v in member.state_dict().items()} != weight_shapes(cfg.model, cfg.features.n_mfcc,
                                                                                     len(labels)):
        raise ConfigError(f"train.init: {cfg.train.init}: its model differs from this recipe's "
                          f"({describe_model(member)})")
    return dataclasses.replace(init, model=member)


def load_teacher(path: str | Path, labels: list[str], features: FeatureConfig, normalizer: Normalizer,
                 device: str = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    """A frozen checkpoint as a function from this run's normalised frames to its per-frame logits."""
    ckpt = _compatible("train.teacher", path, labels, features)
    model = ckpt.model.to(device).eval()
    model.requires_grad_(False)
    # the teacher was normalised with its own training statistics: x * std_s + mean_s is the raw MFCC
    ms, ss, mt, st = (torch.tensor(v, dtype=torch.float32, device=device)
                      for v in (normalizer.mean, normalizer.std, ckpt.normalizer.mean, ckpt.normalizer.std))
    scale, shift = ss / st, (ms - mt) / st

    @torch.no_grad()
    def logits(x: torch.Tensor) -> torch.Tensor:
        return model(x * scale + shift)

    return logits


def sequence_loss(logits: torch.Tensor, y: torch.Tensor, sil: int | None, smoothing: float, bg_weight: float) -> torch.Tensor:
    """Per-frame cross entropy where each example's label frames and background frames weigh
    ``1`` and ``bg_weight`` in total, however many frames each has (background frames outnumber
    a word's label frames ten to one; unweighted, a model that always says silence looks good)."""
    ce = F.cross_entropy(logits.transpose(1, 2), y, ignore_index=IGNORE, label_smoothing=smoothing, reduction="none")
    w = frame_weights(y, sil, bg_weight)
    return (ce * w).sum() / w.sum().clamp_min(1e-9)


def inside_penalty(logits: torch.Tensor, inside: torch.Tensor, commands: torch.Tensor, cap: float) -> torch.Tensor:
    """How far the most probable command's posterior rises above ``cap`` on the frames ``inside``
    (``(B, T)``) other words, averaged over each example's such frames, then over the batch."""
    p = torch.softmax(logits, -1).index_select(-1, commands).amax(-1)
    excess = torch.relu(p - cap) * inside
    per_example = excess.sum(1) / inside.sum(1).clamp_min(1)
    return per_example.sum() / max(logits.shape[0], 1)


def distill_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor, sil: int | None,
                 bg_weight: float, temperature: float) -> torch.Tensor:
    """KL divergence from the teacher's softened per-frame posteriors to the student's, on the frames
    (and with the weights) of ``sequence_loss``, times ``temperature**2`` so its gradients keep their scale."""
    t = temperature
    kl = F.kl_div(F.log_softmax(logits / t, -1), F.log_softmax(teacher_logits / t, -1), log_target=True,
                  reduction="none").sum(-1)
    w = frame_weights(y, sil, bg_weight)
    return (kl * w).sum() / w.sum().clamp_min(1e-9) * t * t


def frame_weights(y: torch.Tensor, sil: int | None, bg_weight: float) -> torch.Tensor:
    """Per-frame loss weights ``(B, T)``: 0 on ignored frames, a word's frames sum to 1, background to ``bg_weight``."""
    valid = y != IGNORE
    is_bg = (y == sil) & valid if sil is not None else torch.zeros_like(valid)
    is_word = valid & ~is_bg
    n_word = is_word.sum(1, keepdim=True).clamp_min(1)
    n_bg = is_bg.sum(1, keepdim=True).clamp_min(1)
    has_word = is_word.any(1, keepdim=True)
    w_bg = torch.where(has_word, bg_weight / n_bg, 1.0 / n_bg)  # a silence example is all background
    return is_word / n_word + is_bg * w_bg


RUN_FILES = (*RUN_CHECKPOINTS, "metrics.jsonl", "curves.png", "config.yaml", "summary.json")


def _refuse_models_without_state(out: Path, cfg_dict: dict) -> None:
    """A folder holding trained models but no state.pt (copied without it, or state.pt deleted to save space) was
    emptied and trained again without a word. The same recipe's run killed in its first save, after best.pt and
    before state.pt (metrics.jsonl comes after both), starts afresh."""
    import yaml

    models = [name for name in ("best.pt", "last.pt") if (out / name).is_file()]
    if not models:
        return
    try:
        killed_in_first_save = not (out / "metrics.jsonl").exists() and yaml.safe_load(
            (out / "config.yaml").read_text(encoding="utf-8")) == cfg_dict
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        killed_in_first_save = False
    if not killed_in_first_save:
        raise VoiceGruError(f"{out}: holds {' and '.join(models)} but no state.pt, so it cannot be resumed; pass "
                            "--restart to replace them, or choose another --out")


def _run_files_complete(out: Path, epochs: int) -> bool:
    """Whether a run whose state.pt holds ``epochs`` epochs also has what its end writes: every epoch in
    metrics.jsonl, a summary of a finished run, the curves, and no temp file a kill left."""
    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        lines = (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError):
        return False
    finished = isinstance(summary, dict) and summary.get("epochs_done") == epochs and not summary.get("interrupted")
    return finished and len(lines) == epochs and (out / "curves.png").is_file() and not any(_stale_temps(out))


def _stale_temps(out: Path) -> Iterator[Path]:
    """Temp files that a killed run left beside its run files (``.best.pt.<random>.pt``)."""
    for name in RUN_FILES:
        yield from out.glob(f".{name}.*")


def _remove_stale_temps(out: Path) -> None:
    """Delete the temp files a killed run left (``_stale_temps``)."""
    for tmp in list(_stale_temps(out)):
        tmp.unlink(missing_ok=True)


def _saved_progress(path: Path) -> tuple[list[dict], dict]:
    """The epochs and the best score that ``path`` (state.pt) holds."""
    if not path.is_file():
        return [], {"epoch": -1, "score": -1.0}
    state = torch.load(path, map_location="cpu", weights_only=True)
    return list(state["history"]), dict(state["best"])


def _save_state(path: Path, model, opt, sched, epoch: int, history: list, best: dict, cfg_dict: dict, ema=None,
                data_dir: str | None = None, world: int = 1, data_fingerprint: str | None = None,
                teacher_digest: str | None = None) -> None:
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "epoch": epoch, "history": history, "best": best, "config": cfg_dict,
                    "ema": ema.state_dict() if ema is not None else None, "data_dir": data_dir,
                    "data_fingerprint": data_fingerprint, "data_fingerprint_content": True, "world": world,
                    "teacher_digest": teacher_digest}, tmp)


def _file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (a checkpoint of a few MB)."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def config_changes(saved: Any, now: Any, prefix: str = "") -> list[str]:
    """``key old -> new`` for each setting that differs between two ``to_dict`` configs, in the config's
    order (a key one side lacks shows as ``(none)``)."""
    if not (isinstance(saved, Mapping) and isinstance(now, Mapping)):
        return [] if saved == now else [f"{prefix.rstrip('.') or 'config'} {_shown(saved)} -> {_shown(now)}"]
    out: list[str] = []
    for key in [*now, *(k for k in saved if k not in now)]:
        a, b = saved.get(key, _NONE), now.get(key, _NONE)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {_shown(a)} -> {_shown(b)}")
    return out


_NONE = object()


def _shown(value: Any) -> str:
    text = "(none)" if value is _NONE else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _first_sentence(exc: BaseException) -> str:
    """The first sentence of an exception's first line (torch's run on with advice), at most 200 characters."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = re.split(r"(?<=[a-z0-9)])\.\s", text, maxsplit=1)[0].rstrip(".")
    return text if len(text) <= 200 else text[:197].rsplit(" ", 1)[0] + " ..."


def plot_curves(history: list[dict], path: str | Path) -> None:
    """PNG of training loss and validation accuracy per epoch."""
    from matplotlib.ticker import MaxNLocator

    from voice_gru.plots import save_png, subplots

    ep = [r["epoch"] for r in history]
    marks = {"marker": "o", "markersize": 4} if len(ep) <= 40 else {}  # a line of one point is drawn as nothing
    fig, (a, b) = subplots(1, 2, figsize=(10, 3.8))
    a.plot(ep, [r["train_loss"] for r in history], label="train loss (per frame)", **marks)
    a.set(xlabel="epoch", ylabel="loss")
    a.legend()
    a.grid(alpha=.3)
    b.plot(ep, [r["train_frame_acc"] for r in history], label="train frame acc", **marks)
    for p in POOLINGS:
        b.plot(ep, [r[f"val_acc_{p}"] for r in history], label=f"val clip acc ({p})", **marks)
    b.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    for ax in (a, b):  # epochs are whole: no 0.96-1.04 axis for a one-epoch run
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    b.legend()
    b.grid(alpha=.3)
    save_png(fig, path)
