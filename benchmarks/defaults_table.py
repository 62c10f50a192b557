"""Issue 31's table: every default of the library against plain Keras baselines on every benchmark
data set, 3 seeds, in one run.

Run: `nice -n 19 .venv/bin/python benchmarks/defaults_table.py [--sets NAME ...] [--seeds 1 2 3]
      [--epochs E] [--jobs 2] [--change KIND.KEY=VALUE ...] [--training KEY=VALUE ...]
      [--fusion KEY=VALUE ...] [--skip-plain] [--rows PREFIX ...] [--output DIR]`

Data sets (each written by its own benchmark module, seeded): `tones`, `digits`, `shapes`
(text + image + audio, `datasets.py`), `keyword speech` (noisy spoken words, audio only,
`keyword_speech.py`; needs espeak-ng, or `pip install espeakng-loader`), `motion clips` and
`content clips` (video only, `motion_clips.py`), `sensor activity` (a 3-axis motion sensor and
two columns, sensor + tabular, `sensor_activity.py`), `clip, sensor and columns` (a motion clip
and a sensor recording that tell the class only together, and two columns, video + sensor +
tabular, `clip_sensor_columns.py`).

Rows per data set, each trained with every seed:
- `fused, mmkeras defaults` (sets of several modalities): `mmkeras train` with every modality and every
  setting the library's default except what the set fixes. For `tones`, `digits` and `shapes` that
  is `datasets.py`'s MODALITIES, which also makes the encoders smaller than the library's (as in
  `fusion_comparison.py`); `digits, library sizes` etc. set only the files' format. Against
  `fused, plain concat`: the plain branches below concatenated → Dropout → Dense(64) → softmax;
- `<kind> alone, mmkeras defaults` against each plain branch of that kind (`encoder_baselines.py`:
  small CNN, Conv1D + pooling, embedding + mean, Conv1D + pooling over the readings, Dense(64);
  `keyword_speech.py`'s Conv1D; `motion_clips.py`'s two TimeDistributed CNN → GRU models, the
  one that flattens each frame's map being the plain concat model's clip branch);
- `<kind> alone, augment: {}` for every kind whose default augmentation is on (the image's random
  shift; the audio and sensor kinds have theirs off): the effect of that augmentation, side by side.
Every model has the library's budget, read from `mmkeras.config.DEFAULTS`: `training.epochs`,
early stopping on validation loss with the library's patience and the best weights kept; the
plain models use Adam 1e-3 and batch 32.

The targets of issue 31, checked at the end: every default branch within 3 points of the best
plain baseline of its kind; the fused default at least as good as the plain fused model, and 5
points above the best single-modality model where two or more modalities reach twice chance; the
fused default's spread over the seeds (largest minus smallest) at most 3 points.

`--change audio.dropout=0.3` trains every mmkeras model with that modality setting instead, and
`--training lr_schedule=cosine` with that training setting (rows named after them), to judge a
candidate default on every set; `--fusion modality_dropout=0.1` sets the fusion block of the fused
models only (the rows of one modality have no fusion). Each run's result is kept in
`DIR/results`, so a second start with the same `--output` resumes where the first stopped, and two
starts side by side share the runs (each claims a run in `DIR/results` before it trains). Results
are keyed by the row's name, not by the library's version: after a default changes, use a new
`--output`. Each result records how many test examples scored it; one scored on another number
than the data folder's test split holds (the two sensor sets grew from 180 to 720 test rows, and
an older data folder is written again; results from before say nothing) is scored again from its
run's saved model and Preprocessor, and a plain model, which keeps none, is trained again (with
`--skip-plain` it is left out of the table). Writes
`defaults_table.md` and `defaults_table.json` in the output folder.
"""

import argparse
import concurrent.futures
import copy
import csv
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _seeded import add_training_option  # noqa: E402
from _seeded import setting  # noqa: E402
from _seeded import with_settings  # noqa: E402

FUSED = "fused"


def library_budget():
    """(epochs, early-stopping patience): the library's training defaults, which every model gets."""
    from mmkeras.config import DEFAULTS

    return DEFAULTS["training"]["epochs"], DEFAULTS["training"]["early_stopping_patience"]


def augments_by_default(kind, settings):
    """Whether a modality with these settings, trained alone, gets its kind's default augmentation
    (a kind's `augment` default that is not empty, and the settings do not set it)."""
    from mmkeras.specs import make_spec
    from mmkeras.specs import settle_specs

    spec = settle_specs({"alone": make_spec("alone", {**settings, "kind": kind})})["alone"]
    return "augment" not in settings and bool(getattr(spec, "augment", None))


def _sets():
    """name → (writer(folder), {modality: settings}), imported late: `--help` needs no TensorFlow."""
    import clip_sensor_columns
    import datasets
    import keyword_speech
    import motion_clips
    import sensor_activity

    three = copy.deepcopy(datasets.MODALITIES)
    formats = {m: {k: v for k, v in settings.items() if k in FORMAT_KEYS} for m, settings in three.items()}
    return {
        "tones": (datasets.DATASETS["tones"], three),
        "digits": (datasets.DATASETS["digits"], three),
        "shapes": (datasets.DATASETS["shapes"], three),
        "tones, library sizes": (datasets.DATASETS["tones"], formats),
        "digits, library sizes": (datasets.DATASETS["digits"], formats),
        "shapes, library sizes": (datasets.DATASETS["shapes"], formats),
        "keyword speech": (keyword_speech.write_keyword_speech, {"audio": dict(keyword_speech.AUDIO)}),
        "motion clips": (motion_clips.write_motion_clips, {"clip": dict(motion_clips.CLIP)}),
        "content clips": (motion_clips.write_content_clips, {"clip": dict(motion_clips.CLIP)}),
        "sensor activity": (sensor_activity.write_sensor_activity, copy.deepcopy(sensor_activity.MODALITIES)),
        "clip, sensor and columns": (clip_sensor_columns.write_clip_sensor_columns,
                                     copy.deepcopy(clip_sensor_columns.MODALITIES)),
    }


SET_NAMES = ("tones", "digits", "shapes", "keyword speech", "motion clips", "content clips", "sensor activity",
             "clip, sensor and columns")
#: Settings of `datasets.py`'s modalities that describe its files; the rest are its smaller encoders.
FORMAT_KEYS = ("max_tokens", "sequence_length", "height", "width", "channels", "sample_rate", "duration")
#: `datasets.py`'s sets with only FORMAT_KEYS set, so the encoders are the library's own size too.
LIBRARY_SIZES = ("tones, library sizes", "digits, library sizes", "shapes, library sizes")


def kind_of(modality, settings):
    return settings.get("kind", modality)


def plain_rows(set_name, modalities):
    """name → (modalities it sees, how it is trained) of the plain models of one data set."""
    rows = {}
    for modality, settings in modalities.items():
        kind = kind_of(modality, settings)
        if kind == "video":
            from motion_clips import BASELINES

            for name, pooling in BASELINES.items():
                rows[f"{modality} alone, {name.replace('plain ', 'plain: ')}"] = ([modality], ("clip", pooling))
        elif set_name == "keyword speech":
            rows[f"{modality} alone, plain: Conv1D + pooling"] = ([modality], ("keyword",))
        else:
            from encoder_baselines import BASELINE_NAMES

            rows[f"{modality} alone, plain: {BASELINE_NAMES[kind]}"] = ([modality], ("branch",))
    if len(modalities) > 1:
        rows[f"{FUSED}, plain concat"] = (list(modalities), ("branch",))
    return rows


def mmkeras_rows(modalities, changes, training=(), fusion=()):
    """name → {modality: settings} of the mmkeras models of one data set, with `changes`
    (kind → {key: value}) applied to every one; `training` and `fusion` (KEY=VALUE pairs) only
    name them (`fusion` only the fused row)."""
    suffix = with_settings("", [(f"{kind}.{key}", value) for kind, values in changes.items()
                                for key, value in values.items()] + list(training))

    def changed(subset, extra=None):
        return {m: {**s, **changes.get(kind_of(m, s), {}), **(extra or {})} for m, s in subset.items()}

    rows = {}
    if len(modalities) > 1:
        rows[with_settings(f"{FUSED}, mmkeras defaults{suffix}",
                           [(f"fusion.{key}", value) for key, value in fusion])] = changed(modalities)
    for modality, settings in modalities.items():
        alone = changed({modality: settings})
        rows[f"{modality} alone, mmkeras defaults{suffix}"] = alone
        if augments_by_default(kind_of(modality, settings), alone[modality]):  # its effect, side by side
            rows[f"{modality} alone, augment: {{}}{suffix}"] = changed({modality: settings}, {"augment": {}})
    return rows


def slug(text):
    return "".join(c if c.isalnum() or c in ".=-" else "_" for c in text).strip("_")


# ------------------------------------------------------------------------------------- one run
_DECODED = {}


def _decoded(paths, modalities, splits=("train", "validation", "test")):
    """`splits` decoded by the library's Preprocessor with these modality settings (once per
    process, data set and settings: a `--change` of a decoding setting gets its own tensors)."""
    key = json.dumps([paths["train"], modalities, splits], sort_keys=True, default=str)
    if key not in _DECODED:
        import mmkeras
        from mmkeras.evaluation import collect

        preprocessor = mmkeras.Preprocessor(copy.deepcopy(modalities))
        mmkeras.adapt_preprocessor(preprocessor, paths["train"])
        decoded = {s: collect(mmkeras.make_dataset(paths[s], preprocessor, batch_size=64)) for s in splits}
        _DECODED[key] = (decoded, len(preprocessor.label_names))
    return _DECODED[key]


def claim(result):
    """Whether this process may run the job whose result file is `result`: it creates
    `<result>.claim` holding its process id, unless a live process holds it already. A claim left
    by a process that has died (a killed start) is taken over."""
    path = f"{result}.claim"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                with open(path) as f:
                    holder = int(f.read().strip() or 0)
                if holder == os.getpid():
                    return True
                if holder:
                    os.kill(holder, 0)  # raises if no such process
                    return False
                if time.time() - os.path.getmtime(path) < 60:  # created, its id not written yet
                    return False
            except (ProcessLookupError, ValueError, FileNotFoundError):
                pass
            except PermissionError:  # alive, another user's
                return False
            try:
                os.remove(path)  # a dead start's claim: the next try decides who takes it
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def run_job(job):
    """Trains one model with one seed (or scores a kept one again); returns its result row (and
    writes it to `job["result"]`), or None when another start into the same folder is running it now."""
    done = _current(job)
    if done:  # another start into the same folder got here first
        return done
    if not claim(job["result"]):
        print(f"{job['set']} | {job['row']} | seed {job['seed']} | left to the start running it", flush=True)
        return None
    try:
        # Finished by another start since the check above? Else scored again, or trained.
        return _current(job) or _scored_again(job) or _run_claimed(job)
    finally:
        try:
            os.remove(f"{job['result']}.claim")
        except FileNotFoundError:
            pass


def _test_rows(path):
    with open(path, newline="") as f:
        return sum(1 for _ in csv.DictReader(f))


def _current(job):
    """The job's result if it is there and was scored on the whole test split as it is now (older
    results do not say how many examples they were scored on), else None."""
    if not os.path.exists(job["result"]):
        return None
    with open(job["result"]) as f:
        row = json.load(f)
    return row if row.get("test_examples") == job["test_rows"] else None


def _scored_again(job):
    """A result scored on another test split (a data set that gained test rows) scored again from
    its run's saved model and Preprocessor; None where there is no such result or no kept run (the
    plain models keep none): the job is then trained (again)."""
    from mmkeras import layout

    if not os.path.exists(job["result"]) or job["how"] != "mmkeras" or not layout.is_finished(job["run_dir"]):
        return None
    import mmkeras
    from fusion_comparison import score
    from mmkeras.evaluation import collect

    with open(job["result"]) as f:
        row = json.load(f)
    model, preprocessor, _ = mmkeras.load_run(job["run_dir"])  # decoded as the run was trained to read
    features, labels = collect(mmkeras.make_dataset(job["paths"]["test"], preprocessor, batch_size=64))
    row = {**row, **score(model, list(job["modalities"]), features, labels), "test_examples": len(labels),
           "rescored": True}
    _write_result(job, row)
    print(f"{job['set']} | {job['row']} | seed {job['seed']} | scored again | {json.dumps(row)}", flush=True)
    return row


def _write_result(job, row):
    part = f"{job['result']}.{os.getpid()}.part"  # whole or absent, for a start reading beside it
    with open(part, "w") as f:
        json.dump(row, f)
    os.replace(part, job["result"])


def _run_claimed(job):
    started = time.perf_counter()
    seed = job["seed"]
    if job["how"] == "mmkeras":
        from fusion_comparison import run_one

        splits, classes = _decoded(job["paths"], job["modalities"], ("test",))
        shutil.rmtree(job["run_dir"], ignore_errors=True)  # a run killed before its result was written

        config = {"data": {"train": job["paths"]["train"], "validation": job["paths"]["validation"]},
                  "modalities": job["modalities"],
                  "training": {"verbose": 0, "tensorboard": False, "backup": False, "checkpoint": False,
                               "seed": seed, "epochs": job["epochs"], "early_stopping_patience": library_budget()[1],
                               **dict(job["training"])}}
        if len(job["modalities"]) > 1:
            config["fusion"] = dict(job["fusion"])
        row = run_one(config, job["run_dir"], *splits["test"])
    else:
        splits, classes = _decoded(job["paths"], job["set_modalities"])
        trainer = job["how"]
        if trainer[0] == "clip":
            import motion_clips

            row = motion_clips.fit_baseline(splits, classes, seed, job["epochs"], trainer[1])
        elif trainer[0] == "keyword":
            import keyword_speech

            row = keyword_speech.fit_baseline(splits, classes, seed, job["epochs"])
        else:
            import encoder_baselines

            kinds = {m: kind_of(m, s) for m, s in job["set_modalities"].items()}
            row = {"all": encoder_baselines.fit_plain(job["modalities"], splits, classes, seed, job["epochs"], kinds)}
    row = {**row, "classes": classes, "test_examples": len(splits["test"][1]),
           "seconds": time.perf_counter() - started}
    _write_result(job, row)
    print(f"{job['set']} | {job['row']} | seed {seed} | {json.dumps(row)}", flush=True)
    return row


def _worker_init():
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def _grown_sets():
    """Test rows of the sets whose test split grew (EXTRA_TEST): an older data folder is written again."""
    import clip_sensor_columns
    import sensor_activity

    return {"sensor activity": sensor_activity.SPLITS["test"] + sensor_activity.EXTRA_TEST,
            "clip, sensor and columns": clip_sensor_columns.SPLITS["test"] + clip_sensor_columns.EXTRA_TEST}


def _data(name, writer, folder):
    """The data set's manifests, written once (a resumed run reads the files already there). A
    folder written before its set gained test rows is written again: the training and validation
    files come out the same, the test split larger."""
    paths = {s: os.path.join(folder, f"{s}.csv") for s in ("train", "validation", "test")}
    wanted = _grown_sets().get(name)
    grown = wanted is not None and os.path.exists(paths["test"]) and _test_rows(paths["test"]) != wanted
    if grown or not all(os.path.exists(p) for p in paths.values()):
        started = time.perf_counter()
        paths = writer(folder)
        print(f"{name}: data written in {time.perf_counter() - started:.0f} s", flush=True)
    return paths


def plan(set_names, seeds, changes, output, epochs=None, training=(), fusion=()):
    """Every (data set, row, seed) run; seeds outermost, so a run cut short still has whole seeds."""
    sets = _sets()
    default_epochs = library_budget()[0]
    epochs = epochs or default_epochs
    budget = "" if epochs == default_epochs else f"-{epochs}epochs"  # a trial never passes for a default run
    jobs = []
    for name in set_names:
        writer, modalities = sets[name]
        paths = _data(name, writer, os.path.join(output, "data", slug(name)))
        test_rows = _test_rows(paths["test"])  # what every result of this set must be scored on
        rows = {r: ("mmkeras", m) for r, m in mmkeras_rows(modalities, changes, training, fusion).items()}
        rows.update({r: (how, m) for r, (m, how) in plain_rows(name, modalities).items()})
        for seed in seeds:
            for row, (how, models) in rows.items():
                folder = os.path.join(output, "results", slug(name))
                os.makedirs(folder, exist_ok=True)
                jobs.append({"set": name, "row": row, "seed": seed, "epochs": epochs, "training": list(training),
                             "fusion": list(fusion),
                             "how": how, "modalities": models, "set_modalities": modalities, "paths": paths,
                             "test_rows": test_rows, "result": os.path.join(folder, f"{slug(row)}-{seed}{budget}.json"),
                             "run_dir": os.path.join(output, "runs", slug(name), f"{slug(row)}-{seed}{budget}")})
    return sorted(jobs, key=lambda j: j["seed"])


# ------------------------------------------------------------------------------------ the table
def _stats(values):
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "range": float(np.ptp(values))}


def table(results, seeds):
    """Markdown lines: per data set and row, test accuracy mean ± std, spread and per seed."""
    lines = ["| data set | model | test accuracy | spread (max - min) | per seed | epochs |", "|---" * 6 + "|"]
    for name, rows in results.items():
        for row, runs in rows.items():
            values = [runs[s]["all"] for s in seeds if s in runs]
            if not values:
                continue
            stats = _stats(values)
            epochs = " / ".join(str(runs[s].get("epochs", "")) for s in seeds if s in runs)
            if len(values) < len(seeds):
                row = f"{row} ({len(values)} of {len(seeds)} seeds)"
            lines.append(f"| {name} | {row} | {stats['mean']:.3f} ± {stats['std']:.3f} | {100 * stats['range']:.1f} "
                         f"| {' / '.join(f'{v:.3f}' for v in values)} | {epochs} |")
    return lines


def check_targets(results, set_modalities, seeds):
    """Issue 31's targets as (description, passed) pairs, judged on rows with every seed; passed is
    None where a target could not be judged (a row cut short or not run), and says why."""
    checks = []
    for name, rows in results.items():
        means = {row: _stats([runs[s]["all"] for s in seeds])
                 for row, runs in rows.items() if all(s in runs for s in seeds)}
        modalities = set_modalities[name]
        for modality in modalities:
            default = next((r for r in means if r.startswith(f"{modality} alone, mmkeras defaults")), None)
            plain = {r: v["mean"] for r, v in means.items() if r.startswith(f"{modality} alone, plain")}
            if default and plain:
                best = max(plain, key=plain.get)
                gap = means[default]["mean"] - plain[best]
                checks.append((f"{name}: {modality} default {means[default]['mean']:.3f} vs {best.split(', ', 1)[1]} "
                               f"{plain[best]:.3f}: {100 * gap:+.1f} points (target >= -3)", gap >= -0.03))
            elif any(r.startswith(f"{modality} alone, ") for r in rows):
                checks.append((f"{name}: {modality} alone against its plain baseline: not judged, the default or "
                               f"every plain model lacks seeds {seeds}", None))
        fused = next((r for r in means if r.startswith(f"{FUSED}, mmkeras defaults")), None)
        if not fused:
            continue
        value = means[fused]
        if f"{FUSED}, plain concat" in means:
            plain = means[f"{FUSED}, plain concat"]["mean"]
            checks.append((f"{name}: fused default {value['mean']:.3f} vs plain concat {plain:.3f}: "
                           f"{100 * (value['mean'] - plain):+.1f} points (target >= 0)", value["mean"] >= plain))
        else:
            checks.append((f"{name}: fused default against plain concat: not judged, no plain concat result "
                           f"with seeds {seeds}", None))
        # The best single-modality model of any row: the default, augmentation off, or plain.
        singles = {r: v["mean"] for r, v in means.items() if " alone, " in r}
        chance = 1.0 / next(iter(rows[fused].values()))["classes"]
        strong = {r.split(" alone")[0] for r, v in singles.items() if v >= 2 * chance}
        if len(strong) >= 2:  # complementary modalities: fusion should beat each alone
            best = max(singles, key=singles.get)
            margin = value["mean"] - singles[best]
            checks.append((f"{name}: fused default vs best single-modality model ({best}, {singles[best]:.3f}): "
                           f"{100 * margin:+.1f} points (target >= +5)", margin >= 0.05))
        else:
            checks.append((f"{name}: fused default against the best single modality: not judged, fewer than two "
                           f"modalities reach twice chance alone in the rows run", None))
        checks.append((f"{name}: fused default spread over seeds {100 * value['range']:.1f} points (target <= 3)",
                       value["range"] <= 0.03 + 1e-9))
    return checks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SET_NAMES), choices=SET_NAMES + LIBRARY_SIZES,
                        metavar="NAME", help=f"data sets (default: all of {', '.join(SET_NAMES)}; also "
                        f"{', '.join(LIBRARY_SIZES)})")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=None, help="for every model (default: the library's)")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, one process and one thread each")
    parser.add_argument("--change", nargs="+", type=setting, default=[], metavar="KIND.KEY=VALUE",
                        help="a modality setting of every mmkeras model of that kind, e.g. audio.dropout=0.3")
    add_training_option(parser)
    parser.add_argument("--fusion", nargs="+", type=setting, default=[], metavar="KEY=VALUE",
                        help="a fusion setting of every fused mmkeras model, e.g. modality_dropout=0.1")
    parser.add_argument("--rows", nargs="+", default=[], metavar="PREFIX",
                        help="only the rows whose name starts with one of these, e.g. 'audio alone' 'fused'")
    parser.add_argument("--skip-plain", action="store_true", help="train only the mmkeras models; the plain "
                        "models' results are read from --output, where a run of the defaults left them")
    parser.add_argument("--output", default=None, help="results folder (a second start resumes; plain models' "
                        "results are shared by every --change and --training run into it)")
    args = parser.parse_args()
    changes = {}
    for key, value in args.change:
        kind, dot, name = key.partition(".")
        if not dot or not name:
            parser.error(f"--change expects KIND.KEY=VALUE, got {key!r}")
        changes.setdefault(kind, {})[name] = value
    present = {kind_of(m, s) for name in args.sets for m, s in _sets()[name][1].items()}
    unknown = sorted(set(changes) - present)
    if unknown:
        parser.error(f"--change names kinds {unknown}, but the sets chosen have only {sorted(present)} (a kind, "
                     f"not a modality's name: e.g. sensor.augment, video.grid)")
    output = args.output or tempfile.mkdtemp(prefix="mmkeras-defaults-")
    started = time.perf_counter()
    args.epochs = args.epochs or library_budget()[0]
    jobs = plan(args.sets, args.seeds, changes, output, args.epochs, args.training, args.fusion)
    if args.rows:
        jobs = [j for j in jobs if any(j["row"].startswith(prefix) for prefix in args.rows)]
    todo = [j for j in jobs if not _current(j) and not (args.skip_plain and j["how"] != "mmkeras")]
    print(f"{len(jobs)} runs, {len(jobs) - len(todo)} already done or left to another start, in {output}", flush=True)
    if args.jobs > 1 and len(todo) > 1:
        context = multiprocessing.get_context("spawn")  # TensorFlow does not survive a fork
        with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=context, initializer=_worker_init) as pool:
            list(pool.map(run_job, todo))
    else:
        _worker_init()
        for job in todo:
            run_job(job)
    results = {}
    for job in jobs:
        # Left out: a plain model another start has not finished yet, or one scored on fewer test rows.
        row = _current(job)
        if row:
            results.setdefault(job["set"], {}).setdefault(job["row"], {})[job["seed"]] = row
    sets = _sets()
    checks = check_targets(results, {name: sets[name][1] for name in args.sets}, args.seeds)
    minutes = (time.perf_counter() - started) / 60
    lines = [f"Seeds {args.seeds}, up to {args.epochs} epochs, {args.jobs} process(es) of one thread, {minutes:.0f} min "
             f"this start", ""] + table(results, args.seeds) + ["", "Targets:", ""]
    lines += [f"- {text}" if ok is None else f"- {'met' if ok else 'MISSED'}: {text}" for text, ok in checks]
    print("\n".join(lines))
    with open(os.path.join(output, "defaults_table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(output, "defaults_table.json"), "w") as f:
        json.dump({"seeds": args.seeds, "changes": changes, "training": dict(args.training),
                   "fusion": dict(args.fusion), "results": results,
                   "targets": [{"target": t, "met": ok} for t, ok in checks]}, f, indent=1)
    print(f"written to {output}")


if __name__ == "__main__":
    main()
