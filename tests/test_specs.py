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
            if option.check is None:
                assert block == "fusion", f"{block}.{key}: only the fusion layer checks its own options"
                continue
            assert option.check[0](option.default) or key == "train", f"{block}.{key}: its default fails its check"
            with pytest.raises(ValueError, match=rf"Config key '{block}\.{key}': expected {re.escape(option.check[1])}"):
                check_values({block: {key: object()}})
    assert len(CHECKS) == sum(o.check is not None for options in SCHEMA.values() for o in options.values())
