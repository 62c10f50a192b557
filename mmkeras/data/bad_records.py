"""The record of what a dataset skipped, and why."""

import csv
import threading

import keras
import tensorflow as tf


_CONTEXT_LINES = ("Graph execution error", "Detected at node", "[[", "File ", "<stack traces unavailable>")


def error_text(error):
    """What a TensorFlow error says went wrong, without the graph context around it.

    The text of a pipeline assertion (`assertion failed: [...]`) when there is one, else the
    decoder's own words ("Invalid PNG data, size 852"), without `{{function_node ...}}`, the
    iterator's path or `[[node ...]]`.

    Example:

    >>> import tensorflow as tf
    >>> error_text(tf.errors.InvalidArgumentError(None, None, "Graph execution error:\\n\\n"
    ...            "assertion failed: [train.csv, row 5: not an image file] [[{{node Assert}}]]"))
    'train.csv, row 5: not an image file'
    """
    text = getattr(error, "message", None) or str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "assertion failed: [" in line:
            message = line.split("assertion failed: [", 1)[1].split(" [[", 1)[0].rstrip()
            return message[:-1] if message.endswith("]") else message
    for line in lines:
        if line.startswith(_CONTEXT_LINES):
            continue
        line = line.split(" [[", 1)[0]
        if line.startswith("{{"):
            line = line.split("}}", 1)[-1].strip()
        if "transformation with iterator: " in line:
            line = line.split("transformation with iterator: ", 1)[1].split(": ", 1)[-1]
        return line
    return lines[0] if lines else type(error).__name__


def first_flagged(values, flagged):
    """The first of `values` (a `[batch]` tensor) where `flagged` is True, as a scalar string.

    "" when none is flagged (also for an empty batch).
    """
    first = tf.boolean_mask(values, flagged)[:1]
    if first.dtype != tf.string:
        first = tf.strings.as_string(first)
    return tf.strings.reduce_join(first)


class BadRecordReport(keras.callbacks.Callback):
    """Rows a dataset dropped under `on_bad_record="skip"`, with the column, file and reason.

    It is also a Keras callback: passed to `model.fit(callbacks=[...])` it prints the summary
    when training starts, and again after an epoch if more records were added.

    Example:

    >>> report = BadRecordReport("train.csv")
    >>> report.add(3, "image", "cat.png", "not an image file")
    >>> print(report.summary())
    train.csv: 1 record skipped
      row 3, column image, file cat.png: not an image file
    """

    def __init__(self, source=""):
        super().__init__()
        self.source = source
        self.records = {}
        self._reported = 0
        self._lock = threading.Lock()

    def add(self, row, column, path, reason):
        key = (int(row), column)
        with self._lock:
            self.records.setdefault(key, (path, reason))

    @property
    def rows(self):
        """Numbers of the rows skipped, sorted."""
        return sorted({row for row, _ in self.records})

    def __len__(self):
        return len(self.rows)

    def summary(self, limit=20):
        count = len(self)
        lines = [f"{self.source}: {count} record{'s' if count != 1 else ''} skipped"]
        for (row, column), (path, reason) in sorted(self.records.items())[:limit]:
            lines.append(f"  row {row}, column {column}" + (f", file {path}" if path else "") + f": {reason}")
        if len(self.records) > limit:
            lines.append(f"  ... and {len(self.records) - limit} more (see to_csv())")
        return "\n".join(lines)

    def to_csv(self, path):
        """Writes row, column, file, reason for every skipped record."""
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["row", "column", "file", "reason"])
            for (row, column), (file, reason) in sorted(self.records.items()):
                writer.writerow([row, column, file, reason])

    def _print_new(self, when):
        if len(self.records) > self._reported:
            new = len(self.records) - self._reported
            self._reported = len(self.records)
            print(f"mmkeras: {new} bad record(s) skipped{when}; " + self.summary(limit=5))

    def on_train_begin(self, logs=None):
        self._print_new("")

    def on_epoch_end(self, epoch, logs=None):
        self._print_new(f" in epoch {epoch + 1}")
