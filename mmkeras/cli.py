"""The `mmkeras` command line: demo, train, distill, tune, evaluate, export, predict, prepare."""

import argparse
import json
import os
import sys


def _train(args):
    from mmkeras.distributed import train

    _, _, history = train(args.config, args.output, overwrite=args.overwrite)
    epochs = len(history.get("loss", []))
    print(f"trained {epochs} epoch(s); run directory: {args.output}")
    return 0


def _evaluate(args):
    from mmkeras.evaluation import format_ablation
    from mmkeras.task import MultimodalTask

    task = MultimodalTask.from_preset(args.run)
    output = args.output or os.path.join(args.run, "evaluation")
    result = task.evaluate(args.data, output_dir=output, on_bad_record=args.on_bad_record)
    print(result["report_text"])
    print(format_ablation(result["ablation"]))
    print()
    print(format_ablation(result["robustness"]))
    if result["skipped_records"]:
        print(f"skipped {result['skipped_records']} bad record(s): see {output}/skipped_records.csv")
    print(f"metrics, report, confusion matrix and robustness plot written to {output}")
    return 0


def _distill(args):
    from mmkeras.distillation import distill

    _, _, history = distill(args.teacher, args.config, args.output, temperature=args.temperature, alpha=args.alpha,
                            overwrite=args.overwrite)
    print(f"student trained from {args.teacher} ({len(history.get('loss', []))} epochs): {args.output}")
    return 0


def _tune(args):
    from mmkeras.tuning import BEST_CONFIG
    from mmkeras.tuning import TRIALS_FILE
    from mmkeras.tuning import tune

    _, rows = tune(args.config, args.output, trials=args.trials, max_epochs=args.max_epochs, overwrite=args.overwrite)
    best = rows[0] if rows else {}
    print(f"{len(rows)} trial(s); best score {best.get('score')}: "
          + ", ".join(f"{k}={v}" for k, v in best.items() if k not in ("trial", "status", "score")))
    print(f"best config: {os.path.join(args.output, BEST_CONFIG)} (mmkeras train --config it); "
          f"trials: {os.path.join(args.output, TRIALS_FILE)}")
    return 0


def _export(args):
    from mmkeras.task import MultimodalTask

    if args.format != "tflite" and args.quantize != "none":
        raise ValueError(f"--quantize {args.quantize} applies to --format tflite only")
    task = MultimodalTask.from_preset(args.run)
    if args.format == "tflite":
        path = task.export_tflite(args.output, quantize=args.quantize,
                                  representative_examples=args.representative_examples)
        print(f"TFLite model written: {path} (inputs.json, heads.json and preprocessor/ beside it)")
        return 0
    path = task.export(args.output, version=args.version)
    print(f"SavedModel written and checked: {path}")
    return 0


def _predict(args):
    from mmkeras.predict import predict

    rows = predict(args.model, args.data, output=args.output, columns=args.columns)
    if args.output:
        print(f"{len(rows)} prediction(s) written to {args.output}")
    else:
        for row in rows:
            print(json.dumps(row))
    return 0


def _prepare(args):
    from mmkeras.config import load_config
    from mmkeras.data import write_tfrecords
    from mmkeras.recipe import new_preprocessor

    config = load_config(args.config)
    paths = write_tfrecords(args.data, args.output, new_preprocessor(config),
                            num_shards=args.shards, on_bad_record=config["data"]["on_bad_record"])
    print(f"wrote {len(paths)} TFRecord shard(s) to {args.output}")
    return 0


def _demo(args):
    from mmkeras.demo import run_demo

    run_demo(args.workdir, epochs=args.epochs, examples=args.examples)
    return 0


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """"(default: ...)" after an option's help, where the default is a value (not None or off)."""

    def _get_help_string(self, action):
        if action.required or action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def build_parser():
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version

    try:
        installed = version("mmkeras")
    except PackageNotFoundError:  # run from a source folder that was never installed
        installed = "unknown (not installed)"
    parser = argparse.ArgumentParser(prog="mmkeras", description="Multimodal Keras models from files to TF Serving.")
    parser.add_argument("--version", action="version", version=f"mmkeras {installed}")
    sub = parser.add_subparsers(dest="command", required=True)
    formatter = _ShowDefaults

    demo = sub.add_parser("demo", formatter_class=formatter, help="embedded data → train → evaluate → export → query")
    demo.add_argument("--workdir", default="mmkeras_demo", help="folder for the data, run and export")
    demo.add_argument("--epochs", type=int, default=None, help="override the demo's epochs (for quick checks)")
    demo.add_argument("--examples", type=int, default=None, help="use only this many examples (for quick checks)")
    demo.set_defaults(func=_demo)

    train = sub.add_parser("train", formatter_class=formatter, help="train from a YAML config")
    train.add_argument("--config", required=True, help="YAML config: data, modalities, fusion, training")
    train.add_argument("--output", required=True, help="run directory")
    train.add_argument("--overwrite", action="store_true", help="train again in a directory holding a finished run")
    train.set_defaults(func=_train)

    distill = sub.add_parser("distill", formatter_class=formatter, help="train a smaller student on a trained run's softened outputs")
    distill.add_argument("--teacher", required=True, help="the teacher's run directory")
    distill.add_argument("--config", required=True, help="the student's config (data defaults to the teacher's)")
    distill.add_argument("--output", required=True, help="the student's run directory")
    distill.add_argument("--temperature", type=float, default=2.0, help="softening temperature T")
    distill.add_argument("--alpha", type=float, default=0.5, help="weight of the teacher's term (1 - alpha: the labels')")
    distill.add_argument("--overwrite", action="store_true", help="train again in a directory holding a finished run")
    distill.set_defaults(func=_distill)

    tune = sub.add_parser("tune", formatter_class=formatter, help="KerasTuner search over the config's tuning: ranges")
    tune.add_argument("--config", required=True, help="YAML config with a tuning: block of ranges")
    tune.add_argument("--output", required=True, help="search folder (a search there is resumed)")
    tune.add_argument("--trials", type=int, default=10, help="trials in all (bayesian, random)")
    tune.add_argument("--max-epochs", type=int, default=None, help="epochs per trial at most (default: training.epochs)")
    tune.add_argument("--overwrite", action="store_true", help="start afresh instead of resuming")
    tune.set_defaults(func=_tune)

    evaluate = sub.add_parser("evaluate", formatter_class=formatter, help="classification report, confusion matrix, modality ablation")
    evaluate.add_argument("--run", required=True, help="run directory (mmkeras train's --output)")
    evaluate.add_argument("--data", required=True, help="labelled manifest")
    evaluate.add_argument("--output", default=None, help="default: RUN/evaluation")
    evaluate.add_argument("--on-bad-record", choices=["raise", "skip"], default="raise",
                          help="a bad row stops the command (raise), or is left out, counted and listed (skip)")
    evaluate.set_defaults(func=_evaluate)

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
    export.set_defaults(func=_export)

    predict = sub.add_parser("predict", formatter_class=formatter, help="predict a manifest with a run or a SavedModel")
    predict.add_argument("--model", required=True, help="run directory, SavedModel folder, or TFLite export (model.tflite or its folder)")
    predict.add_argument("--data", required=True, help="manifest (CSV/JSONL) of the rows to predict; labels not needed")
    predict.add_argument("--output", default=None, help="CSV to write (default: print JSON lines)")
    predict.add_argument("--columns", type=_column_mapping, default=None, metavar="NAME=COLUMN,...",
                         help="modality → manifest column where this manifest differs from the one trained on "
                              "(e.g. text=caption,image=photo)")
    predict.set_defaults(func=_predict)

    prepare = sub.add_parser("prepare", formatter_class=formatter, help="write a manifest's files into sharded TFRecords")
    prepare.add_argument("--config", required=True, help="config whose modalities/columns describe the data")
    prepare.add_argument("--data", required=True, help="manifest (CSV/JSONL) whose files to store")
    prepare.add_argument("--output", required=True, help="folder of the shards (an earlier prepare's are replaced)")
    prepare.add_argument("--shards", type=int, default=8, help="TFRecord files to spread the records over")
    prepare.set_defaults(func=_prepare)
    return parser


def _column_mapping(text):
    """"text=caption,image=photo" → {"text": "caption", "image": "photo"} (argparse type)."""
    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise argparse.ArgumentTypeError(f"expected NAME=COLUMN pairs separated by commas, e.g. text=caption. "
                                         f"Received: {text!r}")
    return {name.strip(): column.strip() for name, column in pairs}


def _expected_errors():
    """Failures that come from the user's input or files: one message, exit status 2."""
    import tensorflow as tf
    import yaml

    # ImportError: an optional extra that is not installed (its message names the pip command).
    return (FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError, ValueError, ImportError,
            yaml.YAMLError, tf.errors.InvalidArgumentError, tf.errors.NotFoundError)


def _message(error):
    """The located part of an error: TensorFlow wraps a pipeline's assertion in graph context."""
    import tensorflow as tf

    from mmkeras.data.bad_records import error_text

    return error_text(error) if isinstance(error, tf.errors.OpError) else str(error)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except _expected_errors() as error:
        print(f"mmkeras {args.command}: error: {_message(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's status for SIGINT, and what to do next
        resume = {"train": "the same command resumes from the last finished epoch",
                  "distill": "the same command resumes from the last finished epoch",
                  "tune": "the same command resumes the search"}.get(args.command)
        print(f"mmkeras {args.command}: interrupted" + (f"; {resume}" if resume else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
