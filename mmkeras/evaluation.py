"""Evaluation: scikit-learn's report, a confusion matrix, and what each modality contributes."""

import itertools
import json
import os

import numpy as np

from mmkeras import constants
from mmkeras.data import make_dataset
from mmkeras.data.dataset import decode_errors_located
from mmkeras.export import serving_model
from mmkeras.heads import label_head
from mmkeras.postprocess import postprocess


def collect(dataset):
    """A finite dataset of `(features, labels)` batches as numpy arrays."""
    features, labels = {}, []
    for x, y in dataset:
        for key, value in x.items():
            features.setdefault(key, []).append(value.numpy())
        labels.append(y[constants.DEFAULT_HEAD].numpy())
    return {k: np.concatenate(v) for k, v in features.items()}, np.concatenate(labels)


def mark_absent(features, modalities):
    """A copy of `features` with `modalities` absent, exactly as the Preprocessor makes missing data."""
    changed = dict(features)
    for m in modalities:
        changed[m] = np.zeros_like(features[m])
        changed[constants.presence_name(m)] = np.zeros_like(features[constants.presence_name(m)])
    return changed


def scenarios(modalities):
    """Ablations to report: all present, each modality missing, each pair missing (3+ modalities),
    and each modality alone (4+ modalities; with 2 or 3, a missing one or pair already leaves one).

    Example:

    >>> list(scenarios(["text", "image"]))
    ['all', 'without_text', 'without_image']
    >>> list(scenarios(["text", "image", "audio"]))[4:]
    ['without_text_image', 'without_text_audio', 'without_image_audio']
    >>> list(scenarios(["a", "b", "c", "d"]))[-4:]
    ['only_a', 'only_b', 'only_c', 'only_d']
    """
    result = {"all": ()}
    for m in modalities:
        result[f"without_{m}"] = (m,)
    if len(modalities) >= 3:
        for pair in itertools.combinations(modalities, 2):
            result["without_" + "_".join(pair)] = pair
    if len(modalities) >= 4:
        for m in modalities:
            result[f"only_{m}"] = tuple(o for o in modalities if o != m)
    return result


def alone_key(ablation, modality, modalities):
    """The ablation entry in which `modality` is the only one present ("only_<m>" or "without_...")."""
    key = f"only_{modality}"
    return key if key in ablation else "without_" + "_".join(o for o in modalities if o != modality)


def corruptions(preprocessor):
    """Named input corruptions for the robustness table, each applied to present examples only.

    Each modality's converter names its own (`Modality.corruptions`): image noise and
    occlusion, audio noise at 20/10/0 dB SNR, half the text tokens dropped, ...

    Returns a dict `<modality>_<corruption>` → function(features, rng) → corrupted copy.
    """
    result = {}
    for m, converter in preprocessor.converters.items():
        for suffix, corrupt in converter.corruptions().items():
            result[f"{m}_{suffix}"] = _on_present(m, corrupt)
    return result


def _on_present(m, corrupt):
    """`corrupt` applied to modality `m` of a features dict, absent examples kept as they were."""

    def apply(features, rng):
        out = dict(features)
        values = np.asarray(features[m])
        present = (features[constants.presence_name(m)][:, 0] > 0).reshape((-1,) + (1,) * (values.ndim - 1))
        out[m] = np.where(present, corrupt(values, rng), values).astype(values.dtype)
        return out

    return apply


def _scores(y_true, y_pred):
    from sklearn.metrics import accuracy_score
    from sklearn.metrics import f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
    }


def evaluate(model, preprocessor, source, output_dir=None, columns=None, batch_size=64, on_bad_record="raise",
             seed=0):
    """Evaluates a classification model on a labelled manifest.

    Writes (when `output_dir` is given) `metrics.json`, `classification_report.txt`,
    `confusion_matrix.png` and `robustness.png`.

    Returns:
        dict: "report" (scikit-learn's, per class plus macro and weighted averages), "ablation"
        (accuracy and F1 with each modality, and each pair, missing; with 4+ modalities each one
        alone too), "robustness" (the same with
        each modality's input corrupted: image noise and occlusion, audio noise at 20/10/0 dB
        SNR, half the text tokens dropped), "modality_weights_per_class" where the fusion has
        weights, "modality_weights_under_corruption" (the mean weight of each modality with clean
        inputs and under each corruption: a modality the fusion stops trusting loses weight),
        "confusion_matrix", "examples", "skipped_records".
    """
    from sklearn.metrics import classification_report
    from sklearn.metrics import confusion_matrix

    if preprocessor.label_type != "classification":
        raise ValueError(f"evaluate() reports classification metrics; this run's labels are {preprocessor.label_type!r}")
    dataset = make_dataset(source, preprocessor, columns=columns, batch_size=batch_size, on_bad_record=on_bad_record)
    with decode_errors_located(dataset):
        features, y_true = collect(dataset)
    served = serving_model(model)
    head = label_head(preprocessor)
    names = preprocessor.label_names
    labels = list(range(len(names)))

    def run(x):
        return served.predict(x, batch_size=batch_size, verbose=0)

    def predicted(outputs):  # the same post-processing as the served model and `predict`
        return postprocess({head.name: outputs[head.name]}, [head])["class_id"].numpy()

    outputs = run(features)
    y_pred = predicted(outputs)
    report = classification_report(y_true, y_pred, labels=labels, target_names=names, output_dict=True, zero_division=0)
    report_text = classification_report(y_true, y_pred, labels=labels, target_names=names, zero_division=0)
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    ablation = {"all": _scores(y_true, y_pred)}
    for name, missing in scenarios(preprocessor.modalities).items():
        if missing:
            ablation[name] = _scores(y_true, predicted(run(mark_absent(features, missing))))
    rng = np.random.default_rng(seed)
    robustness = {}
    has_weights = constants.MODALITY_WEIGHTS in outputs

    def mean_weights(out):
        return dict(zip(preprocessor.modalities, out[constants.MODALITY_WEIGHTS].mean(axis=0).round(4).tolist()))

    weights_under = {"all": mean_weights(outputs)} if has_weights else {}
    for name, corrupt in corruptions(preprocessor).items():
        corrupted = run(corrupt(features, rng))
        robustness[name] = _scores(y_true, predicted(corrupted))
        if has_weights:
            weights_under[name] = mean_weights(corrupted)
    result = {
        "examples": int(len(y_true)),
        "robustness": robustness,
        "skipped_records": len(dataset.bad_records),
        "report": report,
        "ablation": ablation,
        "confusion_matrix": matrix.tolist(),
        "labels": names,
    }
    if has_weights:
        result["modality_weights_under_corruption"] = weights_under
        weights = outputs[constants.MODALITY_WEIGHTS]
        result["modality_weights_per_class"] = {
            names[c]: dict(zip(preprocessor.modalities, weights[y_true == c].mean(axis=0).round(4).tolist()))
            for c in labels if np.any(y_true == c)
        }
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, "metrics.json"), "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.join(output_dir, "classification_report.txt"), "w") as f:
            f.write(report_text + "\n" + format_ablation(ablation) + "\n\n" + format_ablation(robustness) + "\n")
        source_name = os.path.basename(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else "the data"
        files = {"metrics": "metrics.json", "report": "classification_report.txt",
                 "confusion matrix": "confusion_matrix.png", "robustness plot": "robustness.png"}
        plot_confusion_matrix(matrix, names, os.path.join(output_dir, files["confusion matrix"]),
                              title=f"Confusion matrix: {source_name} ({int(matrix.sum())} examples)")
        plot_robustness(ablation, robustness, os.path.join(output_dir, files["robustness plot"]),
                        chance=1.0 / len(names) if names else None,
                        title=f"Accuracy with modalities missing or corrupted: {source_name}")
        if len(dataset.bad_records):
            files["skipped records"] = "skipped_records.csv"
            dataset.bad_records.to_csv(os.path.join(output_dir, files["skipped records"]))
        result["files"] = {what: os.path.join(output_dir, name) for what, name in files.items()}
    result["report_text"] = report_text
    return result


def format_ablation(ablation):
    """The ablation as an aligned text table."""
    lines = [f"{'condition':<28}{'accuracy':>10}{'macro F1':>10}"]
    for name, scores in ablation.items():
        lines.append(f"{condition_label(name):<28}{scores['accuracy']:>10.3f}{scores['macro_f1']:>10.3f}")
    return "\n".join(lines)


def condition_label(name):
    """An ablation or robustness key as a reader sees it ("missing: text, image", "alone: audio")."""
    if name == "all":
        return "all present"
    if name.startswith("without_"):
        return "missing: " + name[len("without_"):].replace("_", ", ")
    if name.startswith("only_"):
        return "alone: " + name[len("only_"):]
    return name


def plot_confusion_matrix(matrix, names, path, title="Confusion matrix"):
    """Writes the confusion matrix as a PNG (rows: true class, columns: predicted), with a title
    and a colour scale of example counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.5 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, label="examples", shrink=0.8)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    peak = matrix.max() if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, int(count), ha="center", va="center", color="white" if count > peak / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_robustness(ablation, robustness, path, chance=None, title="Accuracy with modalities missing or corrupted"):
    """Writes accuracy under every missing-modality and corruption condition as a bar chart, with a
    title, a legend of the three kinds of condition and, given `chance`, the chance level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colours = {"all modalities present": "#2a6", "modalities missing (ablation)": "#c63",
               "input corrupted": "#369"}
    rows = [(condition_label(n), v["accuracy"]) for n, v in ablation.items()]  # "all" first
    rows += [(n, v["accuracy"]) for n, v in robustness.items()]
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(rows) + 1.6))
    kinds = list(colours.values())
    ax.barh(range(len(rows)), [v for _, v in rows],
            color=[kinds[0]] + [kinds[1]] * (len(ablation) - 1) + [kinds[2]] * len(robustness))
    ax.set_yticks(range(len(rows)), [n for n, _ in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    ax.set_title(title)
    handles = [Patch(color=colour, label=label) for label, colour in colours.items()]
    if chance:
        handles.append(ax.axvline(chance, color="grey", linestyle="--", label=f"chance ({chance:.2f})"))
    ax.legend(handles=handles, loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
