"""`MultimodalTask`: one object that knows what a trained model is, shaped like keras-hub's tasks.

A task holds the Keras model, its `Preprocessor` (modalities, learned state and the column
mapping) and its heads (each with its type, width and class names), and is the one way to use a
trained model: `MultimodalTask.from_preset(run_dir)` loads it, `task.predict(data)` answers for a
manifest through the same post-processing as the served model, `task.export(base)` writes the
TF Serving SavedModel, `task.save_to_preset(folder)` writes it again. Nothing is worked out from
layer names: the heads come from `task.json`, the columns from the Preprocessor.
"""

import os

from mmkeras import constants
from mmkeras import layout
from mmkeras.data import make_dataset
from mmkeras.data import read_manifest
from mmkeras.data.dataset import decode_errors_located
from mmkeras.evaluation import evaluate
from mmkeras.explain import explain
from mmkeras.export import export_saved_model
from mmkeras.export import serving_model
from mmkeras.heads import Head
from mmkeras.heads import label_head
from mmkeras.postprocess import head_outputs
from mmkeras.postprocess import model_heads
from mmkeras.postprocess import postprocess
from mmkeras.postprocess import result_rows
from mmkeras.preprocessor import Preprocessor
from mmkeras.tflite import export_run_tflite


class MultimodalTask:
    """A trained multimodal model: the Keras model, its Preprocessor and its heads.

    Args:
        model: keras.Model from `build_model` (or a run's `model.keras`).
        preprocessor: the adapted `Preprocessor` the model was trained with.
        heads: list of `Head` (or dicts of its fields), one per model output. Default: the
            Preprocessor's own label head, for a model whose one output is "label".
        config: dict. The resolved config the model was trained from, kept with the preset.

    Example:

    >>> import mmkeras
    >>> pre = mmkeras.Preprocessor({"text": {"max_tokens": 20, "sequence_length": 4}})
    >>> mmkeras.adapt_preprocessor(pre, [{"text": "red", "label": "warm"}, {"text": "blue", "label": "cold"}])
    >>> model = mmkeras.build_model({"text": {"max_tokens": 20, "sequence_length": 4, "lstm_units": 2}},
    ...                             num_classes=2)
    >>> task = MultimodalTask(model, pre)
    >>> [(h.name, h.type, h.label_names) for h in task.heads]
    [('label', 'classification', ['cold', 'warm'])]
    >>> sorted(task.predict({"text": ["red", "blue"]})[0])
    ['label', 'prob_cold', 'prob_warm', 'row']
    """

    def __init__(self, model, preprocessor, heads=None, config=None):
        widths = {name: int(tensor.shape[-1]) for name, tensor in head_outputs(model).items()}
        if heads is None:
            if list(widths) != [constants.DEFAULT_HEAD]:
                raise ValueError(f"The model has outputs {sorted(widths)}: pass heads=[Head(...), ...] naming each "
                                 "(only a model whose one output is 'label' takes its head from the Preprocessor)")
            heads = [label_head(preprocessor)]
        heads = [h if isinstance(h, Head) else Head(**h) for h in heads]
        names = sorted(h.name for h in heads)
        if names != sorted(widths):
            raise ValueError(f"Expected one head per model output {sorted(widths)}. Received heads for {names}")
        for head in heads:
            if head.units != widths[head.name]:
                raise ValueError(f"Head {head.name!r} has {head.units} units but the model's output {head.name!r} is "
                                 f"{widths[head.name]} wide")
        self.model, self.preprocessor, self.heads, self.config = model, preprocessor, heads, config

    # ----------------------------------------------------------------- what the task is
    @property
    def modalities(self):
        """Modality names, in the order of the Preprocessor."""
        return self.preprocessor.modalities

    @property
    def columns(self):
        """Modality name (and "label") → the manifest column it is read from."""
        return self.preprocessor.column_mapping()

    def __repr__(self):
        heads = ", ".join(f"{h.name}: {h.type}[{h.units}]" for h in self.heads)
        return f"<MultimodalTask modalities={self.modalities} heads=({heads})>"

    # ----------------------------------------------------------------- presets
    @classmethod
    def from_preset(cls, path):
        """Loads a task from a preset folder or a run directory (`mmkeras train`'s output).

        Runs written before `task.json` and the Preprocessor's column mapping existed still load:
        their heads are worked out from the model's output layers, their columns read from the
        run's `config.yaml`.
        """
        path = os.fspath(path)
        model_file = os.path.join(path, layout.MODEL_FILE)
        if not os.path.isfile(model_file):
            finished = layout.is_finished(path)
            hint = "" if finished or not os.path.isdir(path) else " (a run still training, or one that failed?)"
            raise FileNotFoundError(f"{path}: not a preset or finished run: no {layout.MODEL_FILE}{hint}")
        model = layout.load_model_file(model_file)
        preprocessor = Preprocessor.load(os.path.join(path, layout.PREPROCESSOR_DIR))
        config = layout.read_config(path)
        if not preprocessor.columns and config:  # saved before the Preprocessor kept its columns
            preprocessor.columns = dict(config["data"]["columns"])
        task = layout.read_task(path)
        heads = [Head(**h) for h in task["heads"]] if task else model_heads(model, preprocessor)
        return cls(model, preprocessor, heads, config)

    def save_to_preset(self, path):
        """Writes the task into `path` (`from_preset(path)` reads it back)."""
        layout.save_preset(os.fspath(path), self.model, self.preprocessor, self.heads, self.config)

    # ----------------------------------------------------------------- use
    def predict(self, data, batch_size=64, columns=None, on_bad_record="raise", report=None):
        """Predicts every row of `data` through the one post-processing path.

        Args:
            data: a manifest: CSV/JSONL path, DataFrame, list of row dicts, or dict of columns
                (column → list of cells). Labels are not needed. A configured column that the
                manifest lacks is an error naming it; an empty cell is a missing modality.
            batch_size: int.
            columns: dict. Modality name → column, where it differs from the trained mapping.
            on_bad_record: "raise" (default) or "skip": rows that cannot be decoded get no
                prediction and are listed in `report` (see `make_dataset`).
            report: `BadRecordReport` to add the skipped rows to.

        Returns:
            list of dict, one per predicted row: `row` (the manifest's row number), then per head
            `label` and `prob_<class>`, or `value` (prefixed by the head's name when there are
            several heads).
        """
        manifest = read_manifest(data)
        dataset = make_dataset(manifest, self.preprocessor, columns=columns, batch_size=batch_size, with_labels=False,
                               on_bad_record=on_bad_record, report=report)
        with decode_errors_located(dataset):
            outputs = serving_model(self.model).predict(dataset, verbose=0)
        results = {name: value.numpy() for name, value in postprocess(outputs, self.heads).items()}
        skipped = set(dataset.bad_records.rows)
        return result_rows([n for n in manifest.row_numbers if n not in skipped], results, self.heads)

    def export(self, export_base, version=None, check_inputs=None):
        """Writes the TF Serving SavedModel (raw bytes in) as `export_saved_model` does; returns its folder."""
        return export_saved_model(self.model, self.preprocessor, export_base, version=version,
                                  check_inputs=check_inputs, heads=self.heads)

    def export_tflite(self, output_dir, quantize="none", representative_examples=200):
        """Writes a TFLite model and its side files (see `mmkeras.tflite`); int8 calibrates on the
        training manifest named by the task's config."""
        return export_run_tflite(self.model, self.preprocessor, self.config, output_dir, quantize=quantize,
                                 representative_examples=representative_examples, heads=self.heads)

    def explain(self, data, output_dir=None, rows=None, columns=None, batch_size=64, on_bad_record="raise",
                report=None, **options):
        """Per-example Shapley values of each modality, Integrated Gradients inside each, and a
        summary (`mmkeras.explain.explain`, whose `inputs`, `steps`, `plotted` and `top` options
        pass through)."""
        return explain(self, data, output_dir=output_dir, rows=rows, columns=columns, batch_size=batch_size,
                       on_bad_record=on_bad_record, report=report, **options)

    def evaluate(self, data, output_dir=None, columns=None, batch_size=64, on_bad_record="raise", seed=0):
        """`mmkeras.evaluation.evaluate` on this task's model (classification report, ablation, robustness)."""
        return evaluate(self.model, self.preprocessor, data, output_dir=output_dir, columns=columns,
                        batch_size=batch_size, on_bad_record=on_bad_record, seed=seed)


def load_run(run_dir):
    """(model, preprocessor, config) of a run directory: `MultimodalTask.from_preset`'s parts."""
    task = MultimodalTask.from_preset(run_dir)
    return task.model, task.preprocessor, task.config
