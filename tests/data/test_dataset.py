import json
import os
import re

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from media import TINY
from media import image_bytes
from media import wav_bytes
from media import tone
from media import write_manifest

import mmkeras
from mmkeras import constants
from mmkeras.evaluation import collect


def _preprocessor(source):
    pre = mmkeras.Preprocessor(TINY)
    mmkeras.adapt_preprocessor(pre, source)
    return pre


def test_csv_manifest_gives_labels_and_a_known_length(dataset_folder):
    # (test_skip_report_is_a_callback_that_prints_a_summary fits a model on such a dataset)
    folder, rows = dataset_folder
    manifest = write_manifest(folder, rows)
    pre = _preprocessor(manifest)
    assert pre.label_names == ["class0", "class1", "class2"]
    ds = mmkeras.make_dataset(manifest, pre, batch_size=5, training=True, seed=0)
    assert int(ds.cardinality()) == 3


def test_csv_jsonl_and_dataframe_give_the_same_examples(dataset_folder):
    folder, rows = dataset_folder
    csv_path = write_manifest(folder, rows)
    jsonl_path = folder / "manifest.jsonl"
    jsonl_path.write_text("\n".join(json.dumps(r) for r in rows))
    frame = mmkeras.read_manifest(pd.DataFrame(rows), base_dir=str(folder))  # in-memory: say where paths start
    pre = _preprocessor(csv_path)
    expected, labels = collect(mmkeras.make_dataset(csv_path, pre, batch_size=4))
    for source in (str(jsonl_path), frame):
        got, got_labels = collect(mmkeras.make_dataset(source, pre, batch_size=4))
        np.testing.assert_array_equal(got_labels, labels)
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], err_msg=key)


def test_shuffle_is_seeded_and_reshuffles_each_epoch(dataset_folder):
    folder, rows = dataset_folder
    manifest = write_manifest(folder, rows)
    pre = _preprocessor(manifest)
    ds = mmkeras.make_dataset(manifest, pre, batch_size=12, shuffle=True, seed=5)
    first = next(iter(ds))[1]["label"].numpy().tolist()
    second = next(iter(ds))[1]["label"].numpy().tolist()
    again = next(iter(mmkeras.make_dataset(manifest, pre, batch_size=12, shuffle=True, seed=5)))[1]["label"].numpy()
    assert first == again.tolist() and first != second and sorted(first) == sorted(second)


def test_empty_cells_give_presence_zero(dataset_folder):
    folder, rows = dataset_folder
    rows[0]["text"], rows[1]["image"], rows[2]["audio"] = "", "", ""
    pre = _preprocessor(write_manifest(folder, rows))
    features, _ = collect(mmkeras.make_dataset(write_manifest(folder, rows), pre, batch_size=12))
    assert features["text_present"][:3, 0].tolist() == [0, 1, 1]
    assert features["image_present"][:3, 0].tolist() == [1, 0, 1]
    assert features["audio_present"][:3, 0].tolist() == [1, 1, 0]


BAD_RECORDS = [
    # (what is done to row index 4 (row number 5), column, reason in the message)
    ("image", "missing.png", "image", "file not found"),
    ("image", "empty.png", "image", "empty file"),
    ("image", "garbage.png", "image", "not an image file"),
    ("audio", "garbage.wav", "audio", "not a WAV file"),
    ("audio", "garbage.flac", "audio", "undecodable audio"),
    ("label", "class9", "label", "unknown label 'class9'"),
    ("label", "", "label", "empty label"),
]


def _bad_folder(folder, rows, column, value):
    (folder / "empty.png").write_bytes(b"")
    (folder / "garbage.png").write_bytes(b"this is text, not a picture")
    (folder / "garbage.wav").write_bytes(b"RIFX" + b"\0" * 60)
    (folder / "garbage.flac").write_bytes(b"fLaC" + b"\1" * 60)
    rows[4][column] = value
    return write_manifest(folder, rows, "bad.csv")


@pytest.mark.parametrize("column, value, reported_column, reason", BAD_RECORDS)
def test_raise_policy_names_row_column_file_and_reason(dataset_folder, column, value, reported_column, reason):
    folder, rows = dataset_folder
    pre = _preprocessor(write_manifest(folder, rows))
    manifest = _bad_folder(folder, rows, column, value)
    expected = rf"bad.csv, row 5, column {reported_column}" + (rf", file /.*{value}" if column != "label" else "")
    with pytest.raises((mmkeras.BadRecordError, tf.errors.InvalidArgumentError), match=expected + f".*{reason}"):
        for _ in mmkeras.make_dataset(manifest, pre, batch_size=4):
            pass


@pytest.mark.parametrize("column, value, reported_column, reason", BAD_RECORDS)
def test_skip_policy_drops_counts_and_reports(dataset_folder, column, value, reported_column, reason, tmp_path):
    folder, rows = dataset_folder
    pre = _preprocessor(write_manifest(folder, rows))
    ds = mmkeras.make_dataset(_bad_folder(folder, rows, column, value), pre, batch_size=4, on_bad_record="skip")
    _, labels = collect(ds)
    assert len(labels) == 11
    report = ds.bad_records
    assert report.rows == [5] and reason in report.summary() and f"column {reported_column}" in report.summary()
    report.to_csv(tmp_path / "skipped.csv")
    assert "row,column,file,reason" in (tmp_path / "skipped.csv").read_text()


def test_skip_report_is_a_callback_that_prints_a_summary(dataset_folder, capsys):
    folder, rows = dataset_folder
    pre = _preprocessor(write_manifest(folder, rows))
    ds = mmkeras.make_dataset(_bad_folder(folder, rows, "image", "garbage.png"), pre, batch_size=4,
                              on_bad_record="skip", training=True)
    model = mmkeras.build_model(TINY, num_classes=3, fusion="concat")
    history = model.fit(ds, epochs=2, verbose=0, callbacks=[ds.bad_records])
    assert len(history.history["loss"]) == 2 and np.all(np.isfinite(history.history["loss"]))
    out = capsys.readouterr().out
    assert out.count("bad record(s) skipped") == 1 and "row 5, column image" in out


def test_all_rows_bad_is_an_error_even_when_skipping(dataset_folder):
    folder, rows = dataset_folder
    for row in rows:
        row["label"] = "nope"
    pre = mmkeras.Preprocessor(TINY, label_names=["class0"], vocabularies={"text": ["", "[UNK]", "word0"]})
    with pytest.raises(mmkeras.BadRecordError, match="no usable record"):
        mmkeras.make_dataset(write_manifest(folder, rows), pre, on_bad_record="skip")


def test_tfrecord_shards_give_the_same_examples(dataset_folder):
    folder, rows = dataset_folder
    manifest = write_manifest(folder, rows)
    pre = _preprocessor(manifest)
    shards = mmkeras.write_tfrecords(manifest, folder / "shards", pre, num_shards=3)
    assert len(shards) == 3
    expected, labels = collect(mmkeras.make_dataset(manifest, pre, batch_size=4))
    got, got_labels = collect(mmkeras.make_dataset(folder / "shards", pre, batch_size=4))
    assert sorted(got_labels.tolist()) == sorted(labels.tolist())
    # Shards interleave rows; match each example by its audio, which is unique per row.
    for i in range(len(labels)):
        j = int(np.argmin(np.abs(got["audio"] - expected["audio"][i]).sum(axis=1)))
        assert got_labels[j] == labels[i]
        for key in expected:
            np.testing.assert_allclose(got[key][j], expected[key][i], err_msg=key)


def test_a_second_prepare_replaces_the_shards_of_the_first(dataset_folder):
    """4 shards then 2 into one folder: the reader got both sets (twice the records) before."""
    folder, rows = dataset_folder
    manifest = write_manifest(folder, rows)
    pre = _preprocessor(manifest)
    mmkeras.write_tfrecords(manifest, folder / "shards", pre, num_shards=4)
    shards = mmkeras.write_tfrecords(manifest, folder / "shards", pre, num_shards=2)
    assert sorted(os.listdir(folder / "shards")) == sorted([os.path.basename(p) for p in shards] + ["records.json"])
    assert len(mmkeras.make_dataset(folder / "shards", pre, batch_size=1)) == len(rows)
    stray = folder / "shards" / "data-00009-of-00010.tfrecord"  # a file the listing does not name is not read
    stray.write_bytes(open(shards[0], "rb").read())
    assert len(mmkeras.make_dataset(folder / "shards", pre, batch_size=1)) == len(rows)


def test_a_shard_cut_short_is_refused_naming_it_before_any_epoch(dataset_folder):
    """It failed mid-epoch with TensorFlow's `DataLossError: truncated record`, naming no shard."""
    folder, rows = dataset_folder
    pre = _preprocessor(write_manifest(folder, rows))
    shards = mmkeras.write_tfrecords(write_manifest(folder, rows), folder / "shards", pre, num_shards=2)
    whole = open(shards[1], "rb").read()
    open(shards[1], "wb").write(whole[:-50])
    with pytest.raises(mmkeras.BadRecordError, match=re.escape(f"{shards[1]}: {len(whole) - 50} bytes, but `mmkeras "
                                                               f"prepare` wrote {len(whole)} (truncated or changed")):
        mmkeras.make_dataset(folder / "shards", pre)


def test_tfrecord_bad_labels_follow_the_policy(dataset_folder):
    folder, rows = dataset_folder
    pre = _preprocessor(write_manifest(folder, rows))
    rows[2]["label"] = "class7"
    mmkeras.write_tfrecords(write_manifest(folder, rows, "with_bad.csv"), folder / "shards", pre, num_shards=2)
    # the same words as a CSV manifest's bad label (one label encoder for both paths)
    expected = "unknown label 'class7', expected one of ['class0', 'class1', 'class2']"
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"shards, row 3, column label: unknown label") as raised:
        collect(mmkeras.make_dataset(folder / "shards", pre))
    assert expected in str(raised.value).replace("\\'", "'")
    with pytest.raises(mmkeras.BadRecordError, match=re.escape(f"row 3, column label: {expected}")):
        mmkeras.make_dataset(folder / "with_bad.csv", pre)
    ds = mmkeras.make_dataset(folder / "shards", pre, on_bad_record="skip")
    assert len(collect(ds)[1]) == 11 and ds.bad_records.rows == [3]
    assert ds.bad_records.records[(3, "label")][1] == expected


def test_cache_in_memory_serves_the_same_examples(dataset_folder):
    folder, rows = dataset_folder
    manifest = write_manifest(folder, rows)
    pre = _preprocessor(manifest)
    ds = mmkeras.make_dataset(manifest, pre, batch_size=4, cache="memory")
    first, second = collect(ds), collect(ds)
    np.testing.assert_array_equal(first[0]["image"], second[0]["image"])


def test_compressed_audio_and_mixed_formats_in_one_manifest(dataset_folder):
    folder, rows = dataset_folder
    (folder / "clip.flac").write_bytes(wav_bytes(tone(44100, channels=2), 44100, "PCM_16", "FLAC"))
    (folder / "pic.jpg").write_bytes(image_bytes("JPEG"))
    (folder / "pic.gif").write_bytes(image_bytes("GIF", "L"))
    rows[0]["audio"], rows[1]["image"], rows[2]["image"] = "clip.flac", "pic.jpg", "pic.gif"
    manifest = write_manifest(folder, rows)
    pre = _preprocessor(manifest)
    features, _ = collect(mmkeras.make_dataset(manifest, pre, batch_size=12))
    assert np.abs(features["audio"][0]).max() > 0.1 and features["image"][1:3].std() > 0.01


def test_stratified_split_keeps_label_proportions(dataset_folder):
    folder, rows = dataset_folder
    train, val = mmkeras.stratified_split(write_manifest(folder, rows), validation_fraction=0.25, seed=1)
    assert len(train) == 9 and len(val) == 3
    assert sorted(r["label"] for r in val.rows) == ["class0", "class1", "class2"]
    pre = _preprocessor(train)
    assert len(collect(mmkeras.make_dataset(val, pre, batch_size=2))[1]) == 3


def test_prediction_manifests_need_no_label(dataset_folder):
    folder, rows = dataset_folder
    pre = _preprocessor(write_manifest(folder, rows))
    for row in rows:
        row["label"] = ""
    ds = mmkeras.make_dataset(write_manifest(folder, rows, "unlabelled.csv"), pre, with_labels=False, batch_size=6)
    batch = next(iter(ds))
    assert isinstance(batch, dict) and batch["image"].shape[0] == 6 and constants.presence_name("audio") in batch


def test_unknown_policy_is_rejected(dataset_folder):
    folder, rows = dataset_folder
    with pytest.raises(ValueError, match="Received: on_bad_record='ignore'"):
        mmkeras.make_dataset(write_manifest(folder, rows), _preprocessor(write_manifest(folder, rows)),
                             on_bad_record="ignore")


def _graph_ops(ds):
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(ds._as_serialized_graph().numpy())
    return {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}


def test_no_python_runs_inside_the_pipeline_with_compressed_audio_and_skip(dataset_folder):
    """A Python step in tf.data waits for the lock a failing training thread holds: exit would hang."""
    folder, rows = dataset_folder
    (folder / "clip.flac").write_bytes(wav_bytes(tone(16000), 16000, "PCM_16", "FLAC"))
    (folder / "broken.flac").write_bytes(b"fLaC" + b"\1" * 60)
    rows[0]["audio"], rows[3]["audio"] = "clip.flac", "broken.flac"
    manifest = write_manifest(folder, rows)
    pre = _preprocessor(manifest)
    ds = mmkeras.make_dataset(manifest, pre, batch_size=4, training=True, on_bad_record="skip")
    assert not _graph_ops(ds) & {"EagerPyFunc", "PyFunc", "PyFuncStateless"}
    assert ds.bad_records.rows == [4] and len(ds) == 3 and ds.num_examples == 11
    assert len(collect(ds)[1]) == 11


def test_skip_policy_keeps_a_known_length_for_manifests_and_shards(dataset_folder):
    folder, rows = dataset_folder
    pre = _preprocessor(write_manifest(folder, rows))
    bad = _bad_folder(folder, rows, "image", "garbage.png")
    ds = mmkeras.make_dataset(bad, pre, batch_size=4, on_bad_record="skip")
    assert int(ds.cardinality()) == 3 and ds.num_examples == 11
    mmkeras.write_tfrecords(write_manifest(folder, rows, "all.csv"), folder / "shards", pre, num_shards=2,
                            on_bad_record="raise")
    shards = mmkeras.make_dataset(folder / "shards", pre, batch_size=4, on_bad_record="skip")
    assert int(shards.cardinality()) == 3 and shards.bad_records.rows == [5]
    assert sum(int(x["image"].shape[0]) for x, _ in shards) == 11


def _corrupt_png(folder):
    good = image_bytes("PNG", size=(16, 16), seed=3)
    (folder / "corrupt.png").write_bytes(good[:60] + b"\x00" * 40 + good[100:])  # valid signature, broken body
    return "corrupt.png"


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_an_image_with_a_valid_signature_but_a_corrupt_body_is_located(dataset_folder, policy):
    from mmkeras.data.dataset import locate_decode_error

    folder, rows = dataset_folder
    pre = _preprocessor(write_manifest(folder, rows))
    rows[6]["image"] = _corrupt_png(folder)
    ds = mmkeras.make_dataset(write_manifest(folder, rows, "corrupt.csv"), pre, batch_size=4, on_bad_record=policy)
    if policy == "skip":
        assert ds.bad_records.rows == [7] and "corrupt or truncated" in ds.bad_records.summary()
        assert ds.num_examples == 11 and len(collect(ds)[1]) == 11
        return
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        collect(ds)
    located = locate_decode_error(ds, caught.value)
    assert isinstance(located, mmkeras.BadRecordError)
    assert str(located).startswith("corrupt.csv, row 7, column image, file ") and "corrupt.png" in str(located)
