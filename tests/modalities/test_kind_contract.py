"""What every modality kind must do: round-trip its spec, decode a value to its model input, make an
empty cell absent zeros, give a reason for bad bytes, keep its learned state through save and load,
and build an encoder from its model input to a vector.

One case per kind in `mmkeras.modalities.KINDS`: a kind registered without a case here fails.
"""

import dataclasses
import io
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from media import gif_from
from media import image_bytes
from media import tone
from media import wav_bytes

import mmkeras
from mmkeras.constants import presence_name
from mmkeras.modalities import KINDS
from mmkeras.specs import make_spec
from mmkeras.specs import model_input
from mmkeras.specs import spec_to_dict


@dataclasses.dataclass
class Case:
    """One kind's tiny modality.

    Args:
        name: str. The modality's name (never the kind's, so `kind:` is what tells it).
        options: dict. Spec settings, several of them not the default.
        row: fn(folder, i) → manifest cells (column → cell) of training example `i` (0, 1 or 2);
            a file kind writes its file into `folder`.
        garbage: fn(folder) → manifest cells of a value that is not of the kind (file kinds: a
            file of other bytes; served as they are, never through a manifest).
        learns: bool. `adapt` learns state the Preprocessor saves.
    """

    name: str
    options: dict
    row: object
    garbage: object
    learns: bool


def _write(folder, filename, data):
    path = os.path.join(folder, filename)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _text_row(folder, i):
    return {"review": ["Red apple", "green pear", "ripe apple pie"][i]}


def _image_row(folder, i):
    return {"photo": _write(folder, f"{i}.png", image_bytes("PNG", "L", size=(10, 12), seed=i))}


def _audio_row(folder, i):
    return {"voice": _write(folder, f"{i}.wav", wav_bytes(tone(8000, seconds=0.5, hz=300.0 + 200 * i), 8000))}


def _sensor_row(folder, i):
    values = np.arange(2 * (5 + i), dtype="float32").reshape(-1, 2) * [1.0, -0.5] + i
    if i == 1:  # one .npy file among the CSVs
        buffer = io.BytesIO()
        np.save(buffer, values)
        return {"motion": _write(folder, f"{i}.npy", buffer.getvalue())}
    lines = ["ax,ay"] + [",".join(f"{v:g}" for v in step) for step in values]
    return {"motion": _write(folder, f"{i}.csv", ("\n".join(lines) + "\n").encode())}


def _tabular_row(folder, i):
    return {"age": ["30", "50", ""][i], "city": ["Paris", "Rome", "Paris"][i]}


def _video_row(folder, i):
    frames = [np.full((10, 12), 30 * k + 10 * i, "uint8") for k in range(4 + i)]
    return {"clip": _write(folder, f"{i}.gif", gif_from(frames))}


def _bad_file(name):
    return lambda folder: {name: _write(folder, "bad.bin", b"not a png at all")}


CASES = {
    "text": Case("review", {"max_tokens": 10, "sequence_length": 5, "standardize": "lower", "embedding_dim": 4,
                            "lstm_units": 4, "bidirectional": True},
                 _text_row, lambda folder: {"review": b"\xff\xfe\xfa not UTF-8"}, learns=True),
    "image": Case("photo", {"height": 8, "width": 6, "channels": 1, "filters": (4,), "grid": 2,
                            "preserve_aspect_ratio": True, "augment": {"flip": "horizontal"}},
                  _image_row, _bad_file("photo"), learns=False),
    "audio": Case("voice", {"sample_rate": 8000, "duration": 0.5, "num_mel_bins": 16, "conv_filters": (8,),
                            "lstm_units": 4, "crop": "start", "spec_augment": {"time_masks": 1}, "augment": {}},
                  _audio_row, _bad_file("voice"), learns=False),
    "sensor": Case("motion", {"channels": 2, "length": 6, "crop": "end", "conv_filters": (4,), "kernel_size": 3,
                              "lstm_units": 4, "augment": {"jitter": 0.1}},
                   _sensor_row, _bad_file("motion"), learns=True),
    "tabular": Case("person", {"numeric": ["age"], "categorical": ["city"], "max_categories": 3,
                               "hidden_units": (4,)},
                    _tabular_row, lambda folder: {"age": "forty", "city": "Paris"}, learns=True),
    "video": Case("clip", {"frames": 3, "sampling": "stride", "stride": 2, "height": 8, "width": 8, "channels": 1,
                           "filters": (4,), "recurrent": "gru", "units": 4},
                  _video_row, _bad_file("clip"), learns=False),
}


def _kinds():
    """Every registered kind, as a test parameter."""
    return sorted(KINDS)


def _adapted(kind, folder):
    """(Preprocessor of the kind's one modality adapted on three training rows, those rows)."""
    case = CASES[kind]
    rows = [{**case.row(str(folder), i), "label": "ab"[i % 2]} for i in range(3)]
    pre = mmkeras.Preprocessor({case.name: {"kind": kind, **case.options}})
    mmkeras.adapt_preprocessor(pre, rows)
    return pre, rows


def _absent(pre):
    """A manifest row whose every cell of the modality is empty."""
    (converter,) = pre.converters.values()
    return {column: "" for column in converter.manifest_columns({})} | {"label": "a"}


def _served(pre, rows):
    """The request a client sends for manifest `rows`: each served input's cells, a file kind's as its bytes."""
    (converter,) = pre.converters.values()
    raw = {}
    for served, column in converter.served_inputs().items():
        if converter.served_rank(served) != 1:
            continue  # another form of the same value (video: a list of frames)
        cells = [row.get(column, "") for row in rows]
        if converter.reads_files:
            cells = [_read(c) if c else b"" for c in cells]
        raw[served] = tf.constant([c.encode() if isinstance(c, str) else c for c in cells])
    return raw


def test_every_registered_kind_has_a_case():
    assert sorted(CASES) == sorted(KINDS)


@pytest.mark.parametrize("kind", _kinds())
def test_spec_round_trips_through_its_dict(kind):
    case = CASES[kind]
    spec = make_spec(case.name, {"kind": kind, **case.options})
    assert type(spec) is KINDS[kind].spec_class
    config = spec_to_dict(spec)
    assert config["kind"] == kind
    for key, value in case.options.items():  # the settings are kept, tuples as lists
        assert config[key] == (list(value) if isinstance(value, tuple) else value), key
    saved = json.loads(json.dumps(config))  # as Preprocessor.save writes it
    assert saved == config
    assert make_spec(case.name, saved) == spec


@pytest.mark.parametrize("kind", _kinds())
def test_values_decode_to_the_model_input_and_an_empty_cell_to_absent_zeros(kind, tmp_path):
    pre, rows = _adapted(kind, tmp_path)
    name = CASES[kind].name
    shape, dtype = model_input(pre.specs[name])
    batch = [rows[0], _absent(pre), rows[1]]
    from_manifest, _ = next(iter(mmkeras.make_dataset(batch, pre, batch_size=3)))
    from_request = pre.preprocess_batch(_served(pre, batch))  # raises if the empty value had a reason
    for features in (from_manifest, from_request):
        tensor = features[name].numpy()
        assert tensor.shape == (3, *shape) and tensor.dtype == dtype
        assert features[presence_name(name)].numpy().tolist() == [[1.0], [0.0], [1.0]]
        assert tensor[0].any() and not tensor[1].any() and tensor[2].any()  # values are not blanks, absent is
    np.testing.assert_array_equal(from_manifest[name].numpy(), from_request[name].numpy())


@pytest.mark.parametrize("kind", _kinds())
def test_garbage_gives_a_reason_and_the_request_fails_naming_the_input(kind, tmp_path):
    pre, rows = _adapted(kind, tmp_path)
    name = CASES[kind].name
    raw = _served(pre, [rows[0], CASES[kind].garbage(str(tmp_path))])
    features, reasons = pre.decode_batch(raw)
    good, bad = (reason.decode() for reason in reasons[name].numpy())
    assert good == "" and bad != ""
    assert features[name].numpy()[0].any() and not features[name].numpy()[1].any()  # garbage never leaks
    message = re.escape(f"Input {name}: {bad} (example 1 of the batch)")
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        pre.preprocess_batch(raw)


@pytest.mark.parametrize("kind", _kinds())
def test_learned_state_survives_save_and_load(kind, tmp_path):
    pre, rows = _adapted(kind, tmp_path)
    case = CASES[kind]
    pre.save(str(tmp_path / "pre"))
    loaded = mmkeras.Preprocessor.load(str(tmp_path / "pre"))
    assert loaded.specs == pre.specs
    state = pre.converters[case.name].get_state(str(tmp_path / "pre"))
    assert bool(state) == case.learns
    assert loaded.converters[case.name].get_state(str(tmp_path / "pre")) == state
    raw = _served(pre, rows + [_absent(pre)])
    before, after = pre.preprocess_batch(raw), loaded.preprocess_batch(raw)
    assert sorted(before) == sorted(after)
    for key in before:
        np.testing.assert_array_equal(before[key].numpy(), after[key].numpy(), err_msg=key)
    if case.learns:  # the state matters: without it the kind refuses to decode
        with pytest.raises(ValueError, match=r"call adapt\(\)"):
            mmkeras.Preprocessor({case.name: {"kind": kind, **case.options}}).preprocess_batch(raw)


@pytest.mark.parametrize("kind", _kinds())
def test_the_encoder_takes_the_model_input_and_returns_a_vector(kind, tmp_path):
    pre, rows = _adapted(kind, tmp_path)
    name = CASES[kind].name
    spec = pre.specs[name]
    shape, dtype = model_input(spec)
    encoder = KINDS[kind].build_encoder(spec, name)
    assert tuple(encoder.input.shape) == (None, *shape) and encoder.input.dtype == dtype
    assert len(encoder.output.shape) == 2 and encoder.output.shape[-1] >= 1  # (batch, features)
    features = pre.preprocess_batch(_served(pre, rows + [_absent(pre)]))
    vectors = np.asarray(encoder(features[name]))
    assert vectors.shape == (4, encoder.output.shape[-1]) and np.isfinite(vectors).all()
