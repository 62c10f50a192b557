"""The `mmkeras` command's launcher: parses the command line before anything imports TensorFlow.

It lives outside the `mmkeras` package because importing any `mmkeras.*` module runs the package's
`__init__`, which imports TensorFlow and Keras (and registers mmkeras' layers with Keras, so that
`import mmkeras` is enough to load a saved `.keras` file). `--help`, `--version` and usage errors
are answered from here, in a fraction of TensorFlow's import time; a command then imports
`mmkeras.cli`, which runs it.
"""

import argparse
import contextlib
import os
import re
import sys
import threading

PROG = "mmkeras"


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """"(default: ...)" after an option's help, where the default is a value (not None or off)."""

    def _get_help_string(self, action):
        if action.required or action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _column_mapping(text):
    """"text=caption,image=photo" → {"text": "caption", "image": "photo"} (argparse type)."""
    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise argparse.ArgumentTypeError(f"expected NAME=COLUMN pairs separated by commas, e.g. text=caption. "
                                         f"Received: {text!r}")
    return {name.strip(): column.strip() for name, column in pairs}


def _row_numbers(text):
    """"3,7,12" → [3, 7, 12] (argparse type)."""
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        numbers = []
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError(f"expected row numbers from 1 separated by commas, e.g. 1,5,9. "
                                         f"Received: {text!r}")
    return numbers


def _counting(minimum):
    """argparse type: an integer of at least `minimum`."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}. Received: {text!r}")
        return value
    return parse


_positive_int, _non_negative_int = _counting(1), _counting(0)


def _installed_version():
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version

    try:
        return version("mmkeras")
    except PackageNotFoundError:  # run from a source folder that was never installed
        return "unknown (not installed)"


def build_parser():
    parser = argparse.ArgumentParser(prog=PROG, description="Multimodal Keras models from files to TF Serving.")
    parser.add_argument("--version", action="version", version=f"{PROG} {_installed_version()}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show TensorFlow's own log lines (its start-up lines, GPU search and oneDNN notes "
                             "are hidden by default)")
    sub = parser.add_subparsers(dest="command", required=True)
    formatter = _ShowDefaults

    demo = sub.add_parser("demo", formatter_class=formatter, help="embedded data → train → evaluate → export → query")
    demo.add_argument("--workdir", default="mmkeras_demo", help="folder for the data, run and export")
    demo.add_argument("--epochs", type=int, default=None, help="override the demo's epochs (for quick checks)")
    demo.add_argument("--examples", type=int, default=None, help="use only this many examples (for quick checks)")

    train = sub.add_parser("train", formatter_class=formatter, help="train from a YAML config")
    train.add_argument("--config", required=True, help="YAML config: data, modalities, fusion, training")
    train.add_argument("--output", required=True, help="run directory")
    train.add_argument("--overwrite", action="store_true", help="train again in a directory holding a finished run")

    distill = sub.add_parser("distill", formatter_class=formatter,
                             help="train a smaller student on a trained run's softened outputs")
    distill.add_argument("--teacher", required=True, help="the teacher's run directory")
    distill.add_argument("--config", required=True, help="the student's config (data defaults to the teacher's)")
    distill.add_argument("--output", required=True, help="the student's run directory")
    distill.add_argument("--temperature", type=float, default=2.0, help="softening temperature T")
    distill.add_argument("--alpha", type=float, default=0.5, help="weight of the teacher's term (1 - alpha: the labels')")
    distill.add_argument("--overwrite", action="store_true", help="train again in a directory holding a finished run")

    tune = sub.add_parser("tune", formatter_class=formatter, help="KerasTuner search over the config's tuning: ranges")
    tune.add_argument("--config", required=True, help="YAML config with a tuning: block of ranges")
    tune.add_argument("--output", required=True, help="search folder (a search there is resumed)")
    tune.add_argument("--trials", type=int, default=10, help="trials in all (bayesian, random)")
    tune.add_argument("--max-epochs", type=int, default=None, help="epochs per trial at most (default: training.epochs)")
    tune.add_argument("--overwrite", action="store_true", help="start afresh instead of resuming")

    evaluate = sub.add_parser("evaluate", formatter_class=formatter,
                              help="classification report, confusion matrix, modality ablation")
    evaluate.add_argument("--run", required=True, help="run directory (mmkeras train's --output)")
    evaluate.add_argument("--data", required=True, help="labelled manifest")
    evaluate.add_argument("--output", default=None, help="default: RUN/evaluation")
    evaluate.add_argument("--on-bad-record", choices=["raise", "skip"], default="raise",
                          help="a bad row stops the command (raise), or is left out, counted and listed (skip)")

    explain = sub.add_parser("explain", formatter_class=formatter,
                             help="which modality each prediction rests on (exact Shapley values), and which "
                                  "part of each (Integrated Gradients)")
    explain.add_argument("--run", required=True, help="run directory (mmkeras train's --output)")
    explain.add_argument("--data", required=True, help="manifest (CSV/JSONL) of the rows to explain; labels not needed")
    explain.add_argument("--output", default=None, help="default: RUN/explanations")
    explain.add_argument("--rows", type=_row_numbers, default=None, metavar="N,M,...",
                         help="manifest row numbers to explain (1 is the first row; default: every row)")
    explain.add_argument("--on-bad-record", choices=["raise", "skip"], default="raise",
                         help="a bad row stops the command (raise), or is left out and listed (skip)")
    explain.add_argument("--steps", type=_positive_int, default=32,
                         help="Integrated Gradients steps (more: a smaller completeness error, slower)")
    explain.add_argument("--plots", type=_non_negative_int, default=8, metavar="N",
                         help="draw the attributions of the first N examples (one PNG each)")
    explain.add_argument("--modalities-only", action="store_true",
                         help="only the modality Shapley values, no attributions inside the modalities")

    export = sub.add_parser("export", formatter_class=formatter, help="SavedModel for TF Serving, or a TFLite model")
    export.add_argument("--run", required=True, help="run directory (mmkeras train's --output)")
    export.add_argument("--output", required=True, help="export base, e.g. saved_models/NAME")
    export.add_argument("--version", type=int, default=None, help="default: highest existing + 1")
    export.add_argument("--format", choices=["savedmodel", "tflite"], default="savedmodel",
                        help="savedmodel (raw bytes in, TF Serving) or tflite (decoded tensors in, one example a call)")
    export.add_argument("--quantize", choices=["none", "dynamic", "float16", "int8"], default="none",
                        help="tflite only: int8 calibrates on examples of the run's training manifest")
    export.add_argument("--representative-examples", type=int, default=200,
                        help="tflite int8: training examples used to calibrate activations")

    predict = sub.add_parser("predict", formatter_class=formatter, help="predict a manifest with a run or a SavedModel")
    predict.add_argument("--model", required=True,
                         help="run directory, SavedModel folder, or TFLite export (model.tflite or its folder)")
    predict.add_argument("--data", required=True, help="manifest (CSV/JSONL) of the rows to predict; labels not needed")
    predict.add_argument("--output", default=None, help="CSV to write (default: print JSON lines)")
    predict.add_argument("--columns", type=_column_mapping, default=None, metavar="NAME=COLUMN,...",
                         help="modality → manifest column where this manifest differs from the one trained on "
                              "(e.g. text=caption,image=photo)")
    predict.add_argument("--on-bad-record", choices=["raise", "skip"], default="raise",
                         help="a bad row stops the command (raise), or gets no prediction and is listed (skip)")

    prepare = sub.add_parser("prepare", formatter_class=formatter, help="write a manifest's files into sharded TFRecords")
    prepare.add_argument("--config", required=True, help="config whose modalities/columns describe the data")
    prepare.add_argument("--data", required=True, help="manifest (CSV/JSONL) whose files to store")
    prepare.add_argument("--output", required=True, help="folder of the shards (an earlier prepare's are replaced)")
    prepare.add_argument("--shards", type=int, default=8, help="TFRecord files to spread the records over")
    return parser


def _check_combinations(parser, args):
    """Usage errors argparse cannot see by itself: exit 2 before TensorFlow is imported."""
    if args.command == "export" and args.format != "tflite" and args.quantize != "none":
        parser.error(f"export: --quantize {args.quantize} applies to --format tflite only")


# absl's line format: severity letter, MMDD, a time, thread, file:line] message.
_NATIVE_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+\s+\S+:\d+\]")
_NATIVE_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# Errors TensorFlow logs that are not failures of the command: looking for a GPU on a machine that
# has none, and oneDNN falling back to its default kernels for a type the CPU lacks instructions for.
_BENIGN_ERRORS = ("failed call to cuInit", "Unable to register cu", "Could not find cuda drivers",
                  "oneDNN supports")


def _is_chatter(line):
    if line.strip() == _NATIVE_BANNER:
        return True
    match = _NATIVE_LINE.match(line)
    if not match:
        return False
    return match.group(1) in "IW" or any(text in line for text in _BENIGN_ERRORS)


def _may_become_chatter(tail):
    """A line not finished yet that could still turn out to be one of TensorFlow's log lines."""
    return bool(re.match(r"^[IWEF]\d{0,4}( |$)", tail)) or _NATIVE_BANNER.startswith(tail[:len(_NATIVE_BANNER)])


@contextlib.contextmanager
def _quiet_native_logs():
    """Passes what is written to file descriptor 2 (where TensorFlow's C++ code logs, and Python's
    stderr) through a filter that drops TensorFlow's info and warning lines and its benign errors.

    absl writes TensorFlow's start-up lines before `TF_CPP_MIN_LOG_LEVEL` takes effect, and
    TensorFlow logs the failed GPU search at error level, so neither can be switched off; a line
    that is not one of them passes through unchanged, at once.
    """
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        tail = b""
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            *lines, tail = (tail + chunk).split(b"\n")
            kept = [line + b"\n" for line in lines if not _is_chatter(line.decode("utf-8", "replace"))]
            if tail and not _may_become_chatter(tail.decode("utf-8", "replace")):
                kept.append(tail)
                tail = b""
            if kept:
                os.write(real, b"".join(kept))
        if tail and not _is_chatter(tail.decode("utf-8", "replace")):
            os.write(real, tail)
        os.close(read_end)

    reader = threading.Thread(target=pump, name="mmkeras-stderr-filter", daemon=True)
    reader.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # closes the pipe's last writer: the reader drains it and stops
        reader.join(timeout=5)
        os.close(real)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_combinations(parser, args)
    if args.verbose:
        from mmkeras import cli

        return cli.run(args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _quiet_native_logs():
        from mmkeras import cli

        return cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
