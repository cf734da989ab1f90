"""Cross-validation of threshold rules over speakers (voice_gru.speaker_cv), against hand-made cases."""

import numpy as np
import pytest

from voice_gru.errors import ConfigError
from voice_gru.speaker_cv import (
    FAS, HITS, WRONG, Halves, commands_by_label, cross_validate, half_sizes, select_rule, speaker_halves, speaker_of,
    split_counts, split_counts_by_label,
)


def test_speaker_of_reads_the_speech_commands_file_name():
    assert speaker_of("bed/4abb2400_nohash_0.wav") == "4abb2400"
    assert speaker_of("/data/sc/stop/0ab3b47d_nohash_12.wav") == "0ab3b47d"
    assert speaker_of("synth_00012.wav") == "synth_00012"  # no speaker in the name: the file is its own


def _truth(files, labels):
    return {"events": [{"file": f, "label": lab, "start": float(i)} for i, (f, lab) in enumerate(zip(files, labels))]}


def test_halves_follow_the_speaker_in_every_stream_and_differ_between_folds():
    speakers = [f"{i:08x}" for i in range(200)]
    t1 = _truth([f"cat/{s}_nohash_0.wav" for s in speakers], ["_unknown_"] * 200)
    t2 = _truth([f"stop/{s}_nohash_3.wav" for s in reversed(speakers)], ["stop"] * 200)
    h1, h2 = speaker_halves([t1, t2], folds=3)
    assert h1.shape == (200, 3) and set(np.unique(h1)) == {0, 1}
    assert (h1 == h2[::-1]).all()  # a speaker's clips land in the same half wherever they occur
    assert 70 < h1[:, 0].sum() < 130  # roughly halves
    assert (h1[:, 0] != h1[:, 1]).any() and (h1[:, 1] != h1[:, 2]).any()  # three different partitions
    assert (speaker_halves([t1], folds=3)[0] == h1).all()  # deterministic


def test_split_counts_attribute_each_event_to_its_clip_speaker_half():
    halves = [np.array([[0, 1], [1, 1], [0, 0]])]  # three clips, two folds
    scores = [{"events": [{"clip": 0, "outcome": "hit"}, {"clip": 1, "outcome": "false_accept"},
                          {"clip": 2, "outcome": "wrong"}, {"clip": 1, "outcome": "false_accept"},
                          {"outcome": "false_accept"}]}]  # outside every clip: half to each half
    c = split_counts(scores, halves, folds=2)
    assert c.shape == (2, 2, 3)
    assert c[0, 0, HITS] == 1 and c[0, 1, HITS] == 0 and c[1, 1, HITS] == 1
    assert c[0, 1, FAS] == 2.5 and c[0, 0, FAS] == 0.5 and c[1, 1, FAS] == 2.5
    assert c[0, 0, WRONG] == 1 and c[1, 0, WRONG] == 1
    assert (c.sum(axis=(1, 2)) == 5).all()  # in every fold: nothing lost, nothing counted twice


def test_split_counts_by_label_put_each_event_under_its_label_and_add_up():
    halves = [np.array([[0], [1], [1]])]
    scores = [{"events": [{"clip": 0, "label": "on", "outcome": "false_accept"},
                          {"clip": 1, "label": "stop", "outcome": "hit"},
                          {"clip": 2, "label": "on", "outcome": "false_accept"},
                          {"label": "go", "outcome": "false_accept"}]}]
    c = split_counts_by_label(scores, halves, ["stop", "go", "on"], folds=1)
    assert c.shape == (1, 2, 3, 3)
    assert c[0, 0, 2, FAS] == 1 and c[0, 1, 2, FAS] == 1  # on: one in each half
    assert c[0, 1, 0, HITS] == 1 and c[0, 0, 0].sum() == 0  # stop: a hit in half 1
    assert c[0, 0, 1, FAS] == c[0, 1, 1, FAS] == 0.5  # go, outside every clip
    np.testing.assert_array_equal(c.sum(2), split_counts(scores, halves, folds=1))


def test_commands_by_label_count_each_half_of_command_streams_only():
    t = _truth(["stop/s1_nohash_0.wav", "go/s2_nohash_0.wav", "bed/s3_nohash_0.wav", "stop/s4_nohash_0.wav"],
               ["stop", "go", "_unknown_", "stop"])
    halves = [np.array([[0], [1], [0], [1]])]
    n = commands_by_label([t], halves, ["_unknown_", "stop", "go"], [True], folds=1)
    assert n.tolist() == [[[0, 1, 0], [0, 1, 1]]]
    assert commands_by_label([t], halves, ["stop", "go"], [False], folds=1).sum() == 0


def test_half_sizes_count_commands_of_command_streams_and_share_hours_by_unknown_words():
    t = _truth(["a/s1_nohash_0.wav", "b/s2_nohash_0.wav", "c/s3_nohash_0.wav", "d/s4_nohash_0.wav"],
               ["stop", "_unknown_", "_unknown_", "_unknown_"])
    halves = [np.array([[0], [0], [1], [1]])]
    sizes = half_sizes([t], halves, total_hours=3.0, command_kinds=[True], folds=1)
    assert sizes.commands.tolist() == [[1, 0]]
    assert sizes.hours.tolist() == [[1.0, 2.0]]  # one unknown word against two
    assert half_sizes([t], halves, 3.0, [False], folds=1).commands.tolist() == [[0, 0]]


def test_cross_validate_fits_on_one_half_and_scores_the_other():
    sizes = Halves(commands=np.array([[10.0, 20.0]]), hours=np.array([[1.0, 2.0]]))
    fitted_on = []

    def fit(rule, fold, half):
        fitted_on.append((rule, fold, half))
        return {"stop": 0.5 + 0.1 * half}

    def held_out(thr):  # the thresholds fitted on half 0 find 5 of half 1's 20 commands and 4 false accepts there
        c = np.zeros((1, 2, 3))
        if thr["stop"] == 0.5:
            c[0, 1] = [5, 4, 0]
        else:
            c[0, 0] = [8, 1, 0]
        return c

    (r,) = cross_validate([("shared", 1.0, 0.0)], fit, held_out, sizes, folds=1)
    assert fitted_on == [(("shared", 1.0, 0.0), 0, 0), (("shared", 1.0, 0.0), 0, 1)]
    assert r["halves"] == 2
    assert r["recall"] == pytest.approx((5 / 20 + 8 / 10) / 2)
    assert r["fa_per_hour"] == pytest.approx((4 / 2 + 1 / 1) / 2)


def test_select_rule_takes_the_best_recall_within_the_target():
    results = [{"rule": "a", "recall": 0.9, "fa_per_hour": 16.0, "halves": 6},
               {"rule": "b", "recall": 0.7, "fa_per_hour": 0.8, "halves": 6},
               {"rule": "c", "recall": 0.7, "fa_per_hour": 0.3, "halves": 6},
               {"rule": "d", "recall": 0.6, "fa_per_hour": 0.0, "halves": 6}]
    assert select_rule(results, 1.0) == (results[2], True)  # equal recall: fewer false accepts
    assert select_rule(results, 20.0) == (results[0], True)
    assert select_rule(results[:1], 1.0) == (results[0], False)  # none meets it: the fewest false accepts
    with pytest.raises(ConfigError, match="more than one speaker"):
        select_rule([{"rule": "x", "recall": None, "fa_per_hour": None, "halves": 0}], 1.0)


def test_a_shared_threshold_plus_its_margin_stays_a_threshold_a_checkpoint_holds():
    """A one-voice model fitted at 0.97, plus the 0.05 margin, was written as 1.02: every later command then refused
    the calibrated checkpoint as damaged (a threshold is at most OFF, 1.01: off)."""
    from types import SimpleNamespace

    from voice_gru.calibrate import OFF, _RuleFitter

    fitter = _RuleFitter.__new__(_RuleFitter)
    fitter.data, fitter.grid = SimpleNamespace(hours=6.0), [0.5, 0.9, 0.97]
    fitter.shared = {0.5: (40,), 0.9: (12,), 0.97: (3,)}  # false accepts at each grid value
    assert fitter._shared_threshold(1.0, 0.05, None, None) == OFF  # fits at 0.97 (3 <= 6): 1.02 is past OFF
    assert fitter._shared_threshold(2.0, 0.03, None, None) == 0.93  # fits at 0.9 (12 <= 12)
    assert fitter._shared_threshold(0.1, 0.0, None, None) == OFF  # nothing fits: off
