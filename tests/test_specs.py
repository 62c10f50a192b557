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
