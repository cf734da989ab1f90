"""`voice-gru record`: takes of one's own word cut out of a recording or a microphone into the dataset layout.

The cutter is checked against sounds placed by hand (their start, end and the reason each other one is skipped) and
against real Speech Commands clips laid end to end; the command against the dataset reader (`scan_dataset`), the
training it is for, and the PulseAudio fake microphone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tiny_data import REPO, TEST_DATA, TINY_CONFIG, make_tiny_dataset
from voice_gru import SILENCE, UNKNOWN
from voice_gru.cli import main
from voice_gru.config import DataConfig
from voice_gru.data import dataset_stats, scan_dataset, which_set
from voice_gru.errors import ConfigError
from voice_gru.takes import Skipped, Take, TakeConfig, TakeCutter, cut_takes, speaker_id, split_for

SR = 16000
DATA = REPO.parent / "shared" / "speech_commands"


def _room(seconds: float, dbfs: float = -60.0, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * SR)) * 10 ** (dbfs / 20)).astype(np.float32)


def _sound(x: np.ndarray, t: float, dur: float, dbfs: float = -20.0, seed: int = 1) -> None:
    a, n = int(t * SR), int(dur * SR)
    x[a:a + n] += (np.random.default_rng(seed + a).standard_normal(n) * 10 ** (dbfs / 20)).astype(np.float32)


# (start, duration) of each sound, and what becomes of it
PLACED = [(1.0, 0.4, "take"), (2.5, 0.25, "take"), (4.0, 0.03, "a click or a knock"),
          (5.0, 1.5, "longer than the 0.95 s a 1 s take holds"), (8.0, 0.5, "take"), (8.85, 0.2, "the sound before it ended"),
          (10.0, 0.2, "the next sound began"), (10.55, 0.6, "take"), (12.5, 0.9, "take")]


def _placed() -> np.ndarray:
    x = _room(14)
    for t, d, _ in PLACED:
        _sound(x, t, d)
    return x


def test_each_sound_is_a_centred_take_or_skipped_with_its_reason():
    x = _placed()
    found = cut_takes(x)
    assert len(found) == len(PLACED)
    for f, (t, d, fate) in zip(found, PLACED):
        assert abs(f.start_s - t) <= 0.01 and abs(f.end_s - (t + d)) <= 0.01, (f, t, d)
        if fate == "take":
            assert isinstance(f, Take) and f.audio.shape == (SR,)
            assert abs(f.peak_dbfs - 20 * np.log10(np.abs(x[int(t * SR):int((t + d) * SR)]).max())) < 0.01
            power = f.audio.astype(np.float64) ** 2
            loud = np.flatnonzero(power > 10 ** (-40 / 10))  # the sound's samples, the room's 20 dB below them
            assert abs((loud[0] + loud[-1]) / 2 - SR / 2) <= 160  # in the middle of its second, to a frame
        else:
            assert isinstance(f, Skipped) and fate in f.reason


def test_chunks_of_any_size_give_the_same_takes_in_bounded_memory():
    x = np.concatenate([_placed()] * 4)  # 56 s
    whole = cut_takes(x)
    for size in (37, 1600, 16000):
        cutter, got, held = TakeCutter(), [], 0
        for i in range(0, x.size, size):
            got += cutter.push(x[i:i + size])
            held = max(held, cutter._audio.size)
        got += cutter.flush()
        assert [(type(f), f.start_s, f.end_s) for f in got] == [(type(f), f.start_s, f.end_s) for f in whole]
        assert all(np.array_equal(a.audio, b.audio) for a, b in zip(got, whole) if isinstance(a, Take))
        assert held <= 2.5 * SR + size  # what a pending take and the sound being heard can need, not the stream


def test_the_ends_of_a_recording():
    """A take whose second runs past the end is padded with zeros, one whose pause the end cuts is skipped (the word
    may be cut off), a sound before the room's floor is known is not heard but noted, and a dropout (digital zeros)
    or a DC offset changes nothing."""
    x = _room(3.0)
    _sound(x, 1.0, 0.3)
    _sound(x, 2.5, 0.1)
    found = cut_takes(x)
    assert [type(f) for f in found] == [Take, Take]
    assert found[1].audio.shape == (SR,) and not found[1].audio[-int(0.05 * SR) + 16:].any()  # past the end: zeros
    cut = _room(2.0)
    _sound(cut, 1.3, 0.2)
    _sound(cut, 1.85, 0.15)  # to the end of the recording
    found = cut_takes(cut)
    assert [type(f) for f in found] == [Skipped, Skipped] and "recording ends during it" in found[1].reason
    assert "next sound began" in found[0].reason  # the cut sound lies inside the first one's second
    early = _room(3.0)
    _sound(early, 0.1, 0.15)
    _sound(early, 1.5, 0.3)
    cutter = TakeCutter()
    found = cutter.push(early) + cutter.flush()
    assert [type(f) for f in found] == [Take] and abs(found[0].start_s - 1.5) < 0.011 and cutter.missed_at_start
    for rise in (-20.0, -35.0):  # a word from the first sample, louder after 0.2 s or not: its rest is no take
        said_before = _room(3.0)
        _sound(said_before, 0.0, 0.2, dbfs=-35.0)
        _sound(said_before, 0.2, 0.35, dbfs=rise)
        _sound(said_before, 1.5, 0.3)
        cutter = TakeCutter()
        found = cutter.push(said_before) + cutter.flush()
        assert [type(f) for f in found][-1] == Take and abs(found[-1].start_s - 1.5) < 0.011 and cutter.missed_at_start
        assert all(isinstance(f, Skipped) and "cut off at its start" in f.reason for f in found[:-1]), found
    quieter = _room(8.0, -60.0)
    quieter[:3 * SR] += _room(3.0, -35.0, seed=4)  # a fan for the first 3 s, then off: its noise was no word
    for t in (4.0, 5.5):
        _sound(quieter, t, 0.4)
    cutter = TakeCutter()
    found = cutter.push(quieter) + cutter.flush()
    assert [(type(f), round(f.start_s, 1)) for f in found] == [(Take, 4.0), (Take, 5.5)] and not cutter.missed_at_start
    shifted = _room(6.0) + 0.05
    shifted[:int(0.5 * SR)] = 0  # a recorder that starts with half a second of zeros
    for t in (1.5, 3.0, 4.5):
        _sound(shifted, t, 0.4)
    found = cut_takes(shifted)
    assert [(type(f), round(f.start_s, 1)) for f in found] == [(Take, 1.5), (Take, 3.0), (Take, 4.5)]


def test_a_stray_quiet_frame_does_not_sink_the_floor_and_a_fan_becomes_floor():
    """A 30 ms dropout (digital zeros) once dragged a running-minimum floor 20 dB down: the room's own noise then
    counted as sound for seconds and the next words merged into one "too long" sound."""
    x = _room(8, -55)
    x[int(1.0 * SR):int(1.03 * SR)] = 0
    for t in (2.0, 3.5, 5.0):
        _sound(x, t, 0.4)
    assert [type(f) for f in cut_takes(x)] == [Take] * 3
    fan = _room(16, -60)
    fan[4 * SR:] += _room(12, -35, seed=3)  # a fan starts: 25 dB more noise from 4 s on
    for t in (1.0, 9.0, 12.0):
        _sound(fan, t, 0.4, dbfs=-10)
    found = cut_takes(fan)
    assert [type(f) for f in found] == [Take, Skipped, Take, Take]
    assert "longer than" in found[1].reason and abs(found[1].start_s - 4.0) < 0.02


def test_a_noise_gated_microphone_whose_pauses_are_digital_silence():
    """Its pauses are exact zeros: the warm-up counted only frames with sound (the first word was "while the room's
    noise was being learnt"), and the floor came from the words alone (a steady word never stood out of itself)."""
    steady = np.zeros(int(9.5 * SR), np.float32)
    for t in (1.5, 3.0, 4.5, 6.0, 7.5):
        _sound(steady, t, 0.5)
    steady[np.abs(steady) < 1e-9] = 0.0
    found = cut_takes(steady)
    assert [(type(f), round(f.start_s, 1)) for f in found][-4:] == [(Take, t) for t in (3.0, 4.5, 6.0, 7.5)]
    words = [c for c in scan_dataset(DATA) if c.split == "validation" and c.word == "left"][:4]
    from voice_gru.audio import load_audio

    parts, starts = [np.zeros(SR, np.float32)], []
    for c in words:
        a = load_audio(c.path, SR)
        starts.append(sum(p.size for p in parts) / SR)
        parts += [np.where(np.abs(a) > 0.01, a, 0.0).astype(np.float32), np.zeros(SR, np.float32)]  # the gate
    found = cut_takes(np.concatenate(parts))
    assert all(isinstance(f, Take) for f in found) and len(found) == len(words), found
    assert all(s - 0.02 <= f.start_s <= s + 1.0 for f, s in zip(found, starts))


def test_a_config_that_cannot_hold_a_word_is_refused():
    with pytest.raises(ConfigError, match="max_sound_s <= clip_s"):
        TakeConfig(max_sound_s=1.2)


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/speech_commands")
def test_real_words_laid_end_to_end_become_takes_inside_their_clips():
    """60 validation clips of five words, each scaled so its own noise floor is the room's (-55 dBFS), 0.8 s apart:
    the words of most become takes (the rest are said as skipped or are under 12 dB above their floor), and no take
    lies outside a clip (measured 2026-12-07 on 150 such clips: 130 takes; 17 sounds longer than a take, 6
    clicks and 3 too close to the next skipped)."""
    clips = [c for c in scan_dataset(DATA) if c.split == "validation"
             and c.word in ("yes", "left", "stop", "happy", "six")][:60]
    from voice_gru.audio import load_audio

    parts, spans, pos = [_room(1.0, -55)], [], SR
    for c in clips:
        a = load_audio(c.path, SR)
        frames = a[:a.size // 160 * 160].reshape(-1, 160)
        floor = 10 * np.log10(np.percentile((frames.astype(np.float64) ** 2).mean(1), 10) + 1e-13)
        parts += [np.clip(a * 10 ** ((-55 - floor) / 20), -1, 1).astype(np.float32), _room(0.8, -55, seed=pos)]
        spans.append((pos / SR, (pos + a.size) / SR))
        pos += a.size + int(0.8 * SR)
    takes = [f for f in cut_takes(np.concatenate(parts)) if isinstance(f, Take)]
    inside = [[i for i, (a, b) in enumerate(spans) if a - 0.02 <= t.start_s and t.end_s <= b + 0.02] for t in takes]
    assert all(len(i) == 1 for i in inside)
    assert len({i[0] for i in inside}) == len(takes) >= 0.75 * len(clips)


def _recording(path: Path, word: Path = TEST_DATA / "bed" / "0c2d2ffa_nohash_1.wav", n: int = 4, seed: int = 0) -> Path:
    """``n`` times one real clip of a word with a second of the room between them (``seed``: the room's noise)."""
    clip, sr = sf.read(str(word), dtype="float32")
    parts = [_room(1.0, -62)]
    for i in range(n):
        parts += [clip + _room(clip.size / SR, -62, seed=i + 5 + 100 * seed)[:clip.size],
                  _room(1.0, -62, seed=i + 10 + 100 * seed)]
    sf.write(str(path), np.concatenate(parts), SR, subtype="PCM_16")
    return path


def test_record_writes_a_new_dataset_each_speaker_in_one_split(tmp_path, capsys):
    rec, root = _recording(tmp_path / "me.wav"), tmp_path / "mine"
    root.mkdir()
    assert main(["record", "lights", "--data-dir", str(root), "--input", str(rec), "--speaker", "alice"]) == 0
    out = capsys.readouterr().out
    alice, bob = speaker_id("alice"), speaker_id("bob")
    assert "a new dataset: split lists started" in out and f"speaker {alice}, training split" in out
    assert "'lights' in " + str(root) + ": training 4 (1 speaker), validation 0 (0 speakers)" in out
    assert "no validation takes of 'lights' yet" in out and "has no other words and no _background_noise_ folder" in out
    assert sorted(p.name for p in (root / "lights").iterdir()) == [f"{alice}_nohash_{i}.wav" for i in range(4)]
    # two empty lists are lists: a speaker whose id's hash says testing is training here
    assert which_set(f"{speaker_id('voice10')}_nohash_0.wav") == "testing"
    assert main(["record", "lights", "--data-dir", str(root), "--input", str(rec), "--speaker", "voice10",
                 "--takes", "1"]) == 0
    assert {c.split for c in scan_dataset(root)} == {"training"} and (root / "testing_list.txt").read_text() == ""
    (root / "lights" / f"{speaker_id('voice10')}_nohash_0.wav").unlink()
    capsys.readouterr()
    # the same recording again (a rerun after a stop) saves none of its takes twice
    assert main(["record", "lights", "--data-dir", str(root), "--input", str(rec), "--speaker", "alice"]) == 0
    out = capsys.readouterr().out
    assert f"is already saved: lights/{alice}_nohash_3.wav" in out and "saved 0 take(s)" in out
    assert "(0 sound(s) skipped, 4 already saved before)" in out and len(list((root / "lights").iterdir())) == 4
    assert main(["record", "lights", "--data-dir", str(root), "--input", str(_recording(tmp_path / "again.wav", seed=1)),
                 "--speaker", "alice", "--takes", "2"]) == 0  # numbering goes on
    assert (root / "lights" / f"{alice}_nohash_5.wav").is_file() and not (root / "lights" / f"{alice}_nohash_6.wav").exists()
    assert main(["record", "lights", "--data-dir", str(root), "--input", str(rec), "--speaker", "bob", "--split",
                 "validation"]) == 0
    assert (root / "validation_list.txt").read_text().split() == [f"lights/{bob}_nohash_{i}.wav" for i in range(4)]
    by_split = {(Path(c.path).name, c.split) for c in scan_dataset(root)}  # the dataset reader's own view
    assert by_split == {(f"{alice}_nohash_{i}.wav", "training") for i in range(6)} | \
        {(f"{bob}_nohash_{i}.wav", "validation") for i in range(4)}
    for f in (root / "lights").iterdir():
        audio, sr = sf.read(str(f), dtype="float32")
        assert sr == SR and audio.shape == (SR,)
    capsys.readouterr()
    assert main(["record", "lights", "--data-dir", str(root), "--input", str(rec), "--speaker", "bob", "--split",
                 "testing"]) == 2
    assert f"'bob' (speaker {bob}) already has clips in the validation split" in capsys.readouterr().err
    assert len(list((root / "lights").iterdir())) == 10


def test_record_takes_a_word_in_any_case_into_its_one_folder(tmp_path, capsys):
    """`record happy`, then `record Happy`: two folders whose clips had the same names (the dataset reader merged them
    into one word, the summary counted one folder). Now the word's folder in any case, else one in lower case."""
    rec, root = _recording(tmp_path / "me.wav"), tmp_path / "mine"
    root.mkdir()
    bob = speaker_id("bob")
    assert main(["record", "Happy", "--data-dir", str(root), "--input", str(rec), "--speaker", "bob", "--takes", "2"]) == 0
    assert main(["record", "HAPPY", "--data-dir", str(root), "--input", str(_recording(tmp_path / "again.wav", seed=1)),
                 "--speaker", "bob", "--takes", "2"]) == 0
    assert [d.name for d in root.iterdir() if d.is_dir()] == ["happy"]
    assert sorted(p.name for p in (root / "happy").iterdir()) == [f"{bob}_nohash_{i}.wav" for i in range(4)]
    out = capsys.readouterr().out
    assert "'happy' in " + str(root) + ": training 4 (1 speaker)" in out
    (root / "_background_noise_").mkdir()
    (root / "Lights").mkdir()  # a folder someone made in another case is the word's
    assert main(["record", "lights", "--data-dir", str(root), "--input", str(rec), "--speaker", "bob", "--takes", "1"]) == 0
    assert [p.name for p in (root / "Lights").iterdir()] == [f"{bob}_nohash_0.wav"] and not (root / "lights").exists()
    # the folder's own name is the word training reads (`--commands lights` found no clips of 'lights'); "happy", a
    # word of Speech Commands, is not counted among the words recorded here
    assert "--commands Lights --out runs/lights\n" in capsys.readouterr().out


def test_record_refuses_what_would_lose_or_misplace_takes(tmp_path, capsys):
    rec = _recording(tmp_path / "me.wav")
    hashed = tmp_path / "hashed"  # clips and no split lists: the speaker's hash decides
    (hashed / "cat").mkdir(parents=True)
    shutil.copy(TEST_DATA / "yes" / "0ea0e2f4_nohash_0.wav", hashed / "cat" / "0ea0e2f4_nohash_0.wav")
    fate = split_for(hashed, speaker_id("alice"))
    other = "validation" if fate != "validation" else "training"
    cases = [
        (["--data-dir", str(hashed), "--speaker", "alice", "--split", other], f"which puts 'alice' (speaker "
         f"{speaker_id('alice')}) in {fate}"),
        (["--data-dir", str(tmp_path / "nowhere")], "no such folder"),
        (["--data-dir", str(hashed), "--device", "0"], "--device chooses a microphone"),
    ]
    for extra, says in cases:
        assert main(["record", "lights", "--input", str(rec), *extra]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
    assert main(["record", "lights", "--data-dir", str(hashed), "--input", str(tmp_path / "none.wav")]) == 2
    assert "none.wav: file not found" in capsys.readouterr().err
    assert main(["record", "_unknown_", "--data-dir", str(hashed), "--input", str(rec)]) == 2
    assert "not a word folder's name" in capsys.readouterr().err
    assert not (hashed / "lights").exists() and not (hashed / "validation_list.txt").exists()
    noise = tmp_path / "noise_only"  # the dataset's noise is no clip: a new dataset all the same
    (noise / "_background_noise_").mkdir(parents=True)
    sf.write(str(noise / "_background_noise_" / "room.wav"), _room(2.0), SR)
    assert main(["record", "lights", "--data-dir", str(noise), "--input", str(rec), "--speaker", "voice10"]) == 0
    assert "split lists started" in capsys.readouterr().out and {c.split for c in scan_dataset(noise)} == {"training"}
    empty = tmp_path / "new"
    empty.mkdir()
    assert main(["record", "lights", "--data-dir", str(empty), "--device", "no such microphone"]) == 75  # a device's status
    assert capsys.readouterr().err.count("\n") == 1 and not list(empty.iterdir())  # no lists started for nothing
    quiet = tmp_path / "quiet.wav"
    sf.write(str(quiet), _room(3.0), SR)
    assert main(["record", "lights", "--data-dir", str(hashed), "--input", str(quiet)]) == 2
    assert "no take found" in capsys.readouterr().err


@pytest.mark.slow
def test_recorded_takes_train_a_model_of_that_word(tmp_path, capsys):
    """The point of recording: two people's takes of a new word beside the dataset's, and `train --commands`."""
    root = make_tiny_dataset(tmp_path / "data")
    rec = _recording(tmp_path / "marvin.wav", TEST_DATA / "marvin" / "4954abe8_nohash_0.wav", n=5)
    for who, split in (("alice", "training"), ("carol", "training"), ("bob", "validation"), ("dan", "testing")):
        assert main(["record", "hey", "--data-dir", str(root), "--input", str(rec), "--speaker", who,
                     "--split", split]) == 0
    assert f"next: voice-gru train --config configs/default.yaml --data-dir {root} --commands hey --out runs/hey" in \
        capsys.readouterr().out
    # a second word, from an 8 kHz recording: warned (its takes would teach a word without its upper band), and the
    # next step trains every word recorded here, not only the last one
    audio, sr = sf.read(str(rec), dtype="float32")
    sf.write(str(tmp_path / "lamp8k.wav"), audio[::2], sr // 2, subtype="PCM_16")
    (root / ".trash").mkdir()  # what training does not read is no word to train (it was: --commands .trash)
    sf.write(str(root / ".trash" / "old.wav"), audio[:SR], SR)
    assert main(["record", "Lamp", "--data-dir", str(root), "--input", str(tmp_path / "lamp8k.wav"), "--speaker",
                 "alice"]) == 0
    out, err = capsys.readouterr()
    assert f"warning: {tmp_path / 'lamp8k.wav'} is recorded at 8000 Hz: nothing above 4 kHz reaches the model" in err
    assert f"next: voice-gru train --config configs/default.yaml --data-dir {root} --commands hey lamp --out runs/own" in out
    stats = dataset_stats(root, DataConfig(commands=("hey", "yes")))
    assert stats["training"]["per_class"]["hey"] == 10 and stats["validation"]["per_class"]["hey"] == 5
    assert main(["train", "--config", str(TINY_CONFIG), "--data-dir", str(root), "--out", str(tmp_path / "run"),
                 "--cache-dir", str(tmp_path / "cache"), "--commands", "hey", "yes", "--quiet", "--threads", "1"]) == 0
    from voice_gru.model import load_checkpoint

    assert load_checkpoint(tmp_path / "run" / "best.pt").labels == (SILENCE, UNKNOWN, "hey", "yes")


def test_record_runs_on_the_base_install(tmp_path):
    """A small computer with the listening install (no torch) records too."""
    rec, root = _recording(tmp_path / "me.wav"), tmp_path / "mine"
    root.mkdir()
    code = ("import sys\nfrom voice_gru.cli import TRAIN_EXTRA, main\nsys.modules.update(dict.fromkeys(TRAIN_EXTRA))\n"
            f"sys.exit(main(['record', 'lights', '--data-dir', {str(root)!r}, '--input', {str(rec)!r}]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(list((root / "lights").iterdir())) == 4


@pytest.mark.audio_stack
@pytest.mark.slow
def test_record_from_the_microphone_stops_after_its_takes(pulse_mic, tmp_path):
    """The PulseAudio fake microphone plays the recording: `record --takes 3` saves three takes and ends by itself."""
    rec, root = _recording(tmp_path / "me.wav"), tmp_path / "mine"
    root.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "voice_gru.cli", "record", "lights", "--data-dir", str(root),
                             "--device", "pulse", "--takes", "3", "--speaker", "tester"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=pulse_mic.env)
    out: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            out.append(line)
            if line.startswith("say 'lights'"):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(30), "record never said it was listening:\n" + "".join(out)
        pulse_mic.play(rec)
        assert proc.wait(30) == 0, "".join(out)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(10)
    reader.join(5)
    assert sorted(p.name for p in (root / "lights").iterdir()) == \
        [f"{speaker_id('tester')}_nohash_{i}.wav" for i in range(3)], "".join(out)
    assert "saved 3 take(s)" in "".join(out)


def test_a_list_line_left_without_its_clip_and_a_linked_list(tmp_path, monkeypatch):
    """A run stopped between a list line and its clip: the speaker's next take neither reuses the name nor lands in
    another split. A dataset copied as links: the copy's list becomes its own, the original is untouched."""
    from voice_gru.takes import next_take_path, save_take

    root = tmp_path / "d"
    (root / "lights").mkdir(parents=True)
    bob = speaker_id("bob")
    (root / "validation_list.txt").write_text(f"lights/{bob}_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("")
    assert next_take_path(root / "lights", bob).name == f"{bob}_nohash_1.wav"
    assert split_for(root, bob) == "validation"
    with pytest.raises(ConfigError, match="already has clips in the validation split"):
        split_for(root, bob, "training")
    orig, copy = tmp_path / "orig", tmp_path / "copy"
    orig.mkdir()
    (orig / "validation_list.txt").write_text("yes/x_nohash_0.wav\n")
    copy.mkdir()
    (copy / "validation_list.txt").symlink_to(orig / "validation_list.txt")
    take = cut_takes(_placed())[0]
    real_replace = os.replace

    def stopped(src, dst, *a, **k):  # Ctrl-C as the list is put in place: the link was removed before, the copy
        if Path(dst).name == "validation_list.txt":  # left with no validation list (its clips read as training)
            raise KeyboardInterrupt
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", stopped)
    with pytest.raises(KeyboardInterrupt):
        save_take(copy, "lights", bob, "validation", take)
    assert (copy / "validation_list.txt").is_symlink() and (copy / "validation_list.txt").read_text() == "yes/x_nohash_0.wav\n"
    monkeypatch.setattr(os, "replace", real_replace)
    save_take(copy, "lights", bob, "validation", take)
    assert (orig / "validation_list.txt").read_text() == "yes/x_nohash_0.wav\n"
    assert not (copy / "validation_list.txt").is_symlink()
    assert (copy / "validation_list.txt").read_text().split() == ["yes/x_nohash_0.wav", f"lights/{bob}_nohash_0.wav"]


def test_runs_saving_into_one_dataset_at_once_lose_no_take_and_no_list_line(tmp_path):
    """Several speakers' recordings imported in parallel (``record ... &``): each took the same free name or wrote back
    the split list without the others' lines, so takes were overwritten and validation clips read as training."""
    root = tmp_path / "d"
    root.mkdir()
    (root / "validation_list.txt").write_text("")
    (root / "testing_list.txt").write_text("")
    script = ("import sys, numpy as np; from voice_gru.takes import Take, save_take\n"
              "take = Take(np.full(16000, 0.1, np.float32), 0.2, 0.8, -20.0)\n"
              "[save_take(sys.argv[1], 'lights', sys.argv[2], 'validation', take) for _ in range(25)]")
    runs = [subprocess.Popen([sys.executable, "-c", script, str(root), who]) for who in ("ann", "ann", "bea", "cid")]
    assert [r.wait(timeout=120) for r in runs] == [0] * 4
    on_disk = sorted(f"lights/{p.name}" for p in (root / "lights").iterdir())
    assert len(on_disk) == 100
    assert sorted((root / "validation_list.txt").read_text().split()) == on_disk


def test_record_refuses_roots_and_words_it_cannot_write_right(tmp_path, capsys):
    from voice_gru.decision import clock

    rec = _recording(tmp_path / "me.wav")
    testset = tmp_path / "testset"
    for d in ("yes", "_unknown_", "_silence_"):
        (testset / d).mkdir(parents=True)
    above = tmp_path / "above"
    (above / "inner" / "_background_noise_").mkdir(parents=True)
    (above / "inner" / "validation_list.txt").write_text("")
    words = tmp_path / "words"
    words.mkdir()
    (words / "notes").write_text("not a word folder")
    (tmp_path / "original" / "lights").mkdir(parents=True)
    (words / "linked").symlink_to(tmp_path / "original" / "lights")
    for argv, says in (([str(testset)], "official test-set layout"), ([str(above)], "holds a dataset one folder down"),
                       ([str(rec)], "is a file, not a dataset folder"), ([str(words), "notes"], "exists and is not a folder"),
                       ([str(words), "a\\b"], "not a word folder's name"), ([str(words), "a\nb"], "not a word folder's name"),
                       ([str(words), "linked"], "the takes would be written there")):
        word = argv[1] if len(argv) > 1 else "lights"
        assert main(["record", word, "--data-dir", argv[0], "--input", str(rec)]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
    assert not list(testset.glob("*.txt")) and not (above / "validation_list.txt").exists()
    assert not list((tmp_path / "original" / "lights").iterdir())
    assert [clock(t) for t in (0.04, 59.96, 61.25, 3599.97)] == ["0:00:00.0", "0:01:00.0", "0:01:01.2", "1:00:00.0"]


def test_record_from_standard_input_and_into_a_read_only_copy(tmp_path, capsys, monkeypatch):
    """`arecord ... | voice-gru record lights --input -` takes what the file gives; a dataset copied with `cp -r` from a
    read-only one is read-only too: one line with the fix, not "Permission denied" after the first line."""
    import os

    rec, piped, filed = _recording(tmp_path / "me.wav"), tmp_path / "piped", tmp_path / "filed"
    piped.mkdir()
    filed.mkdir()
    script = Path(sys.executable).parent / "voice-gru"
    if not script.is_file():
        pytest.skip("needs the installed voice-gru command (scripts/setup.sh)")
    with open(rec, "rb") as f:
        run = subprocess.run([str(script), "record", "lights", "--data-dir", str(piped), "--input", "-", "--speaker",
                              "alice"], stdin=f, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "reading WAV (16-bit PCM) from standard input: 16000 Hz, 1 channel(s)" in run.stdout
    assert main(["record", "lights", "--data-dir", str(filed), "--input", str(rec), "--speaker", "alice"]) == 0
    names = sorted(p.name for p in (filed / "lights").iterdir())
    assert len(names) == 4 and names == sorted(p.name for p in (piped / "lights").iterdir())
    for n in names:
        assert np.array_equal(sf.read(str(piped / "lights" / n))[0], sf.read(str(filed / "lights" / n))[0])
    leftover = piped / "lights" / f".{speaker_id('alice')}_nohash_4.wav.k9x2ab.wav"  # what a kill -9 mid-take leaves
    leftover.write_bytes(b"RIFF half a take")
    assert main(["record", "lights", "--data-dir", str(piped), "--input", str(_recording(tmp_path / "again.wav", seed=1)),
                 "--speaker", "alice", "--takes", "1"]) == 0
    assert not leftover.exists() and len(list((piped / "lights").iterdir())) == 5
    (piped / "lights" / f"{speaker_id('alice')}_nohash_4.wav").unlink()
    capsys.readouterr()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == piped / "lights" else real_access(p, mode))
    assert main(["record", "lights", "--data-dir", str(piped), "--input", str(rec)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{piped / 'lights'} is read-only" in err and f"chmod -R u+w {piped}" in err
    assert len(list((piped / "lights").iterdir())) == 4


def test_a_rerun_after_a_stop_saves_the_rest_and_counts_the_takes_saved_before(tmp_path, capsys):
    """The first run stopped after two takes (--takes 2); the same command for all four saves the last two and does
    not say the recording held fewer takes than asked for (it held four, two saved before)."""
    rec, root = _recording(tmp_path / "me.wav"), tmp_path / "mine"
    root.mkdir()
    assert main(["record", "lights", "--data-dir", str(root), "--input", str(rec), "--speaker", "alice",
                 "--takes", "2"]) == 0
    capsys.readouterr()
    assert main(["record", "lights", "--data-dir", str(root), "--input", str(rec), "--speaker", "alice",
                 "--takes", "4"]) == 0
    out = capsys.readouterr().out
    assert "saved 2 take(s)" in out and "2 already saved before" in out and "fewer than" not in out, out
    assert len(list((root / "lights").iterdir())) == 4
