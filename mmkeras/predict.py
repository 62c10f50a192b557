"""Prediction for a manifest, from a run directory (Keras) or a SavedModel (the TF Serving path)."""

import csv
import io
import os
import sys

import numpy as np
import tensorflow as tf

from mmkeras.data import make_dataset
from mmkeras.data import read_manifest
from mmkeras.data.bad_records import BadRecordReport
from mmkeras.data.bad_records import error_text
from mmkeras.data.dataset import decode_errors_located
from mmkeras.data.manifest import BadRecordError
from mmkeras.data.manifest import cell_text
from mmkeras.data.manifest import resolve_path
from mmkeras.data.video import decode_frames
from mmkeras.data.video import frame_files
from mmkeras.data.video import sniff_container
from mmkeras.data.video import soundtrack_wav
from mmkeras.export import load_saved_model
from mmkeras.export import load_served_inputs
from mmkeras.postprocess import postprocess
from mmkeras.postprocess import result_rows
from mmkeras.tflite import TFLiteModel
from mmkeras.task import MultimodalTask
from mmkeras.tflite import is_tflite


def is_saved_model(path):
    """True for a SavedModel folder or an export base holding integer version folders."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return True
    return os.path.isdir(path) and any(
        n.isdigit() and os.path.exists(os.path.join(path, n, "saved_model.pb")) for n in os.listdir(path)
    )


def served_value(entry, cell, base_dir, where="", frames_input=False):
    """What a TF Serving client sends in one served input for one manifest cell.

    A served graph decodes no compressed video, so the client converts as the README tells
    clients to: an MP4/WebM/AVI cell goes to a video modality's frame-list input as PNG frames
    (every frame; the model samples them as training did), and to an audio input as its
    soundtrack in WAV.

    Args:
        entry: the input's row of the export's served input table (`export.load_served_inputs`).
        cell: the manifest cell.
        base_dir: folder that relative paths start from.
        where: "manifest, row N, column C" for the file-not-found message.
        frames_input: bool. The entry's modality also has a frame-list input (a video modality).

    Returns:
        bytes (the cell's text, or the file's bytes; b"" for an empty cell), or for a list input
        a list of bytes: the image files of the folder the cell names, or a video file's frames.
    """
    if not entry["file"]:
        return cell_text(cell).encode("utf-8")
    path = resolve_path(cell, base_dir)
    if path and not os.path.exists(path):
        raise FileNotFoundError(f"{where}, file {path}: file not found")
    video = bool(path) and os.path.isfile(path) and sniff_container(path) is not None
    if entry.get("list"):
        if path and os.path.isdir(path):
            return [open(f, "rb").read() for f in frame_files(path)]
        return _png_frames(path, where) if video else []
    if video:
        return b"" if frames_input else _soundtrack(path, where)
    return open(path, "rb").read() if path and os.path.isfile(path) else b""


def _png_frames(path, where):
    from PIL import Image

    try:
        frames = decode_frames(path, lambda count: range(count))
    except ValueError as error:
        raise BadRecordError(f"{where}, file {path}: {error}") from None
    encoded = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(frame, "uint8")).save(buffer, "PNG")
        encoded.append(buffer.getvalue())
    return encoded


def _soundtrack(path, where):
    try:
        return soundtrack_wav(path)
    except ValueError as error:
        raise BadRecordError(f"{where}, file {path}: {error}") from None


def padded(lists):
    """Lists of bytes → rows of one length (at least 1), padded with b"" (a `[batch, items]` input)."""
    width = max([len(v) for v in lists] + [1])
    return [list(v) + [b""] * (width - len(v)) for v in lists]


def _input_columns(manifest, inputs, columns):
    """Served input → the manifest column it reads: the export's served input table
    (`export.load_served_inputs`) names the columns the model was trained on; `columns`
    (modality → column) overrides them for the modalities that read one column."""
    read = {}  # modality → the columns its inputs read
    for entry in inputs.values():
        read.setdefault(entry["modality"], set()).add(entry["column"])
    table = {m: (columns[entry["modality"]] if len(read[entry["modality"]]) == 1 and entry["modality"] in columns
                 else entry["column"]) for m, entry in inputs.items()}
    missing = sorted({column for column in table.values() if column not in manifest.columns})
    if missing and manifest.rows:
        raise ValueError(f"{manifest.source}: no column(s) {missing}, which the model reads (its inputs: "
                         f"{table}). The manifest's columns are {sorted(manifest.columns)}; "
                         "name the right ones with --columns NAME=COLUMN (columns={...}), or add the columns "
                         "(an empty cell is a missing modality)")
    return table


def _raw_batches(manifest, inputs, table, batch_size, skip=None):
    """Yields (row numbers, {served input: [batch] raw values}) read the way a TF Serving client would.

    `table`: served input → column (`_input_columns`). `skip`: a `BadRecordReport` to list rows
    whose files cannot be read or converted (they are left out), or None to raise on the first.
    """
    has_frames = {}  # modality → whether it takes a frame list
    for entry in inputs.values():
        has_frames[entry["modality"]] = has_frames.get(entry["modality"], False) or bool(entry.get("list"))

    def example(row, number):
        values = {}
        for m, entry in inputs.items():
            column = table[m]
            where = f"{manifest.source}, row {number}, column {column}"
            try:
                values[m] = served_value(entry, row.get(column), manifest.base_dir, where, has_frames[entry["modality"]])
            except (FileNotFoundError, BadRecordError) as error:
                if skip is None:
                    raise
                path = resolve_path(row.get(column), manifest.base_dir)
                skip.add(number, column, path, str(error).split(f"{path}: ", 1)[-1])
                return None
        return values

    for start in range(0, len(manifest), batch_size):
        examples = [(number, example(row, number)) for row, number in
                    zip(manifest.rows[start : start + batch_size], manifest.row_numbers[start : start + batch_size])]
        examples = [(number, values) for number, values in examples if values is not None]
        if examples:
            numbers = [number for number, _ in examples]
            raw = {m: [values[m] for _, values in examples] for m in inputs}
            yield numbers, {m: padded(v) if inputs[m].get("list") else v for m, v in raw.items()}


def _check_policy(on_bad_record):
    if on_bad_record not in ("raise", "skip"):
        raise ValueError(f"on_bad_record must be 'raise' or 'skip'. Received: {on_bad_record!r}")


def predict(model_path, source, output=None, columns=None, batch_size=64, on_bad_record="raise", report=None):
    """Predicts every row of a manifest.

    Both paths post-process with the same code (`mmkeras.postprocess`), so they give the same
    labels and columns.

    Args:
        model_path: a run directory or preset (`MultimodalTask.from_preset`), a SavedModel
            folder / export base (uses `serving_default` on raw bytes, as TF Serving does), or a
            TFLite export (`model.tflite` or its folder: files decoded by the Preprocessor saved
            beside it, then the TFLite model one example at a time).
        source: manifest (CSV/JSONL path, DataFrame, list of dicts); labels are not needed.
        output: CSV path to write: `row`, then per head `label` and one `prob_<class>` column
            per class, or `value` for regression (prefixed by the head's name when there are
            several heads).
        columns: dict. Modality → column name, where this manifest's differ from the columns the
            model was trained on (which every path knows: the run's Preprocessor, the export's
            inputs.json).
        batch_size: int.
        on_bad_record: "raise" (default): the first row that cannot be read or decoded raises,
            naming row, column, file and reason. "skip": such rows get no prediction; they are
            listed in `report`, or printed to stderr when no report is given.
        report: `BadRecordReport` that collects the skipped rows.

    Returns:
        list of dict, one per predicted row (its `row` is the manifest's row number).
    """
    _check_policy(on_bad_record)
    columns = columns or {}
    manifest = read_manifest(source)
    given_report = report is not None
    report = report if given_report else BadRecordReport(manifest.source)
    skip = report if on_bad_record == "skip" else None
    results = []
    if is_saved_model(model_path):
        restored, heads = load_saved_model(model_path)
        signature = restored.signatures["serving_default"]
        inputs = load_served_inputs(model_path, restored)
        table = _input_columns(manifest, inputs, columns)
        for numbers, raw in _raw_batches(manifest, inputs, table, batch_size, skip):
            try:
                out = _call(signature, raw)
            except tf.errors.InvalidArgumentError as error:
                if skip is None:
                    number, column, reason = _served_fault(signature, numbers, raw, table)
                    where = f"{manifest.source}, " + (f"row {number}" if number is not None else
                                                      f"rows {numbers[0]}-{numbers[-1]}")
                    raise BadRecordError(where + (f", column {column}" if column else "") + f": {reason}") from error
                results.extend(_one_by_one(signature, numbers, raw, table, heads, skip))
                continue
            results.extend(result_rows(numbers, out, heads))
    elif is_tflite(model_path):
        lite = TFLiteModel(model_path)
        dataset = make_dataset(manifest, lite.preprocessor(), columns=columns, batch_size=batch_size,
                               with_labels=False, on_bad_record=on_bad_record, report=report)
        outputs = {}
        with decode_errors_located(dataset):
            for features in dataset:
                for name, value in lite.predict({k: v.numpy() for k, v in features.items()}).items():
                    outputs.setdefault(name, []).append(value)
        outputs = {name: np.concatenate(values) for name, values in outputs.items()}
        out = {k: v.numpy() for k, v in postprocess(outputs, lite.heads).items()}
        kept = [number for number in manifest.row_numbers if number not in set(report.rows)]
        results.extend(result_rows(kept, out, lite.heads))
    else:
        task = MultimodalTask.from_preset(model_path)
        results.extend(task.predict(manifest, batch_size=batch_size, columns=columns, on_bad_record=on_bad_record,
                                    report=report))
    if len(report) and not given_report:
        print(f"mmkeras predict: {report.summary(limit=10)}", file=sys.stderr)
    if output:
        _write_csv(output, results)
    return results


def _call(signature, raw):
    out = signature(**{m: tf.constant(v, tf.string) for m, v in raw.items()})
    return {k: v.numpy() for k, v in out.items()}


def _served_fault(signature, numbers, raw, table):
    """The served model refused a batch: (row number, column, reason) of its first bad example.

    A corrupt image body fails inside TensorFlow's decoder, which names no input; the example is
    then asked again with one input left empty at a time to tell which one fails.
    """
    for i, number in enumerate(numbers):
        one = {m: v[i : i + 1] for m, v in raw.items()}
        try:
            _call(signature, one)
            continue
        except tf.errors.InvalidArgumentError as error:
            message = error_text(error).replace(" (example 0 of the batch)", "")
        name = message.split(":", 1)[0][len("Input "):] if message.startswith("Input ") else None
        if name is None:
            for m in one:
                try:
                    _call(signature, {**one, m: [[b""]] if isinstance(one[m][0], list) else [b""]})
                except tf.errors.InvalidArgumentError:
                    continue
                name, message = m, f"Input {m}: could not be decoded ({message})"
                break
        return number, table.get(name, name) if name else None, message
    return None, None, "the served model refused the batch"


def _one_by_one(signature, numbers, raw, table, heads, report):
    """Predicts a refused batch one example at a time, listing the examples the model refuses."""
    results = []
    for i, number in enumerate(numbers):
        one = {m: v[i : i + 1] for m, v in raw.items()}
        try:
            out = _call(signature, one)
        except tf.errors.InvalidArgumentError:
            _, column, reason = _served_fault(signature, [number], one, table)
            report.add(number, column or "", "", reason)
            continue
        results.extend(result_rows([number], out, heads))
    return results


def _write_csv(path, rows):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fields = list(rows[0]) if rows else ["row", "label"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)
