"""``voice_gru.word_fires``: where a speech clip ends (``streams.speech_bounds``, which it uses), the peak command of smoothed posteriors (by hand),
and the shipped model on recordings with known words (a command fires at its word's end, other words stay low)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from voice_gru.checkpoint_data import default_model_path
from voice_gru.streams import speech_bounds
from voice_gru.word_fires import other_word_fires, peak_command

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parents[1]


def test_speech_end_is_the_last_loud_frame():
    sr = 16000
    t = np.arange(int(0.3 * sr)) / sr
    audio = np.concatenate([np.zeros(int(0.2 * sr)), 0.5 * np.sin(2 * np.pi * 440 * t), 1e-4 * np.ones(int(0.5 * sr))])
    assert speech_bounds(audio, sample_rate=sr)[1] == pytest.approx(0.5, abs=0.011)
    # everything counts as loud by the first rule; the floor rule still tells the steady tail from the tone
    assert speech_bounds(audio, speech_db=100, sample_rate=sr, floor_margin_db=None)[1] == pytest.approx(1.0, abs=0.011)
    assert speech_bounds(audio, speech_db=100, sample_rate=sr)[1] == pytest.approx(0.5, abs=0.011)


def test_peak_command_skips_background_classes():
    labels = ["_silence_", "_unknown_", "yes", "no"]
    smoothed = np.array([[0.9, 0.05, 0.03, 0.02], [0.1, 0.8, 0.06, 0.04], [0.2, 0.2, 0.1, 0.5], [0.5, 0.1, 0.3, 0.1]])
    assert peak_command(smoothed, labels) == (0.5, "no", 2)


@pytest.mark.skipif(not default_model_path().is_file(), reason="the shipped model is missing")
def test_shipped_model_fires_on_a_command_at_its_end_and_not_on_other_words():
    rows = other_word_fires(default_model_path(), [(DATA / "yes" / "0ea0e2f4_nohash_0.wav", "yes"),
                                                   (DATA / "bed" / "0c2d2ffa_nohash_1.wav", "bed"),
                                                   (DATA / "marvin" / "4954abe8_nohash_0.wav", "marvin")])
    yes, bed, marvin = rows
    assert yes["command"] == "yes" and yes["peak"] > 0.9 and abs(yes["after_end_s"]) < 0.15
    assert bed["peak"] < 0.5 and marvin["peak"] < 0.5


def test_script_reports_counts_and_writes_json(tmp_path, capsys):
    from tiny_data import make_tiny_dataset

    root = make_tiny_dataset(tmp_path / "sc")
    spec = importlib.util.spec_from_file_location("other_word_fires", REPO / "scripts" / "other_word_fires.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "fires.json"
    assert mod.main(["--data-dir", str(root), "--split", "training", "--above", "0.5", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "training: 8 other-word clips" in text  # bed and marvin, speakers 0-3
    import json

    clips = json.loads(out.read_text())["clips"]
    assert len(clips) == 8 and {c["word"] for c in clips} == {"bed", "marvin"} and all(c["split"] == "training" for c in clips)
    from voice_gru.cli import run_reporting_errors

    missing = ["--data-dir", str(tmp_path / "missing"), "--split", "training"]
    assert run_reporting_errors(lambda: mod.main(missing), "", "other_word_fires.py") == 2
    assert capsys.readouterr().err.startswith("other_word_fires.py: error: ")
