"""Manifest (or TFRecord shards) → `tf.data.Dataset` of `(features, labels)` for `model.fit`."""

import contextlib
import glob
import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from mmkeras import constants
from mmkeras.data.bad_records import BadRecordReport
from mmkeras.data.bad_records import error_text
from mmkeras.data.bad_records import first_flagged
from mmkeras.data.manifest import BadRecordError
from mmkeras.data.manifest import cell_text
from mmkeras.data.manifest import read_manifest
from mmkeras.data.manifest import resolve_path

AUTOTUNE = tf.data.AUTOTUNE
POLICIES = ("raise", "skip")
_ROW, _LABEL = "__row", "__label"
#: Written beside TFRecord shards: how many records they hold (so a dataset's length is known).
COUNT_FILE = "records.json"


def _graph(fn):
    """`fn` traced as written, without AutoGraph's source rewrite, which took about half the time
    of building a pipeline (benchmarks/RESULTS.md). The decoding steps use `tf.cond` and
    `tf.where`, never Python control flow on tensors; the SavedModel's endpoints trace the same
    steps with `autograph=False`."""
    return tf.autograph.experimental.do_not_convert(fn)


def _value_key(m):
    return f"__value_{m}"


def _path_key(m):
    return f"__path_{m}"


def is_tfrecord_source(source):
    """True for a TFRecord file, a glob of them, or a folder holding `*.tfrecord*` shards."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    source = os.fspath(source)
    return ".tfrecord" in os.path.basename(source) or (
        os.path.isdir(source) and bool(glob.glob(os.path.join(source, "*.tfrecord*")))
    )


def record_location(source, row, column, path=""):
    """Where a bad record is, as error messages and reports say it.

    Example:

    >>> record_location("train.csv", 12, "image", "/data/cat.png")
    'train.csv, row 12, column image, file /data/cat.png'
    """
    return f"{source}, row {row}, column {column}" + (f", file {path}" if path else "")


def _check_policy(on_bad_record):
    if on_bad_record not in POLICIES:
        raise ValueError(f"Expected on_bad_record to be one of {list(POLICIES)}. Received: on_bad_record={on_bad_record!r}")


def _columns(preprocessor, columns):
    return preprocessor.column_mapping(columns)


def check_columns(manifest, preprocessor, columns, with_labels=True):
    """Raises BadRecordError when a configured modality's (or the label's) column is in no row.

    A misspelled column would otherwise mark that modality missing in every example, silently.
    """
    seen = set(manifest.columns)
    wanted = [(m, column) for m, converter in preprocessor.converters.items()
              for column in converter.manifest_columns(columns)]
    if with_labels:
        wanted.append(("label", columns[constants.DEFAULT_HEAD]))
    for what, column in wanted:
        if column not in seen:
            kind = "the label" if what == "label" else f"modality {what!r}"
            fix = (f"name the right one with columns: {{{what}: ...}}" if column == columns.get(what, what)
                   else f"fix the column names in modalities.{what}")
            raise BadRecordError(
                f"{manifest.source}: no column {column!r} for {kind}. The manifest's columns are {sorted(seen)}; "
                f"{fix} (an empty cell marks a modality missing for one row, a missing column is an error)."
            )


def _row_value(converter, row, columns, base_dir):
    """(value, problem or None) of one modality in a manifest row, before any check of its own.

    A file kind's value is its cell as a path resolved against `base_dir` ("" when empty);
    another kind's is its cells joined by the converter (the text itself for text).
    """
    read = converter.manifest_columns(columns)
    if converter.reads_files:
        return resolve_path(row.get(read[0]), base_dir), None
    return converter.join_cells([row.get(c) for c in read])


def validate_rows(manifest, preprocessor, columns, on_bad_record, report, with_labels=True):
    """Checks every row in Python (files exist and are non-empty, labels known).

    Each modality's converter checks its value too (`Modality.check_value`): compressed audio
    (FLAC/OGG/MP3) is converted to WAV here, once, and so are compressed video and frame folders
    to decoded frames; the table's value column then points at the converted file, while
    messages keep naming the user's file. Returns the table of valid rows as column lists. Under "raise" the first bad record raises a
    `BadRecordError` naming source, row, column and file; under "skip" it goes to `report`.
    """
    table = {_ROW: [], _LABEL: [], **{_value_key(m): [] for m in preprocessor.specs},
             **{_path_key(m): [] for m in preprocessor.specs}}
    label_column = columns[constants.DEFAULT_HEAD]
    check_columns(manifest, preprocessor, columns, with_labels)
    for row, number in zip(manifest.rows, manifest.row_numbers):
        values, problem = {}, None
        for m, converter in preprocessor.converters.items():
            column = "/".join(converter.manifest_columns(columns))
            value, issue = _row_value(converter, row, columns, manifest.base_dir)
            if not converter.reads_files:
                if not issue:
                    value, issue = converter.check_value(value, "")
                values[_value_key(m)], values[_path_key(m)] = value, ""
                if issue:
                    problem = problem or (column, "", issue)
                continue
            path = value
            values[_value_key(m)] = values[_path_key(m)] = path
            if path and not (os.path.isfile(path) or (converter.reads_folders and os.path.isdir(path))):
                problem = problem or (column, path, "file not found")
            elif path and os.path.isfile(path) and os.path.getsize(path) == 0:
                problem = problem or (column, path, "empty file")
            elif path and not problem:
                values[_value_key(m)], issue = converter.check_value(path, path)
                if issue:
                    problem = (column, path, issue)
        if with_labels:
            try:
                values[_LABEL] = preprocessor.encode_label(row.get(label_column))
            except ValueError as error:
                problem = problem or (label_column, "", str(error))
        if problem:
            column, path, reason = problem
            if on_bad_record == "raise":
                raise BadRecordError(f"{record_location(manifest.source, number, column, path)}: {reason}")
            report.add(number, column, path, reason)
            continue
        table[_ROW].append(number)
        for key, value in values.items():
            table[key].append(value)
    if not table[_ROW]:
        raise BadRecordError(f"{manifest.source}: no usable record (of {len(manifest)}). " + report.summary(limit=5))
    if not with_labels or not table[_LABEL]:
        table.pop(_LABEL)
    else:
        table[_LABEL] = np.stack(table[_LABEL])
    return table


def _tfrecord_files(source):
    source = os.fspath(source)
    listing = os.path.join(source, COUNT_FILE)
    if os.path.isdir(source) and os.path.exists(listing):  # written by write_tfrecords: its shards, no others
        with open(listing, encoding="utf-8") as f:
            names = sorted(json.load(f).get("shards", {}))
        missing = [name for name in names if not os.path.isfile(os.path.join(source, name))]
        if missing:
            raise FileNotFoundError(f"{listing} lists shards that are not there: {missing[:5]}; run mmkeras prepare "
                                    "again into this folder")
        if names:
            return [os.path.join(source, name) for name in names]
    pattern = os.path.join(source, "*.tfrecord*") if os.path.isdir(source) else source
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"No TFRecord files match {pattern!r}")
    return files


def count_records(files):
    """Records in TFRecord `files`: from `records.json` beside them when it lists them all, else counted."""
    folders = {os.path.dirname(os.path.abspath(f)) for f in files}
    if len(folders) == 1:
        path = os.path.join(folders.pop(), COUNT_FILE)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                listing = json.load(f)
            counts, sizes = listing.get("shards", {}), listing.get("bytes", {})
            names = [os.path.basename(f) for f in files]
            for file, name in zip(files, names):  # a shard cut short would fail mid-epoch, naming no file
                if name in sizes and os.path.getsize(file) != int(sizes[name]):
                    raise BadRecordError(f"{file}: {os.path.getsize(file)} bytes, but `mmkeras prepare` wrote "
                                         f"{sizes[name]} (truncated or changed since); run the prepare again")
            if all(name in counts for name in names):
                return sum(int(counts[name]) for name in names)
    return int(tf.data.TFRecordDataset(files).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def _tfrecord_elements(files, preprocessor, shuffle, seed, deterministic=False):
    """Parsed TFRecord examples in the same element layout as a manifest's table."""
    spec = {_ROW: tf.io.FixedLenFeature([], tf.int64), "label": tf.io.FixedLenFeature([], tf.string, "")}
    for m in preprocessor.specs:
        spec[m] = tf.io.FixedLenFeature([], tf.string, "")
        spec[f"path_{m}"] = tf.io.FixedLenFeature([], tf.string, "")
    file_ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        file_ds = file_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    records = file_ds.interleave(
        tf.data.TFRecordDataset, cycle_length=min(len(files), 8), num_parallel_calls=AUTOTUNE,
        deterministic=deterministic or not shuffle,
    )

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        element = {_ROW: example[_ROW], _LABEL: example["label"]}
        for m in preprocessor.specs:
            element[_value_key(m)] = example[m]
            element[_path_key(m)] = example[f"path_{m}"]
        return element

    return records.map(_graph(parse), num_parallel_calls=AUTOTUNE)


def _augments(spec):
    """Whether a spec asks for training-time augmentation (None: its kind's default, which may)."""
    augment = getattr(spec, "augment", {})
    return augment is None or bool(augment)


def make_dataset(
    source,
    preprocessor,
    columns=None,
    batch_size=32,
    training=False,
    shuffle=None,
    seed=None,
    cache=None,
    on_bad_record="raise",
    report=None,
    with_labels=True,
    drop_remainder=False,
    deterministic=False,
    shard=None,
):
    """A `tf.data.Dataset` of `(features, {"label": labels})` batches from a manifest or TFRecords.

    Files are read and decoded in parallel (`AUTOTUNE`) by the Preprocessor's TensorFlow ops;
    relative paths resolve from the manifest's folder. The dataset's length (`len(ds)`) is
    always known, so `model.fit(ds.repeat(), steps_per_epoch=len(ds))` keeps one iterator for a
    whole run.

    Args:
        source: manifest (CSV/JSONL path, DataFrame, list of dicts) or TFRecord shards (a file,
            glob, or folder written by `write_tfrecords`).
        preprocessor: an adapted `Preprocessor`.
        columns: dict. Modality name (and "label") → column name, where they differ from the
            mapping the Preprocessor keeps (`Preprocessor.columns`, learned by `adapt_preprocessor`).
        batch_size: int. Examples per batch.
        training: bool. Enables shuffling by default, random crops and augmentation.
        shuffle: bool. Shuffle the examples each epoch (default: `training`).
        seed: int. Seed of shuffling and random crops.
        cache: None, "memory", or a file path prefix: keep decoded examples after the first epoch
            (random crops then stay as first drawn).
        on_bad_record: str. "raise" (default): the first bad record raises, naming row, column,
            file and reason. "skip": every record is decoded once up front; bad ones are
            dropped, counted and listed in `dataset.bad_records` (a `BadRecordReport`, also a
            Keras callback), and the dataset holds the usable records only.
        report: `BadRecordReport` to add to (default: a new one).
        with_labels: bool. Yield labels (False for prediction manifests without a label column).
        drop_remainder: bool. Drop the last, smaller batch.
        deterministic: bool. Keep the element order fixed for a given seed even while files
            are read in parallel (training otherwise lets the fastest file go first). With
            `tf.config.experimental.enable_op_determinism()` a run then repeats exactly.
        shard: (count, index). Keep this worker's share only, before any file is read: every
            `count`-th TFRecord file from `index` when there are at least `count` files, else
            every `count`-th record (training on several machines).

    Returns:
        The dataset; its `bad_records` attribute holds the report.
    """
    _check_policy(on_bad_record)
    shuffle = training if shuffle is None else shuffle
    columns = _columns(preprocessor, columns)
    from_tfrecords = is_tfrecord_source(source)
    if from_tfrecords:
        report = report if report is not None else BadRecordReport(os.fspath(source))
        files = _tfrecord_files(source)
        by_file = shard is not None and len(files) >= shard[0]
        if by_file:
            files = files[shard[1] :: shard[0]]
        count = count_records(files)
        if shard is not None and not by_file:
            count = len(range(shard[1], count, shard[0]))
        source_name = os.path.basename(os.fspath(source).rstrip("/"))

        def elements(shuffled, excluded=()):
            if shard is not None and not by_file:  # one fixed order to take every count-th record of
                ds = _tfrecord_elements(files, preprocessor, False, seed, True).shard(*shard)
                ds = ds.shuffle(min(count, 10000), seed=seed, reshuffle_each_iteration=True) if shuffled else ds
            else:
                ds = _tfrecord_elements(files, preprocessor, shuffled, seed, deterministic)
            if excluded:
                bad = tf.constant(sorted(excluded), tf.int64)
                ds = ds.filter(lambda e: tf.logical_not(tf.reduce_any(tf.equal(e[_ROW], bad))))
            return ds
    else:
        manifest = read_manifest(source)
        report = report if report is not None else BadRecordReport(manifest.source)
        table = validate_rows(manifest, preprocessor, columns, on_bad_record, report, with_labels)
        if shard is not None:
            table = {key: value[shard[1] :: shard[0]] for key, value in table.items()}
        source_name = manifest.source

        def elements(shuffled, excluded=()):
            kept = table
            if excluded:
                keep = np.array([row not in excluded for row in table[_ROW]])
                kept = {key: (np.asarray(value)[keep] if key == _LABEL else [v for v, k in zip(value, keep) if k])
                        for key, value in table.items()}
            ds = tf.data.Dataset.from_tensor_slices(kept)
            if shuffled:
                ds = ds.shuffle(len(kept[_ROW]), seed=seed, reshuffle_each_iteration=True)
            return ds

        count = len(table[_ROW])
    random_crops = training and not cache
    decode = _decoder(preprocessor, columns, from_tfrecords, with_labels)

    excluded = ()
    if on_bad_record == "skip":
        # Decode every record once, before training: the bad ones are known and reported up front,
        # and the training pipeline holds only usable records, with a known length.
        excluded = _scan_bad_records(elements(False), decode, batch_size, report, count)
        count -= len(excluded)
        if count <= 0:
            raise BadRecordError(f"{source_name}: no usable record. " + report.summary(limit=5))
    ds = elements(shuffle and not cache, set(excluded))
    ds = ds.map(_graph(decode.images), num_parallel_calls=AUTOTUNE,
                deterministic=deterministic or not (training and shuffle))
    # With caching the examples are re-batched below; the first batches are then only the unit
    # of decoding.
    rebatch = cache is not None
    ds = ds.batch(batch_size, drop_remainder=drop_remainder and not rebatch, num_parallel_calls=AUTOTUNE)
    ds = ds.map(_graph(lambda *e: decode.batch(*e, training=random_crops)), num_parallel_calls=AUTOTUNE)

    def check(features, label, status):
        # Names the batch's first bad example, in the same text as record_location(); no quotes,
        # which TF's Assert would print escaped.
        bad = tf.strings.length(status["reason"]) > 0
        first = {key: first_flagged(value, bad) for key, value in status.items()}
        file_part = tf.where(tf.strings.length(first["path"]) > 0, tf.strings.join([", file ", first["path"]]), "")
        message = tf.strings.join([
            f"{source_name}, row ", first["row"], ", column ", first["column"], file_part, ": ", first["reason"],
        ])
        assertion = tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [message])
        with tf.control_dependencies([assertion]):
            return tf.nest.map_structure(tf.identity, (features, label))

    ds = ds.map(_graph(check), num_parallel_calls=AUTOTUNE)

    def to_inputs_and_targets(features, label):
        return (features, {constants.DEFAULT_HEAD: label}) if with_labels else features

    if cache is not None:
        ds = ds.unbatch().cache("" if cache == "memory" else cache)
        if shuffle:
            ds = ds.shuffle(min(count, 10000), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
    ds = ds.map(_graph(to_inputs_and_targets))
    if training and any(_augments(spec) for spec in preprocessor.specs.values()):
        def augment(features, *targets):
            return (preprocessor.augment_batch(features, seed), *targets) if targets else preprocessor.augment_batch(features, seed)

        ds = ds.map(_graph(augment), num_parallel_calls=AUTOTUNE)
    ds = ds.prefetch(AUTOTUNE)
    options = tf.data.Options()
    # One thread per op inside the parallel map calls: the parallelism comes from the calls, and
    # the pipeline's ops stay off the thread pool of the training step they run beside. (Measured
    # 2x for per-example WAV decoding on 2 cores; with batch-level decoding, within noise alone.)
    options.threading.max_intra_op_parallelism = 1
    ds = ds.with_options(options)
    batches = count // batch_size if drop_remainder else -(-count // batch_size)
    ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    ds.bad_records = report
    ds.num_examples = count

    def locate_bad_records():
        found = BadRecordReport(source_name)
        _scan_bad_records(elements(False, set(excluded)), decode, batch_size, found, count)
        return found

    ds.locate_bad_records = locate_bad_records
    return ds


class _decoder:
    """The two decoding stages of the pipeline, shared by the up-front scan and the dataset."""

    def __init__(self, preprocessor, columns, from_tfrecords, with_labels):
        self.preprocessor, self.columns = preprocessor, columns
        self.from_tfrecords, self.with_labels = from_tfrecords, with_labels

    def images(self, element):
        """Per example: read the files, decode images (the decoders take one file at a time)."""
        pre = self.preprocessor
        raw = {}
        for m, converter in pre.converters.items():
            value = element[_value_key(m)]
            raw[m] = value if self.from_tfrecords else converter.read(value)  # TFRecords hold the bytes
        staged = pre.decode_images(raw)
        label, label_reason = tf.constant(0, tf.int64), tf.constant("")  # placeholder without labels
        if self.with_labels:
            label = element[_LABEL]
            if self.from_tfrecords:
                label, label_reason = pre.labels.encode_graph(label)
        paths = {m: element[_path_key(m)] for m in pre.specs}
        return staged, label, {"row": element[_ROW], "paths": paths, "label_reason": label_reason}

    def batch(self, staged, label, info, training=False):
        """Per batch: text and audio in vectorised ops; each example's first problem."""
        pre = self.preprocessor
        features, reasons = pre.decode_staged_batch(staged, training=training)
        empty = tf.fill(tf.shape(info["row"]), "")
        problems = [("/".join(converter.manifest_columns(self.columns)), info["paths"][m], reasons[m])
                    for m, converter in pre.converters.items()]
        if self.with_labels and self.from_tfrecords:
            problems.append((self.columns[constants.DEFAULT_HEAD], empty, info["label_reason"]))
        column, path, reason = empty, empty, empty
        for c, p, r in reversed(problems):  # the first problem of each example wins
            bad = tf.strings.length(r) > 0
            column, path, reason = tf.where(bad, c, column), tf.where(bad, p, path), tf.where(bad, r, reason)
        status = {"row": info["row"], "column": column, "path": path, "reason": reason}
        return features, label, status


#: Reason given for a record whose image decoder raised (a valid signature, a corrupt body).
UNDECODABLE_IMAGE = "image could not be decoded (corrupt or truncated file)"


def _scan_bad_records(elements, decode, batch_size, report, total):
    """Decodes every element once and adds the bad ones to `report`; returns their row numbers.

    Most problems come back as reasons; an image decoder that raises on a corrupt body drops its
    element instead (`ignore_errors`), and the rows that never came back are reported too.
    """
    ds = elements.map(_graph(decode.images), num_parallel_calls=AUTOTUNE).ignore_errors()
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE)

    def statuses(*element):
        status = decode.batch(*element)[2]
        bad = tf.strings.length(status["reason"]) > 0
        return {"seen": status["row"], **{key: tf.boolean_mask(value, bad) for key, value in status.items()}}

    ds = ds.map(_graph(statuses), num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
    rows, seen = [], set()
    for status in ds.as_numpy_iterator():
        seen.update(int(r) for r in status["seen"])
        for row, column, path, reason in zip(status["row"], status["column"], status["path"], status["reason"]):
            report.add(int(row), column.decode(), path.decode(), reason.decode())
            rows.append(int(row))
    if len(seen) == total:
        return rows  # every element came back: no decoder raised, no second pass over the data
    converters = decode.preprocessor.converters
    decoded_alone = [m for m, converter in converters.items() if converter.per_example]
    for element in elements.as_numpy_iterator():
        row = int(element[_ROW])
        if row in seen:
            continue
        paths = [(m, element[_path_key(m)].decode()) for m in decoded_alone if element[_path_key(m)]]
        # the file whose decoder raises, asked one at a time (all of them if none raises alone)
        culprits = [(m, path) for m, path in paths if _decoder_raises(converters[m], path)] or paths
        column = "/".join(decode.columns.get(m, m) for m, _ in culprits) or "image"
        kinds = {converters[m].kind for m, _ in culprits}
        reason = (UNDECODABLE_IMAGE if kinds <= {"image"} else
                  f"{'/'.join(sorted(kinds))} file could not be decoded (corrupt or truncated file)")
        report.add(row, column, ", ".join(p for _, p in culprits), reason)
        rows.append(row)
    return rows


def _decoder_raises(converter, path):
    """True if `converter` raises on the file at `path` (a frame folder is not tried)."""
    if not os.path.isfile(path):
        return False
    try:
        converter.decode_one(tf.constant(tf.io.read_file(path)))
    except tf.errors.OpError:
        return True
    return False


@contextlib.contextmanager
def decode_errors_located(*datasets):
    """Re-raises a decoder error met while reading `datasets` as a `BadRecordError` naming the record.

    Example: `with decode_errors_located(train_ds, val_ds): model.fit(train_ds, ...)`. Errors that
    are not about a record (or that no record reproduces) pass through unchanged.
    """
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        for dataset in datasets:
            located = locate_decode_error(dataset, error) if dataset is not None else error
            if located is not error:
                raise located from error
        raise


def locate_decode_error(dataset, error):
    """A `BadRecordError` naming the record behind a decoder `error` raised while reading `dataset`.

    TensorFlow's image decoders raise inside the pipeline with their own text only ("Invalid
    PNG"); this decodes the dataset's records once more to find the first that fails. Returns
    `error` itself when it is not such an error or no record fails.
    """
    locate = getattr(dataset, "locate_bad_records", None)
    if locate is None or not isinstance(error, tf.errors.InvalidArgumentError) or ", row " in str(error):
        return error
    report = locate()
    if not len(report):
        return error
    (row, column), (path, reason) = sorted(report.records.items())[0]
    return BadRecordError(f"{record_location(report.source, row, column, path)}: {reason} ({error_text(error)})")


def adapt_preprocessor(preprocessor, source, columns=None, label_order="sorted"):
    """Learns the Preprocessor's vocabularies and label names from a training manifest.

    `label_order`: "sorted" (numbers numerically) or "manifest" (first seen first).

    Example:

    >>> from mmkeras.preprocessor import Preprocessor
    >>> pre = Preprocessor({"text": {"max_tokens": 10, "sequence_length": 3}})
    >>> adapt_preprocessor(pre, [{"text": "a b", "label": "x"}, {"text": "b", "label": "y"}])
    >>> pre.label_names, pre.vocabulary("text")
    (['x', 'y'], ['', '[UNK]', 'b', 'a'])
    """
    manifest = read_manifest(source)
    if columns:  # the Preprocessor keeps the mapping it learned from: every later reader uses it
        preprocessor.columns = {**preprocessor.columns, **{str(k): str(v) for k, v in columns.items()}}
    columns = _columns(preprocessor, columns)
    check_columns(manifest, preprocessor, columns)
    cells = {m: [_row_value(converter, row, columns, manifest.base_dir)[0] for row in manifest.rows]
             for m, converter in preprocessor.converters.items()}
    labels = [row.get(columns[constants.DEFAULT_HEAD]) for row in manifest.rows]
    preprocessor.adapt(cells=cells, labels=labels, label_order=label_order)


def write_tfrecords(source, output_dir, preprocessor, columns=None, num_shards=4, on_bad_record="raise", report=None):
    """Writes a manifest's examples (text, raw file bytes, raw label) into sharded TFRecord files.

    `make_dataset(output_dir, ...)` reads them back; shards let `tf.distribute` split files
    between workers, and one sequential read per shard beats many small-file reads.

    Returns:
        list of str. The shard paths.
    """
    _check_policy(on_bad_record)
    manifest = read_manifest(source)
    columns = _columns(preprocessor, columns)
    report = report if report is not None else BadRecordReport(manifest.source)
    table = validate_rows(manifest, preprocessor, columns, on_bad_record, report, with_labels=False)
    labels = {number: cell_text(row.get(columns[constants.DEFAULT_HEAD]))
              for row, number in zip(manifest.rows, manifest.row_numbers)}
    os.makedirs(output_dir, exist_ok=True)
    num_shards = max(1, min(num_shards, len(table[_ROW])))
    names = [f"data-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    # Shards are written into a temporary folder and moved in once complete, then records.json
    # (which readers trust for the list of shards) is replaced, then the shards of an earlier
    # prepare are removed: a killed prepare leaves the previous shards whole and readable.
    temporary = tempfile.mkdtemp(prefix=f".prepare-{os.getpid()}-", dir=output_dir)
    try:
        writers = [tf.io.TFRecordWriter(os.path.join(temporary, name)) for name in names]
        try:
            for i, number in enumerate(table[_ROW]):
                feature = {_ROW: tf.train.Feature(int64_list=tf.train.Int64List(value=[number])),
                           "label": _bytes_feature(labels[number].encode())}
                for m, converter in preprocessor.converters.items():
                    feature[m] = _bytes_feature(converter.record_bytes(table[_value_key(m)][i]))
                    feature[f"path_{m}"] = _bytes_feature(table[_path_key(m)][i].encode())
                example = tf.train.Example(features=tf.train.Features(feature=feature))
                writers[i % num_shards].write(example.SerializeToString())
        finally:
            for writer in writers:
                writer.close()
        counts = {name: len(range(i, len(table[_ROW]), num_shards)) for i, name in enumerate(names)}
        sizes = {name: os.path.getsize(os.path.join(temporary, name)) for name in names}
        with open(os.path.join(temporary, COUNT_FILE), "w", encoding="utf-8") as f:
            json.dump({"records": len(table[_ROW]), "shards": counts, "bytes": sizes}, f, indent=1)
        for name in names:
            os.replace(os.path.join(temporary, name), os.path.join(output_dir, name))
        os.replace(os.path.join(temporary, COUNT_FILE), os.path.join(output_dir, COUNT_FILE))
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    for stale in glob.glob(os.path.join(output_dir, "data-*-of-*.tfrecord")):
        if os.path.basename(stale) not in counts:
            os.remove(stale)
    return [os.path.join(output_dir, name) for name in names]


def _bytes_feature(data):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))
