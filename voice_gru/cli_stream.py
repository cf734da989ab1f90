"""``voice-gru make-stream``, ``evaluate-stream`` and ``calibrate``: long-recording evaluation.

``register(subparsers)`` adds the three subcommands to the ``voice-gru`` parser (``cli.py`` calls
it). Each handler parses, calls one public function of ``voice_gru.streams`` /
``voice_gru.calibrate`` and prints; errors are ``VoiceGruError`` subclasses.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from voice_gru.cli import DEFAULT_DATA
from voice_gru.fileio import check_outputs, is_within, written_together

if TYPE_CHECKING:
    from voice_gru.cli import OneLineParser
    from voice_gru.model import Checkpoint


def _spec_from_args(args: argparse.Namespace):
    from voice_gru.errors import ConfigError
    from voice_gru.streams import StreamSpec

    kw = {"seconds": args.minutes * 60.0, "command_free": args.command_free}
    if getattr(args, "snr_db", None) is not None and getattr(args, "gain_db", None) is not None:
        raise ConfigError("--snr with --gain-db: each sets the words' level (against the noise under each word, or "
                          "against the recording's full scale); give one of them")
    for name in ("gap_s", "gain_db", "noise_dbfs", "snr_db"):
        val = getattr(args, name, None)
        if val is not None:
            kw[name] = tuple(val)
    if args.command_ratio is not None:
        kw["command_ratio"] = args.command_ratio
    if args.rt60 is not None:
        kw["rt60_s"] = args.rt60
    if args.drr is not None:
        if args.rt60 is None:  # it would be written into the spec and do nothing
            raise ConfigError("--drr is the direct-to-reverberant ratio of the room --rt60 simulates: add --rt60 S")
        kw["drr_db"] = args.drr
    if args.unknown_mix is not None:
        kw["unknown_mix"] = args.unknown_mix
    return StreamSpec(**kw).check()


def _cmd_make_stream(args: argparse.Namespace) -> int:
    from voice_gru import COMMANDS
    from voice_gru.cli import command_words
    from voice_gru.data import is_test_set_layout
    from voice_gru.errors import ConfigError
    from voice_gru.streams import make_stream, skipped_line, write_stream

    out = Path(args.out)
    if is_within(out, args.data_dir):
        raise ConfigError(f"--out {out}: inside the dataset folder {args.data_dir}; write streams elsewhere "
                          "(a WAV there would become a training clip)")
    if out.suffix.lower() != ".wav":
        raise ConfigError(f"--out {out}: give a file name ending in .wav (the labels go beside it as .json)")
    check_outputs({"--out": out, "its label file": out.with_suffix(".json")}, audio=["--out"], labels=["its label file"])
    if args.command_free and args.command_ratio is not None:
        raise ConfigError("--command-ratio with --command-free: a command-free recording has no commands; give one of them")
    if args.split != "testing" and is_test_set_layout(Path(args.data_dir)):
        raise ConfigError(f"--data-dir {args.data_dir} is a test-set layout (label folders, no split lists): all its "
                          "clips are testing clips; give --split testing")
    spec = _spec_from_args(args)
    if spec.gap_s[0] < 1.0:
        print(f"note: --gap {spec.gap_s[0]:g} {spec.gap_s[1]:g}: words start before the previous 1 s clip ends, so they "
              "overlap (babble); evaluate-stream cuts each word's window at the next word's start", file=sys.stderr)
    commands = command_words(args.commands) if args.commands else COMMANDS
    audio, truth = make_stream(args.data_dir, args.split, spec, seed=args.seed, commands=commands)
    if not truth["events"] and not truth.get("command_free"):  # its own tools would refuse the label file
        raise ConfigError(f"--minutes {args.minutes:g}: {truth['duration']:.1f} s holds no word (words come every "
                          f"{spec.gap_s[0]:g}–{spec.gap_s[1]:g} s): give a longer stream")
    wav, labels = write_stream(out, audio, truth)
    n_cmd = sum(1 for e in truth["events"] if e["label"] != "_unknown_")
    n_unk = len(truth["events"]) - n_cmd
    print(f"wrote {wav} ({_duration(truth['duration'])}, {args.split} split, seed {args.seed}: "
          f"{n_cmd} commands, {n_unk} unknown words, {len(truth['noise'])} noise segments) and {labels}")
    if not truth["noise"]:
        print(f"note: {args.data_dir} has no background noise (a _background_noise_ folder of recordings, or a test-set "
              "layout's _silence_ clips): the words are over digital silence", file=sys.stderr)
    overlaps = sum(a["end"] > b["start"] for a, b in zip(truth["events"], truth["events"][1:]))
    if overlaps and spec.gap_s[0] >= 1.0:  # (a shorter gap was said above: overlap asked for)
        longest = max(e["end"] - e["start"] for e in truth["events"])
        print(f"note: {overlaps} word(s) still play when the next starts (clips up to {longest:.1f} s, words every "
              f"{spec.gap_s[0]:g}–{spec.gap_s[1]:g} s): --gap {math.ceil(longest) + 1} {math.ceil(longest) + 3} keeps "
              "them apart; evaluate-stream cuts each word's window at the next word's start", file=sys.stderr)
    if truth.get("clipped_samples"):
        print(f"warning: {truth['clipped_samples']} samples ({truth['clipped_samples'] / max(1, audio.size):.1%}) were clipped at "
              f"full scale: lower {'--snr' if spec.snr_db else '--gain-db'} or --noise-dbfs", file=sys.stderr)
    if truth["unreadable"]:
        print(skipped_line(truth["unreadable"]))
    return 0


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def format_stream_report(r: dict) -> str:
    """The summary lines ``evaluate-stream`` prints."""
    lat = r["latency"]

    def sec(x):
        return "-" if x is None else f"{x * 1000:.0f} ms"

    fa = r["false_accepts_by_kind"]
    how = f" ({r['mode']} mode, chunks of {r['chunk_ms']:g} ms)" if "mode" in r else ""
    lines = [
        f"{_duration(r['duration_s'])} of audio, {r['commands']} commands, {r['unknown_words']} unknown words{how}",
        (f"hits {r['hits']}/{r['commands']} (recall {r['recall']:.3f})  misses {r['misses']} "
         f"({r['wrong']} of them a wrong label: heard as another command)"
         if r["commands"] else "command-free stream: no commands to hit"),
        *([f"of the commands that can fire ({', '.join(r['can_fire']['commands'])}): hits {r['can_fire']['hits']}/"
           f"{r['can_fire']['commands_said']}" + (f" (recall {r['can_fire']['recall']:.3f})"
                                                  if r['can_fire']['commands_said'] else "")
           + "; the others are off (--commands) and counted as misses above"] if r.get("can_fire") else []),
        f"false accepts {r['false_accepts']} ({r['false_accepts_per_hour']:.2f} per hour; outside words "
        f"{fa['outside']}, on unknown words {fa['unknown_word']}, repeats {fa['repeat']})",
        f"latency from end of speech: median {sec(lat['median'])}, p90 {sec(lat['p90'])}",
    ]
    if "rtf" in r:
        lines.append(f"real-time factor {r['rtf']:.4f} ({r['compute_s']:.1f} s compute for {r['audio_s']:.1f} s audio)")
    if r.get("commands_cut_short"):
        lines.append(f"note: {r['commands_cut_short']} command(s) are still being spoken when the next word starts "
                     "(the words overlap): their windows end there, so they can only be hit early")
    by_clip = r.get("false_accepts_by_clip") or []
    if by_clip:
        n_files = len({c["file"] for c in by_clip})
        top = ", ".join(f"{c['file']} ({c['word']}) -> {c['label']} x{c['count']}" for c in by_clip[:5])
        more = f", +{len(by_clip) - 5} more" if len(by_clip) > 5 else ""
        lines.append(f"false accepts on unknown words come from {n_files} of {r['unknown_clips']} distinct "
                     f"clips: {top}{more}")
    if r["commands"]:
        lines.append("per command: " + "  ".join(
            f"{c} {v['hits']}/{v['clips']}" for c, v in r["per_command"].items() if v["clips"]))
    return "\n".join(lines)


def _flag_for(ckpt, point: dict, subset: Sequence[str] | None) -> float | None:
    """The smallest ``--false-accepts-per-hour`` that takes ``point`` back (with ``--commands subset``), or None
    where none does: at the rate where it starts to fit, another point with more recall fits too."""
    from voice_gru.calibrate import operating_point
    from voice_gru.errors import ConfigError

    rate = point["target_fa_per_hour"]
    if subset is not None and "commands" in point:  # their expected rate (its upper bound where the model stores
        # the hours), rounded up; a model calibrated before per-command counts were kept has only the target
        own = max(math.ceil(point.get("fa_bound_per_hour", point["fa_per_hour"]) * 100 - 1e-9) / 100, 0.01)
        rate = min(rate, own)
    try:
        chosen = operating_point(ckpt, rate, subset)
    except ConfigError:
        return None
    return rate if chosen["target_fa_per_hour"] == point["target_fa_per_hour"] else None


SHORT_COMMAND_FREE_S = 60.0  # a command-free recording shorter than this gets a note beside its counts


def format_command_free(r: dict) -> str:
    """What ``evaluate-stream --command-free`` adds: when it fired, and each calibrated setting's count."""
    from voice_gru.decision import clock

    events = r["events"]
    lines = ["fired at: " + ", ".join(f"{clock(e['t'])} {e['label']} ({e['score']:.2f})" for e in events[:10])
             + (f", +{len(events) - 10} more" if len(events) > 10 else "")] if events else []
    seconds = float(r.get("duration_s", 0.0))
    if seconds < SHORT_COMMAND_FREE_S:  # the advice below would read as a verdict
        lines.append(f"note: only {seconds:.1f} s of audio: a count of false accepts per hour says little from it "
                     "(record an hour of what plays where you listen)")
    ops = r.get("operating_points")
    if ops:
        whose = r.get("listening_for")
        lines.append("on this recording with each calibrated setting (expected recall on new speakers"
                     + (f"; for {', '.join(whose)} alone, with --commands" if whose else "") + "):")
        shown = [p for p in ops if p.get("flag_rate", p["target_fa_per_hour"]) is not None]
        lines += [f"  --false-accepts-per-hour {p.get('flag_rate', p['target_fa_per_hour']):<7g} {p['false_accepts']:4d} "
                  f"false accepts ({p['false_accepts_per_hour']:.1f} per hour; recall {p['expected_recall']:.0%})" for p in shown]
        if len(shown) < len(ops):
            lines.append(f"  ({len(ops) - len(shown)} calibrated point(s) not listed: no rate takes them, as a point with "
                         "more recall fits the same rate)")
        quiet = [p for p in shown if p["false_accepts"] == 0]
        lines.append("most sensitive calibrated setting silent here: --false-accepts-per-hour "
                     f"{quiet[-1].get('flag_rate', quiet[-1]['target_fa_per_hour']):g}" if quiet
                     else "no calibrated setting is silent here")
    if events:
        x = r.get("silent_threshold")
        lines.append(f"lowest single threshold silent here: --threshold {x:g} (higher = fewer false triggers, more misses)"
                     if x is not None else "no threshold of the sweep is silent here")
    flags = r.get("silent_flags")
    if flags:
        ok = {c: v for c, v in flags.items() if v <= 1.0}
        fired = sorted({e["label"] for e in events})
        if ok:
            lines.append(f"or raise only the commands that fired ({', '.join(fired)}), the others unchanged: "
                         + " ".join([r["silent_base"]] * bool(r.get("silent_base"))
                                    + [f"--threshold {c}={v:g}" for c, v in ok.items()]))
        never = sorted(c for c, v in flags.items() if v > 1.0)
        if never:
            lines.append(f"no threshold silences {', '.join(never)} here (its smoothed posterior reaches 1)")
    return "\n".join(lines)


def _say_other_commands(truth: dict, labels: Path | str | None, whose: str) -> None:
    """Say when a label file made for other commands is scored word by word for these, and warn where its other
    words do not say which word they are (a command of these among them would count as a false accept)."""
    if truth.get("labelled_for"):
        print(f"note: {labels} was made for the commands {', '.join(truth['labelled_for'])}; scored for {whose}"
              f"{', '.join(truth['commands'])} (each word as what it is: the others are other words)", file=sys.stderr)
    if truth.get("unnamed_words"):
        print(f"warning: {truth['unnamed_words']} of its other words do not say which word they are (no 'word'): one "
              f"that is {', '.join(truth['commands'])} counts as a false accept", file=sys.stderr)


def _cmd_evaluate_stream(args: argparse.Namespace) -> int:
    from voice_gru.audio import file_rate
    from voice_gru.checkpoint_data import read_checkpoint_data
    from voice_gru.cli import (config_decision, mode_warning, recipe_path, recognizer_override, refresh_of,
                               sensitivity_names, threshold_override, use_assistant_sensitivity, wake_thresholds)
    from voice_gru.errors import ConfigError
    from voice_gru.fileio import write_json
    from voice_gru.calibrate import calibration_of, for_commands, operating_point
    from voice_gru.input_level import band_power, bandwidth, narrowband, narrowband_content
    from voice_gru.decision import effective_thresholds, only_commands
    from voice_gru import commands_of
    from voice_gru.spotter import command_subset
    from voice_gru.streams import (decision_of, evaluate_stream, false_accepts_at_operating_points, load_stream,
                                   plot_det, public_result, refined_silent_threshold, silent_per_command,
                                   sweep_result)

    if args.command_free and args.labels:
        raise ConfigError("--command-free and --labels: a command-free recording has no label file; give one of them")
    if args.input == "-":
        raise ConfigError("--input -: evaluate-stream reads a recording file, not standard input (its length is checked "
                          "against the labels); save the pipe to a WAV first, or score `listen --input - --events E` "
                          "with score-events")
    if args.det_json and not args.det:
        raise ConfigError("--det-json is where --det's sweep goes: add --det OUT.png")
    if args.det:  # the plot needs the train extra: say so before the recording runs, not after
        import matplotlib  # noqa: F401
    det_json = (Path(args.det_json) if args.det_json else Path(args.det).with_suffix(".det.json")) if args.det else None
    labels = args.labels or (None if args.command_free else Path(args.input).with_suffix(".json"))
    if args.assistant:
        args.assistant = recipe_path(args.assistant, "--assistant")
    check_outputs({"--json": args.json, "--det": args.det, "--det-json": det_json},
                  [args.input, labels, args.model, args.config, args.assistant], png=["--det"])
    ckpt = read_checkpoint_data(args.model)  # the listen path: no torch
    firing_from = "--commands"
    wake = None
    if args.assistant:  # what the assistant runs: its commands, its sensitivity
        from voice_gru.cli import assistant_of, with_wake_word

        assistant = assistant_of(args.assistant, commands_of(ckpt.labels), args.model)
        wake = assistant.wake_word
        if wake and not args.command_free:  # its commands count only after the wake word, which no label file has
            raise ConfigError(f"--assistant {args.assistant}: its commands run only within {wake.seconds:g} s after the "
                              f"wake word '{wake.word}', which the recording's commands do not follow; its false "
                              f"activations are measured on audio without commands (--command-free), its commands "
                              f"without the wake word (--commands {' '.join(c for c in assistant.commands if c != wake.word)})")
        if args.commands is None:
            args.commands, firing_from = list(assistant.commands), args.assistant
        elif wake:
            args.commands = with_wake_word(args.commands, wake.word, args.assistant)
        use_assistant_sensitivity(args, assistant)
    subset = command_subset(args.commands, ckpt.labels, "--commands")
    # flags first, then files, then the sensitivity line
    threshold_override(args.threshold, ckpt.labels, subset, sensitivity_names(args)[1], firing_from)
    refresh = refresh_of(args, ckpt.features.hop_ms)
    commands = commands_of(ckpt.labels)  # what the label file is scored for (--commands: only some can fire)
    audio, truth = load_stream(args.input, args.labels, command_free=args.command_free,
                               sample_rate=ckpt.features.sample_rate, commands=commands)
    _say_other_commands(truth, labels, "the model's ")
    low = narrowband(str(args.input), file_rate(args.input), ckpt.features.sample_rate)
    if not low:  # the header's rate is full: the content may still have been resampled up on its way
        top = bandwidth(band_power(audio), ckpt.features.sample_rate)
        low = narrowband_content(str(args.input), top, "anywhere in it") if top else None
    if low:
        print(f"warning: {low}", file=sys.stderr)
    dcfg = config_decision(args.config, ckpt)  # a bad --config is refused before anything is printed
    # as listen runs it: the wake word at its own point, the commands it opens at theirs (said at start-up)
    woken = wake_thresholds(args, ckpt, wake, subset) if wake else None  # None also for one --threshold for all
    override = woken if woken is not None else recognizer_override(args, ckpt, subset)
    mode_warning(ckpt, args.mode)
    result = evaluate_stream(ckpt, audio, truth, dcfg, override, mode=args.mode, chunk_ms=args.chunk_ms,
                             refresh_s=refresh, after=args.after, commands=subset)
    print(format_stream_report(result))
    _note_label_fixes(truth, result)
    # one replay of the detector over the posteriors serves both the advice and the DET curve
    sweep = sweep_result(result, truth, args.after) if (args.command_free or args.det) else []
    if wake:  # what the assistant would have done: only commands within the window after a false wake
        from voice_gru.actions import wake_replay

        per_hour = 3600 / float(truth["duration"])
        acting = [c for c in commands if assistant.actions.get(c)]  # what a runner runs actions for
        result["wake_word"] = {"word": wake.word, "seconds": wake.seconds,
                               **wake_replay(wake, result["events"], commands, acting)}
        w = result["wake_word"]
        print(f"with the wake word '{wake.word}' (commands within {wake.seconds:g} s after it): {w['wakes']} false "
              f"wake(s) ({w['wakes'] * per_hour:.2f} per hour), {w['acted']} acted on ({w['acted'] * per_hour:.2f} per "
              f"hour): the false activations of {args.assistant}")
    elif args.command_free:
        points = calibration_of(ckpt).get("operating_points") or []
        # posteriors do not depend on thresholds; the points were calibrated with the model's own decision settings
        if subset is not None:  # each point as it would run for these commands alone, with their figures
            hours = calibration_of(ckpt).get("command_free_hours")
            points = [{**for_commands(p, subset, hours), "thresholds": only_commands(p["thresholds"], subset)}
                      for p in points]
        if points and dcfg is None:
            result["operating_points"] = false_accepts_at_operating_points(result, truth, points, args.after)
            for op, p in zip(result["operating_points"], sorted(points, key=lambda q: q["target_fa_per_hour"])):
                op["flag_rate"] = _flag_for(ckpt, p, subset)
        result["silent_threshold"] = refined_silent_threshold(result, truth, sweep, args.after)
        raised = silent_per_command(result)
        # as flags for listen: the values that differ from what the run's --false-accepts-per-hour
        # (or the model's own point) gives, so a --threshold T run lists every command
        rate = args.false_accepts_per_hour
        base = effective_thresholds(ckpt.labels, decision_of(ckpt, dcfg), ckpt.thresholds,
                                    operating_point(ckpt, rate, subset)["thresholds"] if rate is not None else None)
        if subset is not None:
            base = only_commands(base, subset)
        advised = {**result["thresholds"], **raised}
        result["silent_flags"] = {c: v for c, v in advised.items() if abs(v - base[c]) > 1e-9} if raised else {}
        result["silent_base"] = " ".join(([f"--commands {' '.join(subset)}"] if subset else [])
                                         + ([f"--false-accepts-per-hour {rate:g}"] if rate is not None else []))
        print(format_command_free(result))
    with written_together([args.json, args.det, det_json]):
        if args.json:
            write_json(args.json, public_result(result))
            print(f"wrote {args.json}")
        if args.det and det_json:
            plot_det(sweep, args.det, f"{Path(args.input).name}: {result['mode']} mode")
            write_json(det_json, {"input": str(args.input), "mode": result["mode"], "points": sweep})
            print(f"wrote {args.det} and {det_json} ({len(sweep)} thresholds)")
    return 0


def _note_label_fixes(truth: dict, result: dict) -> None:
    """Say (and record in ``result``) for how many words the label file gave no speech end: latency is then
    measured from ends found in the recording; and how many spans it ends past the recording, cut at its end."""
    cut = [e["end_cut"] - e["end"] for e in truth["events"] if "end_cut" in e]
    if cut:
        result["spans_cut_at_end"] = len(cut)
        print(f"note: the label file ends {len(cut)} span(s) past the recording's end (by up to {max(cut):.2f} s): "
              "cut at its end")
    estimated = sum(bool(e.get("speech_end_estimated")) for e in truth["events"])
    if estimated:
        result["speech_end_estimated"] = estimated
        print(f"note: the label file gives no speech end for {estimated} of {len(truth['events'])} words: latency is "
              "measured from ends found in the recording (the make-stream rule for clip-long spans)")


def _cmd_score_events(args: argparse.Namespace) -> int:
    """Score detections already made (``listen --events``, e.g. from a microphone) against a recording's labels."""
    from voice_gru.cli import command_words
    from voice_gru.fileio import write_json
    from voice_gru.errors import ConfigError, DatasetError
    from voice_gru.stream_labels import TIME_TOL_S, commands_in, load_stream, read_detections, read_truth
    from voice_gru.spotter import END_SILENCE_S
    from voice_gru.streams import heard_detections, heard_part, score_events, silent_end

    if args.input == "-":
        raise ConfigError("--input -: score-events reads the recording from a file (for its length and speech ends), not "
                          "standard input")
    check_outputs({"--json": args.json}, [args.events, args.labels, args.input])
    commands = command_words(args.commands) if args.commands else None
    if args.input:
        _, truth = load_stream(args.input, args.labels, commands=commands)
    else:
        truth = read_truth(args.labels, commands=commands)  # its 'duration' is needed: without --input nothing says it
    _say_other_commands(truth, args.labels, "")
    if not args.input:
        if any("speech_end" not in e for e in truth["events"] if e["label"] in commands_in(truth)):
            print("note: the label file gives no speech end for some words: their latency is measured from the word's "
                  "end (give --input to find the speech ends in the recording)", file=sys.stderr)
    detections = read_detections(args.events, args.offset, commands_in(truth))
    duration = float(truth["duration"])
    # listen decides the last word on END_SILENCE_S of silence after the recording: a detection may fall there
    for i, d in enumerate(detections):  # beyond, counted as false accepts they would inflate the rate per hour
        if not -TIME_TOL_S <= d["t"] <= duration + END_SILENCE_S + TIME_TOL_S:
            raise DatasetError(f"{args.events}: detection {i + 1} at {d['t'] + args.offset:g} s is at {d['t']:g} s of "
                               f"the recording (--offset {args.offset:g}), outside its 0-{duration:g} s (and the "
                               f"{END_SILENCE_S:g} s of silence listen decides its last word on): check --offset and "
                               "--labels")
    left_out = 0
    if args.until is not None:
        if args.until > duration:
            raise ConfigError(f"--until {args.until:g}: the recording is {duration:g} s long")
        detections, left_out = heard_detections(detections, truth, args.until, args.after)
        truth = heard_part(truth, args.until)
        if left_out:
            print(f"note: {left_out} detection(s) of words past --until {args.until:g} left out with them",
                  file=sys.stderr)
    result = score_events(detections, truth, after=args.after)
    result["offset_s"] = args.offset
    if args.until is not None:
        result.update(until_s=args.until, detections_left_out=left_out)
    print(format_stream_report(result))
    _note_label_fixes(truth, result)
    silent = silent_end(detections, truth, args.after)
    if silent and args.until is None:
        last, said, until = silent
        print(f"warning: no detection after {last:.1f} s, though {said} commands were said in the "
              f"{(duration - last) / 60:.1f} min after it: if listening stopped before the recording ended, "
              f"--until {until:g} scores what was heard" if detections else
              f"warning: no detection at all, though {said} commands were said: was listening stopped at once, or did "
              f"it hear nothing (the events file, --offset)?", file=sys.stderr)
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    import torch

    from voice_gru.calibrate import CALIBRATION_SPEC, calibrate
    from voice_gru.cli import config_decision
    from voice_gru.model import resolve_model

    # --out may be --model itself: a checkpoint calibrated in place (read before it is replaced, atomically)
    check_outputs({"--json": args.json, "--plot": args.plot}, [args.model], png=["--plot"])  # --out alone may replace --model
    check_outputs({"--out": args.out, "--json": args.json, "--plot": args.plot}, [args.config], png=["--plot"],
                  folders=[args.data_dir], binary=["--out"], in_place=args.model)
    torch.set_num_threads(1)
    ckpt = resolve_model(args.model)
    dcfg = config_decision(args.config, ckpt, thresholds_used=False)  # calibration chooses the thresholds
    log = None if args.quiet else (lambda msg: print(msg, flush=True))
    calibrated, report = calibrate(ckpt, args.data_dir, args.max_false_accepts_per_hour,
                                   command_minutes=args.minutes, free_minutes=args.free_minutes,
                                   decision_cfg=dcfg, seed=args.seed, mode=args.mode, log=log,
                                   spec=dataclasses.replace(CALIBRATION_SPEC, unknown_mix=args.unknown_mix),
                                   veto=args.unknown_veto)
    with written_together([args.out, args.json, args.plot]):
        _write_calibration(args, calibrated, report)
    return 0


def _write_calibration(args: argparse.Namespace, calibrated: Checkpoint, report: dict) -> None:
    """``calibrate``'s outputs, and what it says about them."""
    from voice_gru.calibrate import format_calibration, plot_expected
    from voice_gru.data import background_files, unused_entries
    from voice_gru.fileio import write_json
    from voice_gru.model import save_checkpoint
    from voice_gru.streams import skipped_line

    save_checkpoint(args.out, calibrated)
    if report["unreadable"]:
        print(skipped_line(report["unreadable"]))
    # what the validation list names that the streams could not use (data stats lists every such entry)
    unused = [u for u in unused_entries(args.data_dir) if "validation_list" in u["reason"]]
    if unused:
        print(f"not used: {len(unused)} entr{'y' if len(unused) == 1 else 'ies'} of validation_list.txt, e.g. "
              f"{unused[0]['file']}: {unused[0]['reason']}")
    if not background_files(args.data_dir):
        print(f"note: {args.data_dir} has no _background_noise_ folder: the calibration streams' words are over digital "
              "silence, which no microphone gives", file=sys.stderr)
    print(format_calibration(report))
    print(f"wrote {args.out}")
    for line in calibration_warnings(report, args.max_false_accepts_per_hour, args.data_dir):
        print(f"warning: {line}", file=sys.stderr)
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    if args.plot:
        plot_expected(report, args.plot)
        print(f"wrote {args.plot}")


def calibration_warnings(report: dict, target: float, root: str | Path = DEFAULT_DATA) -> list[str]:
    """What makes a calibration's figures mean little: streams too short to count the target, a model that
    never fires, a word of one voice (``root``: the dataset calibrated on)."""
    from voice_gru.data import record_command

    out = []
    hours = report.get("command_free_hours") or 0.0
    if hours * target < 3:  # fewer than three false accepts at the target can be counted at all
        out.append(f"{hours:.2f} h of command-free audio cannot measure {target:g} false accepts per hour (the budget "
                   f"is {hours * target:.1f} events): give --free-minutes {math.ceil(180 / target):g} or more")
    points = report.get("tradeoff") or []
    if points and max(p["recall"] for p in points) == 0:
        out.append("the model heard no command at any point: its thresholds mean nothing (is it trained?)")
    unheard = [c for c, v in (report.get("per_command") or {}).items() if not v.get("clips")]
    if unheard:  # their thresholds were fitted to false accepts alone, and the recall counts none of them
        one = len(unheard) == 1
        out.append(f"the calibration streams hold no clip of {', '.join(unheard)} (none in the validation split, or "
                   f"--minutes too short to draw {'one' if one else 'them'}): {'its threshold was' if one else 'their thresholds were'} "
                   f"fitted to false accepts alone, and the recall figures do not include {'it' if one else 'them'}")
    alone = [c for c, v in (report.get("per_command") or {}).items() if v.get("speakers") == 1]
    if alone:  # its speaker falls in one half of every fold: thresholds fitted on no clip of it, judged on all
        out.append(f"the validation split holds one speaker's {', '.join(alone)}: the figures \"on new speakers\" for "
                   f"{'it' if len(alone) == 1 else 'them'} are fitted without a clip of {'it' if len(alone) == 1 else 'them'} "
                   f"({record_command(root, 'validation', alone[0])}: another voice)")
    if not report.get("met", True):
        expected = (report.get("expected") or {}).get("fa_per_hour")
        out.append(f"the target of {target:g} false accepts per hour was not met on held-out speakers"
                   + (f" (expected {expected:.2f}/h: the fewest any rule gave; see above)" if expected is not None else
                      " (see above)"))
    return out


def _add_scoring_args(p: argparse.ArgumentParser) -> None:
    """The options of every command that scores detections against a label file."""
    from voice_gru.cli import number

    p.add_argument("--after", type=number(0, 10), default=1.0, metavar="S",
                   help="a detection up to this long after a word's end counts for it (default: %(default)s)")
    p.add_argument("--json", metavar="OUT", help="write the full report (every detection and its outcome) as JSON")


def register(subparsers: argparse._SubParsersAction[OneLineParser]) -> None:
    """Add ``make-stream``, ``evaluate-stream`` and ``calibrate`` to the ``voice-gru`` subparsers."""
    from voice_gru.cli import add_recognizer_args, number, whole

    ms = subparsers.add_parser("make-stream", help="build a long test recording (WAV + JSON labels) from a dataset split")
    ms.add_argument("--data-dir", default=DEFAULT_DATA, help="dataset root (default: %(default)s)")
    ms.add_argument("--split", choices=["validation", "testing"], default="validation",
                    help="which split's clips (default: %(default)s)")
    ms.add_argument("--minutes", type=number(0.05, 24 * 60), default=10.0, help="length (default: %(default)s)")
    ms.add_argument("--command-free", action="store_true",
                    help="only unknown words and noise (measures false accepts per hour)")
    ms.add_argument("--seed", type=whole(0, 2**32 - 1), default=0, help="same seed, same recording (default: %(default)s)")
    ms.add_argument("--gap", dest="gap_s", nargs=2, type=number(0.1, 60), metavar=("MIN", "MAX"),
                    help="seconds from one word's start to the next (default: 2 4)")
    ms.add_argument("--command-ratio", type=number(0, 1), help="fraction of words that are commands (default: 0.7)")
    ms.add_argument("--gain-db", nargs=2, type=number(-60, 20), metavar=("MIN", "MAX"),
                    help="gain of each word in dB (default: -10 0)")
    ms.add_argument("--snr", dest="snr_db", nargs=2, type=number(-30, 60), metavar=("MIN", "MAX"),
                    help="instead of --gain-db: each word's signal-to-noise ratio in dB over the noise under it, drawn "
                         "from this range (its active power over the noise's mean power, as `evaluate --snr` mixes)")
    ms.add_argument("--noise-dbfs", nargs=2, type=number(-120, 0), metavar=("MIN", "MAX"),
                    help="background noise level, dBFS RMS: each segment's recording is set to a level drawn from "
                         "this range (a stretch of a recording that varies lies above or below it: the label file's "
                         "segment_dbfs; default: -70 -50)")
    ms.add_argument("--rt60", type=number(0.05, 5), metavar="S",
                    help="play every word in one simulated room with this reverberation time (default: none)")
    ms.add_argument("--drr", type=number(-30, 60), metavar="DB",
                    help="that room's direct-to-reverberant ratio in dB (default: 3; ~0 across a room)")
    ms.add_argument("--unknown-mix", choices=["clips", "words"],
                    help="unknown words clip by clip (the split's own mix, mostly bed/cat/happy here) or "
                         "every word equally often, as `calibrate` draws them and its expected figures assume "
                         "(default: clips)")
    ms.add_argument("--commands", nargs="+", metavar="WORD",
                    help="the words that are commands, for a model trained with its own (a recipe's data.commands); "
                         "every other word is an unknown word (default: the ten of Speech Commands)")
    ms.add_argument("--out", required=True, metavar="REC.wav", help="WAV to write; labels go to REC.json")
    ms.set_defaults(func=_cmd_make_stream)

    es = subparsers.add_parser("evaluate-stream",
                               help="stream a labelled recording through the listen path: hits, false accepts/hour, latency")
    es.add_argument("--input", required=True, metavar="REC.wav", help="recording (e.g. from make-stream)")
    es.add_argument("--labels", metavar="REC.json",
                    help="its label file (default: the input's name with .json): make-stream's JSON, a JSON list or "
                         "JSON Lines of events with label/start/end in seconds, or TensorFlow's 'label, time_ms' lines")
    es.add_argument("--command-free", action="store_true",
                    help="the recording holds none of the commands (your TV, radio, a meeting): no label file; every "
                         "detection is a false accept, and each calibrated --false-accepts-per-hour setting is replayed on it")
    es.add_argument("--model", help="checkpoint (default: the shipped model)")
    es.add_argument("--commands", nargs="+", metavar="CMD",
                    help="only these commands can fire, as `listen --commands` (the sweeps and the advice keep the others off)")
    add_recognizer_args(es)
    es.add_argument("--assistant", metavar="YAML", help="score the recording as listen --assistant YAML runs: only the "
                    "commands it maps fire, at its sensitivity; with a wake word, on --command-free audio: the false "
                    "activations its gate lets through")
    _add_scoring_args(es)
    es.add_argument("--det", metavar="OUT.png", help="also sweep one threshold for all commands and plot the trade-off")
    es.add_argument("--det-json", metavar="OUT", help="where the sweep's points go (default: OUT.det.json beside --det)")
    es.set_defaults(func=_cmd_evaluate_stream)

    se = subparsers.add_parser("score-events",
                               help="score detections already made (listen --events, e.g. live from a microphone) "
                                    "against a recording's labels")
    se.add_argument("--events", required=True, metavar="EVENTS.jsonl", help="detections as listen --events writes them")
    se.add_argument("--labels", required=True, metavar="REC.json",
                    help="the recording's label file (make-stream's, or another tool's: see evaluate-stream)")
    se.add_argument("--input", metavar="REC.wav",
                    help="the recording, for its length and speech ends when the label file lacks them")
    se.add_argument("--offset", type=number(-86400, 86400), default=0.0, metavar="S",
                    help="seconds listening ran before the recording started (subtracted from each detection; "
                         "default: %(default)s)")
    se.add_argument("--commands", nargs="+", metavar="WORD",
                    help="the words that are commands (a model of its own words: its commands; each word of the label "
                         "file is scored as what it is); default: the label file's commands list, else the ten of "
                         "Speech Commands")
    se.add_argument("--until", type=number(0.001, 10 ** 7), metavar="S",
                    help="score only the recording's first S seconds (a run stopped before the recording ended: its "
                         "later words were never heard, and the rate per hour is over what was)")
    _add_scoring_args(se)
    se.set_defaults(func=_cmd_score_events)

    ca = subparsers.add_parser("calibrate",
                               help="choose thresholds for a false-accepts-per-hour target on new speakers (cross-validated over validation speakers)")
    ca.add_argument("--model", help="checkpoint (default: the shipped model)")
    ca.add_argument("--data-dir", default=DEFAULT_DATA, help="dataset root (default: %(default)s)")
    ca.add_argument("--max-false-accepts-per-hour", type=number(0, 1000, above=True), default=1.0, metavar="R",
                    help="the model's default operating point: false accepts per hour to expect on speakers the "
                         "thresholds were not fitted to (default: %(default)s, as the shipped model); the points for "
                         "0.5-100 per hour are stored too, for listen --false-accepts-per-hour")
    ca.add_argument("--out", required=True, metavar="CKPT", help="where the calibrated copy of the model goes")
    ca.add_argument("--minutes", type=number(0.05, 24 * 60), default=25.0,
                    help="length of the command stream (default: %(default)s, enough for every validation command)")
    ca.add_argument("--free-minutes", type=number(0.05, 24 * 60), default=360.0,
                    help="length of the command-free stream (default: %(default)s; 120 is three times faster but "
                         "its 1/h point moves by up to 40 points between stream seeds, docs/RESULTS.md: Calibration)")
    ca.add_argument("--seed", type=whole(0, 2**32 - 1), default=0, help="seed of the calibration streams (default: %(default)s)")
    ca.add_argument("--mode", choices=["stream", "window"], default="stream", help="recognizer mode (default: %(default)s)")
    ca.add_argument("--unknown-mix", choices=["words", "clips"], default="words",
                    help="the streams' other words: every word equally often (as in the official test set and in "
                         "conversation) or clip by clip (this subset's validation mix, mostly bed/cat/happy) (default: %(default)s)")
    ca.add_argument("--config", help="recipe YAML whose 'decision' section is calibrated (default: the model's)")
    ca.add_argument("--unknown-veto", choices=["auto", "on", "off"], default="auto",
                    help="the unknown-word veto (no command while _unknown_ was high a moment ago; decision.unknown_veto): "
                         "auto fits thresholds with and without it and keeps whichever expects more recall on new "
                         "speakers (mean at 1/2/5/20 false accepts per hour; it helps some models and not others); on: "
                         "with it (the decision settings' values, else 0.7 within 300 ms); off: without (default: %(default)s)")
    ca.add_argument("--json", metavar="OUT", help="write the calibration report as JSON")
    ca.add_argument("--plot", metavar="OUT.png",
                    help="plot expected recall against false accepts per hour on new speakers for every threshold rule")
    ca.add_argument("--quiet", action="store_true", help="no progress lines")
    ca.set_defaults(func=_cmd_calibrate)
