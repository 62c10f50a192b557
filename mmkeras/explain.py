"""Which modality each prediction rests on: Shapley values over the modalities, from the presence flags.

A model of this package is told which modalities an example has (`<name>_present`); marking a
modality absent is what the Preprocessor does for a missing file, so "the model without modality
i" is exact, not an approximation by a baseline input. The Shapley value of modality i for one
example is the average, over the orders in which modalities could be added, of how much adding i
changes the output:

    phi_i = sum over S not holding i of |S|! (M - |S| - 1)! / M! * (f(S + i) - f(S))

where f(S) is the output with only the modalities in S present. With M modalities that takes 2^M
forward passes of the batch (exact up to `EXACT_UP_TO` modalities); beyond, random orders are
sampled and each value comes with its standard error. The values of an example sum to
f(all present) - f(none present) exactly (up to float rounding).

What is explained, per head: classification, the probability (and the log-probability) of the
class predicted with every modality present; multi-label, the score of the highest-scoring label;
regression, the value. Everything runs through `model.predict`, so it is backend-agnostic.
"""

import csv
import itertools
import json
import math
import os

import numpy as np

from mmkeras.data import make_dataset
from mmkeras.data import read_manifest
from mmkeras.data.dataset import decode_errors_located
from mmkeras.evaluation import mark_absent

#: Exact enumeration of the 2^M coalitions up to this many modalities; sampled orders beyond.
EXACT_UP_TO = 8


def _targets(outputs, heads):
    """Per head: (index of the explained output per example, its type)."""
    chosen = {}
    for head in heads:
        value = np.asarray(outputs[head.name])
        chosen[head.name] = np.argmax(value, axis=-1) if head.type != "regression" else np.zeros(len(value), int)
    return chosen


def _explained(outputs, heads, chosen):
    """Per head: the explained output of every example (the chosen class's probability or score, or the value)."""
    values = {}
    for head in heads:
        value = np.asarray(outputs[head.name], "float64").reshape(len(chosen[head.name]), -1)
        values[head.name] = value[np.arange(len(value)), chosen[head.name]]
    return values


def modality_shapley(model, features, modalities, heads, batch_size=64, samples=200, seed=0):
    """Shapley values of each modality for each example and head.

    Args:
        model: a model of this package (inputs `<name>` and `<name>_present`; a dict of head outputs).
        features: dict of numpy arrays, the model's inputs for a batch of examples (as
            `make_dataset` decodes them). A modality already absent in an example gets 0.
        modalities: list of str. The modalities to attribute to (the model's, in input order).
        heads: list of `Head` (a `MultimodalTask`'s `heads`).
        batch_size: int. Batch size of the forward passes.
        samples: int. Random orders per example when there are more than `EXACT_UP_TO` modalities.
        seed: int. Seed of the sampled orders.

    Returns:
        dict head name → dict with "target" (explained class index per example, or 0 for
        regression), "full" and "empty" (the explained output with every modality present and
        with none), "values" (examples x modalities Shapley values of the explained output,
        summing to full - empty), "log_values" for classification heads (the same for the
        log-probability, floored at 1e-12), and "stderr" (zeros when exact).
    """
    modalities = list(modalities)
    count = len(modalities)

    def predict(kept):
        given = mark_absent(features, [m for m in modalities if m not in kept])
        out = model.predict(given, batch_size=batch_size, verbose=0)
        return out if isinstance(out, dict) else {heads[0].name: out}

    full = predict(set(modalities))
    chosen = _targets(full, heads)
    if count <= EXACT_UP_TO:
        values = _exact(predict, modalities, heads, chosen)
    else:
        values = _sampled(predict, modalities, heads, chosen, samples, seed)
    return values


def _exact(predict, modalities, heads, chosen):
    count = len(modalities)
    outcome = {}  # coalition (frozenset) → head → explained output per example
    for size in range(count + 1):
        for coalition in itertools.combinations(modalities, size):
            outcome[frozenset(coalition)] = _explained(predict(set(coalition)), heads, chosen)
    weight = {size: math.factorial(size) * math.factorial(count - size - 1) / math.factorial(count)
              for size in range(count)}
    result = {}
    for head in heads:
        transforms = {"values": lambda v: v}
        if head.type == "classification":
            transforms["log_values"] = lambda v: np.log(np.maximum(v, 1e-12))
        entry = {"target": chosen[head.name]}
        for key, transform in transforms.items():
            phi = np.zeros((len(chosen[head.name]), count))
            for i, m in enumerate(modalities):
                others = [o for o in modalities if o != m]
                for size in range(count):
                    for coalition in itertools.combinations(others, size):
                        base = frozenset(coalition)
                        phi[:, i] += weight[size] * (transform(outcome[base | {m}][head.name])
                                                     - transform(outcome[base][head.name]))
            entry[key] = phi
        entry["full"] = outcome[frozenset(modalities)][head.name]
        entry["empty"] = outcome[frozenset()][head.name]
        entry["stderr"] = np.zeros_like(entry["values"])
        result[head.name] = entry
    return result


def _sampled(predict, modalities, heads, chosen, samples, seed):
    """Monte Carlo over random orders (the same orders for every example of the batch)."""
    rng = np.random.default_rng(seed)
    count = len(modalities)
    draws = {head.name: np.zeros((samples, len(chosen[head.name]), count)) for head in heads}
    cache = {}

    def value(coalition):
        key = frozenset(coalition)
        if key not in cache:
            cache[key] = _explained(predict(set(key)), heads, chosen)
        return cache[key]

    for s in range(samples):
        order = [modalities[i] for i in rng.permutation(count)]
        before = value(())
        for position, m in enumerate(order):
            after = value(order[: position + 1])
            for head in heads:
                draws[head.name][s, :, modalities.index(m)] = after[head.name] - before[head.name]
            before = after
    result = {}
    for head in heads:
        d = draws[head.name]
        result[head.name] = {"target": chosen[head.name], "values": d.mean(axis=0),
                             "stderr": d.std(axis=0, ddof=1) / math.sqrt(samples),
                             "full": value(modalities)[head.name], "empty": value(())[head.name]}
    return result


def explain(task, data, output_dir=None, rows=None, columns=None, batch_size=64, on_bad_record="raise", report=None):
    """Per-example modality Shapley values of a trained task on a manifest, and a data-set summary.

    Args:
        task: `MultimodalTask`.
        data: manifest (CSV/JSONL path, DataFrame, list of row dicts); labels are not needed.
        output_dir: folder for `modality_shapley.csv`, `summary.json` and `modality_shapley.png`
            (nothing is written without it).
        rows: list of int. Manifest row numbers (1-based, as errors name them) to explain; default all.
        columns, batch_size, on_bad_record, report: as for `MultimodalTask.predict`.

    Returns:
        dict: "rows" (one dict per example and head: row, head, predicted, the explained output
        with all and with no modality, a Shapley value per modality), "summary" (per head: mean
        |Shapley value| per modality over all examples and per predicted class), "files".
    """
    manifest = read_manifest(data)
    if rows:
        wanted = {int(r) for r in rows}
        unknown = sorted(wanted - set(manifest.row_numbers))
        if unknown:
            raise ValueError(f"{manifest.source}: no row(s) {unknown} (its rows are numbered 1 to {len(manifest)})")
        manifest = manifest.subset([i for i, n in enumerate(manifest.row_numbers) if n in wanted])
    dataset = make_dataset(manifest, task.preprocessor, columns=columns, batch_size=batch_size, with_labels=False,
                           on_bad_record=on_bad_record, report=report)
    features = {}
    with decode_errors_located(dataset):
        for batch in dataset:
            for key, value in batch.items():
                features.setdefault(key, []).append(value.numpy())
    features = {key: np.concatenate(value) for key, value in features.items()}
    skipped = set(dataset.bad_records.rows)
    numbers = [n for n in manifest.row_numbers if n not in skipped]
    modalities = list(task.preprocessor.modalities)
    shapley = modality_shapley(task.model, features, modalities, task.heads, batch_size=batch_size)
    table, summary = [], {}
    for head in task.heads:
        entry = shapley[head.name]
        names = head.label_names
        for i, number in enumerate(numbers):
            target = int(entry["target"][i])
            row = {"row": number, "head": head.name,
                   "predicted": names[target] if names and head.type != "regression" else ("value" if head.type ==
                                                                                          "regression" else target),
                   "output_all": float(entry["full"][i]), "output_none": float(entry["empty"][i])}
            row.update({f"shapley_{m}": float(entry["values"][i, j]) for j, m in enumerate(modalities)})
            if "log_values" in entry:
                row.update({f"shapley_log_{m}": float(entry["log_values"][i, j]) for j, m in enumerate(modalities)})
            table.append(row)
        magnitude = np.abs(entry["values"])
        per_class = {}
        if head.type != "regression":
            for target in sorted(set(entry["target"].tolist())):
                label = names[target] if names else str(target)
                per_class[label] = dict(zip(modalities, magnitude[entry["target"] == target].mean(axis=0).tolist()))
        summary[head.name] = {"examples": len(numbers), "mean_abs_shapley": dict(zip(modalities,
                                                                                   magnitude.mean(axis=0).tolist())),
                              "mean_abs_shapley_per_predicted_class": per_class}
    result = {"rows": table, "summary": summary, "skipped_records": len(skipped), "files": {}}
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        files = {"per-example values": "modality_shapley.csv", "summary": "summary.json",
                 "summary plot": "modality_shapley.png"}
        with open(os.path.join(output_dir, files["per-example values"]), "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, list(table[0]) if table else ["row"])
            writer.writeheader()
            writer.writerows(table)
        with open(os.path.join(output_dir, files["summary"]), "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
        plot_summary(summary, os.path.join(output_dir, files["summary plot"]))
        if skipped:
            files["skipped records"] = "skipped_records.csv"
            dataset.bad_records.to_csv(os.path.join(output_dir, files["skipped records"]))
        result["files"] = {what: os.path.join(output_dir, name) for what, name in files.items()}
    return result


def format_summary(summary):
    """The summary as text: per head, mean |Shapley value| of each modality, largest first."""
    lines = []
    for head, entry in summary.items():
        lines.append(f"head {head}: mean |Shapley value| per modality over {entry['examples']} example(s)")
        for m, value in sorted(entry["mean_abs_shapley"].items(), key=lambda kv: -kv[1]):
            lines.append(f"  {m:<20}{value:.4f}")
    return "\n".join(lines)


def plot_summary(summary, path):
    """Mean |Shapley value| per modality, one panel per head, as a titled bar chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summary), figsize=(5 * len(summary), 3.5), squeeze=False)
    for ax, (head, entry) in zip(axes[0], summary.items()):
        names = list(entry["mean_abs_shapley"])
        ax.barh(range(len(names)), [entry["mean_abs_shapley"][m] for m in names], color="#369",
                label="mean |Shapley value|")
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_xlabel("mean |change in the predicted output|")
        ax.set_title(f"What the predictions rest on: head {head} ({entry['examples']} examples)")
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
