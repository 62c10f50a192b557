"""The `mmkeras` commands (demo, train, distill, tune, evaluate, explain, export, predict, prepare), run on
arguments that `mmkeras_cli` parsed before TensorFlow was imported."""

import errno
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
    print("What each modality contributes: accuracy with it (or a pair) marked missing")
    print(format_ablation(result["ablation"]))
    print()
    print("Robustness: accuracy with one modality's input corrupted")
    print(format_ablation(result["robustness"]))
    _print_files(result["files"], result["skipped_records"])
    return 0


def _print_files(files, skipped):
    """The closing lines of a command that writes a folder: skipped records, then each file and its path."""
    if skipped:
        print(f"skipped {skipped} bad record(s), listed in the skipped records file below")
    print()
    for what, path in files.items():
        print(f"{what + ':':<20}{path}")


def _explain(args):
    from mmkeras.data import BadRecordReport
    from mmkeras.explain import format_inputs
    from mmkeras.explain import format_summary
    from mmkeras.task import MultimodalTask

    task = MultimodalTask.from_preset(args.run)
    output = args.output or os.path.join(args.run, "explanations")
    report = BadRecordReport(args.data)
    result = task.explain(args.data, output_dir=output, rows=args.rows, on_bad_record=args.on_bad_record,
                          report=report, inputs=not args.modalities_only, steps=args.steps, plotted=args.plots,
                          progress=lambda text: print(f"mmkeras explain: {text}", file=sys.stderr, flush=True))
    print(format_summary(result["summary"]))
    if result.get("inputs"):
        print(format_inputs(result["inputs"], result["rows"], limit=3))
    _print_files(result["files"], len(report))
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
    from mmkeras.data import BadRecordReport
    from mmkeras.predict import predict

    report = BadRecordReport(args.data)
    rows = predict(args.model, args.data, output=args.output, columns=args.columns,
                   on_bad_record=args.on_bad_record, report=report)
    if args.output:
        print(f"{len(rows)} prediction(s) written to {args.output}")
    else:
        for row in rows:
            print(json.dumps(row))
    if len(report):
        listed = ""
        if args.output:
            listed = f"{os.path.splitext(args.output)[0]}_skipped.csv"
            report.to_csv(listed)
            listed = f"; listed in {listed}"
        print(f"mmkeras predict: skipped {len(report)} bad record(s) with no prediction{listed}\n"
              + report.summary(limit=10), file=sys.stderr)
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


def _expected_errors():
    """Failures that come from the user's input or files: one message, exit status 2."""
    import tensorflow as tf
    import yaml

    from mmkeras.layout import StorageError

    # ImportError: an optional extra that is not installed (its message names the pip command).
    return (FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError, ValueError, ImportError,
            StorageError, yaml.YAMLError, tf.errors.InvalidArgumentError, tf.errors.NotFoundError)


def _message(error):
    """The located part of an error: TensorFlow wraps a pipeline's assertion in graph context."""
    import tensorflow as tf

    from mmkeras.data.bad_records import error_text

    return error_text(error) if isinstance(error, tf.errors.OpError) else str(error)


_STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EFBIG, errno.EDQUOT}

COMMANDS = {"demo": _demo, "train": _train, "distill": _distill, "tune": _tune, "evaluate": _evaluate,
            "explain": _explain, "export": _export, "predict": _predict, "prepare": _prepare}


def run(args):
    """Runs the command `mmkeras_cli` parsed: exit status 0, 2 for an error in the user's input or
    files (one line on stderr), 130 for Ctrl-C."""
    try:
        return COMMANDS[args.command](args)
    except _expected_errors() as error:
        print(f"mmkeras {args.command}: error: {_message(error)}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno not in _STORAGE_ERRNOS:
            raise
        # a write the checks before it could not foresee (the disk filled meanwhile, a quota)
        where = f"{error.filename}: " if error.filename else ""
        print(f"mmkeras {args.command}: error: {where}{error.strerror}; free some space (or choose another folder) "
              "and run the same command again", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's status for SIGINT, and what to do next
        resume = {"train": "the same command resumes from the last finished epoch",
                  "distill": "the same command resumes from the last finished epoch",
                  "tune": "the same command resumes the search"}.get(args.command)
        print(f"mmkeras {args.command}: interrupted" + (f"; {resume}" if resume else ""), file=sys.stderr)
        return 130
