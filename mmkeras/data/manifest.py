"""Manifests: the user's table of examples (CSV, JSONL, a pandas DataFrame or a list of dicts)."""

import csv
import dataclasses
import json
import os
import warnings

import numpy as np

from mmkeras import constants

#: Column that holds the label unless `columns` says otherwise.
LABEL_COLUMN = "label"
#: A cell that is a number: decimal, optionally signed, with an optional exponent ("-1.5e3").
#: The one definition for regression labels, tabular numbers and sensor CSV values.
NUMBER_PATTERN = r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"


class BadRecordError(ValueError):
    """A record of the manifest that cannot be used; the message names row, column and file."""


@dataclasses.dataclass
class Manifest:
    """Rows of a manifest with where they came from.

    Attributes:
        rows: list of dict. One dict per example, cells as read.
        base_dir: str. Folder relative file paths resolve from.
        source: str. Shown in error messages (the file name, or "DataFrame").
        row_numbers: list of int. Each row's 1-based number in the source (for messages).
    """

    rows: list
    base_dir: str
    source: str
    row_numbers: list

    def subset(self, indices):
        return Manifest([self.rows[i] for i in indices], self.base_dir, self.source,
                        [self.row_numbers[i] for i in indices])

    def __len__(self):
        return len(self.rows)

    @property
    def columns(self):
        """Every column named in some row, in the order first seen."""
        return list(dict.fromkeys(column for row in self.rows for column in row))


def read_manifest(source, base_dir=None):
    """Reads a manifest into a `Manifest`.

    Args:
        source: path of a `.csv`, `.jsonl` (or `.json` holding a list) file, a pandas DataFrame,
            a list of dicts (one per row), a dict of columns (column name → list of cells, all of
            one length), or a `Manifest` (returned as is).
        base_dir: str. Folder that relative paths resolve from; default: the manifest's folder
            (the working directory for in-memory tables).

    Example:

    >>> read_manifest([{"text": "hi", "label": "a"}]).rows
    [{'text': 'hi', 'label': 'a'}]
    """
    if isinstance(source, Manifest):
        return source
    if hasattr(source, "to_dict") and hasattr(source, "columns"):  # pandas DataFrame
        rows = source.to_dict("records")
        return Manifest(rows, base_dir or os.getcwd(), "DataFrame", list(range(1, len(rows) + 1)))
    if isinstance(source, dict):
        for column, cells in source.items():
            if isinstance(cells, (str, bytes)) or not hasattr(cells, "__len__"):
                raise ValueError(f"A manifest given as a dict maps each column to a list of cells. Received: column "
                                 f"{column!r} = {str(cells)[:60]!r} (for one row, wrap it: [{{...}}])")
        lengths = {column: len(cells) for column, cells in source.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"A manifest given as a dict of columns needs columns of one length. Received: lengths "
                             f"{lengths}")
        source = [dict(zip(source, cells)) for cells in zip(*source.values())]
    if isinstance(source, (list, tuple)):
        return Manifest(list(source), base_dir or os.getcwd(), "rows", list(range(1, len(source) + 1)))
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Manifest not found: {path!r}")
    base = base_dir or os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    if path.endswith(".csv") or path.endswith(".tsv"):
        rows = _read_csv(path, name, "\t" if path.endswith(".tsv") else ",")
        return Manifest(rows, base, name, list(range(1, len(rows) + 1)))
    if path.endswith(".jsonl") or path.endswith(".json"):
        _check_utf8(path, name)
        with open(path, encoding="utf-8") as f:
            if path.endswith(".json"):
                rows = json.load(f)
            else:
                rows = []
                for line_number, line in enumerate(f, start=1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as error:
                            raise BadRecordError(f"{name}, row {line_number}: not valid JSON ({error})") from None
        for i, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                raise BadRecordError(f"{name}, row {i}: expected a JSON object, got {type(row).__name__}")
        return Manifest(rows, base, name, list(range(1, len(rows) + 1)))
    raise ValueError(f"Expected a .csv, .tsv, .jsonl or .json manifest. Received: {path!r}")


def _check_utf8(path, name):
    """Raises BadRecordError naming the line and column of the first byte that is not UTF-8."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise BadRecordError(
            f"{name}, line {line}, column {column}: byte 0x{data[error.start]:02x} is not UTF-8; save the manifest "
            "as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def _read_csv(path, name, delimiter):
    """A CSV's rows as dicts; a row with more or fewer cells than the header is an error naming it."""
    _check_utf8(path, name)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        header = reader.fieldnames or []
        repeated = sorted({column for column in header if header.count(column) > 1})
        if repeated:  # DictReader would keep the last cell of each and drop the others, silently
            raise BadRecordError(f"{name}, header: column(s) {repeated} named more than once ({header}); "
                                 "give every column its own name")
        rows = []
        for number, row in enumerate(reader, start=1):
            if None in row:  # DictReader puts surplus cells under the key None
                raise BadRecordError(
                    f"{name}, row {number}: {len(reader.fieldnames) + len(row[None])} cells but the header has "
                    f"{len(reader.fieldnames)} ({reader.fieldnames}); quote cells that contain '{delimiter}'"
                )
            if any(value is None for value in row.values()):  # DictReader fills missing cells with None
                cells = sum(value is not None for value in row.values())
                raise BadRecordError(
                    f"{name}, row {number}: {cells} cells but the header has {len(reader.fieldnames)} "
                    f"({reader.fieldnames}); leave a cell empty with a delimiter, e.g. 'text,,label'"
                )
            rows.append(row)
    return rows


def cell_text(value):
    """A cell as a string: missing, None and NaN become ""."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)


def resolve_path(cell, base_dir):
    """A file cell resolved against `base_dir` ("" stays "": the modality is missing)."""
    text = cell_text(cell).strip()
    if not text:
        return ""
    return text if os.path.isabs(text) else os.path.normpath(os.path.join(base_dir, text))


def default_columns(modalities):
    """Modality name → column name, plus the label column: by default each is its own name."""
    return {**{m: m for m in modalities}, constants.DEFAULT_HEAD: LABEL_COLUMN}


def stratified_split(source, validation_fraction=0.2, label_column=LABEL_COLUMN, seed=0):
    """Splits one manifest into train and validation manifests with the same label proportions.

    Uses scikit-learn's `train_test_split(stratify=...)`. When a class is too small to stratify
    it falls back to a plain random split and warns, naming the classes.

    Example:

    >>> rows = [{"label": str(i % 2)} for i in range(10)]
    >>> train, val = stratified_split(rows, 0.2)
    >>> len(train), len(val), sorted(r["label"] for r in val.rows)
    (8, 2, ['0', '1'])
    """
    from sklearn.model_selection import train_test_split

    manifest = read_manifest(source)
    if len(manifest) < 2:
        raise ValueError(f"{manifest.source}: {len(manifest)} row(s); a validation split of {validation_fraction} needs "
                         "at least 2 (one to train on, one to validate), and a useful one many more. Add rows, or "
                         "set data.validation to a manifest of its own")
    indices = np.arange(len(manifest))
    labels = [cell_text(row.get(label_column)) for row in manifest.rows]
    try:
        train, val = train_test_split(indices, test_size=validation_fraction, random_state=seed, stratify=labels)
    except ValueError as error:  # e.g. a class with a single example cannot be stratified
        counts = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        small = sorted(label for label, n in counts.items() if n < 2)
        warnings.warn(
            f"{manifest.source}: could not stratify the validation split ({error}); classes with fewer than "
            f"2 examples: {small[:10]}{' ...' if len(small) > 10 else ''}. Falling back to a random split, "
            "so validation may miss some classes.",
            stacklevel=2,
        )
        train, val = train_test_split(indices, test_size=validation_fraction, random_state=seed)
    return manifest.subset(sorted(train)), manifest.subset(sorted(val))
