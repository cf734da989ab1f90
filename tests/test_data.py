"""Speech Commands layouts, splits, silence/unknown sampling, class weights and the feature cache."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import voice_gru.data as data
from conftest import CLIPS, TEST_DATA, needs_shared_data
from voice_gru import COMMANDS, SILENCE, UNKNOWN
from voice_gru.cli import main
from voice_gru.config import DataConfig, FeatureConfig
from voice_gru.data import (
    ClipRef,
    Example,
    check_speakers,
    class_weights,
    dataset_fingerprint,
    dataset_stats,
    fit_clip,
    load_clip_mels,
    parse_name,
    scan_dataset,
    split_examples,
    task_labels,
    which_set,
)
from voice_gru.errors import ConfigError, DatasetError

FEAT = FeatureConfig()


# ---------------------------------------------------------------- (a) data stats == counts.json


@needs_shared_data
def test_cli_data_stats_matches_counts_json(shared_data, tmp_path, capsys):
    out_json = tmp_path / "stats.json"
    rc = main(["data", "stats", "--data-dir", str(shared_data), "--json", str(out_json)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "all clips" in out and "3615" in out
    got = json.loads(out_json.read_text())
    want = json.loads((shared_data / "counts.json").read_text())
    assert set(want) == {"training", "validation", "testing"}
    for split, expected in want.items():
        assert got[split]["clips"] == expected["clips"], split
        assert got[split]["speakers"] == expected["speakers"], split
        assert got[split]["per_word_folder"] == expected["per_word_folder"], split
        assert list(got[split]["per_word_folder"]) == list(expected["per_word_folder"])  # same order
    assert got["background_noise_files"] == 6
    assert got["layout"] == "dataset"


@needs_shared_data
def test_stats_class_counts_follow_the_ratios(shared_data):
    cfg = DataConfig()
    stats = dataset_stats(shared_data, cfg)
    for split in ("training", "validation", "testing"):
        per_class = stats[split]["per_class"]
        assert list(per_class) == task_labels("12")
        commands = sum(per_class[w] for w in COMMANDS)
        assert commands == sum(stats[split]["per_word_folder"][w] for w in COMMANDS)
        assert per_class[SILENCE] == math.ceil(cfg.silence_ratio * commands)
        aux = stats[split]["clips"] - commands
        if split == "training":
            assert per_class[UNKNOWN] == aux  # training keeps every unknown clip
        else:
            assert per_class[UNKNOWN] == min(aux, math.ceil(cfg.unknown_ratio * commands))


# ---------------------------------------------------------------- (b) which_set


def reference_which_set(name: str) -> str:
    """Written here independently from the rule in TensorFlow's speech_commands/input_data.py
    (10% validation, 10% testing), so a slip in voice_gru.data.which_set can't hide in both."""
    speaker_part = re.sub(r"_nohash_.*$", "", name.rsplit("/", 1)[-1])
    value = int(hashlib.sha1(speaker_part.encode()).hexdigest(), 16)
    pct = (value % (2**27)) * (100.0 / (2**27 - 1))
    return "validation" if pct < 10 else "testing" if pct < 20 else "training"


# Published split memberships: file names with the split they are listed under in the official
# Speech Commands (v0.01) validation_list.txt / testing_list.txt, which Google generated with the
# which_set rule. Taken from the expected values of a public unit test of a Kaggle "TensorFlow
# Speech Recognition Challenge" reader (found with a code search for the file names).
PUBLISHED = [
    ("bed/eb67fcbc_nohash_0.wav", "training"),
    ("cat/3bc21161_nohash_0.wav", "training"),
    ("yes/05b2db80_nohash_0.wav", "training"),
    ("bird/099d52ad_nohash_0.wav", "validation"),
    ("go/0ab3b47d_nohash_0.wav", "validation"),
    ("seven/471a0925_nohash_2.wav", "validation"),
    ("bed/0c40e715_nohash_0.wav", "testing"),
    ("bed/0ea0e2f4_nohash_0.wav", "testing"),
    ("up/f6af2457_nohash_1.wav", "testing"),
    ("zero/37dca74f_nohash_3.wav", "testing"),
]


@pytest.mark.parametrize("name, split", PUBLISHED)
def test_which_set_published_examples(name, split):
    assert which_set(name) == split
    assert reference_which_set(name) == split


def test_which_set_matches_inline_reference_on_many_names():
    rng = np.random.default_rng(0)
    names = [f"{rng.choice(COMMANDS)}/{int(rng.integers(2**32)):08x}_nohash_{int(rng.integers(5))}.wav" for _ in range(3000)]
    got = [which_set(n) for n in names]
    assert got == [reference_which_set(n) for n in names]
    share = Counter(got)
    assert 0.07 < share["validation"] / len(names) < 0.13
    assert 0.07 < share["testing"] / len(names) < 0.13


def test_which_set_depends_on_speaker_only():
    splits = {which_set(f"{w}/0c40e715_nohash_{n}.wav") for w in ("yes", "bed", "stop") for n in range(4)}
    assert splits == {"testing"}
    assert which_set("/abs/path/yes/0c40e715_nohash_0.wav") == "testing"
    assert which_set("bed/0c40e715_nohash_0.wav", 0, 0) == "training"
    assert which_set("bed/0c40e715_nohash_0.wav", 100, 0) == "validation"


def copy_clips(root: Path, words=("yes", "no", "stop", "go", "bed", "marvin")) -> list[str]:
    rels = []
    for w in words:
        rel = CLIPS[w]
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(TEST_DATA / rel, root / rel)
        rels.append(rel)
    return rels


def test_scan_without_lists_uses_which_set(tmp_path):
    rels = copy_clips(tmp_path)
    clips = scan_dataset(tmp_path)
    assert sorted(Path(c.path).relative_to(tmp_path).as_posix() for c in clips) == sorted(rels)
    for c in clips:
        assert c.split == reference_which_set(Path(c.path).name)
        assert c.word == Path(c.path).parent.name
        assert c.speaker == Path(c.path).name.split("_")[0]
        assert c.label == ""
    # yes/0ea0e2f4 belongs to a speaker of the official test collection: hashes to testing
    assert {c.split for c in clips if "0ea0e2f4" in c.path} == {"testing"}


def test_scan_with_lists_uses_the_lists(tmp_path):
    copy_clips(tmp_path)
    (tmp_path / "validation_list.txt").write_text("yes/0ea0e2f4_nohash_0.wav\n")  # hashes to testing
    (tmp_path / "testing_list.txt").write_text("marvin/4954abe8_nohash_0.wav\n\n")
    (tmp_path / "_background_noise_").mkdir()
    shutil.copy(TEST_DATA / CLIPS["no"], tmp_path / "_background_noise_" / "noise.wav")
    clips = {Path(c.path).relative_to(tmp_path).as_posix(): c for c in scan_dataset(tmp_path)}
    assert len(clips) == 6  # background noise is not a clip
    assert clips["yes/0ea0e2f4_nohash_0.wav"].split == "validation"
    assert clips["marvin/4954abe8_nohash_0.wav"].split == "testing"
    assert {c.split for k, c in clips.items() if k.split("/")[0] not in ("yes", "marvin")} == {"training"}
    # a list saved with a byte-order mark (Windows Notepad, PowerShell): its first clip silently became training
    (tmp_path / "validation_list.txt").write_bytes("\ufeffyes/0ea0e2f4_nohash_0.wav\r\n".encode("utf-8"))
    assert {Path(c.path).name: c.split for c in scan_dataset(tmp_path)}["0ea0e2f4_nohash_0.wav"] == "validation"


def test_split_list_lines_written_otherwise_name_the_same_clips(tmp_path):
    """'./yes/x.wav', 'yes\\x.wav' or an absolute path named no clip: the whole split silently became training."""
    copy_clips(tmp_path)
    (tmp_path / "validation_list.txt").write_text("./yes/0ea0e2f4_nohash_0.wav\n"
                                                  f"{tmp_path.resolve() / 'marvin' / '4954abe8_nohash_0.wav'}\n")
    (tmp_path / "testing_list.txt").write_text("no\\" + Path(CLIPS["no"]).name + "\n./yes/0ea0e2f4_nohash_0.wav\n")
    clips = {Path(c.path).relative_to(tmp_path).as_posix(): c.split for c in scan_dataset(tmp_path)}
    assert clips["yes/0ea0e2f4_nohash_0.wav"] == "validation" and clips["marvin/4954abe8_nohash_0.wav"] == "validation"
    assert clips[CLIPS["no"]] == "testing"
    # in both lists: one split (validation), and said so
    assert data.unused_entries(tmp_path) == [
        {"file": str(tmp_path / "yes" / "0ea0e2f4_nohash_0.wav"),
         "reason": "named in both validation_list.txt and testing_list.txt: used as a validation clip only"}]
    # the official test set where `data download` unpacks it (inside the dataset root) is not a word folder
    for label in ("yes", "_unknown_", "_silence_"):
        (tmp_path / "speech_commands_test_set_v0.02" / label).mkdir(parents=True)
        shutil.copy(TEST_DATA / CLIPS["no"], tmp_path / "speech_commands_test_set_v0.02" / label / "a_nohash_0.wav")
    assert len(data.unused_entries(tmp_path)) == 1
    assert not [c for c in scan_dataset(tmp_path) if "speech_commands_test_set" in c.path]


def test_a_split_list_that_is_not_text_is_named_with_its_line(tmp_path):
    copy_clips(tmp_path)
    (tmp_path / "validation_list.txt").write_bytes(b"yes/0ea0e2f4_nohash_0.wav\nyes/\xff\xfe.wav\n")
    with pytest.raises(DatasetError, match=r"validation_list.txt: line 2 is not UTF-8 text"):
        scan_dataset(tmp_path)


def test_what_a_dataset_root_names_but_cannot_read_is_listed(tmp_path, capsys):
    copy_clips(tmp_path)
    (tmp_path / "validation_list.txt").write_text("yes/0ea0e2f4_nohash_0.wav\nyes/lost_nohash_0.wav\n")
    (tmp_path / "stop").mkdir(exist_ok=True)
    (tmp_path / "stop" / "gone_nohash_0.wav").symlink_to(tmp_path / "nowhere.wav")
    (tmp_path / "stop" / "takes_nohash_0.wav").mkdir()
    (tmp_path / "stop" / "notes.txt").write_text("not a clip, not named like one\n")
    (tmp_path / "stop" / "more").mkdir()  # clips one level down were left out unsaid
    shutil.copy(TEST_DATA / CLIPS["no"], tmp_path / "stop" / "more" / "x_nohash_0.wav")
    want = [{"file": str(tmp_path / "stop" / "gone_nohash_0.wav"), "reason": "a broken link"},
            {"file": str(tmp_path / "stop" / "more"),
             "reason": "a folder inside a word folder: its 1 clip(s) are not read (clips go straight into their word's folder)"},
            {"file": str(tmp_path / "stop" / "takes_nohash_0.wav"), "reason": "a folder, not a clip"},
            {"file": str(tmp_path / "yes" / "lost_nohash_0.wav"), "reason": "named in validation_list.txt, not on disk"}]
    assert data.unused_entries(tmp_path) == want
    assert main(["data", "stats", "--data-dir", str(tmp_path), "--task", "35"]) == 0
    out = capsys.readouterr().out
    assert "not read as clips: 4" in out and f"{tmp_path / 'stop' / 'gone_nohash_0.wav'}: a broken link" in out
    (tmp_path / "validation_list.txt").write_text("no\n")  # a folder's name: its clips stay where they were
    assert data.unused_entries(tmp_path)[-1] == {"file": str(tmp_path / "no"), "reason": "named in "
                                                 "validation_list.txt: a folder, not a clip (a list names each clip, "
                                                 "as word/SPEAKER_nohash_N.wav)"}
    assert main(["data", "stats", "--data-dir", str(tmp_path), "--task", "35"]) == 0
    out = capsys.readouterr().out
    assert "no clips in the validation split" in out and "not read as clips: 4" in out  # its column went unsaid
    assert "validation" not in out.splitlines()[3]  # the table's head: training and testing


def test_a_dataset_one_folder_down_is_pointed_to(tmp_path):
    """The archive's own folder inside --data-dir got "no word folders" and no hint."""
    copy_clips(tmp_path / "speech_commands_v0.02")
    (tmp_path / "speech_commands_v0.02" / "validation_list.txt").write_text("")
    with pytest.raises(DatasetError, match=f"; the dataset seems to be {tmp_path / 'speech_commands_v0.02'}$"):
        scan_dataset(tmp_path)


def test_a_word_folder_in_capitals_is_its_word(tmp_path):
    copy_clips(tmp_path)
    (tmp_path / "yes").rename(tmp_path / "Yes")
    words = {Path(c.path).parent.name: c.word for c in scan_dataset(tmp_path)}
    assert words["Yes"] == "yes"  # was an unknown word "Yes", and "no clips for: yes"


def test_dataset_fingerprint_follows_the_clips_not_the_folder(tmp_path):
    root = tmp_path / "a"
    copy_clips(root)
    (root / "_background_noise_").mkdir()
    shutil.copy(TEST_DATA / CLIPS["no"], root / "_background_noise_" / "noise.wav")
    first = dataset_fingerprint(root)
    assert dataset_fingerprint(shutil.copytree(root, tmp_path / "moved")) == first
    (root / "validation_list.txt").write_text("yes/0ea0e2f4_nohash_0.wav\n")  # one clip to another split
    second = dataset_fingerprint(root)
    assert second != first
    (root / "_background_noise_" / "noise.wav").write_bytes(b"RIFF")  # a noise recording changed
    assert dataset_fingerprint(root) not in (first, second)
    # a dataset whose word folders are links to folders elsewhere: their paths under the root count
    linked = tmp_path / "linked"
    linked.mkdir()
    for d in (tmp_path / "moved").iterdir():
        (linked / d.name).symlink_to(d, target_is_directory=True)
    assert dataset_fingerprint(linked) == first


def test_scan_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        scan_dataset(tmp_path / "missing")
    (tmp_path / "yes").mkdir()
    (tmp_path / "yes" / "readme.txt").write_text("no audio here")
    with pytest.raises(DatasetError) as err:
        scan_dataset(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_parse_name():
    assert parse_name("yes/0c40e715_nohash_1.wav") == ("", "0c40e715")
    assert parse_name("_unknown_/bed_0c2ca723_nohash_0.wav.wav") == ("bed", "0c2ca723")
    assert parse_name("_unknown_/sheila_1a2b3c4d_nohash_12.wav") == ("sheila", "1a2b3c4d")
    assert parse_name("my_recording.flac") == ("", "my_recording")


# ---------------------------------------------------------------- (c) official test-set layout


def make_test_set(root: Path) -> None:
    for rel, src in [
        ("yes/0c40e715_nohash_0.wav", "yes"),
        ("stop/0ea0e2f4_nohash_1.wav", "stop"),
        ("_unknown_/bed_0c2ca723_nohash_0.wav.wav", "bed"),
        ("_unknown_/marvin_37dca74f_nohash_3.wav", "marvin"),
        ("_silence_/silence_0.wav", "no"),
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(TEST_DATA / CLIPS[src], root / rel)


def test_test_set_layout(tmp_path):
    make_test_set(tmp_path)
    clips = {Path(c.path).relative_to(tmp_path).as_posix(): c for c in scan_dataset(tmp_path)}
    assert set(clips) == {
        "yes/0c40e715_nohash_0.wav", "stop/0ea0e2f4_nohash_1.wav", "_unknown_/bed_0c2ca723_nohash_0.wav.wav",
        "_unknown_/marvin_37dca74f_nohash_3.wav", "_silence_/silence_0.wav",
    }
    assert all(c.split == "testing" for c in clips.values())
    bed = clips["_unknown_/bed_0c2ca723_nohash_0.wav.wav"]
    assert (bed.label, bed.word, bed.speaker) == (UNKNOWN, "bed", "0c2ca723")
    yes = clips["yes/0c40e715_nohash_0.wav"]
    assert (yes.label, yes.word, yes.speaker) == ("yes", "yes", "0c40e715")
    sil = clips["_silence_/silence_0.wav"]
    assert (sil.label, sil.word) == (SILENCE, SILENCE)

    ex = split_examples(list(clips.values()), "testing", DataConfig(), n_noise_files=6, noise_lengths=None)
    assert sorted((e.label, Path(e.path).name) for e in ex) == sorted(
        (c.label, Path(c.path).name) for c in clips.values()
    )  # taken as it is: no sampled unknowns, no extra silence
    assert split_examples(list(clips.values()), "training", DataConfig(), 6, None) == []

    ex35 = split_examples(list(clips.values()), "testing", DataConfig(task="35"), 6, None)
    assert sorted(e.label for e in ex35) == ["bed", "marvin", "stop", "yes"]

    stats = dataset_stats(tmp_path)
    assert stats["layout"] == "test-set"
    assert stats["testing"]["clips"] == 5 and stats["testing"]["speakers"] == 4
    assert stats["testing"]["per_class"][UNKNOWN] == 2 and stats["testing"]["per_class"][SILENCE] == 1
    assert "training" not in stats
    check_speakers(clips.values())


# ---------------------------------------------------------------- (d) speakers never in two splits


@needs_shared_data
def test_shared_data_has_no_speaker_in_two_splits(shared_data):
    clips = scan_dataset(shared_data)
    assert len(clips) == 4527
    check_speakers(clips)
    speakers = {}
    for c in clips:
        speakers.setdefault(c.speaker, set()).add(c.split)
    assert all(len(s) == 1 for s in speakers.values())
    assert len(speakers) == 853 + 145 + 138


def test_check_speakers_finds_a_leak():
    clips = [
        ClipRef("yes/aaaaaaaa_nohash_0.wav", "yes", "aaaaaaaa", "training"),
        ClipRef("no/aaaaaaaa_nohash_0.wav", "no", "aaaaaaaa", "training"),
        ClipRef("no/bbbbbbbb_nohash_0.wav", "no", "bbbbbbbb", "validation"),
        ClipRef("go/bbbbbbbb_nohash_1.wav", "go", "bbbbbbbb", "testing"),
    ]
    with pytest.raises(DatasetError) as err:
        check_speakers(clips)
    msg = str(err.value)
    assert "bbbbbbbb" in msg and "testing" in msg and "validation" in msg and "1 speaker" in msg
    check_speakers(clips[:3])


def test_check_speakers_ignores_silence():
    check_speakers([
        ClipRef("_silence_/x.wav", SILENCE, "x", "training"),
        ClipRef("_silence_/x.wav", SILENCE, "x", "testing"),
    ])


# ---------------------------------------------------------------- (e) examples and weights


def fake_clips() -> list[ClipRef]:
    """43 command clips and 80 auxiliary-word clips per split, distinct speakers."""
    clips = []
    k = 0
    for split in ("training", "validation", "testing"):
        for i in range(43):
            w = COMMANDS[i % 10]
            clips.append(ClipRef(f"/d/{w}/{k:08x}_nohash_0.wav", w, f"{k:08x}", split))
            k += 1
        for i in range(80):
            w = ("bed", "cat", "happy", "marvin")[i % 4]
            clips.append(ClipRef(f"/d/{w}/{k:08x}_nohash_0.wav", w, f"{k:08x}", split))
            k += 1
    return clips


@pytest.mark.parametrize("split", ["validation", "testing"])
def test_split_examples_deterministic_with_seeded_silence_and_unknown(split):
    clips = fake_clips()
    cfg = DataConfig(silence_ratio=0.1, unknown_ratio=0.2)
    a = split_examples(clips, split, cfg, n_noise_files=6, noise_lengths=[960000, 600000, 16000, 20000, 500000, 480000])
    b = split_examples(clips, split, cfg, n_noise_files=6, noise_lengths=[960000, 600000, 16000, 20000, 500000, 480000])
    c = split_examples(clips, split, DataConfig(silence_ratio=0.1, unknown_ratio=0.2), 6,
                       [960000, 600000, 16000, 20000, 500000, 480000])
    assert a == b == c
    counts = Counter(e.label for e in a)
    assert sum(counts[w] for w in COMMANDS) == 43
    assert counts[SILENCE] == math.ceil(0.1 * 43) == 5
    assert counts[UNKNOWN] == math.ceil(0.2 * 43) == 9
    paths = [e.path for e in a if e.label == UNKNOWN]
    assert len(set(paths)) == len(paths)  # sampled without replacement
    allowed = {c.path for c in clips if c.split == split and c.word not in COMMANDS}
    assert set(paths) <= allowed
    lengths = [960000, 600000, 16000, 20000, 500000, 480000]
    for e in a:
        if e.label == SILENCE:
            assert e.path == "" and 0 <= e.noise < 6
            assert 0 <= e.offset and e.offset + 16000 <= max(lengths[e.noise], 16000)
            assert 0.0 <= e.volume <= 1.0
    other = split_examples(clips, split, DataConfig(silence_ratio=0.1, unknown_ratio=0.2, seed=1), 6, lengths)
    assert other != a  # the seed matters


def test_split_examples_training_keeps_all_unknown():
    clips = fake_clips()
    ex = split_examples(clips, "training", DataConfig(), n_noise_files=6, noise_lengths=None)
    counts = Counter(e.label for e in ex)
    assert counts[UNKNOWN] == 80
    assert counts[SILENCE] == math.ceil(0.1 * 43)


def test_all_unknown_keeps_every_other_word_and_the_same_silence_cuts():
    """`evaluate --unknown all` drew other silence cuts than the default it is compared with (one random stream)."""
    clips = fake_clips()
    lengths = [960000, 600000, 16000, 20000, 500000, 480000]
    some = split_examples(clips, "validation", DataConfig(), 6, lengths)
    every = split_examples(clips, "validation", DataConfig(), 6, lengths, all_unknown=True)
    unknown = [c for c in clips if c.split == "validation" and c.word not in COMMANDS]
    assert Counter(e.label for e in every)[UNKNOWN] == len(unknown) > Counter(e.label for e in some)[UNKNOWN]
    assert [e for e in every if e.label == SILENCE] == [e for e in some if e.label == SILENCE]
    assert [e for e in every if e.label not in (SILENCE, UNKNOWN)] == [e for e in some if e.label not in (SILENCE, UNKNOWN)]


def test_split_examples_without_noise_files_has_no_silence():
    ex = split_examples(fake_clips(), "validation", DataConfig(), n_noise_files=0, noise_lengths=None)
    assert SILENCE not in {e.label for e in ex}


def test_split_examples_35_class_task():
    ex = split_examples(fake_clips(), "validation", DataConfig(task="35"), n_noise_files=6, noise_lengths=None)
    labels = Counter(e.label for e in ex)
    assert SILENCE not in labels and UNKNOWN not in labels
    assert sum(labels.values()) == 43 + 80 and labels["bed"] == 20
    with pytest.raises(DatasetError):
        task_labels("7")


@needs_shared_data
def test_split_examples_on_shared_data_is_deterministic(shared_data):
    clips = scan_dataset(shared_data)
    n_noise = len(data.background_files(shared_data))
    for split in ("validation", "testing"):
        first = split_examples(clips, split, DataConfig(), n_noise, None)
        again = split_examples(scan_dataset(shared_data), split, DataConfig(seed=DataConfig().seed), n_noise, None)
        assert first == again
        commands = sum(1 for c in clips if c.split == split and c.word in COMMANDS)
        counts = Counter(e.label for e in first)
        assert counts[SILENCE] == math.ceil(0.1 * commands)
        assert counts[UNKNOWN] == math.ceil(0.1 * commands)


def test_class_weights_balanced_equal_mass_per_class():
    ex = [Example("yes", "a")] * 10 + [Example("no", "b")] * 30 + [Example(UNKNOWN, "c")] * 100 + [Example(SILENCE)] * 4
    labels = task_labels("12")
    w = class_weights(ex, labels, DataConfig(balanced=True))
    assert w.shape == (len(ex),) and w.sum() == pytest.approx(1.0) and (w > 0).all()
    mass = Counter()
    for e, x in zip(ex, w):
        mass[e.label] += x
    assert set(mass) == {"yes", "no", UNKNOWN, SILENCE}
    for v in mass.values():
        assert v == pytest.approx(0.25)


def test_class_weights_unbalanced_uses_ratios():
    ex = [Example("yes", "a")] * 10 + [Example("no", "b")] * 30 + [Example(UNKNOWN, "c")] * 100 + [Example(SILENCE)] * 4
    w = class_weights(ex, task_labels("12"), DataConfig(balanced=False, unknown_ratio=0.5, silence_ratio=0.25))
    mass = Counter()
    for e, x in zip(ex, w):
        mass[e.label] += x
    total = 10 + 30 + 0.5 * 40 + 0.25 * 40
    assert mass["yes"] == pytest.approx(10 / total)
    assert mass["no"] == pytest.approx(30 / total)
    assert mass[UNKNOWN] == pytest.approx(20 / total)
    assert mass[SILENCE] == pytest.approx(10 / total)
    yes_w = {round(x, 12) for e, x in zip(ex, w) if e.label == "yes"}
    assert len(yes_w) == 1  # equal weight inside a class



def test_class_weights_words_give_each_other_word_an_equal_share_of_the_real_unknown_clips():
    ex = ([Example("yes", "y")] * 10 + [Example(UNKNOWN, "b", word="bed")] * 30 + [Example(UNKNOWN, "d", word="dog")] * 2
          + [Example(UNKNOWN, "s")] * 8 + [Example(SILENCE)] * 4)  # 8 synthetic clips: no dataset word
    labels = task_labels("12")
    by_clip = class_weights(ex, labels, DataConfig(unknown_weight=2.0))
    by_word = class_weights(ex, labels, DataConfig(unknown_weight=2.0, unknown_mix="words"))

    def mass(w, pick):
        return sum(x for e, x in zip(ex, w) if pick(e))

    # hand-computed: 4 units of mass (yes 1, silence 1, unknown 2), the unknown's 40 clips 0.05 each
    assert mass(by_clip, lambda e: e.word == "bed") == pytest.approx(30 * 0.05 / 4)
    assert mass(by_clip, lambda e: e.word == "dog") == pytest.approx(2 * 0.05 / 4)
    # "words": bed and dog split their 32 clips' mass equally; classes and synthetic clips keep theirs
    assert mass(by_word, lambda e: e.word == "bed") == pytest.approx(16 * 0.05 / 4)
    assert mass(by_word, lambda e: e.word == "dog") == pytest.approx(16 * 0.05 / 4)
    for pick in (lambda e: e.label == "yes", lambda e: e.label == SILENCE, lambda e: e.label == UNKNOWN,
                 lambda e: e.label == UNKNOWN and not e.word):
        assert mass(by_word, pick) == pytest.approx(mass(by_clip, pick))
    assert len({round(x, 12) for e, x in zip(ex, by_word) if e.word == "dog"}) == 1


@needs_shared_data
def test_split_examples_keep_each_clips_word(shared_data):
    ex = split_examples(scan_dataset(shared_data), "training", DataConfig(), 0, None)
    assert {e.word for e in ex if e.label == "yes"} == {"yes"}
    assert {"bed", "marvin", "visual"} <= {e.word for e in ex if e.label == UNKNOWN}


def test_unknown_mix_must_be_clips_or_words():
    with pytest.raises(ConfigError, match="unknown_mix"):
        DataConfig(unknown_mix="speakers")

# ---------------------------------------------------------------- (f) clip features and the cache


def test_fit_clip():
    x = np.arange(1, 11, dtype=np.float32)
    np.testing.assert_array_equal(fit_clip(x, 14), np.r_[x, np.zeros(4, np.float32)])
    np.testing.assert_array_equal(fit_clip(x, 10), x)
    np.testing.assert_array_equal(fit_clip(x, 4), x[3:7])  # the middle
    assert fit_clip(np.zeros(0, np.float32), 5).shape == (5,)


def test_cache_dir(tmp_path, monkeypatch):
    assert data.cache_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "xdg" / "voice_gru"


@pytest.fixture
def clip_set(tmp_path, clip_paths):
    """Real clips (two shorter than 1 s), a broken one and a missing one, in a temp folder."""
    folder = tmp_path / "clips"
    folder.mkdir()
    paths = []
    for w in ("yes", "go", "marvin"):
        dst = folder / f"{w}.wav"
        shutil.copy(clip_paths[w], dst)
        paths.append(str(dst))
    broken = folder / "broken.wav"
    broken.write_text("not audio")
    paths.insert(1, str(broken))
    paths.append(str(folder / "missing.wav"))
    return paths


def test_a_cache_that_cannot_be_written_costs_the_cache_not_the_run(tmp_path, clip_set, monkeypatch, caplog):
    """A full or read-only --cache-dir ended the run with an error after every feature had been computed (2 minutes
    on the full dataset): the features in hand are used, said in a warning, and no temp file is left."""
    import errno
    import logging

    def full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04half")  # the write got this far
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    cache = tmp_path / "cache"
    with caplog.at_level(logging.WARNING, logger="voice_gru.data"):
        mels, bad = load_clip_mels(clip_set, FEAT, cache=cache, progress=False)
    assert mels.shape[0] == len(clip_set) and set(bad) == {clip_set[1], clip_set[-1]}
    assert any("not cached (No space left on device)" in r.getMessage() for r in caplog.records)
    assert not [p for p in cache.iterdir()]  # neither a cache file nor its temp


def test_an_out_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    """A read-only --out failed after the features were built; the same check refuses it at once (root passes
    permission checks, so the read-only disk is simulated)."""
    import os

    from voice_gru.errors import ConfigError
    from voice_gru.fileio import check_folder

    ro = tmp_path / "ro"
    ro.mkdir()
    check_folder("--out", ro / "run", writable=True)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real(p, mode))
    with pytest.raises(ConfigError, match=f"--out {ro / 'run'}: cannot write in {ro} \\(a read-only disk"):
        check_folder("--out", ro / "run", writable=True)
    check_folder("--cache-dir", ro / "cache")  # a filled cache on a read-only disk is only read


def test_load_clip_mels_cache(tmp_path, clip_set, monkeypatch):
    from voice_gru.audio import load_audio
    from voice_gru.features import mel_power

    cache = tmp_path / "cache"
    calls = []
    real = data.compute_clip_mels

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(data, "compute_clip_mels", counting)
    mels, bad = load_clip_mels(clip_set, FEAT, cache=cache, progress=False)
    assert len(calls) == 1
    assert mels.shape == (len(clip_set), 98, FEAT.n_mels)  # one row per path, none dropped
    assert set(bad) == {clip_set[1], clip_set[-1]}
    assert clip_set[1] in bad[clip_set[1]] and "not a readable audio file" in bad[clip_set[1]]
    assert "not found" in bad[clip_set[-1]]
    assert mels[1].abs().max() == 0 and mels[-1].abs().max() == 0
    # short clips are padded with zeros at the end to 1 s: same as mel of the padded audio
    for row, p in ((2, clip_set[2]), (3, clip_set[3])):
        audio = load_audio(p)
        assert audio.size < 16000
        torch.testing.assert_close(mels[row], mel_power(fit_clip(audio, 16000)), rtol=1e-5, atol=1e-6)
        first_pad = math.ceil(audio.size / FEAT.hop_length)  # from here on frames see only padding
        assert mels[row, first_pad - 1].abs().max() > 0
        assert mels[row, first_pad:].abs().max() == 0
    torch.testing.assert_close(mels[0], mel_power(load_audio(clip_set[0])))

    files = list(cache.glob("clips-*.pt"))
    assert len(files) == 1
    assert not list(cache.glob(".*"))  # no temp file left behind

    # second call: from the cache, compute is not called
    def must_not_compute(*args, **kwargs):
        raise AssertionError("features recomputed although cached")

    monkeypatch.setattr(data, "compute_clip_mels", must_not_compute)
    mels2, bad2 = load_clip_mels(clip_set, FEAT, cache=cache, progress=False)
    torch.testing.assert_close(mels2, mels)
    assert bad2 == bad

    # a damaged cache file is rebuilt
    files[0].write_bytes(b"\x80\x02 this is not a torch file")
    monkeypatch.setattr(data, "compute_clip_mels", counting)
    mels3, bad3 = load_clip_mels(clip_set, FEAT, cache=cache, progress=False)
    assert len(calls) == 2
    torch.testing.assert_close(mels3, mels)
    assert bad3 == bad
    monkeypatch.setattr(data, "compute_clip_mels", must_not_compute)
    torch.testing.assert_close(load_clip_mels(clip_set, FEAT, cache=cache, progress=False)[0], mels)

    # a changed clip changes the key: recomputed, not served stale
    Path(clip_set[1]).write_bytes(Path(clip_set[0]).read_bytes())
    monkeypatch.setattr(data, "compute_clip_mels", counting)
    mels4, bad4 = load_clip_mels(clip_set, FEAT, cache=cache, progress=False)
    assert len(calls) == 3 and set(bad4) == {clip_set[-1]}
    torch.testing.assert_close(mels4[1], mels[0])
    # ... also when the new recording has the same size and its modification time is set back (within the second
    # the key used to stop at, or a copy that keeps its time): another clip of the same length
    st = os.stat(clip_set[1])
    same_size = np.frombuffer(Path(clip_set[1]).read_bytes(), np.uint8).copy()
    same_size[100:] = same_size[100:][::-1]  # other samples, same header, same size
    Path(clip_set[1]).write_bytes(same_size.tobytes())
    os.utime(clip_set[1], ns=(st.st_atime_ns, st.st_mtime_ns))
    mels5, _ = load_clip_mels(clip_set, FEAT, cache=cache, progress=False)
    assert len(calls) == 4 and not torch.equal(mels5[1], mels4[1])

    # different feature settings are a different cache entry
    small = FeatureConfig(n_mels=20, n_mfcc=20)
    assert load_clip_mels(clip_set, small, cache=cache, progress=False)[0].shape == (len(clip_set), 98, 20)
    assert len(calls) == 5


def test_load_clip_mels_default_cache_is_xdg(tmp_path, clip_paths, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    mels, bad = load_clip_mels([str(clip_paths["stop"])], FEAT, progress=False)
    assert mels.shape == (1, 98, FEAT.n_mels) and bad == {}
    assert len(list((tmp_path / "xdg" / "voice_gru").glob("clips-*.pt"))) == 1


def test_load_clip_mels_speed_and_length(tmp_path, clip_paths):
    p = [str(clip_paths["stop"])]
    base, _ = load_clip_mels(p, FEAT, cache=tmp_path, progress=False)
    fast, _ = load_clip_mels(p, FEAT, speed=1.25, cache=tmp_path, progress=False)
    longer, _ = load_clip_mels(p, FEAT, clip_seconds=1.5, cache=tmp_path, progress=False)
    assert fast.shape == base.shape and not torch.allclose(fast, base)
    assert longer.shape == (1, 148, FEAT.n_mels)
    assert len(list(tmp_path.glob("clips-*.pt"))) == 3


def test_dataset_fingerprint_sees_a_clip_replaced_by_one_of_the_same_size(tmp_path):
    """Most clips are exactly 32,044 bytes: a "yes" overwritten with other audio kept path, split and size."""
    root = tmp_path / "a"
    copy_clips(root)
    clip = root / CLIPS["yes"]
    first, first_old = dataset_fingerprint(root), dataset_fingerprint(root, content=False)
    data = bytearray(clip.read_bytes())
    data[100:200] = bytes(100)  # other samples, the same size
    clip.write_bytes(bytes(data))
    assert dataset_fingerprint(root) != first
    assert dataset_fingerprint(root, content=False) == first_old  # what runs recorded before saw


def test_a_killed_runs_feature_cache_temp_is_removed_once_stale(tmp_path):
    """kill -9 while the feature cache was written left .clips-<key>.pt.<random>.pt (~90 MB) for good."""
    import os
    import time

    from voice_gru.config import FeatureConfig
    from voice_gru.data import STALE_TEMP_S, load_clip_mels

    cache = tmp_path / "cache"
    cache.mkdir()
    old, young = cache / ".clips-abc.pt.x1.pt", cache / ".clips-def.pt.x2.pt"
    for f in (old, young):
        f.write_bytes(b"half")
    os.utime(old, (time.time() - STALE_TEMP_S - 60,) * 2)
    load_clip_mels([str(TEST_DATA / CLIPS["yes"])], FeatureConfig(), cache=cache, progress=False)
    assert not old.exists() and young.exists()  # the young one may be another run's, being written now


def test_data_stats_counts_a_clip_of_no_samples_as_unreadable(tmp_path):
    """Its header says 0 frames: `data stats` counted it readable, `train` then skipped it."""
    import soundfile as sf

    from tiny_data import make_tiny_dataset

    root = make_tiny_dataset(tmp_path / "sc")
    empty = root / "yes" / "00000000_nohash_9.wav"
    sf.write(str(empty), np.zeros(0, np.float32), 16000, subtype="PCM_16")
    stats = dataset_stats(root)
    assert stats["training"]["unreadable"] == 1
    assert {"file": str(empty), "reason": "audio has zero length (no samples)"} in stats["unused"]
