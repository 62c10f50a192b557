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
regression, the value. The Shapley values run through `model.predict`, on every Keras backend.

Inside each modality, `input_attributions` gives Integrated Gradients (Sundararajan et al., 2017)
of the same output: the straight path from the kind's baseline ("no signal": black pixels,
silence, padding tokens, the mean of a series or a column) to the input, `steps` midpoints,
gradients by `tf.GradientTape` (the TensorFlow backend only). Each kind says where on the model
they are taken (the embeddings for text, the log-mel for audio, else the model input) and how its
attributions read (`Modality.describe_attribution`: per region of an image, per token, per moment
of sound, per step of a series, per column, per frame). The attributions of an example sum to the
change of the output between the path's two ends, up to the error of the midpoint rule, which
each result reports.
"""

import contextlib
import csv
import itertools
import json
import math
import os

import keras
import numpy as np

from mmkeras.data import make_dataset
from mmkeras.data import read_manifest
from mmkeras.data.dataset import decode_errors_located
from mmkeras.evaluation import mark_absent
from mmkeras.layers import find_layer

#: Exact enumeration of the 2^M coalitions up to this many modalities; sampled orders beyond.
EXACT_UP_TO = 8
#: Midpoints on the Integrated Gradients path.
IG_STEPS = 32
#: Examples whose attributions are drawn (one PNG each) by `explain`.
PLOTTED_EXAMPLES = 8


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


@contextlib.contextmanager
def _output_replaced(layer, replace):
    """While inside: `layer` returns `replace(its own output)` (an instance attribute shadows `call`)."""
    original = layer.call

    def call(*args, **kwargs):
        return replace(original(*args, **kwargs))

    layer.call = call
    try:
        yield
    finally:
        del layer.call


def _head_outputs(model, inputs):
    import tensorflow as tf

    out = model({key: tf.convert_to_tensor(value) for key, value in inputs.items()}, training=False)
    return out if isinstance(out, dict) else {"label": out}


def input_attributions(model, features, modality, converter, heads, targets, steps=IG_STEPS, batch_size=64):
    """Integrated Gradients of each head's explained output inside one modality.

    Args:
        model: a model of this package (TensorFlow backend).
        features: dict of numpy arrays, the model's inputs for a batch of examples.
        modality: str. The modality to attribute inside.
        converter: the modality's `Modality` (from `Preprocessor.converters`).
        heads: list of `Head`.
        targets: dict head name → index of the explained output per example (as
            `modality_shapley` returns in "target").
        steps: int. Midpoints on the path (more: smaller completeness error, more compute).
        batch_size: int. Rows per forward pass (examples x steps are split to fit).

    Returns:
        None when the modality cannot be attributed (integer inputs and no layer to attribute to,
        e.g. a keras-hub text encoder), else a dict: "on_layer" (bool) and "layer" (its name or
        the input's), and per head name a dict with "attributions" (examples x the attributed
        tensor's shape), "delta" (the output at the path's end minus at its start, per example)
        and "total" (the attributions' sum, per example: equal to "delta" up to the midpoint rule).
    """
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"Integrated Gradients need the TensorFlow backend (this one is "
                           f"{keras.backend.backend()!r}); modality Shapley values run on every backend.")
    import tensorflow as tf

    if steps < 1:
        raise ValueError(f"Expected steps >= 1 for Integrated Gradients. Received: steps={steps}")
    inputs = np.asarray(features[modality])
    baseline = np.asarray(converter.attribution_baseline(inputs), inputs.dtype)
    layer = find_layer(model, modality + converter.attribution_layer) if converter.attribution_layer else None
    if layer is None and not np.issubdtype(inputs.dtype, np.floating):
        return None
    alphas = ((np.arange(steps) + 0.5) / steps).astype("float32")
    chunk = max(1, batch_size // steps)
    parts = {head.name: {"attributions": [], "delta": [], "total": []} for head in heads}
    for start in range(0, len(inputs), chunk):
        batch = {key: np.asarray(value)[start:start + chunk] for key, value in features.items()}
        count = len(batch[modality])
        chosen = {head.name: np.asarray(targets[head.name])[start:start + chunk] for head in heads}
        repeated = {key: np.repeat(value, steps, axis=0) for key, value in batch.items()}
        alpha = np.tile(alphas, count)
        if layer is None:  # the path runs through the model input
            begin, end = baseline[start:start + chunk].astype("float32"), batch[modality].astype("float32")
            end_values = {0: _head_outputs(model, {**batch, modality: begin}), 1: _head_outputs(model, batch)}
            dtype = tf.float32

            def outputs_on(path):
                return _head_outputs(model, {**repeated, modality: path})
        else:  # through the layer's output: recorded on the example and on the baseline input
            recorded = {}

            def record(key):
                def keep(output):
                    recorded[key] = output
                    return output
                return keep

            with _output_replaced(layer, record(1)):
                end_values = {1: _head_outputs(model, batch)}
            with _output_replaced(layer, record(0)):
                _head_outputs(model, {**batch, modality: baseline[start:start + chunk]})
            with _output_replaced(layer, lambda output: recorded[0]):
                end_values[0] = _head_outputs(model, batch)
            begin, end = np.asarray(recorded[0], "float32"), np.asarray(recorded[1], "float32")
            dtype = recorded[1].dtype

            def outputs_on(path):
                with _output_replaced(layer, lambda output: path):
                    return _head_outputs(model, repeated)
        rep_begin, rep_end = np.repeat(begin, steps, axis=0), np.repeat(end, steps, axis=0)
        path = tf.constant(rep_begin + alpha.reshape(-1, *[1] * (begin.ndim - 1)) * (rep_end - rep_begin), dtype=dtype)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(path)
            outputs = outputs_on(path)
            explained = {h: _gather(outputs[h], np.repeat(chosen[h], steps)) for h in chosen}
        difference = end - begin
        for head in heads:
            gradient = tape.gradient(explained[head.name], path)
            gradient = np.asarray(tf.cast(gradient, tf.float32)).reshape(count, steps, *difference.shape[1:])
            attribution = difference * gradient.mean(axis=1)
            values = {k: np.asarray(_gather(v[head.name], chosen[head.name]), "float64") for k, v in end_values.items()}
            parts[head.name]["attributions"].append(attribution)
            parts[head.name]["delta"].append(values[1] - values[0])
            parts[head.name]["total"].append(attribution.reshape(count, -1).sum(axis=1).astype("float64"))
        del tape
    result = {"on_layer": layer is not None, "layer": layer.name if layer is not None else modality}
    for name, part in parts.items():
        result[name] = {key: np.concatenate(value) for key, value in part.items()}
    return result


def _gather(outputs, index):
    """Per row, the output at `index` (the explained class, label or value)."""
    import tensorflow as tf

    outputs = tf.cast(tf.reshape(outputs, [tf.shape(outputs)[0], -1]), tf.float32)
    return tf.gather(outputs, tf.constant(np.asarray(index, "int32")), axis=1, batch_dims=1)


def explain(task, data, output_dir=None, rows=None, columns=None, batch_size=64, on_bad_record="raise", report=None,
            inputs=True, steps=IG_STEPS, plotted=PLOTTED_EXAMPLES, top=3, progress=None):
    """Per-example modality Shapley values of a trained task on a manifest, and a data-set summary.

    Args:
        task: `MultimodalTask`.
        data: manifest (CSV/JSONL path, DataFrame, list of row dicts); labels are not needed.
        output_dir: folder for `modality_shapley.csv`, `summary.json` and `modality_shapley.png`
            (nothing is written without it).
        rows: list of int. Manifest row numbers (1-based, as errors name them) to explain; default all.
        columns, batch_size, on_bad_record, report: as for `MultimodalTask.predict`.
        inputs: bool. Also attribute inside each modality (Integrated Gradients, TensorFlow
            backend): `top_<modality>` columns in the table (the `top` units with the largest
            |attribution|), `input_attributions.json` (every unit's score, and the completeness
            check per example), and one PNG per example for the first `plotted` examples.
        steps: int. Integrated Gradients midpoints.
        progress: fn(str) told what is being computed, step by step (the CLI prints to stderr).

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
    say = progress or (lambda text: None)
    passes = 2 ** len(modalities) if len(modalities) <= EXACT_UP_TO else "sampled"
    say(f"modality Shapley values: {len(numbers)} example(s), {passes} forward passes each")
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
    described = {}
    if inputs:
        targets = {h.name: shapley[h.name]["target"] for h in task.heads}
        described = _described_inputs(task, features, modalities, targets, steps, batch_size, say)
        by_key = {(r["row"], r["head"]): r for r in table}
        for head in task.heads:
            for i, number in enumerate(numbers):
                for m in modalities:  # "" where the modality is absent or cannot be attributed
                    found = described[m][head.name][i] if m in described else None
                    by_key[(number, head.name)][f"top_{m}"] = _top_text(found, top)
    result = {"rows": table, "summary": summary, "skipped_records": len(skipped), "files": {}}
    if described:
        result["inputs"] = _input_records(described, numbers, modalities, task.heads)
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
        if described:
            files["input attributions"] = "input_attributions.json"
            with open(os.path.join(output_dir, files["input attributions"]), "w", encoding="utf-8") as f:
                json.dump(result["inputs"], f, indent=1, ensure_ascii=False)
            folder = os.path.join(output_dir, "attributions")
            os.makedirs(folder, exist_ok=True)
            say(f"drawing {min(plotted, len(numbers))} example(s) into {folder}")
            for i, number in enumerate(numbers[:plotted]):
                for head in task.heads:
                    name = f"row{number}_{head.name}.png"
                    plot_example(described, modalities, head.name, i, number, os.path.join(folder, name))
            files["attribution plots"] = "attributions"
        if skipped:
            files["skipped records"] = "skipped_records.csv"
            dataset.bad_records.to_csv(os.path.join(output_dir, files["skipped records"]))
        result["files"] = {what: os.path.join(output_dir, name) for what, name in files.items()}
    return result


def _described_inputs(task, features, modalities, targets, steps, batch_size, say):
    """modality → head → per example: the kind's description of its attributions (None where absent)."""
    described = {}
    for position, m in enumerate(modalities, start=1):
        say(f"Integrated Gradients inside {m} ({position}/{len(modalities)}): "
            f"{len(features[m])} example(s) x {steps} steps")
        converter = task.preprocessor.converters[m]
        found = input_attributions(task.model, features, m, converter, task.heads, targets, steps=steps,
                                   batch_size=batch_size)
        if found is None:
            continue
        present = np.asarray(features[f"{m}_present"]).reshape(-1) > 0
        described[m] = {}
        for head in task.heads:
            entry = found[head.name]
            examples = []
            for i in range(len(present)):
                if not present[i]:
                    examples.append(None)
                    continue
                description = converter.describe_attribution(entry["attributions"][i], np.asarray(features[m][i]),
                                                             found["on_layer"])
                description.update(total=float(entry["total"][i]), delta=float(entry["delta"][i]),
                                   attributed=found["layer"])
                examples.append(description)
            described[m][head.name] = examples
    return described


def _top_text(description, top):
    """The `top` units of largest |score|, "label: +0.123; ..." (empty when the modality is absent)."""
    if not description:
        return ""
    scores = np.asarray(description["scores"], "float64")
    order = np.argsort(-np.abs(scores), kind="stable")[:top]
    return "; ".join(f"{description['labels'][j]}: {scores[j]:+.4f}" for j in order)


def _input_records(described, numbers, modalities, heads):
    """JSON-friendly: one record per example and head, each modality's unit, labels and scores."""
    records = []
    for head in heads:
        for i, number in enumerate(numbers):
            record = {"row": number, "head": head.name, "modalities": {}}
            for m in modalities:
                d = described[m][head.name][i] if m in described else None
                if d is None:
                    continue
                record["modalities"][m] = {
                    "unit": d["unit"], "attributed": d["attributed"], "labels": list(d["labels"]),
                    "scores": [float(v) for v in d["scores"]], "total": d["total"], "delta": d["delta"],
                    **({"by_channel": [float(v) for v in d["by_channel"]]} if "by_channel" in d else {})}
            records.append(record)
    return records


def plot_example(described, modalities, head, index, number, path):
    """One example's attributions, a panel per modality: a heat map over the picture (image,
    video's top frame), a map (audio's time x mel, a series' step x channel), or bars per unit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [(m, described[m][head][index]) for m in modalities if m in described and described[m][head][index]]
    if not shown:
        return
    columns = min(3, len(shown))
    lines = -(-len(shown) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(4.6 * columns, 3.6 * lines), squeeze=False)
    for ax in axes.ravel()[len(shown):]:
        ax.axis("off")
    for ax, (m, d) in zip(axes.ravel(), shown):
        title = f"{m}: by {d['unit']} (sum {d['total']:+.3f}, change {d['delta']:+.3f})"
        if "map" in d:
            heat = np.asarray(d["map"], "float64")
            limit = np.abs(heat).max() or 1.0
            if "picture" in d:
                picture = np.asarray(d["picture"], "float64")
                picture = picture[..., 0] if picture.shape[-1] == 1 else picture[..., :3]
                ax.imshow(np.clip(picture, 0, 1), cmap="gray" if picture.ndim == 2 else None)
                image = ax.imshow(heat, cmap="bwr", vmin=-limit, vmax=limit, alpha=0.55)
            else:
                image = ax.imshow(heat, cmap="bwr", vmin=-limit, vmax=limit, aspect="auto", origin="lower")
                if heat.shape[0] <= 8:  # a few channels: one tick each
                    ax.set_yticks(range(heat.shape[0]))
            ax.set_ylabel(d["map_axes"][0])
            ax.set_xlabel(d["map_axes"][1])
            fig.colorbar(image, ax=ax, fraction=0.046, label="attribution")
        else:
            scores = np.asarray(d["scores"], "float64")
            ax.barh(range(len(scores)), scores, color=np.where(scores >= 0, "#c33", "#36c"))
            ax.set_yticks(range(len(scores)), d["labels"], fontsize="small")
            ax.invert_yaxis()
            ax.axvline(0, color="black", linewidth=0.5)
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
            ax.set_xlabel("attribution (red raises the output, blue lowers it)")
        ax.set_title(title, fontsize="small")
    fig.suptitle(f"Row {number}, head {head}: Integrated Gradients inside each modality")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def format_summary(summary):
    """The summary as text: per head, mean |Shapley value| of each modality, largest first."""
    lines = []
    for head, entry in summary.items():
        lines.append(f"head {head}: mean |Shapley value| per modality over {entry['examples']} example(s)")
        for m, value in sorted(entry["mean_abs_shapley"].items(), key=lambda kv: -kv[1]):
            lines.append(f"  {m:<20}{value:.4f}")
    return "\n".join(lines)


def format_inputs(records, rows, limit=3, top=3):
    """Text: for the first `limit` examples, each modality's `top` units by |attribution|."""
    predicted = {(r["row"], r["head"]): r["predicted"] for r in rows}
    lines = []
    for record in records[:limit]:
        key = (record["row"], record["head"])
        lines.append(f"row {key[0]} (head {key[1]}, predicted {predicted.get(key)}): what inside each modality "
                     "moved it most (Integrated Gradients)")
        for m, d in record["modalities"].items():
            lines.append(f"  {m:<12}{_top_text(d, top)}")
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
