"""``voice-gru record``: takes of your own word from the microphone (or a recording) into a dataset's layout."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Iterable

import numpy as np

from voice_gru.errors import ConfigError, VoiceGruError

QUIET_DBFS = -40.0  # below it the shipped model names fewer words right (README, *Is it the microphone?*)
CLIPPED_DBFS = -0.1


def _person() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return "me"


def _cmd_record(args: argparse.Namespace) -> int:
    from voice_gru.config import command_words_problem
    from voice_gru.decision import clock
    from voice_gru.input_level import InputMonitor
    from voice_gru.takes import (Skipped, Take, TakeCutter, remove_half_written, same_take, save_take, speaker_id,
                                 split_for, start_split_lists, word_folder)

    problem = command_words_problem((args.word,))
    if problem:
        raise ConfigError(f"record: {problem}")
    if args.input and args.device is not None:
        raise ConfigError("--device chooses a microphone; with --input the takes come from that file: give one of them")
    from voice_gru.data import is_test_set_layout

    root = Path(args.data_dir)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--data-dir {root}: is a file, not a dataset folder")
    if not root.is_dir():
        raise ConfigError(f"--data-dir {root}: no such folder (the dataset root the word's folder goes into: a copy of "
                          "Speech Commands to train beside its words, or a new folder)")
    if is_test_set_layout(root):
        raise ConfigError(f"--data-dir {root}: is in the official test-set layout (_unknown_/, _silence_/: every clip is "
                          "testing); record into a dataset root of word folders and split lists")
    folder = word_folder(root, args.word)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"record {args.word}: {folder} exists and is not a folder")
    if folder.is_symlink():  # a copy of a dataset made of links: the takes would land in the original
        raise ConfigError(f"record {args.word}: {folder} is a link to {folder.resolve()}: the takes "
                          "would be written there; make it a folder of its own (copy its clips in)")

    for path in (root, folder, root / "validation_list.txt", root / "testing_list.txt"):
        if path.exists() and not os.access(path, os.W_OK):
            raise ConfigError(f"record {args.word}: {path} is read-only (a copy of a read-only dataset keeps its modes: "
                              f"chmod -R u+w {root})")

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)

    source = "standard input" if args.input == "-" else str(args.input)
    monitor = InputMonitor(source if args.input else "the microphone", warn=warn,
                           hint="" if args.input else "(`voice-gru devices` lists the inputs; choose one with --device)")
    # a missing or unreadable file, or no such microphone: said before anything is written; a rate below 16 kHz
    # too (takes of 8 kHz audio teach the model a word without its upper band), as listen says it
    chunks, mics = None, None
    if args.input == "-":  # arecord, sox, ffmpeg: a WAV header says its rate, raw PCM is 16 kHz mono
        from voice_gru.live import stdin_chunks

        chunks, what = stdin_chunks(sys.stdin.buffer, on_partial=lambda n: warn(f"standard input ended {n} byte(s) "
                                                                                 "into a sample frame: left out"),
                                    on_rate=monitor.known_rate, on_short=warn)
        print(what, flush=True)
    elif args.input:
        from voice_gru.audio import file_rate
        from voice_gru.live import file_chunks

        chunks = file_chunks(args.input, on_damage=warn)
        monitor.known_rate(file_rate(args.input))
    else:
        from voice_gru.mic import Microphones

        mics = Microphones(args.device, block_ms=100.0)
        mic = mics.open()
        monitor.known_rate(int(mic.samplerate))
    name = args.speaker or _person()
    speaker = speaker_id(name)
    try:
        if start_split_lists(root):
            print(f"{root}: a new dataset: split lists started (validation_list.txt, testing_list.txt): each speaker's "
                  "takes join the split --split names, training by default", flush=True)
        split = split_for(root, speaker, args.split, name)
        remove_half_written(folder, speaker)
    except BaseException:  # a speaker already in another split: the microphone is let go before the message
        if mics is not None:
            mics.close()
        raise
    want = args.takes if args.takes is not None else (None if args.input else 20)
    print(f"takes of '{args.word}' by '{name}' (speaker {speaker}, {split} split) go to {folder}/", flush=True)
    cutter = TakeCutter()
    saved: list[Path] = []
    skipped = repeated = 0

    def keep(found: Take | Skipped) -> bool:
        """Save a take or say why a sound was skipped; True once ``want`` takes are saved."""
        nonlocal skipped, repeated
        if not isinstance(found, Take):
            skipped += 1
            print(f"  skipped the sound at {clock(found.start_s)}: {found.reason}", flush=True)
            return False
        same = same_take(folder, speaker, found.audio)
        if same is not None:  # the same recording again (a rerun after a stop): its takes are not saved twice
            repeated += 1
            print(f"  the sound at {clock(found.start_s)} is already saved: {same.relative_to(root)}", flush=True)
            return False
        path = save_take(root, folder.name, speaker, split, found)
        saved.append(path)
        level = (" — clipped: lower the input gain" if found.peak_dbfs >= CLIPPED_DBFS else
                 " — quiet: speak closer or raise the input gain" if found.peak_dbfs < QUIET_DBFS else "")
        print(f"take {len(saved)}{f' of {want}' if want else ''}: {path.relative_to(root)} "
              f"({found.end_s - found.start_s:.2f} s of sound, peak {found.peak_dbfs:.0f} dBFS){level}", flush=True)
        return bool(want and len(saved) >= want)

    def take_in(chunks: Iterable[np.ndarray], last: bool) -> None:
        """Cut takes out of ``chunks`` until ``want`` are saved (``last``: the audio ends with them)."""
        for chunk in chunks:
            monitor.update(chunk)
            if any(keep(found) for found in cutter.push(chunk)):
                return
        if last:
            any(keep(found) for found in cutter.flush())

    interrupted = False
    try:
        if chunks is not None:
            take_in(chunks, last=True)
        else:
            from voice_gru.live import mic_chunks

            def first() -> None:
                print(f"say '{args.word}', then pause about a second; again, {want} times in all; vary how you say "
                      "it, as you will when using it (Ctrl-C stops; the takes saved stay)", flush=True)

            print(f"listening on {mic.device.name} at {mic.samplerate} Hz ...", flush=True)
            take_in(mic_chunks(mic, lambda: False, first, on_gap=warn), last=False)
    except KeyboardInterrupt:
        interrupted = True
        if cutter.waiting:  # its second (or the pause after it) had not ended
            print(f"stopped: the last {cutter.waiting} sound(s) heard were not saved (the second after them had not "
                  "passed)", flush=True)
    finally:
        if mics is not None:
            mics.close()
    if cutter.missed_at_start:
        print("  a sound in the first 0.3 s, while the room's noise was being learnt, was not heard: start speaking "
              "after that", flush=True)
    if args.input and want and 0 < len(saved) + repeated < want and not interrupted:
        print(f"{source} held {len(saved) + repeated} take(s), fewer than --takes {want}", flush=True)
    again = f", {repeated} already saved before" if repeated else ""
    print(f"saved {len(saved)} take(s) of '{args.word}' in {folder}/ ({skipped} sound(s) skipped{again}); speaker "
          f"{speaker} is in the {split} split", flush=True)
    if saved:
        _next_steps(root, folder.name)
    if args.input and not saved and not interrupted and not repeated:
        raise VoiceGruError(f"{source}: no take found: say the word alone with a pause around it, the sound at "
                            "least 12 dB above the room's noise")
    return 130 if interrupted else 0


def _next_steps(root: Path, word: str) -> None:
    """What the dataset now holds of the word, and what to do next."""
    from voice_gru.data import BACKGROUND, WORDS_V2, scan_dataset
    from voice_gru.takes import word_splits

    scanned = scan_dataset(root)  # once: the word's counts and the other word folders, as training reads them
    held = word_splits(root, word, scanned)
    print(f"'{word}' in {root}: " + ", ".join(f"{s} {n} ({k} speaker{'' if k == 1 else 's'})"
                                             for s, (n, k) in held.items()), flush=True)
    if not held["validation"][0]:
        print(f"  no validation takes of '{word}' yet: record a second voice with --speaker NAME --split validation, so "
              "that training chooses its epoch, and calibrate its thresholds, on a voice it did not learn", flush=True)
    voiced = {Path(c.path).parent.name for c in scanned}
    others = bool(voiced - {word})
    missing = [what for what, there in (("other words", others), (f"{BACKGROUND} folder", (root / BACKGROUND).is_dir()))
               if not there]
    if missing:
        print(f"  {root} has no {' and no '.join(missing)}: training needs them beside the word (_unknown_ is the other "
              "words, _silence_ is cut from the noise); record into a copy of Speech Commands", flush=True)
    else:  # every word recorded into the dataset (the folders Speech Commands lacks), not only this one
        words = sorted({w for w in voiced if w.lower() not in WORDS_V2} | {word}, key=str.lower)  # as the folders are
        out = f"runs/{words[0].lower()}" if len(words) == 1 else "runs/own"
        print(f"  next: voice-gru train --config configs/default.yaml --data-dir {shlex.quote(str(root))} --commands "
              f"{' '.join(map(shlex.quote, words))} --out {shlex.quote(out)}", flush=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``record`` to the ``voice-gru`` subparsers."""
    from voice_gru.cli import whole
    from voice_gru.data import SPLITS

    p = subparsers.add_parser("record", help="record takes of your own word into a dataset folder (its Speech "
                                             "Commands layout), to train with train --commands")
    p.add_argument("word", metavar="WORD", help="the word: its folder's name in the dataset (e.g. lights)")
    p.add_argument("--data-dir", required=True, metavar="DIR",
                   help="the dataset root (its WORD/SPEAKER_nohash_N.wav files and split lists)")
    p.add_argument("--speaker", metavar="NAME",
                   help="whose voice (default: your login name); its hash is the speaker id in the file names")
    p.add_argument("--takes", type=whole(1, 100000), metavar="N",
                   help="stop after N takes (default: 20 from a microphone, all of them from --input)")
    p.add_argument("--split", choices=SPLITS,
                   help="which split this speaker's takes join (default: where the speaker already is, else "
                        "training; a dataset without split lists splits by the speaker's hash)")
    p.add_argument("--device", help="input device: index or part of its name (see `voice-gru devices`)")
    p.add_argument("--input", metavar="FILE", help="cut the takes out of a recording instead of the microphone ('-': "
                                                   "standard input, a WAV or raw 16-bit 16 kHz mono PCM)")
    p.set_defaults(func=_cmd_record)
