"""A model of its own command words (``data.commands``): recipe, data, training, streams, calibration, actions.

Every other word of the dataset, the ten default commands included, is then ``_unknown_``. The tools that know
which words are commands take them from the model (evaluate, listen, calibrate, evaluate-stream, the assistant
file), from ``--commands`` or from the label file make-stream writes (``"commands"``); a label file made for other
commands is scored word by word for the model's.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_data import TINY_CONFIG, make_tiny_dataset
from voice_gru import COMMANDS, SILENCE, UNKNOWN
from voice_gru.actions import WakeGate, load_assistant
from voice_gru.cli import main
from voice_gru.config import DataConfig, load_config
from voice_gru import commands_of
from voice_gru.data import dataset_stats, label_of, scan_dataset, task_labels
from voice_gru.errors import ConfigError, DatasetError
from voice_gru.stream_labels import read_detections, read_truth

OWN = ("bed", "cat", "happy")  # words of the shared subset with ~280 training clips each


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "speech_commands")


def _own_cfg(words):
    cfg = load_config(TINY_CONFIG)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, commands=tuple(words)))


@pytest.fixture(scope="module")
def own_model(tmp_path_factory):
    """An untrained checkpoint whose commands are OWN (these tests check the plumbing, not skill)."""
    from voice_gru.config import FeatureConfig, ModelConfig
    from voice_gru.features import Normalizer
    from voice_gru.model import Checkpoint, GRUClassifier, save_checkpoint

    torch.manual_seed(0)
    feats = FeatureConfig()
    labels = tuple(task_labels("12", OWN))
    net = GRUClassifier(feats.n_mfcc, len(labels), ModelConfig(hidden=16, layers=1)).eval()
    ckpt = Checkpoint(net, labels, feats, Normalizer((0.0,) * feats.n_mfcc, (10.0,) * feats.n_mfcc), "max", {}, {}, {})
    path = tmp_path_factory.mktemp("own") / "own.pt"
    save_checkpoint(path, ckpt)
    return path


def test_a_recipe_names_its_commands_and_bad_lists_are_one_line(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data:\n  commands: [marvin, yes, no, 'on']\n")  # YAML 1.1 would read yes/no/on as booleans
    assert load_config(recipe).data.commands == ("marvin", "yes", "no", "on")
    assert DataConfig().commands == COMMANDS
    for words, says in (((), "expected a list of 1 to 100 words"), (("yes", "yes"), "'yes' given twice"),
                        (("_unknown_",), "not a word folder's name"), (("up/down",), "not a word folder's name"),
                        ((" yes",), "not a word folder's name"), (("Hola", "hola"), "given twice \\(in any case\\)")):
        with pytest.raises(ConfigError, match=says):
            DataConfig(commands=words)


def test_the_task_labels_and_every_other_word_unknown(tiny_root):
    assert task_labels("12", ("marvin", "yes")) == [SILENCE, UNKNOWN, "marvin", "yes"]
    assert commands_of(task_labels("12", ("marvin", "yes"))) == ("marvin", "yes")
    clips = scan_dataset(tiny_root)
    by_word = {c.word: label_of(c, "12", ("marvin", "yes")) for c in clips}
    assert by_word == {"marvin": "marvin", "yes": "yes", "no": UNKNOWN, "stop": UNKNOWN, "bed": UNKNOWN}
    stats = dataset_stats(tiny_root, DataConfig(commands=("marvin", "yes")))
    # tiny_data: 4 training speakers a word; the three other words are all kept as _unknown_ in training
    assert stats["training"]["per_class"] == {SILENCE: 1, UNKNOWN: 12, "marvin": 4, "yes": 4}


def test_training_on_own_commands_and_a_missing_word_refused_before_anything(tiny_root, tmp_path, capsys):
    from voice_gru.model import load_checkpoint
    from voice_gru.train import train

    train(_own_cfg(("marvin", "yes")), tiny_root, tmp_path / "run", cache=tmp_path / "cache", quiet=True, threads=1)
    assert load_checkpoint(tmp_path / "run" / "best.pt").labels == (SILENCE, UNKNOWN, "marvin", "yes")
    assert (f"warning: {tiny_root}: few training takes (marvin 4, yes 4): a model of a word needs about 20, from as "
            "many voices as will use it (README: Recording your own word)\n") in capsys.readouterr().err
    # takes of one voice only, all in training: refused before any work (it had made every feature first)
    alone = tmp_path / "alone"
    alone.mkdir()
    for item in tiny_root.iterdir():
        if item.name not in ("marvin", "validation_list.txt"):
            (alone / item.name).symlink_to(item)
    held = [line for line in (tiny_root / "validation_list.txt").read_text().splitlines() if line.startswith("marvin/")]
    assert held
    (alone / "validation_list.txt").write_text("".join(
        line for line in (tiny_root / "validation_list.txt").read_text().splitlines(keepends=True)
        if not line.startswith("marvin/")))
    (alone / "marvin").mkdir()
    for clip in (tiny_root / "marvin").iterdir():
        if f"marvin/{clip.name}" not in held:
            (alone / "marvin" / clip.name).symlink_to(clip)
    with pytest.raises(DatasetError, match=r"data.commands: no validation clips of 'marvin': training chooses its epoch "
                                           r"on a voice it does not learn: .* \(voice-gru record marvin --data-dir "):
        train(_own_cfg(("marvin", "yes")), alone, tmp_path / "alone_run", cache=tmp_path / "cache2", quiet=True,
              threads=1)
    assert not (tmp_path / "alone_run").exists() and not (tmp_path / "cache2").exists()
    with pytest.raises(DatasetError, match=r"data.commands: no training clips of 'sheila' \(word folders with "
                                           r"training clips: bed, marvin, no, stop, yes\)"):
        train(_own_cfg(("marvin", "sheila")), tiny_root, tmp_path / "bad", cache=tmp_path / "cache", quiet=True,
              threads=1)
    assert not (tmp_path / "bad").exists()
    assert main(["train", "--config", str(TINY_CONFIG), "--data-dir", str(tiny_root), "--out", str(tmp_path / "cli"),
                 "--cache-dir", str(tmp_path / "cache"), "--commands", "no", "stop", "--quiet", "--threads", "1"]) == 0
    assert load_checkpoint(tmp_path / "cli" / "best.pt").labels == (SILENCE, UNKNOWN, "no", "stop")
    words35 = tmp_path / "35.yaml"
    words35.write_text(TINY_CONFIG.read_text().replace('task: "12"', 'task: "35"'))
    assert main(["train", "--config", str(words35), "--data-dir", str(tiny_root), "--out", str(tmp_path / "w35"),
                 "--commands", "no", "--quiet"]) == 2
    assert not (tmp_path / "w35").exists()


def test_synthetic_unknown_words_never_say_the_commands(tmp_path, monkeypatch):
    import voice_gru.synth as synth

    said: list[str] = []

    def fake_espeak(argv, **kwargs):
        if "-x" in argv:  # phonemes: every word its own
            return subprocess.CompletedProcess(argv, 0, "\n".join(argv[-1].split(", ")), "")
        said.append(argv[-1])
        import soundfile as sf

        sf.write(argv[-2], np.full(1600, 0.1, np.float32), 16000)

    monkeypatch.setattr(synth.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(synth.subprocess, "run", fake_espeak)
    plain = synth.synthesize_unknown(300, tmp_path, seed=1, progress=False, exclude=COMMANDS)
    words = sorted(set(said))
    assert Path(plain[0]).parent.name == "espeak-300-1"  # the ten commands are not in the vocabulary: same cache
    said.clear()
    without = synth.synthesize_unknown(300, tmp_path, seed=1, progress=False, exclude=words[:3])
    assert Path(without[0]).parent != Path(plain[0]).parent
    assert said and not set(said) & set(words[:3])


def test_an_assistant_file_is_checked_against_the_models_commands(tmp_path):
    f = tmp_path / "a.yaml"
    f.write_text(textwrap.dedent("""\
        wake_word: happy
        actions:
          bed: {print: sleeping}
          cat: {print: meow}
        """))
    cfg = load_assistant(f, OWN)
    assert cfg.commands == OWN and cfg.model_commands == OWN
    with pytest.raises(ConfigError, match=r"wake_word.word: 'happy' is not a command \(the model's commands: yes, no"):
        load_assistant(f)
    f.write_text("actions:\n  stop: {print: x}\n")
    with pytest.raises(ConfigError, match=r"actions.stop: unknown command 'stop' \(the model's commands: bed, cat, happy\)"):
        load_assistant(f, OWN)
    assert WakeGate("happy", 5.0, commands=OWN).word == "happy"


@pytest.mark.parametrize("command", [["listen", "--no-view"], ["evaluate-stream", "--command-free"], ["demo"]])
def test_an_own_words_assistant_without_model_says_how_to_give_one(tmp_path, capsys, command):
    """The README's listen lines name no --model: the file's own words then met the shipped model, and the error
    gave no way forward."""
    f = tmp_path / "mine.yaml"
    f.write_text("actions:\n  lights: {print: x}\n")
    example = Path(__file__).parents[1] / "voice_gru" / "assets" / "example.wav"
    extra = [] if command == ["demo"] else ["--input", str(example)]
    assert main([*command, *extra, "--assistant", str(f)]) == 2
    assert capsys.readouterr().err == (
        f"voice-gru: error: {f}: actions.lights: unknown command 'lights' (the model's commands: yes, no, up, down, "
        "left, right, on, off, stop, go); that is the shipped model: a model of your own words is given with --model "
        "(--model runs/NAME/calibrated.pt)\n")
    f.write_text("actions:\n  stop: {nope: x}\n")  # a mistake of another kind: no word of --model
    assert main([*command, *extra, "--assistant", str(f)]) == 2
    assert "--model" not in capsys.readouterr().err


def test_streams_of_own_commands_carry_them_in_their_label_file(shared_data, tmp_path):
    from voice_gru.streams import StreamSpec, make_stream, write_stream

    audio, truth = make_stream(shared_data, "validation", StreamSpec(seconds=40.0), seed=2, commands=OWN)
    assert truth["commands"] == list(OWN)
    words = {e["word"]: e["label"] for e in truth["events"]}
    assert {lab for lab in words.values()} == {*OWN, UNKNOWN}
    assert all(lab == (w if w in OWN else UNKNOWN) for w, lab in words.items())
    _, labels = write_stream(tmp_path / "own.wav", audio, truth)
    back = read_truth(labels)
    assert back["commands"] == list(OWN) and [e["label"] for e in back["events"]] == [e["label"] for e in truth["events"]]
    _, plain = make_stream(shared_data, "validation", StreamSpec(seconds=20.0), seed=2)
    assert "commands" not in plain  # the default file stays as it was
    assert read_truth(write_stream(tmp_path / "plain.wav", *make_stream(shared_data, "validation",
                                                                         StreamSpec(seconds=20.0), seed=2))[1]).get("commands") is None
    # "happy" is an unknown word of the ten-command files, a command here; a label outside the list is refused
    events = [{"label": "happy", "start": 1.0, "end": 2.0}]
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"duration": 10.0, "events": events}))
    assert read_truth(odd)["events"][0]["label"] == UNKNOWN
    odd.write_text(json.dumps({"duration": 10.0, "commands": list(OWN), "events": events}))
    assert read_truth(odd)["events"][0]["label"] == "happy"
    odd.write_text(json.dumps({"duration": 10.0, "commands": ["happy", "happy"], "events": events}))
    with pytest.raises(DatasetError, match="expected a list of distinct command words"):
        read_truth(odd)
    det = tmp_path / "det.jsonl"
    det.write_text('{"t": 1.5, "label": "cat"}\n')
    assert read_detections(det, commands=OWN) == [{"t": 1.5, "label": "cat"}]
    with pytest.raises(DatasetError, match=r"label = 'cat': not one of the commands \(yes, no"):
        read_detections(det)


def test_cli_own_commands_stream_evaluate_and_mismatch(shared_data, own_model, tmp_path, capsys):
    rec = tmp_path / "own.wav"
    assert main(["make-stream", "--data-dir", str(shared_data), "--minutes", "0.5", "--commands", *OWN,
                 "--out", str(rec)]) == 0
    assert json.loads(rec.with_suffix(".json").read_text())["commands"] == list(OWN)
    assert main(["evaluate-stream", "--input", str(rec), "--model", str(own_model), "--threshold", "0.5",
                 "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["thresholds"]) == set(OWN) and report["commands"] > 0
    capsys.readouterr()
    # a recording made for the ten commands: its words scored as what they are, for the model's commands
    plain = tmp_path / "plain.wav"
    assert main(["make-stream", "--data-dir", str(shared_data), "--minutes", "0.5", "--out", str(plain)]) == 0
    assert main(["evaluate-stream", "--input", str(plain), "--model", str(own_model), "--json",
                 str(tmp_path / "p.json")]) == 0
    assert "was made for the commands yes, no, up" in capsys.readouterr().err
    said = [e["word"] for e in json.loads(plain.with_suffix(".json").read_text())["events"]]
    assert json.loads((tmp_path / "p.json").read_text())["commands"] == sum(w in OWN for w in said)
    free = tmp_path / "free.wav"  # its other words are the model's commands: not command-free for it
    assert main(["make-stream", "--data-dir", str(shared_data), "--minutes", "0.5", "--command-free",
                 "--unknown-mix", "words", "--out", str(free)]) == 0
    assert main(["evaluate-stream", "--input", str(free), "--model", str(own_model)]) == 2
    err = capsys.readouterr().err
    assert "(scored for bed, cat, happy) but the file says \"command_free\": true" in err
    assert "make-stream --command-free --commands bed cat happy" in err
    assert main(["make-stream", "--minutes", "0.5", "--commands", "bed", "bedd", "--out", str(tmp_path / "y.wav")]) == 2
    assert "the validation split has no clips of bedd (commands: bed, bedd)" in capsys.readouterr().err
    # another tool's labels (TensorFlow's 'label, time_ms' lines), scored with --commands
    events = json.loads(rec.with_suffix(".json").read_text())["events"]
    tf = tmp_path / "tf.txt"
    tf.write_text("".join(f"{e['word']}, {e['start'] * 1000:.0f}\n" for e in events))
    det = tmp_path / "det.jsonl"
    first = next(e for e in events if e["label"] in OWN)
    det.write_text(json.dumps({"t": first["end"] - 0.1, "label": first["label"]}) + "\n")
    assert main(["score-events", "--events", str(det), "--labels", str(tf), "--input", str(rec), "--commands", *OWN,
                 "--json", str(tmp_path / "s.json")]) == 0
    scored = json.loads((tmp_path / "s.json").read_text())
    assert (scored["hits"], scored["commands"]) == (1, sum(e["label"] in OWN for e in events))
    assert main(["make-stream", "--minutes", "0.5", "--commands", "cat", "cat", "--out", str(tmp_path / "x.wav")]) == 2
    assert "--commands cat cat: 'cat' given twice" in capsys.readouterr().err
    assert main(["listen", "--model", str(own_model), "--input", str(rec), "--threshold", "stop=0.5", "--no-view"]) == 2
    assert "--threshold: unknown command 'stop' (the model's commands: bed, cat, happy)" in capsys.readouterr().err
    assert main(["listen", "--model", str(own_model), "--input", str(rec), "--threshold", "_unknown_=0.5"]) == 2
    assert "sensitivity" not in capsys.readouterr().out  # refused before anything is said
    assert main(["demo", "--model", str(own_model)]) == 0  # its recording says bed and happy among the ten
    captured = capsys.readouterr()
    assert "assistant.yaml maps down, go, left, no, off, on, right, stop, up, yes, which this model does not have: no " \
           "actions" in captured.err
    assert "commands recognised" in captured.out and " of 2 commands" in captured.out
    assert main(["data", "stats", "--data-dir", str(shared_data), "--commands", *OWN]) == 0
    out = capsys.readouterr().out
    assert "5 classes" in out and "\nhappy " in out
    assert main(["evaluate", str(shared_data), "--split", "validation", "--model", str(own_model),
                 "--json", str(tmp_path / "e.json")]) == 0
    per_class = json.loads((tmp_path / "e.json").read_text())["per_class"]
    counts = json.loads((shared_data / "counts.json").read_text())  # COUNTS.md's numbers
    assert set(per_class) == {SILENCE, UNKNOWN, *OWN}
    assert {w: per_class[w]["n"] for w in OWN} == {w: counts["validation"]["per_word_folder"][w] for w in OWN}


def test_calibration_fits_the_models_own_commands(shared_data, own_model):
    from voice_gru.calibrate import calibrate
    from voice_gru.model import load_checkpoint

    cal, rep = calibrate(load_checkpoint(own_model), shared_data, 200.0, command_minutes=0.5, free_minutes=0.5,
                         piece_minutes=0.5, grid=np.linspace(0.3, 0.95, 14))
    assert set(cal.thresholds) == set(OWN)
    assert rep["split"] == "validation"
    from voice_gru.data import scan_dataset
    from voice_gru.streams import load_clip_bank

    # each word's voices in its calibration streams: at most the split's, at least 2 here (else a warning)
    voices = {w: {c.speaker for c in scan_dataset(shared_data) if c.split == "validation" and c.word == w} for w in OWN}
    bank = load_clip_bank(str(shared_data), "validation", OWN)
    assert {w for _, w, _ in bank.commands} == set(OWN)
    for w in OWN:
        assert 2 <= rep["per_command"][w]["speakers"] <= len(voices[w]), (w, rep["per_command"][w])


def test_an_official_layouts_other_words_that_are_the_models_commands(own_model, clip_paths, tmp_path):
    """The official test set keeps every other word in _unknown_/, named word_speaker_nohash_N.wav."""
    import shutil

    root = tmp_path / "official"
    for folder, name, src in (("_unknown_", "bed_0c2d2ffa_nohash_1.wav", "bed"), ("_unknown_", "marvin_4954abe8_nohash_0.wav",
                              "marvin"), ("yes", "0ea0e2f4_nohash_0.wav", "yes"), ("_silence_", "s.wav", "bed")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(clip_paths[src], root / folder / name)
    assert main(["evaluate", str(root), "--model", str(own_model), "--json", str(tmp_path / "o.json")]) == 0
    per_class = json.loads((tmp_path / "o.json").read_text())["per_class"]
    assert {k: v["n"] for k, v in per_class.items() if v["n"]} == {"bed": 1, UNKNOWN: 2, SILENCE: 1}


def test_label_files_made_for_other_commands_are_read_word_by_word(tmp_path):
    """A file's own command words (a folder of one's recordings) are other words to a model without them; a file
    whose other words do not say which word they are is flagged, since one of them may be a command here."""
    made = tmp_path / "hello.json"
    made.write_text(json.dumps({"duration": 10.0, "commands": ["hello", "bed"], "events": [
        {"label": "hello", "start": 1.0, "end": 2.0}, {"label": "bed", "start": 3.0, "end": 4.0},
        {"label": "_unknown_", "word": "cat", "start": 5.0, "end": 6.0}]}))
    truth = read_truth(made, commands=COMMANDS)  # the shipped model's: every one of them another word
    assert [(e["label"], e.get("word")) for e in truth["events"]] == [(UNKNOWN, "hello"), (UNKNOWN, "bed"),
                                                                      (UNKNOWN, "cat")]
    assert truth["labelled_for"] == ["hello", "bed"] and "unnamed_words" not in truth
    truth = read_truth(made, commands=OWN)
    assert [e["label"] for e in truth["events"]] == [UNKNOWN, "bed", "cat"]
    tf = tmp_path / "tf.txt"  # TensorFlow's lines: other words only as _unknown_
    tf.write_text("yes, 1000\n_unknown_, 3000\n")
    truth = read_truth(tf, duration=10.0, commands=OWN)
    assert truth["labelled_for"] == list(COMMANDS) and truth["unnamed_words"] == 1
    words = tmp_path / "words.json"  # the model's own words as labels, no list: not made for other commands
    words.write_text(json.dumps({"duration": 10.0, "events": [{"label": "Bed", "start": 1.0, "end": 2.0}]}))
    truth = read_truth(words, commands=OWN)
    assert "labelled_for" not in truth and truth["events"][0]["label"] == "bed"


def test_score_events_says_what_it_rescored_and_takes_the_flushs_detections(shared_data, tmp_path, capsys):
    from voice_gru.spotter import END_SILENCE_S

    rec = tmp_path / "rec.wav"
    assert main(["make-stream", "--data-dir", str(shared_data), "--minutes", "0.5", "--out", str(rec)]) == 0
    duration = json.loads(rec.with_suffix(".json").read_text())["duration"]
    det = tmp_path / "det.jsonl"
    det.write_text(json.dumps({"t": duration + END_SILENCE_S - 0.05, "label": "cat"}) + "\n")  # decided on the flush
    capsys.readouterr()
    assert main(["score-events", "--events", str(det), "--labels", str(rec.with_suffix(".json")),
                 "--commands", *OWN]) == 0
    captured = capsys.readouterr()
    assert "was made for the commands yes, no" in captured.err and "scored for bed, cat, happy" in captured.err
    assert "false accepts 1" in captured.out
    det.write_text(json.dumps({"t": duration + 2.0, "label": "cat"}) + "\n")
    assert main(["score-events", "--events", str(det), "--labels", str(rec.with_suffix(".json")),
                 "--commands", *OWN]) == 2
    assert "outside its 0-" in capsys.readouterr().err
    assert main(["data", "stats", "--data-dir", str(shared_data), "--commands", "bed", "zebra"]) == 0
    assert "warning: --commands: no clips of zebra" in capsys.readouterr().err


def test_a_default_label_file_read_without_a_model_stays_as_written(tmp_path):
    """Words are re-read only for a model of other commands: a ten-command file read for the ten is as before."""
    f = tmp_path / "l.json"
    f.write_text(json.dumps({"duration": 10.0, "command_free": True, "events": [
        {"label": "_unknown_", "word": "yes", "start": 1.0, "end": 2.0}]}))
    for commands in (None, COMMANDS):
        truth = read_truth(f, commands=commands)
        assert truth["events"][0]["label"] == UNKNOWN and "labelled_for" not in truth and "unnamed_words" not in truth


def test_refusals_for_commands_the_data_or_the_example_lack(shared_data, own_model, tmp_path, capsys):
    from voice_gru.calibrate import calibrate
    from voice_gru.model import load_checkpoint

    ckpt = load_checkpoint(own_model)
    no_val = dataclasses.replace(ckpt, labels=(SILENCE, UNKNOWN, "bed", "cat", "dog"))  # "dog": 1 validation clip
    lone = tmp_path / "lone"  # the dataset without dog's validation clip
    lone.mkdir()
    for item in shared_data.iterdir():
        (lone / item.name).symlink_to(item)
    (lone / "validation_list.txt").unlink()
    (lone / "validation_list.txt").write_text("".join(
        line for line in (shared_data / "validation_list.txt").read_text().splitlines(keepends=True)
        if not line.startswith("dog/")))
    with pytest.raises(DatasetError, match=r"the validation split has no clips of dog: the model's commands need "
                       r"validation clips to calibrate on: give the dataset the model was trained on, or record a voice "
                       rf"for this split \(voice-gru record dog --data-dir {lone} --speaker NAME --split validation\)"):
        calibrate(no_val, lone, 1.0, command_minutes=0.5, free_minutes=0.5, piece_minutes=0.5)
    with pytest.raises(DatasetError, match=r"give the dataset the model was trained on \(/data/mine\), or record"):
        calibrate(dataclasses.replace(no_val, meta={"data_dir": "/data/mine"}), lone, 1.0, command_minutes=0.5,
                  free_minutes=0.5, piece_minutes=0.5)
    from voice_gru.model import save_checkpoint

    # words recorded into another dataset: the split is not empty, it lacks the model's words
    save_checkpoint(tmp_path / "lights.pt", dataclasses.replace(ckpt, labels=(SILENCE, UNKNOWN, "lights", "music", "pause")))
    assert main(["evaluate", str(lone), "--split", "testing", "--model", str(tmp_path / "lights.pt")]) == 2
    assert capsys.readouterr().err == (
        f"voice-gru: error: {lone}: the 'testing' split has no clips of lights, music, pause (the model's commands): give the "
        f"dataset the model was trained on, or record a voice for this split (voice-gru record lights --data-dir {lone} "
        "--speaker NAME --split testing)\n")

    save_checkpoint(tmp_path / "dog.pt", dataclasses.replace(ckpt, labels=(SILENCE, UNKNOWN, "dog", "zero", "wow")))
    assert main(["demo", "--model", str(tmp_path / "dog.pt")]) == 2  # the example says none of them
    assert "the example recording says none of its commands (dog, zero, wow)" in capsys.readouterr().err


def test_other_word_fires_takes_the_models_own_commands(shared_data, own_model, tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "scripts/other_word_fires.py", "--model", str(own_model), "--split", "validation",
                          "--data-dir", str(shared_data), "--json", str(tmp_path / "f.json")], capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parents[1], timeout=600)
    assert out.returncode == 0, out.stderr
    counts = json.loads((shared_data / "counts.json").read_text())["validation"]["per_word_folder"]
    clips = json.loads((tmp_path / "f.json").read_text())["clips"]
    assert len(clips) == sum(n for w, n in counts.items() if w not in OWN)  # every other word, the ten included
    assert {c["word"] for c in clips} & set(COMMANDS) and not {c["word"] for c in clips} & set(OWN)
