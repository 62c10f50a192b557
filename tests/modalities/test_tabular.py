import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.data.manifest import BadRecordError

PERSON = {"kind": "tabular", "numeric": ["age", "income"], "categorical": ["city"], "max_categories": 2}
ROWS = [
    {"age": "30", "income": "1000", "city": "Paris", "label": "a"},
    {"age": "50", "income": "", "city": "Rome", "label": "b"},
    {"age": "", "income": "3000", "city": "Paris", "label": "a"},
    {"age": "40", "income": "2000", "city": "Oslo", "label": "b"},
]


def _adapted(rows=ROWS, **settings):
    pre = mmkeras.Preprocessor({"person": {**PERSON, **settings}})
    mmkeras.adapt_preprocessor(pre, rows)
    return pre


def test_numbers_are_standardised_with_a_missing_flag_and_categories_one_hot_with_an_other_slot():
    pre = _adapted()
    batch = {"age": tf.constant(["40", "", "", "x"]), "income": tf.constant(["2000", "", "", ""]),
             "city": tf.constant(["Oslo", "Lima", "", ""])}
    features, reasons = pre.decode_batch(batch)
    x = features["person"].numpy()
    ages, incomes = np.array([30, 50, 40.0]), np.array([1000, 3000, 2000.0])
    np.testing.assert_allclose(x[0, :4], [(40 - ages.mean()) / ages.std(), (2000 - incomes.mean()) / incomes.std(),
                                          0, 0], atol=1e-6)
    # max_categories 2 keeps Paris (seen twice), then Oslo (tied with Rome, first by name): slots other, Paris, Oslo
    assert x[0, 4:].tolist() == [0, 0, 1]
    assert x[1].tolist() == [0, 0, 1, 1, 1, 0, 0]  # both numbers missing: imputed, flagged; Lima → other
    assert features["person_present"].numpy().ravel().tolist() == [1, 1, 0, 1]  # all cells empty → absent
    assert reasons["person"].numpy()[3].decode() == "column age: expected a number, got 'x'"
    assert not x[2].any() and not x[3].any()


def test_numbers_beyond_float32_are_bad_cells_not_infinities():
    """1e39 overflows float32 to inf, and one inf in the statistics makes every loss NaN."""
    pre = _adapted(ROWS + [{"age": "1e308", "income": "10", "city": "Oslo", "label": "a"}])
    ages = np.array([30, 50, 40.0])  # the overflowing cell is left out of the statistics
    assert pre.converters["person"].mean[0] == pytest.approx(ages.mean())
    features, reasons = pre.decode_batch({"age": tf.constant(["1e39", "-4e38", "3.3e38"]),
                                          "income": tf.constant(["1", "1", "1"]), "city": tf.constant(["", "", ""])})
    assert [r.decode() for r in reasons["person"].numpy()] == [
        "column age: expected a number within float32's range (|x| < 3.4e38), got '1e39'",
        "column age: expected a number within float32's range (|x| < 3.4e38), got '-4e38'", ""]
    assert np.isfinite(features["person"].numpy()).all()
    with pytest.raises(tf.errors.InvalidArgumentError, match="Input person: column age: expected a number within"):
        pre.preprocess_batch({"age": tf.constant(["1e39"]), "income": tf.constant(["1"]), "city": tf.constant([""])})


def test_the_served_model_takes_one_input_per_column(tmp_path):
    pre = _adapted()
    assert pre.served_inputs() == {"age": "age", "income": "income", "city": "city"}
    pre.save(tmp_path / "pre")
    again = mmkeras.Preprocessor.load(tmp_path / "pre")
    batch = {"age": tf.constant(["41"]), "city": tf.constant(["Paris"])}  # income left out: missing
    np.testing.assert_array_equal(pre.preprocess_batch(batch)["person"], again.preprocess_batch(batch)["person"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="Input person: column age: expected a number"):
        again.preprocess_batch({"age": tf.constant(["forty"])})


@pytest.mark.parametrize("settings, message", [
    ({"kind": "tabular"}, "list its columns under numeric"),
    ({"kind": "tabular", "numeric": ["a"], "categorical": ["a"]}, r"each tabular column once. Received: \['a'\]"),
    ({"kind": "tabular", "numeric": "age"}, "'modalities.person.numeric': expected a list of column names"),
    ({"kind": "tabular", "numeric": ["age"], "max_categories": 0}, "'modalities.person.max_categories'"),
])
def test_bad_settings_say_what_was_expected(settings, message):
    with pytest.raises(ValueError, match=message):
        mmkeras.Preprocessor({"person": settings})


def test_a_column_missing_from_the_manifest_or_taken_twice_is_named():
    with pytest.raises(BadRecordError, match="no column 'income' for modality 'person'.*fix the column names in "
                                             "modalities.person"):
        _adapted([{k: v for k, v in row.items() if k != "income"} for row in ROWS])
    with pytest.raises(ValueError, match="Modalities 'person' and 'city' both take a served input named 'city'"):
        mmkeras.Preprocessor({"person": PERSON, "city": {"kind": "text"}})


def test_bad_cells_follow_the_skip_policy_with_row_and_column():
    rows = [dict(r) for r in ROWS] + [{"age": "old", "income": "1", "city": "Paris", "label": "a"}]
    pre = _adapted(rows[:4])
    ds = mmkeras.make_dataset(rows, pre, batch_size=2, on_bad_record="skip")
    assert sum(len(y["label"]) for _, y in ds) == 4
    (row, column), (_, reason) = next(iter(ds.bad_records.records.items()))
    assert (row, column, reason) == (5, "age/income/city", "column age: expected a number, got 'old'")
    with pytest.raises(tf.errors.InvalidArgumentError, match="row 5, column age/income/city: column age: expected"):
        list(mmkeras.make_dataset(rows, pre, batch_size=2))


def test_corruptions_blank_cells_and_perturb_numbers_of_present_rows():
    pre = _adapted()
    converter = pre.converters["person"]
    features = pre.preprocess_batch({"age": tf.constant(["40"] * 64), "income": tf.constant(["2000"] * 64),
                                     "city": tf.constant(["Rome"] * 64)})["person"].numpy()
    rng = np.random.default_rng(0)
    blanked = converter.corruptions()["half_cells_missing"](features, rng)
    assert 0.3 < blanked[:, 2].mean() < 0.7  # the age flag is raised for about half the rows
    assert np.all(blanked[blanked[:, 2] == 1, 0] == 0)
    noisy = converter.corruptions()["numeric_noise_1.0"](features, rng)
    assert np.all(noisy[:, 2:] == features[:, 2:]) and not np.allclose(noisy[:, :2], features[:, :2])
