"""Modality kinds as plug-ins: a kind defined outside the package works end to end once registered."""

import dataclasses
import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras import modalities
from mmkeras.evaluation import evaluate
from mmkeras.modalities import Modality


@dataclasses.dataclass
class ReadingSpec:
    """A few numbers written in the cell itself, separated by spaces (a toy sensor reading)."""

    kind = "reading"
    length: int = 4
    units: int = 8
    encoder: dict = None


class ReadingModality(Modality):
    kind = "reading"
    spec_class = ReadingSpec
    reads_files = False

    @classmethod
    def model_input(cls, spec):
        return (spec.length,), "float32"

    @classmethod
    def build_encoder(cls, spec, name):
        values = keras.Input((spec.length,), name=name)
        x = keras.layers.Dense(spec.units, activation="relu", name=f"{name}_dense")(values)  # (batch, units)
        return keras.Model(values, x, name=f"{name}_encoder")

    def decode(self, values, training=False, seed=None):
        text = tf.strings.strip(values)
        present = tf.strings.length(text) > 0
        parts = tf.strings.split(text)  # ragged (batch, None)
        well_formed = tf.reduce_all(tf.strings.regex_full_match(parts, r"-?[0-9.]+"), axis=1)
        ok = tf.logical_and(well_formed, tf.equal(parts.row_lengths(), self.spec.length))
        reason = tf.where(tf.logical_and(present, tf.logical_not(ok)), f"expected {self.spec.length} numbers", "")
        numbers = tf.strings.to_number(tf.ragged.map_flat_values(
            lambda p: tf.where(tf.strings.regex_full_match(p, r"-?[0-9.]+"), p, "0"), parts))
        dense = numbers.to_tensor(0.0, shape=[None, self.spec.length])
        usable = tf.logical_and(present, ok)
        return tf.where(usable[:, None], dense, tf.zeros_like(dense)), present, reason

    def corruptions(self):
        return {"zeroed": lambda readings, rng: np.zeros_like(readings)}


@pytest.fixture
def reading_kind():
    modalities.register_kind(ReadingModality)
    yield ReadingModality
    modalities.KINDS.pop("reading")


def _rows(count=96, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        label = i % 2
        reading = rng.normal(0, 0.3, 4) + (1.5 if label else -1.5) * np.array([1, 0, 1, 0])
        rows.append({"note": "a note" if i % 3 else "", "sensor": " ".join(f"{v:.3f}" for v in reading),
                     "label": f"c{label}"})
    return rows


def test_a_registered_kind_trains_evaluates_reloads_and_serves(reading_kind, tmp_path):
    settings = {"note": {"kind": "text", "max_tokens": 10, "sequence_length": 3, "embedding_dim": 4, "lstm_units": 4},
                "sensor": {"kind": "reading", "length": 4}}
    rows = _rows()
    rows[5]["sensor"] = "1 2 3"  # a bad cell: named by row and column, skipped under the skip policy
    pre = mmkeras.Preprocessor(settings)
    mmkeras.adapt_preprocessor(pre, rows)
    ds = mmkeras.make_dataset(rows, pre, batch_size=16, training=True, on_bad_record="skip")
    assert ds.bad_records.rows == [6]  # the sixth record
    assert ds.bad_records.records[(6, "sensor")][1] == "expected 4 numbers"
    keras.utils.set_random_seed(0)
    model = mmkeras.build_model(settings, num_classes=pre.num_classes, fusion="concat", learning_rate=0.01)
    assert model.get_layer("sensor_encoder").get_layer("sensor_dense")
    model.fit(ds, epochs=8, verbose=0)

    clean = [row for i, row in enumerate(rows) if i != 5]
    result = evaluate(model, pre, clean)
    assert result["ablation"]["all"]["accuracy"] > 0.9  # the reading carries the label
    assert result["ablation"]["without_sensor"]["accuracy"] < 0.7
    assert result["robustness"]["sensor_zeroed"]["accuracy"] < 0.7
    assert set(result["robustness"]) == {"note_drop_0.5_tokens", "sensor_zeroed"}

    pre.save(tmp_path / "pre")
    again = mmkeras.Preprocessor.load(tmp_path / "pre")
    batch = {"note": tf.constant(["a note", ""]), "sensor": tf.constant([clean[0]["sensor"], ""])}
    first, second = pre.preprocess_batch(batch), again.preprocess_batch(batch)
    for key in first:
        np.testing.assert_array_equal(first[key].numpy(), second[key].numpy())
    assert second["sensor_present"].numpy().ravel().tolist() == [1.0, 0.0]

    path = mmkeras.export_saved_model(model, pre, str(tmp_path / "served"), check_inputs=batch)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Input sensor: expected 4 numbers"):
        tf.saved_model.load(path).signatures["serving_default"](
            note=tf.constant(["x"]), sensor=tf.constant(["1 2"]))


def test_unknown_kinds_and_bad_registrations_say_what_was_expected(reading_kind):
    with pytest.raises(ValueError, match=r"Expected its name or its 'kind' option to be one of \['audio', 'image', "
                                         r"'reading', 'sensor', 'tabular', 'text', 'video'\]. Received: kind='hologram'"):
        mmkeras.Preprocessor({"clips": {"kind": "hologram"}})
    with pytest.raises(ValueError, match=r"Unknown config key 'modalities.sensor.height' for a reading modality"):
        mmkeras.Preprocessor({"sensor": {"kind": "reading", "height": 3}})
    with pytest.raises(ValueError, match="Expected a Modality subclass"):
        modalities.register_kind(ReadingSpec)


def test_no_module_outside_the_registry_switches_on_a_modality_kind():
    """The kind of a modality is asked in `mmkeras/modalities/` only; everything else calls its converter."""
    package = pathlib.Path(mmkeras.__file__).parent
    switch = re.compile(r"\.kind\s*(==|!=|\bin\b|\bnot in\b)|constants\.(TEXT|IMAGE|AUDIO)\b|"
                        r"isinstance\([^)]*(TextSpec|ImageSpec|AudioSpec)")
    found = []
    for path in package.rglob("*.py"):
        if "modalities" in path.relative_to(package).parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if switch.search(line) and "dtype.kind" not in line:
                found.append(f"{path.relative_to(package)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
