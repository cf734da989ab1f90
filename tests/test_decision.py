"""Detector and thresholds on synthetic posteriors whose right answers are known by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # small ops are ~1000x slower with oversubscribed threads on a 2-core box

from voice_gru.config import DecisionConfig  # noqa: E402
from voice_gru.decision import Command, Detector, apply_unknown_veto, effective_thresholds, unknown_veto  # noqa: E402
from voice_gru.errors import ConfigError  # noqa: E402

LABELS = ("_silence_", "_unknown_", "yes", "no", "stop")
IDX = {lab: i for i, lab in enumerate(LABELS)}


@pytest.fixture(autouse=True, params=["numba", "numpy"])
def kernel(request, monkeypatch) -> str:
    """Every test runs with the compiled detector (the default) and with its NumPy fallback."""
    init = Detector.__init__

    def with_kernel(self, *args, **kw):
        kw.setdefault("kernel", request.param)
        init(self, *args, **kw)

    monkeypatch.setattr(Detector, "__init__", with_kernel)
    return request.param


def frames(n: int, **values: float) -> np.ndarray:
    """``n`` identical posterior rows: the named classes get their values, _silence_ the rest."""
    row = np.zeros(len(LABELS))
    for lab, v in values.items():
        row[IDX[{"silence": "_silence_", "unknown": "_unknown_"}.get(lab, lab)]] = v
    row[0] += 1.0 - row.sum()
    return np.tile(row, (n, 1))


def seq(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts)


def det(frame_seconds: float = 0.01, first_frame_end: float = 0.03, explicit=None, **cfg) -> Detector:
    """A Detector over LABELS; ``cfg`` builds its DecisionConfig, ``explicit`` is its thresholds mapping."""
    return Detector(LABELS, DecisionConfig(**cfg), explicit, frame_seconds, first_frame_end)


def ref_events(p: np.ndarray, thr: dict, n_smooth: int, n_min: int, n_cool: int,
               frame_seconds: float = 0.01, first_frame_end: float = 0.03) -> list[tuple[str, float, float]]:
    """A plain re-statement of the rule: moving average by slicing, run counting, cooldown."""
    th = np.array([thr.get(lab, np.inf) if not lab.startswith("_") else np.inf for lab in LABELS])
    out, run, run_lab, last = [], 0, -1, None
    for n in range(p.shape[0]):
        s = p[max(0, n - n_smooth + 1):n + 1].mean(0)
        top = int(np.argmax(s))
        if s[top] >= th[top]:
            run = run + 1 if top == run_lab else 1
            run_lab = top
        else:
            run, run_lab = 0, -1
        if run >= n_min and (last is None or n > last + n_cool):
            out.append((LABELS[top], float(s[top]), first_frame_end + n * frame_seconds))
            last, run, run_lab = n, 0, -1
    return out


def test_frames_helper():
    p = frames(2, yes=0.9)
    np.testing.assert_allclose(p, [[0.1, 0, 0.9, 0, 0]] * 2)
    np.testing.assert_allclose(frames(1, unknown=1.0), [[0, 1, 0, 0, 0]])


# --------------------------------------------------------------------------------------------
# smoothing


@pytest.mark.parametrize("smooth_ms,frame_s,n", [(50.0, 0.01, 5), (10.0, 0.01, 1), (100.0, 0.02, 5), (0.0, 0.01, 1)])
def test_smoothing_is_moving_average(smooth_ms, frame_s, n):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(len(LABELS)), size=40)
    d = det(frame_seconds=frame_s, smooth_ms=smooth_ms)
    assert d.n_smooth == n
    for i, row in enumerate(p):
        d.update(row[None])
        np.testing.assert_allclose(d.smoothed, p[max(0, i - n + 1):i + 1].mean(0), atol=1e-12)


def test_smoothed_score_and_time_of_a_firing():
    # smoothing over 3 frames: yes 0.9 from frame 10 -> smoothed 0.3, 0.6, 0.9, 0.9 ...
    p = seq(frames(10), frames(10, yes=0.9))
    d = det(smooth_ms=30, threshold=0.7, min_duration_ms=20, cooldown_ms=800)
    events = d.update(p)
    # smoothed >= 0.7 first at frame 12, two frames needed -> fires at frame 13
    assert len(events) == 1
    ev = events[0]
    assert ev.label == "yes"
    assert ev.score == pytest.approx(0.9)
    assert ev.t == pytest.approx(0.03 + 13 * 0.01)


# --------------------------------------------------------------------------------------------
# threshold and minimum duration


def test_min_duration():
    cfg = dict(smooth_ms=10, threshold=0.7, min_duration_ms=40, cooldown_ms=800)
    assert det(**cfg).n_min == 4
    # 3 frames above threshold: too short
    assert det(**cfg).update(seq(frames(20), frames(3, yes=0.9), frames(20))) == []
    # 2 + 2 frames of two different words: the run restarts on a label change
    assert det(**cfg).update(seq(frames(20), frames(2, yes=0.9), frames(2, no=0.9), frames(20))) == []
    # 3 frames, a dip below threshold, 3 frames: the run restarts
    assert det(**cfg).update(seq(frames(5), frames(3, yes=0.9), frames(1, yes=0.6), frames(3, yes=0.9), frames(5))) == []
    # exactly 4 frames: fires on the 4th (frame 43)
    events = det(**cfg).update(seq(frames(40), frames(4, yes=0.9), frames(20)))
    assert [(e.label, e.score) for e in events] == [("yes", pytest.approx(0.9))]
    assert events[0].t == pytest.approx(0.03 + 43 * 0.01)
    # at the threshold exactly counts as reaching it
    events = det(**cfg).update(seq(frames(10), frames(4, stop=0.7), frames(10)))
    assert [e.label for e in events] == ["stop"]
    # below it does not
    assert det(**cfg).update(seq(frames(10), frames(30, stop=0.69), frames(10))) == []


def test_event_time_uses_frame_timing():
    d = det(frame_seconds=0.02, first_frame_end=0.05, smooth_ms=20, min_duration_ms=40, cooldown_ms=0)
    assert (d.n_smooth, d.n_min) == (1, 2)
    events = d.update(seq(frames(7), frames(2, no=0.95), frames(5)))
    assert len(events) == 1
    assert events[0].t == pytest.approx(0.05 + 8 * 0.02)
    assert d.time_of(8) == pytest.approx(events[0].t)


def test_fires_only_for_the_top_class():
    # yes is above its own (low) threshold but "no" is the top class, below its threshold
    p = seq(frames(10), frames(30, yes=0.35, no=0.45), frames(10))
    d = det(explicit={"yes": 0.3, "no": 0.9, "stop": 0.9}, smooth_ms=10, min_duration_ms=20)
    assert d.update(p) == []
    # the same posteriors with "no" at 0.4: top and above its threshold
    d = det(explicit={"yes": 0.3, "no": 0.4, "stop": 0.9}, smooth_ms=10, min_duration_ms=20)
    assert [e.label for e in d.update(p)] == ["no"]


# --------------------------------------------------------------------------------------------
# cooldown


def test_cooldown():
    cfg = dict(smooth_ms=10, threshold=0.7, min_duration_ms=30, cooldown_ms=200)
    d = det(**cfg)
    assert (d.n_min, d.n_cool) == (3, 20)
    p = seq(
        frames(10),
        frames(5, yes=0.9),  # frames 10-14: fires at 12
        frames(5),
        frames(6, no=0.9),  # frames 20-25: complete at 22, within 200 ms of 12 -> suppressed
        frames(14),
        frames(5, yes=0.9),  # frames 40-44: fires at 42 (300 ms later)
        frames(10),
        frames(16, stop=0.9),  # frames 55-70: complete at 57 (suppressed) ... first allowed frame 63
        frames(30),
    )
    events = d.update(p)
    assert [(e.label, round((e.t - 0.03) / 0.01)) for e in events] == [("yes", 12), ("yes", 42), ("stop", 63)]
    gaps = np.diff([e.t for e in events])
    assert (gaps > 0.2).all()


def test_cooldown_zero_and_repeated_words():
    # no cooldown: a long run still fires once (a command re-arms only after its score drops below
    # half its threshold), and a dip to silence lets the next word fire
    d = det(smooth_ms=10, threshold=0.5, min_duration_ms=20, cooldown_ms=0)
    events = d.update(seq(frames(3), frames(6, yes=0.8)))
    assert [round((e.t - 0.03) / 0.01) for e in events] == [4]
    events = d.update(seq(frames(1), frames(3, yes=0.8)))
    assert [round((e.t - 0.03) / 0.01) for e in events] == [11]


def test_a_word_hovering_at_the_threshold_fires_once():
    # fires at frame 2, dips under the threshold (0.7) but not under half of it, and is back above it after
    # the cooldown: one utterance, one event; re-arming at the threshold itself (ratio 1) fired it twice
    p = seq(frames(3, yes=0.75), frames(2, yes=0.66), frames(30, yes=0.75), frames(25), frames(3, yes=0.75))
    once = det(smooth_ms=10, threshold=0.7, min_duration_ms=10, cooldown_ms=200)
    assert [round((e.t - 0.03) / 0.01) for e in once.update(p)] == [0, 60]  # the next word (after silence) fires
    twice = det(smooth_ms=10, threshold=0.7, min_duration_ms=10, cooldown_ms=200, rearm_ratio=1.0)
    assert [round((e.t - 0.03) / 0.01) for e in twice.update(p)] == [0, 21, 60]
    # the level is a share of each command's own threshold: a dip to 0.45 re-arms at 0.95 x 0.5, not at 0.7 x 0.5
    p = seq(frames(3, yes=0.96), frames(2, yes=0.45), frames(30, yes=0.96))
    d = det(smooth_ms=10, threshold=0.7, thresholds={"yes": 0.95}, min_duration_ms=10, cooldown_ms=200)
    assert [round((e.t - 0.03) / 0.01) for e in d.update(p)] == [0, 21]
    # "below": a dip to exactly the level (0.5 x 0.5, exact in binary) does not re-arm, one just under it does
    for dip, fired in ((0.25, [0]), (0.2499, [0, 21])):
        p = seq(frames(3, yes=0.9), frames(2, yes=dip), frames(30, yes=0.9))
        d = det(smooth_ms=10, threshold=0.5, min_duration_ms=10, cooldown_ms=200)
        assert [round((e.t - 0.03) / 0.01) for e in d.update(p)] == fired
        from voice_gru.streams import fast_events  # calibration's replay of the same rule

        thr = np.array([np.inf, np.inf, 0.5, 0.5, 0.5])
        assert [f for f, _, _ in fast_events(p.astype(np.float32), thr, 1, 20, rearm_ratio=0.5)] == fired


def test_quick_repeats_settings_hear_a_command_said_again_0_3_s_later():
    """"up, up": between the two the model's score stays at ~0.6, above half the threshold, for a 0.3 s pause; the
    shipped decision (800 ms cooldown, re-arm below half) hears one, configs/quick_repeats.yaml both."""
    from pathlib import Path

    from voice_gru.config import load_config

    quick = load_config(Path(__file__).resolve().parents[1] / "configs" / "quick_repeats.yaml").decision
    assert (quick.cooldown_ms, quick.rearm_ratio) == (300.0, 0.8)
    p = seq(frames(3), frames(30, yes=0.97), frames(30, yes=0.6), frames(30, yes=0.97), frames(20))
    shipped = det(smooth_ms=10, threshold=0.9, min_duration_ms=10, cooldown_ms=800, rearm_ratio=0.5)
    assert [round((e.t - 0.03) / 0.01) for e in shipped.update(p)] == [3]
    both = det(smooth_ms=10, threshold=0.9, min_duration_ms=10, cooldown_ms=quick.cooldown_ms,
               rearm_ratio=quick.rearm_ratio)
    assert [round((e.t - 0.03) / 0.01) for e in both.update(p)] == [3, 63]


# --------------------------------------------------------------------------------------------
# background classes


def test_background_never_fires():
    p = seq(frames(100), frames(100, unknown=1.0), frames(100))
    assert p[:, 0].max() == 1.0 and p[:, 1].max() == 1.0
    assert det(threshold=0.01, min_duration_ms=10).update(p) == []
    # even when a thresholds mapping (e.g. a hand-written or calibrated one) names them
    d = det(explicit={"_silence_": 0.1, "_unknown_": 0.1, "yes": 0.5}, min_duration_ms=10)
    assert d.update(p) == []
    assert effective_thresholds(LABELS, DecisionConfig(thresholds={"_unknown_": 0.1}),
                                {"_silence_": 0.2}, {"_unknown_": 0.3}).keys() == {"yes", "no", "stop"}
    # and a command among them still fires
    events = d.update(seq(frames(20, yes=0.9), frames(10)))
    assert [e.label for e in events] == ["yes"]


# --------------------------------------------------------------------------------------------
# per-command thresholds and their precedence


def test_per_command_thresholds_override_global():
    cfg = dict(smooth_ms=10, threshold=0.7, thresholds={"yes": 0.95, "no": 0.5}, min_duration_ms=20, cooldown_ms=0)
    assert det(**cfg).thresholds == {"yes": 0.95, "no": 0.5, "stop": 0.7}
    assert det(**cfg).update(seq(frames(5), frames(30, yes=0.9), frames(5))) == []  # 0.9 < 0.95
    assert [e.label for e in det(**cfg).update(seq(frames(5), frames(2, no=0.6)))] == ["no"]  # 0.6 >= 0.5
    assert det(**cfg).update(seq(frames(5), frames(30, stop=0.65))) == []  # global 0.7
    assert [e.label for e in det(**cfg).update(seq(frames(5), frames(2, stop=0.75)))] == ["stop"]
    # an explicit thresholds mapping replaces the config's
    d = det(explicit={"yes": 0.85, "no": 0.99, "stop": 0.99}, **cfg)
    assert [e.label for e in d.update(seq(frames(5), frames(2, yes=0.9)))] == ["yes"]


def test_effective_thresholds_precedence():
    cfg = DecisionConfig(threshold=0.7, thresholds={"yes": 0.8, "no": 0.75})
    calibrated = {"yes": 0.6, "stop": 0.9, "_silence_": 0.1, "marvin": 0.2}
    # config: per-command over global; no background entries; labels not in the model ignored
    assert effective_thresholds(LABELS, cfg) == {"yes": 0.8, "no": 0.75, "stop": 0.7}
    assert effective_thresholds(LABELS, DecisionConfig(threshold=0.55)) == {"yes": 0.55, "no": 0.55, "stop": 0.55}
    # calibrated over config (per-command and global)
    assert effective_thresholds(LABELS, cfg, calibrated) == {"yes": 0.6, "no": 0.75, "stop": 0.9}
    # an override entry over calibrated and config; other commands keep theirs
    assert effective_thresholds(LABELS, cfg, calibrated, {"yes": 0.99, "no": 0.51}) == {"yes": 0.99, "no": 0.51, "stop": 0.9}
    # one override number over everything
    assert effective_thresholds(LABELS, cfg, calibrated, 0.42) == {"yes": 0.42, "no": 0.42, "stop": 0.42}
    assert effective_thresholds(LABELS, cfg, None, 0.42) == {"yes": 0.42, "no": 0.42, "stop": 0.42}
    # empty calibrated / override behave as absent
    assert effective_thresholds(LABELS, cfg, {}, {}) == effective_thresholds(LABELS, cfg)
    # values come back as floats
    assert all(isinstance(v, float) for v in effective_thresholds(LABELS, cfg, {"yes": 1}, {"no": 0}).values())


# --------------------------------------------------------------------------------------------
# streaming consistency


def _random_stream(seed: int, n: int = 3000) -> np.ndarray:
    """Noisy background with bursts of random commands at random heights."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(len(LABELS)) * 0.5, size=n) * 0.3
    p[:, 0] += 0.7
    t = 0
    while t < n - 60:
        t += int(rng.integers(5, 60))
        k = int(rng.integers(2, len(LABELS)))
        length = int(rng.integers(1, 30))
        p[t:t + length] *= 0.1
        p[t:t + length, k] += 1.0 - p[t:t + length].sum(1)
        t += length
    assert np.allclose(p.sum(1), 1.0)
    return p


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_reference_rule_on_random_streams(seed):
    p = _random_stream(seed)
    cfg = DecisionConfig(smooth_ms=50, threshold=0.6, thresholds={"stop": 0.8}, min_duration_ms=40, cooldown_ms=300)
    d = Detector(LABELS, cfg)
    events = d.update(p)
    ref = ref_events(p, effective_thresholds(LABELS, cfg), 5, 4, 30)
    assert len(ref) >= 10
    assert [e.label for e in events] == [r[0] for r in ref]
    np.testing.assert_allclose([e.score for e in events], [r[1] for r in ref], atol=1e-9)
    np.testing.assert_allclose([e.t for e in events], [r[2] for r in ref], atol=1e-9)


def test_one_array_equals_frame_by_frame_and_any_split():
    p = _random_stream(2)
    cfg = DecisionConfig(smooth_ms=70, threshold=0.6, min_duration_ms=30, cooldown_ms=250)
    whole = Detector(LABELS, cfg).update(p)
    assert len(whole) >= 10
    d = Detector(LABELS, cfg)
    one_by_one = [e for row in p for e in d.update(row)]  # 1-D rows are accepted too
    assert one_by_one == whole
    rng = np.random.default_rng(9)
    cuts = np.sort(rng.choice(np.arange(1, p.shape[0]), size=80, replace=False))
    d = Detector(LABELS, cfg)
    split = [e for part in np.split(p, cuts) for e in d.update(part)]
    assert split == whole
    # torch tensors and empty updates are fine
    d = Detector(LABELS, cfg)
    assert d.update(np.zeros((0, len(LABELS)))) == []
    as_tensor = d.update(torch.from_numpy(p))
    assert as_tensor == whole


# --------------------------------------------------------------------------------------------
# the unknown-word veto


def test_unknown_veto_moves_the_commands_mass_for_the_window_after_unknown_peaks():
    p = np.array([[0.1, 0.2, 0.7], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]])
    # _unknown_ (class 1) reaches 0.7 on frame 1 only: with a 3-frame window frames 1-3 are vetoed, frame 4 is not
    want = np.array([[0.1, 0.2, 0.7], [0.1, 0.9, 0.0], [0.1, 0.9, 0.0], [0.1, 0.9, 0.0], [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(unknown_veto(p, 1, [2], 0.7, 3), want)
    at = p.copy()
    at[1] = [0.25, 0.5, 0.25]  # "reached": exactly the level (0.5, exact in binary) vetoes
    np.testing.assert_allclose(unknown_veto(at, 1, [2], 0.5, 3)[1:4, 2], 0.0)
    # the same frames in two pieces, the first piece's _unknown_ carried in ``before``
    np.testing.assert_allclose(unknown_veto(p[2:], 1, [2], 0.7, 3, before=p[:2, 1]), want[2:])
    np.testing.assert_allclose(unknown_veto(p, 1, [2], 0.7, 1), [p[0], want[1], *p[2:]])  # its own frame only
    assert unknown_veto(p, 1, [2], 0.81, 3) is not None and np.array_equal(unknown_veto(p, 1, [2], 0.81, 3), p)


def test_unknown_veto_stops_a_command_heard_just_after_another_word():
    # "forward" heard first as another word (_unknown_ 0.9 for 10 frames), then as "yes" for 30 frames
    p = seq(frames(20), frames(10, unknown=0.9), frames(30, yes=0.95), frames(100))
    plain = det(smooth_ms=50, threshold=0.8, min_duration_ms=50).update(p)
    assert [e.label for e in plain] == ["yes"]
    vetoed = det(smooth_ms=50, threshold=0.8, min_duration_ms=50, unknown_veto=0.7, unknown_veto_ms=300).update(p)
    assert vetoed == []  # the last _unknown_ frame vetoes "yes" until 29 frames after it: too short a run is left
    short = det(smooth_ms=50, threshold=0.8, min_duration_ms=50, unknown_veto=0.7, unknown_veto_ms=100).update(p)
    # 100 ms: frames 30-38 vetoed; the 5-frame average reaches 0.8 only with all 5 unvetoed (4 x 0.95 / 5 = 0.76),
    # on frame 43; a run of 5 frames (50 ms) fires on frame 47
    assert [(e.label, round(e.t, 3)) for e in short] == [("yes", round(0.03 + 47 * 0.01, 3))]
    # a command well after the word is untouched
    late = seq(frames(20), frames(10, unknown=0.9), frames(40), frames(30, yes=0.95), frames(50))
    assert [e.label for e in det(smooth_ms=50, threshold=0.8, min_duration_ms=50, unknown_veto=0.7).update(late)] == ["yes"]


@pytest.mark.parametrize("seed", [0, 1])
def test_vetoed_detector_is_the_reference_rule_on_vetoed_posteriors_in_any_split(seed):
    p = _random_stream(seed)
    cfg = DecisionConfig(smooth_ms=50, threshold=0.6, min_duration_ms=40, cooldown_ms=300, unknown_veto=0.2,
                         unknown_veto_ms=200)
    whole = Detector(LABELS, cfg).update(p)
    plain = Detector(LABELS, DecisionConfig(smooth_ms=50, threshold=0.6, min_duration_ms=40, cooldown_ms=300)).update(p)
    ref = ref_events(apply_unknown_veto(p, LABELS, cfg), effective_thresholds(LABELS, cfg), 5, 4, 30)
    assert len(ref) >= 5 and len(whole) < len(plain)  # the veto acts on these streams
    assert [(e.label, e.t) for e in whole] == [(r[0], pytest.approx(r[2])) for r in ref]
    cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, p.shape[0]), size=120, replace=False))
    d = Detector(LABELS, cfg)
    assert [e for part in np.split(p, cuts) for e in d.update(part)] == whole
    d.reset()
    assert d.update(p) == whole


@pytest.mark.parametrize("change, says", [({"unknown_veto": 1.5}, "unknown_veto = 1.5: must be between 0 and 1.01"),
                                          ({"unknown_veto_ms": -10.0}, "unknown_veto_ms = -10.0: must be from 0 to 2000 ms")])
def test_bad_veto_settings_name_the_key(change, says):
    with pytest.raises(ConfigError, match=says):
        DecisionConfig(**change)


def test_reused_input_buffer_does_not_corrupt_smoothing():
    """A caller may reuse one array for every frame (a ring buffer, a preallocated output)."""
    p = _random_stream(3, 800)
    cfg = DecisionConfig(smooth_ms=100, threshold=0.6, min_duration_ms=30, cooldown_ms=250)
    whole = Detector(LABELS, cfg).update(p)
    assert whole
    d = Detector(LABELS, cfg)
    buf = np.empty((1, len(LABELS)))
    got = []
    for i, row in enumerate(p):
        buf[0] = row
        got += d.update(buf)
        np.testing.assert_allclose(d.smoothed, p[max(0, i - 9):i + 1].mean(0), atol=1e-12)
    assert got == whole


def test_reset_repeats_the_first_pass():
    p = _random_stream(4, 1000)
    d = Detector(LABELS, DecisionConfig(smooth_ms=50, threshold=0.6, cooldown_ms=300))
    first = d.update(p)
    assert first
    d.reset()
    assert d.n == 0 and not d.smoothed.any()
    assert d.update(p) == first


def test_unknown_detector_kernel_is_refused():
    with pytest.raises(ValueError, match="detector kernel"):
        Detector(LABELS, kernel="cuda")


def test_command_to_dict():
    c = Command("stop", 0.876543, 1.23456)
    assert c.to_dict() == {"t": 1.235, "label": "stop", "score": 0.8765}


def test_detection_times_print_as_the_frame_times_they_are():
    """``Command.t`` of frame 1418 is 14.21 s, not 14.209999999999999 (what a caller prints or compares)."""
    d = Detector(LABELS, DecisionConfig())
    for frame in (0, 7, 1418, 359_999):
        t = d.time_of(frame)
        assert repr(t) == repr(round(0.03 + frame / 100, 2)), (frame, t)


@pytest.mark.parametrize("kwargs, says", [
    ({"thresholds": {"jump": 0.5}}, "threshold jump=0.5: thresholds map the model's labels"),  # was ignored
    ({"thresholds": {"stop": "0.5"}}, "threshold stop='0.5'"),
    ({"thresholds": {"stop": float("nan")}}, "threshold stop=nan"),
    ({"frame_seconds": 0}, "frame_seconds 0 must be a positive number"),  # was a ZeroDivisionError
    ({"cfg": None}, "cfg None is not a voice_gru.config.DecisionConfig"),  # was an AttributeError
])
def test_a_detector_refuses_settings_it_would_misread(kwargs, says):
    with pytest.raises(ConfigError, match=says):
        Detector(LABELS, **{"cfg": DecisionConfig(), **kwargs})
    Detector(LABELS, DecisionConfig(), {"stop": 1.01, "yes": np.float32(0.9)})  # off, and a NumPy number: fine


@pytest.mark.parametrize("args, message", [
    ((np.zeros(4), 1, [2], 0.7, 3), "unknown_veto: posteriors must be (frames, classes), got shape (4,)"),
    ((np.zeros((5, 4)), 4, [2], 0.7, 3), "unknown_veto: unknown [4] must be class indices below 4"),
    ((np.zeros((5, 4)), 1, [-1], 0.7, 3), "unknown_veto: commands [-1] must be class indices below 4"),
    ((np.zeros((5, 4)), 1, ["stop"], 0.7, 3), "unknown_veto: commands ['stop'] must be class indices below 4"),
    ((np.zeros((5, 4)), 1, [1, 2], 0.7, 3), "unknown_veto: class 1 is both the unknown class and a command"),
    ((np.zeros((5, 4)), 1, [2], float("nan"), 3), "unknown_veto: level must be a posterior (a number), got nan"),
    ((np.zeros((5, 4)), 1, [2], 0.7, 0), "unknown_veto: n must be a whole number of frames, at least 1, got 0"),
])
def test_unknown_veto_names_a_bad_argument(args, message):
    with pytest.raises(ValueError) as info:
        unknown_veto(*args)
    assert str(info.value) == message


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_detector_refuses_non_finite_posteriors(bad):
    labels = ["_silence_", "_unknown_", "stop"]
    det = Detector(labels, DecisionConfig(min_duration_ms=10), {"stop": 0.5})
    p = np.array([[bad, 0.0, 0.0]])  # inf fired _silence_ with score inf; NaN fired nothing, silently
    with pytest.raises(ValueError, match="Detector.update: posteriors hold NaN or infinite values"):
        det.update(p)
    assert det.update(np.array([[0.0, 0.0, 1.0]] * 5)) == [Command("stop", 1.0, det.time_of(0))]  # still usable
