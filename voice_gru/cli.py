"""The ``voice-gru`` command: argparse subcommands over the package's public API.

Each subcommand parses its arguments, calls one public function and prints. A ``VoiceGruError``
becomes one line ``voice-gru: error: <message>`` and exit status 2; heavy imports (torch) happen
inside the handlers so ``voice-gru --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, NoReturn, Sequence

from voice_gru.config import OFF, REFRESH_S, THRESHOLD_RANGE, threshold_ok
from voice_gru.errors import AudioDeviceError, AudioFormatError, ConfigError, DeviceUnavailableError, VoiceGruError
from voice_gru.fileio import STDOUT, check_outputs, print_line

if TYPE_CHECKING:
    from voice_gru.actions import AssistantConfig, WakeWord
    from voice_gru.checkpoint_data import CheckpointData
    from voice_gru.config import DecisionConfig
    from voice_gru.input_level import InputMonitor
    from voice_gru.model import Checkpoint
    from voice_gru.spotter import CommandSpotter

DEFAULT_DATA = "../shared/speech_commands"
DEFAULT_DRR = 3.0  # dB: evaluate --rt60's room
DEVICE_STATUS = 75  # sysexits' EX_TEMPFAIL: the service restarts on it, not on a mistake in its files (status 2)
RECONNECT_S = 2.0  # listen --reconnect: how often a lost microphone is looked for
ACTIONS_GRACE_S = 10.0  # listen, once stopped: how long the actions still queued or running may take
MAX_MIC_CHUNK_MS = 1000.0  # listen from a microphone: --chunk-ms at most this
# what other keyword spotters call their one knob (Porcupine's, openWakeWord's): said how it is set here
SENSITIVITY_FLAGS = dict.fromkeys(("--sensitivity", "--sensitivities"),
                                  "; sensitivity is set by --false-accepts-per-hour R (a higher R: more sensitive, more "
                                  "false triggers) or --threshold T (a higher T: less sensitive)")
NOT_BOTH = ("give --threshold T or --false-accepts-per-hour, not both (COMMAND=VALUE pairs may adjust single commands "
            "of a point)")
SLOW_CHUNK_MS = 250.0  # live audio in longer blocks than this: warned, every reaction that much later
STOP_GRACE_S = 15.0  # listen from a microphone: a stop not done this long after its signal ends the process


def _cmd_data_stats(args: argparse.Namespace) -> int:
    from voice_gru.config import DataConfig
    from voice_gru.data import dataset_stats, format_stats, missing_commands
    from voice_gru.fileio import write_json

    check_outputs({"--json": args.json}, folders=[args.data_dir])
    cfg = DataConfig(task=args.task, commands=command_words(args.commands, args.task)) if args.commands else \
        DataConfig(task=args.task)
    stats = dataset_stats(args.data_dir, cfg, progress=True)
    print(format_stats(stats))
    missing = missing_commands((w for split in ("training", "validation", "testing") for w, n in
                                stats.get(split, {}).get("per_word_folder", {}).items() if n), cfg.commands) \
        if args.commands else []
    if missing:  # a misspelt word: train and make-stream would refuse it
        print(f"warning: --commands: no clips of {', '.join(missing)} in {args.data_dir}", file=sys.stderr)
    if args.json:
        write_json(args.json, stats)
        print(f"wrote {args.json}")
    return 0


def command_words(words: Sequence[str], task: str = "12") -> tuple[str, ...]:
    """``--commands`` words, checked as a recipe's ``data.commands`` is (``task``: the task they are for)."""
    from voice_gru.config import command_words_problem

    if task != "12":
        raise ConfigError(f"--commands: the {task}-word task has every word as its own class; use it with the \"12\" "
                          "task (commands, _silence_, _unknown_)")
    problem = command_words_problem(tuple(words))
    if problem:
        raise ConfigError(f"--commands {' '.join(words)}: {problem}")
    return tuple(words)


def _cmd_data_download(args: argparse.Namespace) -> int:
    from voice_gru.download import OFFICIAL_BASE_URL, download_speech_commands

    roots = download_speech_commands(Path(args.dest), args.base_url or OFFICIAL_BASE_URL, progress=not args.quiet)
    for r in roots:
        print(f"ready: {r}")
    return 0


def whole(low: int = 1, high: int | None = None) -> Callable[[str], int]:
    """argparse type: a whole number from ``low`` (to ``high``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected a whole number {_range(low, high, False)}, got {text!r}")
        return value
    return parse


def number(low: float | None = None, high: float | None = None, above: bool = False) -> Callable[[str], float]:
    """argparse type: a finite number, at least ``low`` (above it with ``above``) and at most ``high``.
    NaN and inf are refused: they pass every comparison the commands make, silently (a NaN SNR mixes NaN)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or (low is not None and (value <= low if above else value < low)) or \
                (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected a number {_range(low, high, above)}, got {text!r}")
        return value
    return parse


def _range(low: float | None, high: float | None, above: bool) -> str:
    def shown(v: float | None) -> str:  # a whole bound in full: 4294967295, not 4.29497e+09
        return str(int(v)) if v is not None and float(v).is_integer() and abs(v) < 1e16 else f"{v:g}"

    if low is None and high is None:
        return "(finite)"
    if high is None:
        return f"{'above' if above else 'of at least'} {shown(low)}"
    if low is None:
        return f"of at most {shown(high)}"
    return f"{'above' if above else 'from'} {shown(low)} {'and at most' if above else 'to'} {shown(high)}"


def _cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from voice_gru.config import load_config
    from voice_gru.train import check_thresholds, train

    recipe = recipe_path(args.config) if args.config else _default_recipe()
    cfg = load_config(recipe)
    # one recipe, several members (seeds) or a longer schedule (epochs), without a copy of the YAML
    overrides = {k: v for k, v in (("seed", args.seed), ("epochs", args.epochs), ("init", args.init),
                                   ("init_member", args.init_member)) if v is not None}
    if overrides:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **overrides))
    if args.commands:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, commands=command_words(args.commands,
                                                                                                 cfg.data.task)))
    cores = os.cpu_count() or 1
    if args.threads and args.threads > cores:
        print(f"warning: --threads {args.threads}: this machine has {cores} CPU core(s); more threads than cores "
              "only slow training down", file=sys.stderr)
    if args.init_member is not None and not cfg.train.init:
        raise ConfigError("--init-member picks a member of the ensemble that --init starts from: add --init CKPT")
    try:
        check_thresholds(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{recipe}: {exc}" + (" (--commands gave the words)" if args.commands else "")) from None
    summary = train(cfg, args.data_dir, args.out, device=args.device, cache=args.cache_dir,
                    quiet=args.quiet, restart=args.restart, threads=args.threads)
    if os.environ.get("RANK", "0") == "0":  # under torchrun: one line, from rank 0
        print(f"best validation accuracy {summary['best_val_acc']:.4f} at epoch {summary['best_epoch']}; "
              f"checkpoint {Path(args.out) / 'best.pt'}")
    return 0


def own_config(name: str) -> Path | None:
    """voice-gru's own ``configs/NAME``: the clone's, else the copy installed with the package (``voice_gru.configs``)."""
    from importlib.resources import files

    repo = Path(__file__).resolve().parents[1] / "configs" / name
    if repo.is_file():
        return repo
    try:
        installed = Path(str(files("voice_gru.configs") / name))
    except ModuleNotFoundError:  # a source tree on PYTHONPATH, not installed
        return None
    return installed if installed.is_file() else None


def _in_repository(path: str) -> Path | None:
    """voice-gru's own file at ``path`` where ``path`` is relative and missing here (a clone run from another folder,
    or an installed package: ``configs/NAME``, ``own_config``), else None."""
    if Path(path).exists() or Path(path).is_absolute():
        return None
    parts = Path(path).parts
    if len(parts) == 2 and parts[0] == "configs":
        return own_config(parts[1])
    repo = Path(__file__).resolve().parents[1] / path
    return repo if repo.is_file() else None


def recipe_path(path: str, flag: str = "--config") -> str:
    """``path``, or the repository's file of that name where it is relative and missing here (``--config
    configs/words_finetune.yaml`` or ``--assistant configs/assistant.yaml`` run from another folder), said on stderr."""
    repo = _in_repository(path)
    if repo is None:
        return path
    print(f"{flag} {path}: not in {Path.cwd()}; using voice-gru's own, {repo}", file=sys.stderr)
    return str(repo)


def _default_recipe() -> str:
    """``configs/default.yaml`` here, else the repository's own."""
    repo = _in_repository("configs/default.yaml")
    return "configs/default.yaml" if repo is None else _shown_path(repo)


def _cmd_ensemble(args: argparse.Namespace) -> int:
    from voice_gru.checkpoint_data import trained_on
    from voice_gru.model import Ensemble, count_parameters, load_checkpoint, make_ensemble, save_checkpoint

    check_outputs({"--out": args.out}, args.models, binary=["--out"])
    seen: dict[str, str] = {}
    for m in args.models:
        if os.path.realpath(m) in seen:
            raise ConfigError(f"{m}: given twice (the same file as {seen[os.path.realpath(m)]}): a copy of a member "
                              "adds nothing but compute")
        seen[os.path.realpath(m)] = m
    ckpt = make_ensemble([load_checkpoint(m) for m in args.models], args.models, args.combine)
    assert isinstance(ckpt.model, Ensemble)
    save_checkpoint(args.out, ckpt)
    data = trained_on(ckpt.meta)  # its own words are in the dataset its members learnt them from, not the default one
    on = f" --data-dir {shlex.quote(data)}" if data and os.path.realpath(data) != os.path.realpath(DEFAULT_DATA) else ""
    print(f"wrote {args.out}: {len(ckpt.model.parts())} members combined by {ckpt.model.combine}, "
          f"{count_parameters(ckpt.model):,} parameters; "
          f"calibrate it before listening (voice-gru calibrate --model {args.out}{on} --out {args.out})")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from voice_gru.evaluate import (clips_below, collect_inputs, evaluate_items, format_report, is_dataset_root,
                                    noise_recordings, relabelled_unknown, with_noise, with_reverb, with_speed)
    from voice_gru.fileio import write_json
    from voice_gru.model import resolve_model

    check_outputs({"--json": args.json, "--csv": args.csv, "--plot": args.plot}, [*args.paths, args.model, *(args.noise or [])],
                  png=["--plot"], folders=[*args.paths, *(args.noise or [])])
    if args.noise and args.snr is None:
        raise ConfigError("--noise gives the noise for --snr: add --snr DB")
    if args.rt60 is None and args.drr is not None:
        raise ConfigError("--drr is the direct-to-reverberant ratio of the room --rt60 simulates: add --rt60 S")
    drr = DEFAULT_DRR if args.drr is None else args.drr
    if args.split is not None and not any(is_dataset_root(Path(p)) for p in args.paths):
        raise ConfigError(f"--split {args.split}: chooses a split of a dataset root (a folder with validation_list.txt), "
                          "and none of the paths is one")
    if args.unknown == "all" and not any(is_dataset_root(Path(p)) for p in args.paths):
        raise ConfigError("--unknown all: keeps every _unknown_ clip of a dataset root's split, and none of the paths is "
                          "a dataset root (other layouts are taken whole anyway)")
    words = getattr(args, "argv", [])
    first = words.index(args.paths[0]) if args.noise and args.paths[0] in words else -1
    after_noise = (first >= 2 and words[first - 2] == "--noise") or (first >= 1 and words[first - 1].startswith("--noise="))
    if after_noise:  # `--noise A B DATA` (or `--noise=A B DATA`) reads B as clips to name, not as noise
        from voice_gru.data import is_test_set_layout

        labelled = [is_dataset_root(Path(p)) or is_test_set_layout(Path(p)) for p in args.paths]
        if not labelled[0] and any(labelled):
            print(f"note: {args.paths[0]} is evaluated as clips to name, not mixed in as noise "
                  f"(--noise takes one path per flag: --noise {args.noise[-1]} --noise {args.paths[0]})", file=sys.stderr)
    ckpt = resolve_model(args.model)
    ignored: list[dict] = []
    items = collect_inputs(args.paths, split=args.split or "testing", labels=ckpt.labels, sample_rate=ckpt.features.sample_rate,
                           all_unknown=args.unknown == "all", ignored=ignored)
    if args.speed is not None:  # the flags' ranges are checked by argparse (``number``)
        items = with_speed(items, args.speed, ckpt.features.sample_rate)
    if args.rt60 is not None:
        items = with_reverb(items, args.rt60, drr, ckpt.features.sample_rate)
    if args.snr is not None:
        from voice_gru.data import background_files

        if not args.noise and not (Path(args.paths[0]).is_dir() and background_files(Path(args.paths[0]))):
            raise ConfigError(f"--snr: {args.paths[0]} has no _background_noise_ folder to take the noise from; "
                              "give it with --noise FILE|FOLDER")
        noises = noise_recordings(args.noise or args.paths[:1], ckpt.features.sample_rate)
        items = with_noise(items, noises, args.snr)
    relabelled = relabelled_unknown(items)
    if relabelled:  # deliberate (the official test set's "bed" clips for a model whose command "bed" is), but said
        print(f"note: {len(relabelled)} clip(s) of _unknown_/ are scored as the command their name says (e.g. "
              f"{relabelled[0].name}: {relabelled[0].label}), a command of this model", file=sys.stderr)
    report = evaluate_items(ckpt, items, progress=not args.quiet, streaming=args.streaming)
    unread = {e["file"] for e in report["errors"]}  # a clip skipped as unreadable was not heard at its rate
    low = clips_below([it for it in items if it.name not in unread], ckpt.features.sample_rate)
    report["ignored"] = ignored
    if low:
        report["clips_below_model_rate"] = low
        print(f"note: {sum(low.values())} clip(s) recorded below {ckpt.features.sample_rate} Hz ("
              + ", ".join(f"{r} Hz: {n}" for r, n in sorted(low.items()))
              + "): nothing above half their rate reaches the model, so expect fewer of them named right", file=sys.stderr)
    if report.get("long_inputs"):  # a recording of several words came back as one confident label, unsaid
        from voice_gru.evaluate import LONG_INPUT_S

        first = report["long_inputs"][0]
        print(f"note: {len(report['long_inputs'])} input(s) longer than {LONG_INPUT_S:g} s (e.g. {first['file']}: "
              f"{first['seconds']:g} s): evaluate names a whole file by one class, as a clip of one word; the words of "
              "a recording are found by `voice-gru listen --input FILE` (scored by `voice-gru evaluate-stream`)",
              file=sys.stderr)
    if args.speed is not None:
        report["speed"] = args.speed
        print(f"every clip but _silence_ spoken {args.speed:g} times as fast (tempo and pitch)")
    if args.rt60 is not None:
        report["room"] = {"rt60_s": args.rt60, "drr_db": drr}
        print(f"every clip but _silence_ played in a simulated room: RT60 {args.rt60:g} s, "
              f"direct-to-reverberant ratio {drr:g} dB")
    if args.snr is not None:
        report["snr_db"] = args.snr
        print(f"noise mixed into every clip but _silence_ at {args.snr:g} dB SNR")
    print(format_report(report))
    if not report["predictions"]:
        # every input was unreadable: a script must not take an empty report for a result, and an earlier
        # run's report under the same name is kept
        written = [f for f, p in (("--json", args.json), ("--csv", args.csv), ("--plot", args.plot)) if p]
        print(f"voice-gru: error: none of the {report['n_inputs']} input(s) could be read (reasons above)"
              + (f"; {', '.join(written)} not written" if written else ""), file=sys.stderr)
        return 1
    from voice_gru.fileio import written_together

    with written_together([args.json, args.csv, args.plot]):
        if args.json:
            write_json(args.json, {k: v for k, v in report.items()})
            print(f"wrote {args.json}")
        if args.csv:
            write_predictions_csv(args.csv, report["predictions"], report["errors"])
            print(f"wrote {args.csv}")
        if args.plot and "confusion" not in report:
            print(f"no confusion plot ({args.plot}): none of the inputs is labelled (a label folder or a dataset split)")
        if args.plot and "confusion" in report:
            import numpy as np

            from voice_gru.metrics import plot_confusion

            plot_confusion(np.array(report["confusion"]["matrix"]), report["confusion"]["labels"], args.plot,
                           f"accuracy {report['accuracy']:.3f} (n={report['n']})")
            print(f"wrote {args.plot}")
    return 0


def write_predictions_csv(path: str, predictions: list[dict], errors: Sequence[dict] = ()) -> None:
    """One row per input: file, label, predicted, score, word (an `_unknown_` clip's, where known), error (an
    unreadable file's reason, its prediction and score empty)."""
    import csv
    import io

    from voice_gru.fileio import write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["file", "label", "predicted", "score", "word", "error"])
    w.writeheader()
    for p in predictions:
        w.writerow({**p, "label": p["label"] or "", "word": p.get("word", ""), "error": ""})
    for e in errors:
        w.writerow({"file": e["file"], "label": e.get("label") or "", "predicted": "", "score": "", "word": "",
                    "error": e["error"]})
    write_text(path, buf.getvalue())


def parse_thresholds(values: Sequence[str] | None) -> tuple[float | None, dict[str, float]]:
    """``--threshold`` values as (one number for every command or None, per-command pairs): ``["0.8", "stop=0.9"]``
    -> ``(0.8, {"stop": 0.9})``; errors name the bad value."""
    out: dict[str, float] = {}
    glob = None
    for v in values or ():
        key, eq, num = v.rpartition("=")
        try:
            x = float(num)
        except ValueError:
            raise ConfigError(f"--threshold {v!r}: expected a number or COMMAND=NUMBER") from None
        if eq and not key.strip():
            raise ConfigError(f"--threshold {v!r}: no command before '=' (one number for every command: --threshold {num})")
        if not threshold_ok(x):
            raise ConfigError(f"--threshold {v!r}: must be {THRESHOLD_RANGE}")
        if (key in out) if key else (glob is not None):  # the last one would win unseen
            raise ConfigError(f"--threshold {v!r}: {'that command' if key else 'one number'} is given twice")
        if key:
            out[key] = x
        else:
            glob = x
    return glob, out


def sensitivity_names(args: argparse.Namespace) -> tuple[str, str]:
    """What the rate and the thresholds in use are called in messages: the flags, or the assistant file's keys where
    they came from there."""
    source = getattr(args, "sensitivity_from", None)
    if source:
        return f"{source}.false_accepts_per_hour", f"{source}.threshold(s)"
    return "--false-accepts-per-hour", "--threshold"


def threshold_override(values: Sequence[str] | None, labels: Sequence[str],
                       firing: Sequence[str] | None = None, name: str = "--threshold",
                       firing_from: str = "--commands", say_unused: bool = False) -> float | dict[str, float] | None:
    """``--threshold`` values parsed and checked against a model's labels (``firing``: the only commands that can
    fire, ``--commands`` or an assistant's, as ``firing_from`` says; a pair for another one would be a setting that
    does nothing). ``name``: what the values are called in errors; ``say_unused``: say (once, as the sensitivity in
    use is said) that a number every pair covers is not used."""
    from voice_gru import commands_of

    glob, pairs = parse_thresholds(values)
    able = list(firing) if firing is not None else list(commands_of(labels))
    override: float | dict[str, float] | None = glob
    if pairs:  # with one number too: the number for every command that can fire, the pairs for theirs
        override = pairs if glob is None else {**dict.fromkeys(able, glob), **pairs}
    if override is not None and all((override if isinstance(override, float) else override.get(c, 0.0)) >= OFF
                                    for c in able):  # listened for minutes, then "0 command(s)", status 0
        given = " ".join(values or ())
        raise ConfigError(f"{name} {given}: switches off every command that can fire here (a threshold of {OFF:g} "
                          "is off): nothing would ever fire")
    unknown = sorted(set(pairs) - set(commands_of(labels)))
    if unknown:
        raise ConfigError(f"{name}: unknown command '{unknown[0]}' (the model's commands: "
                          f"{', '.join(commands_of(labels))})")
    if say_unused and glob is not None and pairs and set(able) <= set(pairs):  # said, not silently dropped
        print(f"{name} {glob:g}: every command that can fire has a value of its own: the number is not used",
              file=sys.stderr)
    silent = [c for c in pairs if firing is not None and c not in firing]
    if silent:
        fix = ("add it to --commands" if firing_from == "--commands"
               else f"{firing_from} maps no action to it: give it one")
        raise ConfigError(f"{name} {silent[0]}={pairs[silent[0]]:g}: '{silent[0]}' never fires here (only "
                          f"{', '.join(firing or ())} can): {fix}, or leave the pair out")
    return override


def recognizer_override(args: argparse.Namespace, ckpt: Checkpoint | CheckpointData,
                        commands: Sequence[str] | None = None) -> float | dict[str, float] | None:
    """Thresholds from ``--threshold`` or from ``--false-accepts-per-hour`` (a calibrated
    operating point of the model, chosen for ``commands`` when only those can fire), or None for the
    model's own calibrated thresholds."""
    from voice_gru import commands_of
    from voice_gru.calibrate import SUBSET_CONFIDENCE, calibration_of, for_commands, operating_point

    rate = getattr(args, "false_accepts_per_hour", None)
    rate_name, threshold_name = sensitivity_names(args)
    if rate is None:
        override = threshold_override(args.threshold, ckpt.labels, commands, threshold_name, say_unused=True)
        print(sensitivity_line(ckpt, override, commands), file=sys.stderr)
        cal = calibration_of(ckpt)
        if commands is not None and override is None and cal.get("operating_points"):
            now = next((p for p in cal["operating_points"] if p["target_fa_per_hour"] == cal["target_fa_per_hour"]), None)
            now = for_commands(now, commands) if now else None
            if now and "commands" in now:
                target = cal["target_fa_per_hour"]
                try:  # advice only: a model whose calibration missed its target may have no point to give
                    best: dict | None = operating_point(ckpt, target, commands)
                except ConfigError:
                    best = None
                print(f"{', '.join(commands)} alone at the model's point: expected {now['fa_per_hour']:.2f} false "
                      f"accepts/h, recall {now['recall']:.0%} (on new speakers)"
                      + (f"; --false-accepts-per-hour {target:g} picks the point of {best['target_fa_per_hour']:g}/h for them "
                         f"(expected {best['fa_per_hour']:.2f}/h, recall {best['recall']:.0%})"
                         if best is not None and best["recall"] > now["recall"] else ""), file=sys.stderr)
        return override
    adjust = threshold_override(args.threshold, ckpt.labels, commands, threshold_name)
    if parse_thresholds(args.threshold)[0] is not None or isinstance(adjust, float):
        raise ConfigError(NOT_BOTH)
    point = operating_point(ckpt, rate, commands, name=rate_name)
    whose = f" from {', '.join(point['commands'])}" if "commands" in point else ""
    budget = rate if whose else point["target_fa_per_hour"]
    print(f"operating point: at most {budget:g} false accept{'' if budget == 1 else 's'}/hour{whose} "
          f"{_where(point)} ({point['fa_per_hour']:.2f}/h"
          + (f", at most {point['fa_bound_per_hour']:.2f}/h at {SUBSET_CONFIDENCE:.0%} confidence"
             if "fa_bound_per_hour" in point else "") + f", recall {point['recall']:.0%}"
          + (f"; the point of {point['target_fa_per_hour']:g}/h for every command" if whose else "") + "; "
          + thresholds_text(point["thresholds"], commands or commands_of(ckpt.labels)) + ")"
          + (f"; adjusted: {' '.join(f'{k}={v:g}' for k, v in adjust.items())} (its figures no longer hold for those)"
             if adjust else ""), file=sys.stderr)
    return {**point["thresholds"], **(adjust or {})}


def mode_warning(ckpt: Checkpoint | CheckpointData, mode: str) -> None:
    """Say so on stderr where the model's thresholds were calibrated in the other recognizer mode: ``calibrate --mode
    window`` was recorded, then listened to in stream mode with the window's thresholds, unsaid."""
    from voice_gru.calibrate import calibration_of

    fitted = calibration_of(ckpt).get("mode")
    if fitted and fitted != mode:
        print(f"warning: the model's thresholds were calibrated in {fitted} mode; in {mode} mode their expected figures "
              f"do not hold (--mode {fitted} runs them as fitted)", file=sys.stderr)


def wake_thresholds(args: argparse.Namespace, ckpt: Checkpoint | CheckpointData, wake: WakeWord,
                    firing: Sequence[str] | None = None) -> dict[str, float] | None:
    """With a wake word: the wake word at the point of ``--false-accepts-per-hour`` (default: the model's) chosen for
    it alone, the commands it opens at ``wake.false_accepts_per_hour``, whose false accepts cost nothing outside the
    seconds after it; ``--threshold COMMAND=VALUE`` pairs adjust single commands of that. None where it does not
    apply (one ``--threshold`` for every command, pairs or not; a model without operating points). ``firing``: the
    commands that can fire (None: all)."""
    from voice_gru import commands_of
    from voice_gru.calibrate import SUBSET_CONFIDENCE, calibration_of, operating_point

    cal = calibration_of(ckpt)
    rate_name, threshold_name = sensitivity_names(args)
    glob, pairs = parse_thresholds(args.threshold)
    if glob is not None and args.false_accepts_per_hour is not None:  # before any line says what is in use
        raise ConfigError(NOT_BOTH)
    threshold_override(args.threshold, ckpt.labels, name=threshold_name)
    able = list(firing) if firing is not None else list(commands_of(ckpt.labels))
    used = {c: pairs.get(c, glob) if glob is not None else pairs.get(c, 0.0) for c in able}
    if used.get(wake.word, 0.0) >= OFF:
        raise ConfigError(f"{threshold_name} {' '.join(args.threshold or ())}: switches off the wake word "
                          f"'{wake.word}', and no command could ever run after it")
    opened = [c for c in able if c != wake.word]
    if opened and all(used[c] >= OFF for c in opened) and not wake.fire:
        raise ConfigError(f"{threshold_name} {' '.join(args.threshold or ())}: switches off every command after "
                          f"the wake word '{wake.word}', which runs no action of its own: nothing would ever run")
    if glob is not None:  # one number (and pairs): one threshold scheme for all, neither point
        print(f"{threshold_name} {' '.join(args.threshold or ())}: "
              + ("one threshold for every command" if not pairs else "these thresholds") + f", the wake word "
              f"'{wake.word}' too (its own point and wake_word.false_accepts_per_hour are not used)", file=sys.stderr)
        return None
    if not cal.get("operating_points"):
        return None
    rate = cal["target_fa_per_hour"] if args.false_accepts_per_hour is None else args.false_accepts_per_hour
    alone = operating_point(ckpt, rate, [wake.word], name=rate_name)
    # null: the commands at the wake word's rate (the point for all of them), the wake word still at its own
    if wake.false_accepts_per_hour is None:
        after = operating_point(ckpt, rate, name=rate_name)
    else:
        where = getattr(args, "assistant", None) or "the assistant file"
        after = operating_point(ckpt, wake.false_accepts_per_hour, name=f"{where}: wake_word.false_accepts_per_hour")
    bound = (f", at most {alone['fa_bound_per_hour']:.2f}/h at {SUBSET_CONFIDENCE:.0%} confidence"
             if "fa_bound_per_hour" in alone else "")
    print(f"sensitivity: the wake word '{wake.word}' at most {rate:g} false accept{'' if rate == 1 else 's'}/hour "
          f"(the point of {alone['target_fa_per_hour']:g}/h for it alone: expected {alone['fa_per_hour']:.2f}/h{bound}, "
          f"recall {alone['recall']:.0%}); the commands after it at the point of {after['target_fa_per_hour']:g}/h "
          f"(recall {after['recall']:.0%}; wake_word.false_accepts_per_hour: their false accepts only act within "
          f"{wake.seconds:g} s of '{wake.word}')"
          + (f"; adjusted: {' '.join(f'{k}={v:g}' for k, v in pairs.items())} (its figures no longer hold for those)"
             if pairs else ""), file=sys.stderr)
    return {**after["thresholds"], wake.word: alone["thresholds"][wake.word], **pairs}


def config_decision(path: str | None, ckpt: Checkpoint | CheckpointData,
                    thresholds_used: bool = True) -> DecisionConfig | None:
    """``--config``: the model's decision settings with those its ``decision`` section sets (None: none given)."""
    if not path:
        return None
    import dataclasses

    from voice_gru.config import load_decision
    from voice_gru.streams import decision_of

    path = recipe_path(path)
    model_own = decision_of(ckpt)
    decision, keys = load_decision(path, model_own)
    unknown = sorted(set(decision.thresholds) - set(ckpt.labels)) if "thresholds" in keys else []
    if unknown:
        raise ConfigError(f"{path}: decision.thresholds.{unknown[0]}: not a label of this model "
                          f"({', '.join(c for c in ckpt.labels if not c.startswith('_'))})")
    if thresholds_used and ckpt.thresholds and keys & {"threshold", "thresholds"}:
        print(f"warning: --config {path}: its decision thresholds are not used: the model's calibrated thresholds come "
              "first (--threshold or --false-accepts-per-hour change them)", file=sys.stderr)
        # said once: CommandSpotter would say it again, in the API's words
        decision = dataclasses.replace(decision, threshold=model_own.threshold, thresholds={})
    if not thresholds_used and keys & {"threshold", "thresholds"}:
        print(f"warning: --config {path}: its decision thresholds are not used: calibration chooses them",
              file=sys.stderr)
    changed = [k for k in sorted(keys - {"threshold", "thresholds"}) if getattr(decision, k) != getattr(model_own, k)]
    if thresholds_used and ckpt.thresholds and changed:  # cooldown 3000 ms fired 2 of 3 commands "at 80% recall"
        print(f"warning: --config {path}: {', '.join(f'{k} {getattr(decision, k):g}' for k in changed)} instead of the "
              f"model's {', '.join(f'{getattr(model_own, k):g}' for k in changed)}: its calibrated figures (false "
              "accepts per hour, recall) were measured with the model's and no longer hold", file=sys.stderr)
    if not keys:  # a recipe without the section: nothing of it is used, which the run looked as if it did
        print(f"warning: --config {path}: has no decision settings (a 'decision' section): the model's own are used",
              file=sys.stderr)
    return decision


def _where(point: dict) -> str:
    """Where an operating point's figures come from: held-out speakers (with a rule) or the calibration streams."""
    return "on new speakers, expected" if "rule" in point else "on the validation streams, measured"


def thresholds_text(thresholds: Mapping[str, float], every: Sequence[str]) -> str:
    """Per-command thresholds in a few words: ``threshold 0.95 for every command but down=0.99`` where they cover
    ``every`` command (those that can fire), else ``thresholds stop=0.9, the rest the model's``."""
    from collections import Counter

    if not set(every) <= set(thresholds):
        return f"thresholds {' '.join(f'{k}={v:g}' for k, v in thresholds.items())}, the rest the model's"
    common, _ = Counter(round(thresholds[c], 6) for c in every).most_common(1)[0]
    odd = [f"{c}={thresholds[c]:g}" for c in every if round(thresholds[c], 6) != common]
    if 2 * len(odd) >= len(every):  # no number most of them share
        return f"thresholds {' '.join(f'{c}={thresholds[c]:g}' for c in every)}"
    return f"threshold {common:g} for every command" + (f" but {' '.join(odd)}" if odd else "")


def sensitivity_line(ckpt: Checkpoint | CheckpointData, override: float | dict[str, float] | None,
                     commands: Sequence[str] | None = None) -> str:
    """One line saying which thresholds are in use and what they mean (stderr at start-up; ``commands``: those that
    can fire, None: all)."""
    from voice_gru import commands_of
    from voice_gru.calibrate import calibration_of, operating_point

    change = "--false-accepts-per-hour R or --threshold T change it"
    if isinstance(override, dict):
        return (f"sensitivity: {thresholds_text(override, commands or commands_of(ckpt.labels))} (higher: fewer false "
                "triggers, more misses)")
    if override is not None:
        return f"sensitivity: threshold {override:g} for every command (higher: fewer false triggers, more misses)"
    cal = calibration_of(ckpt)
    if ckpt.thresholds and cal:
        rate = cal["target_fa_per_hour"]
        head = (f"sensitivity: calibrated for at most {rate:g} false accept{'' if rate == 1 else 's'} per hour "
                f"({thresholds_text(ckpt.thresholds, commands_of(ckpt.labels))})")
        if "expected_fa_per_hour" in cal:
            more: dict[float, dict] = {}  # what each rate's flag would pick (a point whose target was missed is not handed out)
            for more_rate in (5.0, 20.0):
                try:
                    point = operating_point(ckpt, more_rate)
                except ConfigError:
                    continue
                if point["recall"] > max([cal["expected_recall"], *(p["recall"] for p in more.values())]):
                    more[more_rate] = point
            if more:
                change = ("more recall: --false-accepts-per-hour " + " or ".join(
                    f"{r:g} ({p['recall']:.0%})" for r, p in more.items()) + "; --threshold T sets it directly")
            return (f"{head} on new speakers (expected {cal['expected_fa_per_hour']:.2f}/h, recall {cal['expected_recall']:.0%}, "
                    f"cross-validated over {cal.get('split', 'validation')} speakers; more in reverberant rooms); {change}")
        return (f"{head} on {cal.get('split', 'validation')} streams (measured {cal['achieved_fa_per_hour']:.2f}/h, recall "
                f"{cal['recall']:.0%}; expect more on other voices and rooms); {change}")
    return "sensitivity: the model is not calibrated (voice-gru calibrate), default thresholds; --threshold T changes them"


def _cmd_devices(args: argparse.Namespace) -> int:
    from voice_gru.mic import format_devices, format_pulse_sources, list_input_devices, pulse_sources

    devices = list_input_devices()
    if not devices:  # a script can tell "no microphone" from a list: status 1, the reason on stderr
        print(f"voice-gru: {format_devices(devices)}", file=sys.stderr)
        return 1
    print(format_devices(devices))
    sources = pulse_sources() if any(d.name == "pulse" for d in devices) else []
    if sources:  # two microphones behind the one `pulse` device: the table alone gave no way to pick the second
        print(format_pulse_sources(sources))
    return 0


def check_listen_args(args: argparse.Namespace) -> bool:
    """``listen``'s flags checked together, before any work (each problem one line); whether the input is a pipe."""
    from voice_gru.live import EventWriter

    if args.assistant and not getattr(args, "assistant_config", None):
        args.assistant = recipe_path(args.assistant, "--assistant")
    check_outputs({"--events": args.events}, [args.input, args.model, args.assistant, args.config])
    if args.events:
        EventWriter.check(args.events)
    from_pipe = args.input == "-"
    if args.input and args.device is not None:
        raise ConfigError("--device chooses a microphone; with --input the audio comes from that file or pipe: give one of them")
    if args.realtime and (not args.input or from_pipe):  # a microphone or a pipe comes at its own pace
        raise ConfigError("--realtime paces a file given with --input FILE like a microphone; "
                          f"{'standard input' if from_pipe else 'a microphone'} comes at its own pace: leave it out")
    if args.input and args.reconnect:
        raise ConfigError("--reconnect waits for a microphone that went away; with --input the audio comes from a file "
                          "or pipe: leave it out")
    if not args.input and args.chunk_ms > MAX_MIC_CHUNK_MS:  # also the capture block: every command that much later
        raise ConfigError(f"--chunk-ms {args.chunk_ms:g}: a microphone is read in blocks of at most {MAX_MIC_CHUNK_MS:g} "
                          "ms (a command is decided only once its block has come: a longer one delays every command)")
    if (not args.input or from_pipe or args.realtime) and args.chunk_ms > SLOW_CHUNK_MS:  # timed: +0.75-1.9 s at 1000
        print(f"warning: --chunk-ms {args.chunk_ms:g}: a command is acted on only once its block has come, up to "
              f"{args.chunk_ms:g} ms after it was said (plus what the sound server holds); the default 100 keeps "
              "reactions quick", file=sys.stderr)
    if (args.input_rate is not None or args.input_channels is not None) and not from_pipe:
        raise ConfigError("--input-rate and --input-channels describe raw audio on standard input: use them with --input -")
    for flag, value in (("--input-rate", args.input_rate), ("--input-channels", args.input_channels)):
        if value is not None and value <= 0:
            raise ConfigError(f"{flag} {value}: must be positive")
    if not args.input and args.device is not None:  # a device that is not there: one line, before the others
        from voice_gru.mic import resolve_device

        resolve_device(args.device)
    return from_pipe


def use_assistant_sensitivity(args: argparse.Namespace, assistant: AssistantConfig) -> None:
    """An assistant file's ``sensitivity:`` as if given as flags (a service runs the file), unless flags were given;
    ``--commands`` narrows its pairs. Said on stderr."""
    file_sets = assistant.false_accepts_per_hour is not None or assistant.threshold_values
    if file_sets and (args.false_accepts_per_hour is not None or args.threshold):
        print(f"--false-accepts-per-hour / --threshold: used instead of {args.assistant}'s sensitivity", file=sys.stderr)
        return
    if not file_sets:
        return
    chosen = getattr(args, "commands", None)  # --commands narrows the file's: its other pairs do nothing
    wake = assistant.wake_word.word if assistant.wake_word else None
    kept = [v for v in assistant.threshold_values if "=" not in v or chosen is None or v.split("=")[0] in (*chosen, wake)]
    if assistant.false_accepts_per_hour is None and not kept:
        print(f"{args.assistant}: its sensitivity is for commands --commands leaves out: the model's is used",
              file=sys.stderr)
        return
    args.false_accepts_per_hour, args.threshold = assistant.false_accepts_per_hour, kept or None
    args.sensitivity_from = f"{args.assistant}: sensitivity"  # its errors name the file's keys
    print(f"sensitivity from {args.assistant}: " + " ".join(
        [*([f"false_accepts_per_hour {args.false_accepts_per_hour:g}"] if args.false_accepts_per_hour is not None
           else []), *kept]), file=sys.stderr)


def listen_spotter(args: argparse.Namespace, ckpt: CheckpointData) -> tuple[CommandSpotter, AssistantConfig | None]:
    """The recognizer ``listen`` runs and its assistant (None without ``--assistant``): the commands that can fire,
    their sensitivity from the flags or the assistant file (said at start-up), the decision settings of ``--config``."""
    from voice_gru.spotter import CommandSpotter, command_subset

    refresh = refresh_of(args, ckpt.features.hop_ms)
    decision = config_decision(args.config, ckpt)  # a bad --config is refused before anything is printed
    assistant = None
    if args.assistant:
        from voice_gru import commands_of

        assistant = (getattr(args, "assistant_config", None)
                     or assistant_of(args.assistant, commands_of(ckpt.labels), args.model))
        use_assistant_sensitivity(args, assistant)
    commands = getattr(args, "commands", None)
    if commands is None and assistant is not None:
        commands = assistant.commands
    wake = assistant.wake_word.word if assistant is not None and assistant.wake_word else None
    commands = with_wake_word(commands, wake, args.assistant)
    subset = command_subset(commands, ckpt.labels, "--commands")
    # a pair for a command that cannot fire: before the rest
    threshold_override(args.threshold, ckpt.labels, subset, sensitivity_names(args)[1],
                       "--commands" if getattr(args, "commands", None) or assistant is None else args.assistant)
    if assistant is not None and getattr(args, "commands", None):
        bare = [c for c in args.commands if c not in assistant.actions and c != wake]
        if bare:  # heard and printed, but nothing runs: said, not left to be found out
            print(f"--commands: {args.assistant} maps no action to {', '.join(bare)}: "
                  f"{'it is' if len(bare) == 1 else 'they are'} only printed", file=sys.stderr)
    woken = (wake_thresholds(args, ckpt, assistant.wake_word, subset)
             if assistant is not None and assistant.wake_word else None)
    # also says at start-up which sensitivity is in use
    override = woken if woken is not None else recognizer_override(args, ckpt, subset)
    mode_warning(ckpt, args.mode)
    spotter = CommandSpotter(ckpt, threshold=override, decision=decision, mode=args.mode, refresh_s=refresh,
                             commands=subset)
    off = [c for c in spotter.thresholds if c not in spotter.commands]
    if off:
        print(f"listening for {', '.join(spotter.commands)} only ("
              + ("--commands" if getattr(args, "commands", None) else f"the commands {args.assistant} maps; --commands chooses")
              + f"): {', '.join(off)} never fire", file=sys.stderr)
    return spotter, assistant


def _input_chunks(args: argparse.Namespace, sample_rate: int, monitor: InputMonitor) -> tuple[Iterator, str]:
    """The chunks of ``listen --input`` (a file or ``-``, at the model's ``sample_rate``) and a line saying what is
    read; ``monitor`` is told the input's own rate."""
    from voice_gru.audio import file_rate
    from voice_gru.live import file_chunks, stdin_chunks

    def damaged(message: str) -> None:  # a recorder killed mid-file or mid-pipe, a damaged stretch: heard
        print(f"warning: {message}", file=sys.stderr, flush=True)

    if args.input != "-":
        chunks = file_chunks(args.input, args.chunk_ms, args.realtime, sample_rate, damaged)
        monitor.known_rate(file_rate(args.input))
        return chunks, f"streaming {args.input} through the recognizer"

    def partial(n: int) -> None:
        print(f"standard input ended inside a sample frame: its last {n} byte(s) were not audio",
              file=sys.stderr, flush=True)

    chunks, what = stdin_chunks(sys.stdin.buffer, args.input_rate, args.input_channels, args.chunk_ms,
                                sample_rate, partial, monitor.known_rate, damaged)
    if "raw" in what and args.input_rate is None:  # 48 kHz raw read as 16 kHz sounds 3x slow and low
        monitor.band_hint = "(or raw PCM recorded at a higher rate than the 16000 Hz assumed: --input-rate)"
    return chunks, what


def _cmd_listen(args: argparse.Namespace) -> int:
    import threading

    from voice_gru.checkpoint_data import read_checkpoint_data
    from voice_gru.input_level import InputMonitor
    from voice_gru.live import EventWriter, ListenStats, LiveView, LossWatch, listen_loop, mic_chunks, reconnecting_mic_chunks
    from voice_gru.signals import give_up_after

    from_pipe = check_listen_args(args)
    ckpt = read_checkpoint_data(args.model)  # no torch: the live path runs on NumPy and numba alone
    spotter, assistant = listen_spotter(args, ckpt)
    runner = None
    if assistant is not None:
        from voice_gru.actions import ActionRunner

        def report(cmd, action, ok, detail):
            if ok and action.startswith("print"):  # its own output says it all
                return
            print_line(f"  {cmd.label} -> {action} ({'ok: ' + detail if ok else 'FAILED: ' + str(detail)})")

        # a pipe is live while its audio keeps real time (a recording piped in runs far ahead: its commands are
        # no echo of a say action, which the wall clock times)
        live: bool | Callable[[], bool] = (lambda: stats is not None and stats.keeps_real_time()) if from_pipe \
            else not args.input
        runner = ActionRunner(assistant, on_result=report, live=live)
        if assistant.wake_word:
            w = assistant.wake_word
            print(f"wake word: say '{w.word}', then a command within {w.seconds:g} s; commands before it are "
                  f"ignored{'' if w.fire else f' (and {w.word} runs no action of its own)'}", file=sys.stderr)
    events = EventWriter(args.events) if args.events else None
    f = ckpt.features

    collected = getattr(args, "collect", None)
    unwritten: list = []

    def on_command(cmd):
        why = runner.ignored_because(cmd) if runner is not None else None
        print_line(f"{cmd.t:8.2f}s  {cmd.label:<6} score {cmd.score:.2f}" + (f"  (ignored: {why})" if why else ""))
        if collected is not None:
            collected.append(cmd)
        if runner:
            runner.submit(cmd, said=why)
        if events:
            try:
                events.write(cmd, ignored=why)
            except BrokenPipeError:  # `--events - | head`: its reader is gone, as stdout's would be (exit 141)
                raise
            except OSError as exc:  # a full disk must not stop the assistant: said at once, and in the exit status
                if not unwritten:
                    warn(f"{exc.filename}: {exc.strerror}: the detection at {cmd.t:.2f} s is not in it, nor any later one "
                         "that cannot be written; listening goes on (the run ends with status 1)")
                unwritten.append(cmd)

    live_audio = not args.input or from_pipe
    view = LiveView(ckpt.labels) if (args.view or (args.view is None and sys.stderr.isatty() and live_audio)) else None

    def warn(message: str) -> None:
        if view:
            view.close()  # the status line is redrawn with the next chunk
        print(f"warning: {message}", file=sys.stderr, flush=True)

    monitor = InputMonitor("standard input" if from_pipe else (str(args.input) if args.input else "the microphone"),
                           f.sample_rate, warn=warn,
                           hint="" if args.input else "(`voice-gru devices` lists the inputs; choose one with --device)")
    completed = interrupted = False
    stats: ListenStats | None = None
    stop_watch = contextlib.ExitStack()
    if not args.input:  # PortAudio blocked on a sound server that stopped answering ignored Ctrl-C and SIGTERM
        stop_watch.enter_context(give_up_after(STOP_GRACE_S, runner.kill_running if runner else lambda: None,
                                               "the microphone did not let go (its sound server is not answering?)"))
    # Ctrl-C or SIGTERM (handled as KeyboardInterrupt from main() on): stop cleanly, run queued actions, close files
    try:
        if args.input:
            chunks, what = _input_chunks(args, f.sample_rate, monitor)
            print(f"{what} ({args.mode} mode)", flush=True)
            stats = ListenStats()  # filled as it runs: a run ended by Ctrl-C or SIGTERM still reports its totals
            listen_loop(chunks, spotter, on_command, view, args.seconds, stats=stats, monitor=monitor)
            if from_pipe and stats.seconds == 0:
                raise AudioFormatError("standard input: the pipe ended before any audio arrived "
                                       "(did the program writing to it fail?)")
        else:
            from voice_gru.mic import Microphones, MicrophoneStream, rescan_for

            stop = threading.Event()
            mics = Microphones(args.device, block_ms=args.chunk_ms)

            def lost(reason: str) -> None:
                warn(f"{reason}; waiting for it to come back (--reconnect: tried every {RECONNECT_S:g} s; Ctrl-C stops)")

            def watch(m: MicrophoneStream) -> None:
                monitor.source = f"microphone '{m.device.name}'"
                monitor.known_rate(int(m.samplerate))

            def back(m: MicrophoneStream, away: float) -> None:
                was = mics.opened[0].device.name
                print(f"microphone '{m.device.name}'{'' if m.device.name == was else f' (not the first one, {was!r})'} "
                      f"is back after {away:.0f} s: listening again at {m.samplerate} Hz (the time of each command "
                      "counts the audio heard, not the time away)", flush=True)
                watch(m)

            def retry_failed(reason: str) -> None:
                warn(f"still waiting for the microphone: {reason}")

            def first():
                print("listening: say a command (Ctrl-C to stop)", flush=True)

            try:
                mic = mics.open()
                print(f"opening {mic.device.name} at {mic.samplerate} Hz, {mic.channels} channel(s) ...", flush=True)
                watch(mic)
                chunks = (reconnecting_mic_chunks(mic, mics.open, stop.is_set, first, lost, back, RECONNECT_S,
                                                  lambda: rescan_for(args.device), on_retry_error=retry_failed,
                                                  on_gap=warn)
                          if args.reconnect else mic_chunks(mic, stop.is_set, first, on_gap=warn))
                chunks = LossWatch(mics, args.chunk_ms, warn).watched(chunks)
                stats = ListenStats()  # filled as it runs: a session ended by Ctrl-C still reports its totals
                try:
                    listen_loop(chunks, spotter, on_command, view, args.seconds, stats=stats, monitor=monitor)
                except KeyboardInterrupt:  # the microphones are closed (finally) before the totals
                    stop.set()
                    interrupted = True
                except AudioDeviceError as exc:  # mid-session (--reconnect keeps these): say what would have waited
                    if args.reconnect:
                        raise
                    raise type(exc)(f"{exc} (listen --reconnect waits for it instead)") from None
            finally:
                mics.close()
            if mics.overflows or mics.dropped_blocks:
                print(f"input overflows: {mics.overflows}, blocks dropped: {mics.dropped_blocks}", file=sys.stderr)
        completed = True
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: how a live session ends, a run like any other
        completed = interrupted = True
    finally:
        try:
            if runner:
                if runner.busy:
                    print(f"waiting up to {ACTIONS_GRACE_S:g} s for the actions still to run (Ctrl-C again stops them)",
                          file=sys.stderr, flush=True)
                try:
                    runner.close(timeout=ACTIONS_GRACE_S)
                except KeyboardInterrupt:  # a second Ctrl-C: the programs are stopped now, not left running
                    runner.close(timeout=0)
                    completed = interrupted = True
            if events:
                events.close(completed and stats is not None and stats.seconds > 0)  # none heard: the last run's kept
            if stats is not None and (completed or stats.seconds):  # also when the microphone was lost mid-run
                print(f"{len(stats.events)} command(s) in {stats.seconds:.1f}s of audio; "
                      f"real-time factor {stats.real_time_factor:.4f}", flush=True)
                if runner:
                    print(runner.summary(), flush=True)
                monitor.end()  # said through its warn
                print(monitor.summary(), flush=True)
        finally:
            stop_watch.close()
    if unwritten:
        print(f"voice-gru: error: {len(unwritten)} detection(s) could not be written to {args.events} (the first at "
              f"{unwritten[0].t:.2f} s)", file=sys.stderr)
    if interrupted:
        raise KeyboardInterrupt  # exit status 130, after the totals
    return 1 if unwritten else 0


def _assistant_words(path: str) -> set[str]:
    """The words an assistant file maps or wakes on, read without loading it (nothing if it cannot be read: loading
    it says why)."""
    import yaml

    from voice_gru.config import yaml_loader

    try:
        raw = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=yaml_loader())
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return set()
    if not isinstance(raw, dict):
        return set()
    wake = raw.get("wake_word")
    wake = wake.get("word") if isinstance(wake, dict) else wake
    actions = raw.get("actions")
    return {str(w) for w in (*(actions if isinstance(actions, dict) else ()), *([wake] if wake else []))}


def with_wake_word(commands: Sequence[str] | None, wake: str | None, source: str) -> list[str] | None:
    """``--commands`` with the wake word of the assistant file ``source`` added (said): without it nothing could ever
    run."""
    if commands is None or not wake or wake in commands:
        return None if commands is None else list(commands)
    print(f"--commands: listening for the wake word '{wake}' too ({source}: no action runs before it)", file=sys.stderr)
    return [*commands, wake]


def assistant_of(path: str, commands: Sequence[str], model: str | None) -> "AssistantConfig":
    """``load_assistant`` for a model of ``commands``; where no ``--model`` was given and the file names words the
    shipped model lacks, its error says how to give a model of one's own words."""
    from voice_gru import COMMANDS
    from voice_gru.actions import load_assistant

    try:
        return load_assistant(path, commands)
    except ConfigError as exc:
        if model is None and _assistant_words(path) - set(COMMANDS):
            raise ConfigError(f"{exc}; that is the shipped model: a model of your own words is given with --model "
                              f"(--model runs/NAME/calibrated.pt)") from None
        raise


def _cmd_demo(args: argparse.Namespace) -> int:
    """The shipped model on the bundled example recording, actions from configs/assistant.yaml."""
    from voice_gru import COMMANDS, UNKNOWN, commands_of
    from voice_gru.stream_labels import read_truth

    assets = Path(__file__).parent / "assets"
    example = assets / "example.wav"
    commands: tuple[str, ...] = COMMANDS
    if args.model:  # refused before the first line, not after it
        from voice_gru.checkpoint_data import read_checkpoint_data

        commands = commands_of(read_checkpoint_data(args.model).labels)
    truth = read_truth(assets / "example.json", commands=commands)  # its words scored as this model's commands or not
    if not any(e["label"] != UNKNOWN for e in truth["events"]):
        raise ConfigError(f"--model {args.model}: the example recording says none of its commands "
                          f"({', '.join(commands)}); try it on your own audio with `voice-gru listen --model {args.model}`")
    assistant = recipe_path(args.assistant, "--assistant") if args.assistant else None
    loaded = assistant_of(assistant, commands, args.model) if assistant else None  # refused before anything is printed
    if not assistant:  # the bundled one (listen loads it and says what is wrong with it), where its commands are the model's
        found = own_config("assistant.yaml")
        assistant = str(found) if found is not None else None
        if found is None:  # a source tree without its configs/: said, not silently no actions
            print("note: no configs/assistant.yaml here: detections only, no actions (give --assistant FILE)",
                  file=sys.stderr)
        lacking = sorted(_assistant_words(assistant) - set(commands)) if assistant else []
        if lacking:
            print(f"note: {assistant} maps {', '.join(lacking)}, which this model does not have: no actions (give "
                  "--assistant FILE)", file=sys.stderr)
            assistant = None
    said = ", ".join(f"{e['word']}@{e['start']:.1f}s" for e in truth["events"])
    print(f"example recording ({truth['duration']:.0f} s of Speech Commands clips over background noise; "
          f"CC BY 4.0): {said}")
    ns = build_parser().parse_args(["listen", "--input", str(example), "--no-view"]
                                   + (["--assistant", assistant] if assistant else [])
                                   + (["--model", args.model] if args.model else [])
                                   + (["--events", args.events] if args.events else []))
    events: list = []
    ns.collect = events
    ns.assistant_config = loaded  # read once: its warnings said once
    rc = _cmd_listen(ns)
    from voice_gru.streams import score_events

    score = score_events(events, truth, truth["duration"])
    print(f"score against the recording's labels: {score['hits']} of {score['commands']} "
          f"commands recognised, {score['wrong']} wrong, {score['false_accepts']} false accept(s)")
    # quoted: a clone in a folder with a space made a line that did not paste
    where = (f" --assistant {shlex.quote(_shown_path(assistant))}" if assistant else "") + \
        (f" --model {shlex.quote(_shown_path(args.model))}" if args.model else "")
    # the command as it was typed (.venv/bin/voice-gru is not on PATH after scripts/setup.sh)
    me = shlex.quote(_shown_path(sys.argv[0])) if Path(sys.argv[0]).name == "voice-gru" else "voice-gru"
    print(f"next: `{me} listen{where}` listens to your microphone (`{me} devices` lists them)")
    return rc


def refresh_of(args: argparse.Namespace, hop_ms: float) -> float | None:
    """``--refresh`` for the recognizer (None: never), checked before anything is printed."""
    if args.mode == "window" and args.refresh is not None:
        raise ConfigError("--refresh with --mode window: a window starts from a fresh state every time; "
                          "--refresh applies to --mode stream")
    refresh = REFRESH_S if args.refresh is None else args.refresh
    if 0 < refresh < 2 * hop_ms / 1000:  # below two frames the refresh would be all warm-up
        raise ConfigError(f"--refresh {refresh:g}: at least {2 * hop_ms / 1000:g} s (two frames; ~3 s keeps more than a "
                          "word of context), or 0: never refresh")
    return refresh or None


def _shown_path(path: str | Path) -> str:
    """``path`` as a user can paste it from here: relative below the working folder, absolute elsewhere."""
    full = Path(path).resolve()
    try:
        return str(full.relative_to(Path.cwd()))
    except ValueError:
        return str(full)


def add_recognizer_args(p: argparse.ArgumentParser) -> None:
    """The options shared by every command that runs the live recognition path."""
    p.add_argument("--threshold", action="append", metavar="X|CMD=X",
                   help="detection threshold (a posterior from 0.01 to 1, 1.01 = off; higher = fewer false triggers, "
                        "more misses); "
                        "repeat as stop=0.9 for one command (also to adjust a --false-accepts-per-hour point; with "
                        "one number: that number for the others). Default: the sensitivity of listen --assistant FILE, else the "
                        "model's calibrated thresholds")
    p.add_argument("--false-accepts-per-hour", type=number(0, above=True), metavar="R",
                   help="sensitivity in user units: the model's calibrated thresholds for at most R false accepts "
                        "per hour (the most sensitive of its calibrated points at or below R; the shipped model's: "
                        "0.5 1 2 5 10 20 30 100; higher R = more sensitive)")
    p.add_argument("--config", help="recipe YAML whose 'decision' section changes the model's settings (only the keys it sets)")
    p.add_argument("--mode", choices=["stream", "window"], default="stream",
                   help="stream: GRU frame by frame with carried state; window: rerun 1.5 s windows (reference)")
    p.add_argument("--refresh", type=number(0, 86400), metavar="S",
                   help="a fresh GRU state takes over every S seconds after S/2 of warm-up (0 = one state, never reset; "
                        f"default: {REFRESH_S:g}; --mode stream only)")
    p.add_argument("--chunk-ms", type=number(1, 60000), default=100.0,
                   help="audio per chunk in ms: how often commands are decided, and a microphone's block (at most "
                        "1000 there: a command waits for its block; live audio over 250 is warned); times and latencies "
                        "count from the audio itself "
                        "(default: %(default)s)")


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors on one line, like every other error here (the usage is one --help away); the line
    starts with the program's name (``voice-gru`` for each subcommand, a script's own name)."""

    def error(self, message: str) -> NoReturn:
        """Exit with status 2 and ``message`` on one line, pointing to the --help that explains it."""
        self.exit(2, f"{self.prog.split()[0]}: error: {message} (see {self.prog} --help)\n")

    def _typed_command(self, words: Sequence[str]) -> str:
        """The (sub)command ``words`` name, as its --help is asked for: ``voice-gru data download``, not the top
        parser's, and none of the values typed after it."""
        parser: argparse.ArgumentParser = self
        for word in words:
            subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            if not subs or word not in subs[0].choices:
                break
            parser = subs[0].choices[word]
        return parser.prog

    def parse_known_args(self, args: Iterable[str] | None = None, namespace: Any = None) -> tuple[Any, list[str]]:
        """argparse's, after refusing an empty argument: ``--assistant "$CONF"`` with CONF unset would otherwise
        mean no assistant (or, for a path, the working folder)."""
        words = list(sys.argv[1:] if args is None else args)
        for i, word in enumerate(words):
            if not word.strip() or (word.startswith("--") and not word.partition("=")[2] and "=" in word):  # --device " "
                after = f" after {words[i - 1]}" if not word.strip() and i else f" ({word})" if word.strip() else ""
                self.exit(2, f"{self.prog.split()[0]}: error: empty argument{after}: give a value (is the variable "
                             f"that should hold it set?) (see {self._typed_command(words)} --help)\n")
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from voice_gru import __version__

    p = OneLineParser(prog="voice-gru", description="Speech-command recognizer: train, evaluate, listen.")
    p.add_argument("--version", action="version", version=f"voice-gru {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    data = sub.add_parser("data", help="dataset tools: stats, download")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION")
    st = dsub.add_parser("stats", help="clips per class and split of a Speech Commands root")
    st.add_argument("--data-dir", default=DEFAULT_DATA, help="dataset root (default: %(default)s)")
    st.add_argument("--task", choices=["12", "35"], default="12",
                    help="12: the commands + _silence_ + _unknown_; 35: every word its own class (default: %(default)s)")
    st.add_argument("--commands", nargs="+", metavar="WORD",
                    help="with --task 12: the command words, as a recipe's data.commands (default: the ten of Speech "
                         "Commands)")
    st.add_argument("--json", metavar="FILE", help="also write the counts as JSON")
    st.set_defaults(func=_cmd_data_stats)
    dl = dsub.add_parser("download", help="download and unpack Speech Commands v0.02 and its test set")
    dl.add_argument("--dest", required=True, help="folder to unpack into")
    dl.add_argument("--base-url", help="mirror to download from (default: the official storage)")
    dl.add_argument("--quiet", action="store_true", help="no progress bar")
    dl.set_defaults(func=_cmd_data_download)

    tr = sub.add_parser("train", help="train a model (resumes an interrupted run in --out)")
    tr.add_argument("--config", help="recipe YAML (default: configs/default.yaml, here or in the repository)")
    tr.add_argument("--data-dir", default=DEFAULT_DATA, help="dataset root (default: %(default)s)")
    tr.add_argument("--out", required=True, help="run folder: best.pt, last.pt, metrics.jsonl, curves.png, state.pt")
    tr.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    tr.add_argument("--cache-dir", help="feature cache (default: $XDG_CACHE_HOME/voice_gru)")
    tr.add_argument("--restart", action="store_true", help="start from scratch even if --out holds a run")
    # past thousands torch's thread pool itself dies (a segmentation fault at 99999)
    tr.add_argument("--threads", type=whole(1, max(256, 4 * (os.cpu_count() or 1))),
                    help="CPU threads (default: all cores)")
    tr.add_argument("--seed", type=whole(0, 2**32 - 1), help="override the recipe's train.seed (e.g. for ensemble members)")
    tr.add_argument("--epochs", type=whole(1), help="override the recipe's train.epochs (e.g. a longer schedule)")
    tr.add_argument("--commands", nargs="+", metavar="WORD",
                    help="the model's command words: word folders of the dataset (override the recipe's data.commands; "
                         "default: yes no up down left right on off stop go); every other word is _unknown_")
    tr.add_argument("--init", metavar="CKPT",
                    help="override the recipe's train.init: start from this checkpoint's weights (fine-tuning)")
    tr.add_argument("--init-member", type=whole(0), metavar="N",
                    help="override train.init_member: the member of an ensemble --init starts from (from 0)")
    tr.add_argument("--quiet", action="store_true",
                    help="no progress bars and no epoch lines: warnings and the final line only (runs side by side)")
    tr.set_defaults(func=_cmd_train)

    en = sub.add_parser("ensemble", help="combine checkpoints of one task into one model")
    en.add_argument("models", nargs="+", metavar="CKPT", help="checkpoints with the same labels, features and normaliser")
    en.add_argument("--combine", choices=["mean", "min"],
                    help="per frame: mean of the members' logits, or min: each class's smallest posterior "
                         "(a command needs every member; fewer confident false accepts) (default: the inputs' own "
                         "where they are ensembles combined one way, else mean)")
    en.add_argument("--out", required=True, help="ensemble checkpoint to write")
    en.set_defaults(func=_cmd_ensemble)

    ev = sub.add_parser("evaluate", help="accuracy and confusions on clips, folders or a dataset split")
    ev.add_argument("paths", nargs="+", metavar="PATH",
                    help="dataset root (with --split), folder of label folders, folder of files, or files")
    ev.add_argument("--model", help="checkpoint (default: the shipped model)")
    ev.add_argument("--split", choices=["training", "validation", "testing"],
                    help="split of a dataset root (default: testing)")
    ev.add_argument("--unknown", choices=["sample", "all"], default="sample",
                    help="a dataset root's _unknown_ clips: a seeded sample as many as a tenth of the commands, or all of "
                         "the split's (then its recall by word is worth reading) (default: %(default)s)")
    ev.add_argument("--streaming", action="store_true",
                    help="run the clips back to back through the live recognizer, state carried (default: each clip alone)")
    ev.add_argument("--snr", type=number(-60, 100), metavar="DB",
                    help="mix background noise into every clip but _silence_ at this signal-to-noise ratio (dB)")
    ev.add_argument("--noise", action="append", metavar="PATH",  # one per flag: nargs="+" swallowed the clips' PATH
                    help="noise for --snr: a file, folder or dataset root; repeat for more (default: the first PATH's "
                         "_background_noise_)")
    ev.add_argument("--speed", type=number(0.25, 4), metavar="F",
                    help="play every clip but _silence_ F times as fast, pitch included (1.1: a fast talker, 0.9: a slow one)")
    ev.add_argument("--rt60", type=number(0.05, 5), metavar="S",
                    help="play every clip but _silence_ in a simulated room with this reverberation time (s)")
    ev.add_argument("--drr", type=number(-30, 60), metavar="DB",
                    help=f"direct-to-reverberant ratio of that room, dB (default: {DEFAULT_DRR:g}; ~0 across a room, ~10 close up)")
    ev.add_argument("--json", metavar="OUT", help="write the report as JSON")
    ev.add_argument("--csv", metavar="OUT", help="write per-file predictions as CSV")
    ev.add_argument("--plot", metavar="OUT.png", help="write the confusion matrix as PNG")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=_cmd_evaluate)

    ls = sub.add_parser("listen", help="recognise commands from the microphone (or --input FILE) and run actions")
    ls.add_argument("--model", help="checkpoint (default: the shipped model)")
    ls.add_argument("--device", help="input device: index or part of its name (see `voice-gru devices`)")
    ls.add_argument("--input", metavar="FILE", help="stream a recording instead of the microphone; '-': 16-bit PCM on "
                    "standard input, WAV or raw little-endian (arecord, sox, ffmpeg -f s16le|wav)")
    ls.add_argument("--input-rate", type=whole(1000, 768000), metavar="HZ", help="with --input - and raw PCM: its sample rate (default: 16000; a WAV header says its own)")
    ls.add_argument("--input-channels", type=whole(1, 64), metavar="N", help="with --input - and raw PCM: interleaved channels (default: 1)")
    ls.add_argument("--realtime", action="store_true", help="with --input: pace the file like a microphone")
    ls.add_argument("--reconnect", action="store_true",
                    help=f"when the microphone stops delivering audio (unplugged, its sound server restarted), wait for "
                         f"it and go on listening (tried every {RECONNECT_S:g} s) instead of ending the run; --seconds "
                         "counts the audio heard, not the time away")
    ls.add_argument("--assistant", metavar="YAML", help="command -> action mapping (e.g. configs/assistant.yaml)")
    ls.add_argument("--events", metavar="OUT.jsonl", help="write each detection as a JSON line")
    ls.add_argument("--commands", nargs="+", metavar="CMD",
                    help="only these commands can fire, the others are off: fewer false triggers, and "
                         "--false-accepts-per-hour counts theirs alone (default: all, or with --assistant the commands it maps)")
    add_recognizer_args(ls)
    ls.add_argument("--seconds", type=number(0, 366 * 86400, above=True), help="stop after this much audio")
    ls.add_argument("--view", action=argparse.BooleanOptionalAction, default=None,
                    help="live level/posterior line on the terminal (default: on for a microphone or a pipe, on a TTY)")
    ls.set_defaults(func=_cmd_listen)

    de = sub.add_parser("demo", help="the shipped model on a bundled example recording, with actions")
    de.add_argument("--model", help="checkpoint (default: the shipped model)")
    de.add_argument("--assistant", metavar="YAML", help="actions (default: configs/assistant.yaml)")
    de.add_argument("--events", metavar="OUT.jsonl", help="write each detection as a JSON line")
    de.set_defaults(func=_cmd_demo)

    from voice_gru import cli_record, cli_stream

    cli_stream.register(sub)
    cli_record.register(sub)

    dv = sub.add_parser("devices", help="list audio input devices and their default sample rates")
    dv.set_defaults(func=_cmd_devices)
    return p


TRAIN_EXTRA = ("torch", "torchaudio", "scipy", "matplotlib", "tqdm")  # pyproject.toml's `train` extra


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``voice-gru`` console script."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as exc:  # a bad flag (one line printed) or --help: its status as the result
        return exc.code if isinstance(exc.code, int) else 2
    if extra:  # said here, not by the top parser: its --help does not list a subcommand's options
        words = list(sys.argv[1:] if argv is None else argv)
        before = args.command in words and words.index(extra[0]) < words.index(args.command)
        where = "voice-gru" if before else " ".join(
            x for x in ("voice-gru", args.command, getattr(args, "data_command", None)) if x)
        alien = next((SENSITIVITY_FLAGS[x.split("=")[0]] for x in extra if x.split("=")[0] in SENSITIVITY_FLAGS
                      and args.command in ("listen", "evaluate-stream")), "")
        print(f"voice-gru: error: unrecognized arguments: {' '.join(extra)} (see {where} --help){alien}", file=sys.stderr)
        return 2
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        if args.command is None:
            parser.print_help()
            return 0
        print(f"voice-gru: error: `voice-gru {args.command}` needs an action (see voice-gru {args.command} --help)",
              file=sys.stderr)
        return 2
    command = func  # narrowed: not None
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for notes that depend on the order
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        # a file name that is no UTF-8 (café.wav written in Latin-1) is printed as its own bytes: under a UTF-8
        # locale the report's line ended the run in a UnicodeEncodeError before --json was written
        sys.stdout.reconfigure(errors="surrogateescape")
    from voice_gru.signals import stop_on_signals

    # from here on, not only once a command is running: a process started in the background by a script has
    # SIGINT ignored, and one sent while the model loads was lost (listen then ran on)
    # a result written to standard output (`--json -`) must be all that is there: the report goes to stderr
    to_stdout = any(str(getattr(args, k, None)) in ("-", STDOUT) for k in ("json", "csv", "events"))
    with stop_on_signals(), contextlib.redirect_stdout(sys.stderr if to_stdout else sys.stdout), _library_warnings():
        return run_reporting_errors(lambda: command(args), f"voice-gru {args.command}")


@contextlib.contextmanager
def _library_warnings() -> Iterator[None]:
    """Where nothing else handles logging (a plain command line), the package's logged warnings print as the
    command's own, ``warning: ...``: Python's last-resort handler printed them bare, so "action queue of down full"
    read like output. A program that runs ``main()`` with logging set up keeps its own handlers, alone."""
    import logging

    class Lowered(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return f"{record.levelname.lower()}: {super().format(record)}"

    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(Lowered("%(message)s"))
    before, logging.lastResort = logging.lastResort, handler  # used only where no handler is found
    try:
        yield
    finally:
        logging.lastResort = before


def run_reporting_errors(run: Callable[[], int], command: str, prog: str = "voice-gru") -> int:
    """``run()``'s exit status; a project error, a missing training dependency or a file's OS error is
    one line on stderr (``prog: error: ...``, status 2; an audio device missing or lost status 75, EX_TEMPFAIL: it may
    be there when tried again, as a service manager does), Ctrl-C is status 130. For the CLI and scripts."""
    try:
        return run()
    except VoiceGruError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return DEVICE_STATUS if isinstance(exc, DeviceUnavailableError) else 2
    except ImportError as exc:  # a base install (no `train` extra) reaching the training side
        top = (exc.name or "").split(".")[0]
        if top not in TRAIN_EXTRA:
            raise
        print(f"{prog}: error: `{command}` needs {top}, which is not installed (the base install "
              f"listens; training, evaluation and calibration need the train extra: from a clone, "
              f"pip install -c constraints.txt '.[train]', or scripts/setup.sh)", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop, as Unix tools do (128 + SIGPIPE)
        try:  # what is still buffered for the closed pipe must not fail again at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.__stdout__.fileno())  # type: ignore[union-attr]
        except (OSError, AttributeError, ValueError):  # no real standard output (a notebook): nothing to silence
            pass
        return 141
    except OSError as exc:  # e.g. an output path under a file or in a folder without write permission
        where = f"{exc.filename}: " if exc.filename else ""
        # FileExistsError here: a folder to write into is a file (Path.mkdir(exist_ok=True) on a file)
        why = "exists and is not a folder" if isinstance(exc, FileExistsError) else (exc.strerror or str(exc))
        print(f"{prog}: error: {where}{why}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass  # said below: once the traceback is gone, so are the progress bars its frames held (each clears its line)
    if "tqdm" in sys.modules:  # a bar still drawn (the stop came inside its own code) is cleared for the line
        sys.modules["tqdm"].tqdm.write(f"{prog}: interrupted", file=sys.stderr)
    else:
        print(f"{prog}: interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":
    sys.exit(main())
