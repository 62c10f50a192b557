import re

import pytest

from mmkeras import specs


def test_audio_defaults_follow_the_sample_rate():
    spec = specs.AudioSpec(sample_rate=22050, duration=2.0)
    assert (spec.num_samples, spec.frame_length, spec.frame_step, spec.fft_length, spec.fmax) == (
        44100, 551, 220, 1024, 11025.0)


def test_spec_round_trips_through_a_plain_dict():
    spec = specs.make_spec("photo", {"kind": "image", "filters": [8, 16]})
    as_dict = specs.spec_to_dict(spec)
    assert as_dict["kind"] == "image" and as_dict["filters"] == [8, 16]
    assert specs.make_spec("photo", as_dict) == spec


@pytest.mark.parametrize("options, message", [
    ({"crop": "middle"}, r"Expected crop to be one of \['start', 'center', 'random'\]. Received: crop='middle'"),
    ({"normalization": "global"}, r"Received: normalization='global'"),
])
def test_bad_audio_settings_name_the_choices(options, message):
    with pytest.raises(ValueError, match=message):
        specs.make_spec("audio", options)


def test_every_config_key_has_one_entry_that_gives_its_default_check_and_meaning():
    from mmkeras.config import CHECKS
    from mmkeras.config import DEFAULTS
    from mmkeras.config import SCHEMA
    from mmkeras.config import check_values

    for block, options in SCHEMA.items():
        assert DEFAULTS[block] == {key: option.default for key, option in options.items()}
        for key, option in options.items():
            assert option.help and len(option.help) > 10, f"{block}.{key}"
            assert option.check is not None, f"{block}.{key}: every key is checked"
            assert option.check[0](option.default) or key == "train", f"{block}.{key}: its default fails its check"
            with pytest.raises(ValueError, match=rf"Config key '{block}\.{key}': expected {re.escape(option.check[1])}"):
                check_values({block: {key: object()}})
    assert len(CHECKS) == sum(o.check is not None for options in SCHEMA.values() for o in options.values())


def test_numpy_numbers_are_refused_at_once_since_the_saved_config_could_not_hold_them():
    """YAML and JSON cannot write NumPy scalars: accepted, they would fail only when the finished
    run saves its config, after the whole training."""
    import numpy as np

    from mmkeras.config import check_values

    with pytest.raises(ValueError, match=r"Config key 'training.epochs': expected an integer >= 1"):
        check_values({"training": {"epochs": np.int64(3)}})
    with pytest.raises(ValueError, match=r"Config key 'modalities.text.lstm_units': expected an integer >= 1"):
        specs.make_spec("text", {"lstm_units": np.int32(4)})


def test_a_fusion_may_have_a_linear_projection():
    from mmkeras.config import check_fusion

    check_fusion({"type": "concat", "activation": None}, ["text", "image"])
