"""Config loading: defaults, YAML round trip, and errors that name the key and the file."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from voice_gru.config import (
    AugmentConfig,
    Config,
    DataConfig,
    DecisionConfig,
    FeatureConfig,
    ModelConfig,
    TrainConfig,
    from_dict,
    load_config,
    to_dict,
)
from voice_gru.errors import ConfigError, VoiceGruError


def write(tmp_path, text: str, name: str = "recipe.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults():
    cfg = Config()
    assert cfg.features.sample_rate == 16000
    assert cfg.features.win_length == 480 and cfg.features.hop_length == 160
    assert cfg.data.task == "12"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.hidden = 3  # type: ignore[misc]


def test_partial_file_overrides_only_what_it_sets(tmp_path):
    cfg = load_config(write(tmp_path, "name: tiny\nmodel:\n  hidden: 32\n  layers: 1\ntrain:\n  lr: 1\n"))
    assert cfg.name == "tiny"
    assert cfg.model == ModelConfig(hidden=32, layers=1)
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)  # an int is accepted for a float
    assert cfg.features == FeatureConfig() and cfg.data == DataConfig()


def test_yaml_round_trip_of_every_field(tmp_path):
    """A configs/*.yaml written from to_dict loads back to the same Config (tuples included)."""
    cfg = Config(
        name="round-trip",
        features=FeatureConfig(n_mels=64, n_mfcc=20, f_max=8000.0),
        data=DataConfig(task="35", silence_ratio=0.2, balanced=False, seed=7),
        augment=AugmentConfig(noise_level=(0.01, 0.2), speeds=(0.9, 1.0, 1.1), gain_db=(-6.0, 3.0)),
        model=ModelConfig(conv_channels=16, hidden=64, pooling="mean"),
        decision=DecisionConfig(threshold=0.6, thresholds={"stop": 0.5, "go": 0.9}),
    )
    d = to_dict(cfg)
    assert d["augment"]["speeds"] == [0.9, 1.0, 1.1]  # plain lists, as YAML wants them
    path = write(tmp_path, yaml.safe_dump(d, sort_keys=False))
    back = load_config(path)
    assert back == cfg
    assert isinstance(back.augment.speeds, tuple) and isinstance(back.augment.noise_level, tuple)
    assert to_dict(back) == d
    assert from_dict(Config, d) == cfg


def test_default_config_round_trip(tmp_path):
    path = write(tmp_path, yaml.safe_dump(to_dict(Config())))
    assert load_config(path) == Config()


def test_command_words_stay_strings_in_yaml(tmp_path):
    """yes/no/on/off are YAML 1.1 booleans; as threshold keys they must stay the words."""
    cfg = load_config(write(tmp_path, "decision:\n  thresholds: {yes: 0.5, no: 0.6, on: 0.7, off: 0.8, stop: 0.9}\n"))
    assert cfg.decision.thresholds == {"yes": 0.5, "no": 0.6, "on": 0.7, "off": 0.8, "stop": 0.9}


def test_numbers_are_read_as_yaml_1_2_writes_them(tmp_path):
    """YAML 1.1 read a leading zero as octal: `epochs: 010` trained 8 epochs, the word `010` became '8'."""
    cfg = load_config(write(tmp_path, "train:\n  epochs: 010\n  seed: 0x1F\ndata:\n  task: 012\n  "
                                      "commands: [yes, 010]\naugment:\n  gain_db: [-1_0, 0o6]\n"))
    assert (cfg.train.epochs, cfg.train.seed, cfg.data.task, cfg.data.commands) == (10, 31, "12", ("yes", "10"))
    assert cfg.augment.gain_db == (-10.0, 6.0)
    assert load_config(write(tmp_path, "train:\n  lr: 0.5e-3\n")).train.lr == 0.0005


def test_numeric_task_is_read_as_string(tmp_path):
    assert load_config(write(tmp_path, "data:\n  task: 35\n")).data.task == "35"


def test_unknown_top_level_key_names_key_and_file(tmp_path):
    path = write(tmp_path, "name: x\nmodle:\n  hidden: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "'modle'" in msg and str(path) in msg
    assert "model" in msg  # the known keys are listed
    assert ": :" not in msg  # no empty location in the message
    assert isinstance(err.value, VoiceGruError)


def test_unknown_nested_key_names_key_section_and_file(tmp_path):
    path = write(tmp_path, "model:\n  hiden: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "'hiden'" in msg and "model" in msg and str(path) in msg
    assert "hidden" in msg  # suggests the known keys


@pytest.mark.parametrize(
    "text, key",
    [
        ("model:\n  hidden: big\n", "model.hidden"),
        ("model:\n  hidden: 3.5\n", "model.hidden"),
        ("model:\n  hidden: true\n", "model.hidden"),
        ("train:\n  lr: fast\n", "train.lr"),
        ("data:\n  balanced: 1\n", "data.balanced"),
        ("data:\n  balanced: yes\n", "data.balanced"),  # only true/false are booleans
        ("augment:\n  noise_level: [0.1]\n", "augment.noise_level"),
        ("augment:\n  noise_level: 0.1\n", "augment.noise_level"),
        ("augment:\n  speeds: [1.0, fast]\n", "augment.speeds[1]"),
        ("model: 3\n", "model"),
        ("decision:\n  thresholds: [0.5]\n", "decision.thresholds"),
        ("decision:\n  thresholds: {stop: high}\n", "decision.thresholds.stop"),
        ("name: [a, b]\n", "name"),
    ],
)
def test_wrong_type_names_the_key_and_file(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert key in msg, msg
    assert str(path) in msg


@pytest.mark.parametrize(
    "text, message",
    [
        ("features:\n  hop_ms: 0\n", "features.hop_ms = 0.0: must be above 0"),
        # past a second: an OverflowError and a traceback at 1e308
        ("features:\n  win_ms: 1.0e+308\n", "features.win_ms = 1e+308: must be above 0 and at most 1000 ms"),
        # a whole number of 400 digits: OverflowError and a traceback wherever it was compared
        ("train:\n  epochs: " + "9" * 400 + "\n", "train.epochs = 99999999... (400 digits): too large a number"),
        ("train:\n  lr: " + "9" * 400 + "\n", "train.lr: 99999999... (400 digits): too large a number"),
        ("augment:\n  gain_db: [" + "9" * 400 + ", 1]\n", "augment.gain_db[0]: 99999999... (400 digits): too large"),
        # YAML 1.1 read 1:30 as 90 (base 60), unsaid
        ("train:\n  epochs: 1:30\n", "train.epochs: expected an integer, got '1:30'"),
        ("features:\n  n_mfcc: 50\n", "features.n_mfcc = 50: must be at most n_mels (40)"),
        ("features:\n  f_max: 9000\n", "features.f_max = 9000.0: must lie above f_min"),
        ("features:\n  win_ms: 40\n  n_fft: 256\n", "features.n_fft = 256: must hold the 640-sample window"),
        ("decision:\n  smooth_ms: -100\n", "decision.smooth_ms = -100.0: must be from 0 to 2000 ms"),
        ("decision:\n  min_duration_ms: 100000\n", "decision.min_duration_ms = 100000.0: must be from 0 to 2000 ms"),
        ("decision:\n  threshold: 1.5\n", "decision.threshold = 1.5: must be a posterior from 0.01 to 1 (1.01: off)"),
        # before: one epoch trained, then KeyError: 'val_acc_avg'
        ("model:\n  pooling: avg\n", "model.pooling = 'avg': must be one of max, mean, last"),
        # before: "unknown task '13' (expected '12' or '35')" from the data loader, naming neither file nor key
        ("data:\n  task: 13\n", "data.task = '13': expected '12' or '35'"),
        ("data:\n  unknown_mix: speakers\n", "data.unknown_mix = 'speakers': must be 'clips' or 'words'"),
        ("decision:\n  thresholds: {stop: -0.1}\n", "stop's threshold must be a posterior"),
        ("train:\n  epochs: 0\n", "train.epochs = 0: must be at least 1"),
        ("train:\n  lr: .nan\n", "train.lr = nan: must be above 0"),
        ("train:\n  target: middle\n", "train.target = 'middle': must be 'frames' or 'last'"),
        ("model:\n  dropout: 1.0\n", "model.dropout = 1.0: must be at least 0 and below 1"),
        ("augment:\n  gain_db: [6, -30]\n", "augment.gain_db = [6.0, -30.0]: the low end is above the high end"),
        ("augment:\n  speeds: [0.9, 0]\n", "augment.speeds = [0.9, 0.0]: must be from 0.5 to 2"),
        # before: percentages trained on clips squeezed to 160 samples, 1e-5 a resampler traceback after the scan
        ("augment:\n  speeds: [90, 100, 110]\n", "augment.speeds = [90.0, 100.0, 110.0]: must be from 0.5 to 2"),
        # before: accepted, and no frame ever carried a command's label (a model that names only _silence_)
        ("train:\n  tail_frames: 0\n", "train.tail_frames = 0: must be at least 1 with target: frames"),
        ("augment:\n  noise_prob: 2\n", "augment.noise_prob = 2.0: must be between 0 and 1"),
        ("data:\n  clip_seconds: -1\n", "data.clip_seconds = -1.0: must be from 0.1 to 10"),
        # before: accepted, then the run ran out of memory building features or its first batch
        ("data:\n  clip_seconds: 1000\n", "data.clip_seconds = 1000.0: must be from 0.1 to 10"),
        ("train:\n  batch_size: 64000\n", "train.batch_size = 64000: must be from 1 to 8192"),
        ("augment:\n  context_seconds: [0.2, 300]\n", "augment.context_seconds = [0.2, 300.0]: must be from 0 to 10"),
        ("model:\n  hidden: 100000\n", "model.hidden = 100000: must be from 1 to 4096"),
        # before: 23 GB and killed, 20 GB and still running, a 30-line allocator traceback (an audit, 2026-12-07)
        ("features:\n  n_fft: 100000000\n", "features.n_fft = 100000000: must be from 1 to 65536"),
        ("data:\n  silence_ratio: 100000\n", "data.silence_ratio = 100000.0: must be from 0 to 10"),
        ("model:\n  conv_channels: 10000000000\n", "model.conv_channels = 10000000000: must be from 0 to 4096"),
        ("model:\n  spectral_channels: 100000\n", "model.spectral_channels = 100000: must be from 0 to 1024"),
        ("train:\n  tail_frames: 1000000\n", "train.tail_frames = 1000000: must be from 0 to 1000"),
        # before: the features were built, then numpy's generator refused the seed in a traceback
        ("train:\n  seed: -1\n", "train.seed = -1: must be a whole number from 0 to 4294967295"),
        ("data:\n  seed: 100000000000000000000000\n", "data.seed = 100000000000000000000000: must be a whole number"),
        ("features:\n  hop_ms: 50\n  win_ms: 30\n", "features.hop_ms = 50.0: must be at most win_ms (30)"),
        # before: the last of two equal keys won, silently (a second train: section replaced the whole first one)
        ("train:\n  lr: 0.003\n  lr: 0.5\n", "not valid YAML at line 3 (key 'lr' given twice)"),
        # before: trained the dataclasses' defaults (not configs/default.yaml's recipe) without a word
        ("", "holds no settings (empty, or only comments)"),
        ("# my recipe\n# train: {epochs: 3}\n", "holds no settings (empty, or only comments)"),
        ("train: {epochs: 3}\ntrain: {epochs: 1}\n", "not valid YAML at line 2 (key 'train' given twice)"),
    ],
)
def test_values_out_of_range_name_the_key_and_file(tmp_path, text, message):
    """A negative smoothing window or a hop of 0 would not fail loudly later: it would decide or train wrongly."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value), err.value


def test_every_pooling_and_task_loads(tmp_path):
    from voice_gru.model import POOLINGS

    assert POOLINGS == ("max", "mean", "last")
    for pooling in POOLINGS:
        assert load_config(write(tmp_path, f"model:\n  pooling: {pooling}\n")).model.pooling == pooling
    for task in ("12", "35"):
        assert load_config(write(tmp_path, f"data:\n  task: '{task}'\n")).data.task == task


def test_a_section_with_every_key_commented_out_is_empty(tmp_path):
    """YAML reads `model:` with nothing under it as null: the section sets nothing (was "expected a mapping,
    got NoneType")."""
    path = write(tmp_path, "name: x\nmodel:\n  # hidden: 32\n  # layers: 1\ntrain:\n")
    assert load_config(path) == Config(name="x")
    # in a variant it keeps its base's keys, not the defaults
    write(tmp_path, "model:\n  hidden: 48\ntrain:\n  lr: 0.01\n", "base.yaml")
    variant = write(tmp_path, "extends: base.yaml\nmodel:\n  # hidden: 8\n", "variant.yaml")
    cfg = load_config(variant)
    assert cfg.model.hidden == 48 and cfg.train.lr == 0.01
    assert from_dict(Config, {"model": None}) == Config()
    # a key that is not a section is still refused when empty
    with pytest.raises(ConfigError, match=r"name: expected a string, got None"):
        load_config(write(tmp_path, "name:\n"))


def test_a_number_yaml_reads_as_text_gets_a_hint(tmp_path):
    path = write(tmp_path, "train:\n  lr: 3e-3\n")  # PyYAML: a float needs a point and a signed exponent
    with pytest.raises(ConfigError, match=r"train.lr: expected a number, got '3e-3' \(YAML reads that as text: write 3.0e-03\)"):
        load_config(path)


def test_code_built_configs_are_checked_too():
    with pytest.raises(ConfigError, match=r"^DecisionConfig.cooldown_ms = -1: must be from 0 to 60000 ms$"):
        DecisionConfig(cooldown_ms=-1)
    with pytest.raises(ConfigError, match=r"^DecisionConfig.rearm_ratio = 0: must be above 0 and at most 1$"):
        DecisionConfig(rearm_ratio=0)  # would never re-arm: each command could fire once per session
    with pytest.raises(ConfigError, match="FeatureConfig.hop_ms"):
        FeatureConfig(hop_ms=0.01)  # rounds to 0 samples


def test_malformed_yaml(tmp_path):
    path = write(tmp_path, "model: [1, 2\n  hidden: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "YAML" in str(err.value)
    assert "\n" not in str(err.value)  # one line for the CLI

    deep = write(tmp_path, "decision: " + "[" * 5000 + "]" * 5000 + "\n")  # the parser's recursion gives out
    with pytest.raises(ConfigError, match="nested too deeply to be a config"):
        load_config(deep)


def test_top_level_not_a_mapping(tmp_path):
    path = write(tmp_path, "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "not found" in str(err.value)


def test_directory_is_not_a_config(tmp_path):
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_config(tmp_path)


def test_from_dict_rejects_unknown_nested_key_with_path():
    with pytest.raises(ConfigError, match=r"model: unknown key 'hiden'"):
        from_dict(Config, {"model": {"hiden": 3}}, where="recipe")
    with pytest.raises(ConfigError, match=r"recipe\.model: unknown key 'hiden'"):
        from_dict(Config, {"model": {"hiden": 3}}, where="recipe")


def test_every_recipe_in_configs_loads():
    from pathlib import Path

    configs = Path(__file__).resolve().parents[1] / "configs"
    recipes = {p.stem: load_config(p) for p in sorted(configs.glob("*.yaml")) if p.stem != "assistant"}
    assert {"default", "seed_baseline", "tiny", "rooms"} <= set(recipes)
    # the far-field variant differs from the default recipe in its reverberation settings and in the
    # word targets it was measured with (200 ms; the default has 350 ms since)
    import dataclasses

    r = recipes["rooms"]
    assert r.augment.reverb_prob == 0.5 and r.augment.rt60_s == (0.2, 0.8) and r.augment.drr_db == (0.0, 15.0)
    assert dataclasses.replace(r.augment, reverb_prob=0.0) == recipes["default"].augment
    assert r.train.tail_frames == 20 and recipes["default"].train.tail_frames == 35
    assert (r.model, dataclasses.replace(r.train, tail_frames=35), r.data, r.decision) == (
        recipes["default"].model, recipes["default"].train, recipes["default"].data, recipes["default"].decision)
    # the shipped ensemble: two seeds of the default recipe, spectral front end and noise set by SNR
    d = recipes["default"]
    assert d.model.spectral_channels == 16 and d.model.conv_kernel == 3
    assert d.augment.snr_prob == 0.5 and d.augment.snr_db == (0.0, 25.0) and d.augment.silence_gain_db == (0.0, 30.0)


def test_extends_lays_a_variant_over_its_base(tmp_path):
    write(tmp_path, "name: base\nmodel:\n  hidden: 48\n  layers: 3\ntrain:\n  lr: 0.01\n", "base.yaml")
    (tmp_path / "v").mkdir()
    variant = write(tmp_path, "extends: ../base.yaml\nname: variant\nmodel:\n  layers: 1\n", "v/variant.yaml")
    cfg = load_config(variant)
    assert cfg.name == "variant" and cfg.model.hidden == 48 and cfg.model.layers == 1 and cfg.train.lr == 0.01
    assert cfg.model.dropout == ModelConfig().dropout  # set in neither: the default


def test_shipped_variants_are_their_base_plus_what_they_say():
    """configs/words_finetune.yaml and rooms.yaml extend default.yaml: each is default.yaml with the
    changes its own file states (by hand here), nothing else."""
    from pathlib import Path

    configs = Path(__file__).resolve().parents[1] / "configs"
    d = load_config(configs / "default.yaml")
    w = load_config(configs / "words_finetune.yaml")
    assert w == dataclasses.replace(d, name="words_finetune", data=dataclasses.replace(d.data, unknown_mix="words"),
                                    train=dataclasses.replace(d.train, epochs=15, lr=0.0006, inside_unknown_weight=3.0,
                                                              inside_cap=0.2),
                                    decision=dataclasses.replace(d.decision, smooth_ms=150.0, min_duration_ms=80.0,
                                                                 unknown_veto=0.7, unknown_veto_ms=300.0))
    r = load_config(configs / "rooms.yaml")
    assert r == dataclasses.replace(d, name="rooms", train=dataclasses.replace(d.train, tail_frames=20),
                                    augment=dataclasses.replace(d.augment, reverb_prob=0.5, rt60_s=(0.2, 0.8),
                                                                drr_db=(0.0, 15.0)))


@pytest.mark.parametrize("files, message", [
    ({"a.yaml": "extends: missing.yaml\n"}, r"a\.yaml: extends: .*missing\.yaml: config file not found"),
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"}, r"extends: a\.yaml extends this file again"),
    ({"a.yaml": "extends: [b.yaml]\n"}, r"a\.yaml: extends: expected the path of another recipe"),
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "model:\n  hiden: 3\n"}, r"a\.yaml: extends: .*b\.yaml: model: unknown key"),
])
def test_bad_extends_is_one_clear_error(tmp_path, files, message):
    for name, text in files.items():
        write(tmp_path, text, name)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "a.yaml")


def test_settings_the_35_word_task_ignores_are_named():
    """The 35-word task has no _silence_ or _unknown_ class: weights and ratios for them changed nothing, unsaid."""
    from voice_gru.config import settings_without_effect

    twelve = Config(data=DataConfig(unknown_weight=2.0, synthetic_unknown=100))
    assert settings_without_effect(twelve) == []
    thirty_five = dataclasses.replace(twelve, data=dataclasses.replace(twelve.data, task="35"),
                                      train=TrainConfig(after_unknown_weight=3.0))
    assert settings_without_effect(thirty_five) == ["data.unknown_weight", "data.synthetic_unknown",
                                                    "train.after_unknown_weight"]
    assert settings_without_effect(Config(data=DataConfig(task="35"))) == []
