"""Knowledge distillation: a smaller student learns from a trained teacher's softened outputs.

`mmkeras distill --teacher RUN --config student.yaml --output RUN2` trains the student with
`train()` (the same pipeline, callbacks, early stopping and run directory) on a loss that mixes
the labels' and the teacher's (Hinton et al., 2015):

    (1 - alpha) * cross-entropy(labels, student) + alpha * T² * KL(teacher_T ‖ student_T)

where `p_T = softmax(log p / T)` softens a distribution with the temperature `T` (log-probabilities
are logits up to a constant, so the heads' probabilities suffice).

The student reads the teacher's decoded inputs: its config lists some or all of the teacher's
modalities, each with the teacher's settings overlaid by the student's own (smaller encoders:
`lstm_units`, `filters`, `units`, ...), and the data settings default to the teacher's. An
option that changes how a modality decodes (image size, vocabulary, sample rate) is refused,
since the teacher could not read that input. The run directory holds the student alone: it
evaluates, exports and serves like any other run.
"""

import copy
import os

import keras
import numpy as np
import tensorflow as tf

from mmkeras import config as config_lib
from mmkeras import constants
from mmkeras.data import make_dataset
from mmkeras.modalities.registry import get_kind
from mmkeras.specs import make_spec
from mmkeras.specs import settle_specs
from mmkeras.specs import spec_to_dict
from mmkeras.task import MultimodalTask
from mmkeras.training import TrainingHooks
from mmkeras.training import train

DEFAULT_TEMPERATURE = 2.0
DEFAULT_ALPHA = 0.5
#: Name of the combined model's extra output and target during distillation.
DISTILL_OUTPUT = "distill"


class Teacher(TrainingHooks):
    """A trained run used as a teacher: its model, Preprocessor and config; as `train`'s hooks,
    it feeds the data through its Preprocessor and adds its softened answer to the loss.

    Args:
        run_dir: str. The teacher's run directory.
        temperature: float. Softening temperature T (> 0).
        alpha: float. Weight of the teacher's term, in [0, 1].
    """

    def __init__(self, run_dir, temperature=DEFAULT_TEMPERATURE, alpha=DEFAULT_ALPHA):
        if not temperature > 0:
            raise ValueError(f"Expected a temperature > 0. Received: temperature={temperature!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Expected alpha in [0, 1]. Received: alpha={alpha!r}")
        self.run_dir, self.temperature, self.alpha = run_dir, float(temperature), float(alpha)
        task = MultimodalTask.from_preset(run_dir)
        self.model, self.preprocessor, self.config = task.model, task.preprocessor, task.config
        if self.preprocessor.label_type != "classification":
            raise ValueError(f"{run_dir}: distillation takes a classification teacher; its labels are "
                             f"{self.preprocessor.label_type!r}")
        self.model.trainable = False

    def student_config(self, config):
        """The student's config: the teacher's data settings unless given, and each student
        modality's options overlaid on the teacher's."""
        config = copy.deepcopy(dict(config))
        teacher = self.config or {}
        config["data"] = {**(teacher.get("data") or {}), **(config.get("data") or {})}
        modalities = config.get("modalities") or {}
        if not modalities:
            raise ValueError("The student's config needs modalities: some or all of the teacher's "
                             f"{sorted(self.preprocessor.specs)}")
        unknown = sorted(set(modalities) - set(self.preprocessor.specs))
        if unknown:
            raise ValueError(f"Student modalities {unknown} are not the teacher's; it reads "
                             f"{sorted(self.preprocessor.specs)} (a student learns from the teacher's inputs).")
        augmented = sorted(name for name, options in modalities.items() if "augment" in (options or {}))
        if augmented:
            raise ValueError(f"Student modalities {augmented} set 'augment', which a student cannot change: it trains on "
                             "the teacher's batches, augmented as the teacher's settings say. Leave it out.")
        config["modalities"] = {name: {**self._inherited(name, teacher), **(options or {})}
                                for name, options in modalities.items()}
        return config

    def _inherited(self, name, teacher):
        """The teacher's settings of one modality, less what its kind settles for the encoder from
        the model's other modalities (a fused teacher's pooled sensor) where the teacher's config
        did not set it: the student settles that among its own modalities."""
        spec = self.preprocessor.specs[name]
        chosen = ((teacher.get("modalities") or {}).get(name)) or {}
        return {key: value for key, value in spec_to_dict(spec).items()
                if key not in get_kind(spec.kind).settled_encoder_keys or key in chosen}

    def student_preprocessor(self, modalities, manifest, columns):
        """The teacher's Preprocessor restricted to the student's modalities (same vocabularies and
        label names), checked to decode a few manifest rows exactly as the teacher's does."""
        student = copy.copy(self.preprocessor)
        student.specs = settle_specs({name: make_spec(name, options) for name, options in modalities.items()})
        student.converters = {}
        for name, spec in student.specs.items():
            converter = copy.copy(self.preprocessor.converters[name])
            converter.spec = spec
            student.converters[name] = converter
        sample = manifest.subset(range(min(8, len(manifest))))
        teacher_x, _ = next(iter(make_dataset(sample, self.preprocessor, columns=columns, batch_size=8,
                                              on_bad_record="skip")))
        student_x, _ = next(iter(make_dataset(sample, student, columns=columns, batch_size=8, on_bad_record="skip")))
        for name in student.specs:
            a, b = teacher_x[name].numpy(), student_x[name].numpy()
            if a.shape != b.shape or not np.array_equal(a, b):
                raise ValueError(
                    f"Student modality {name!r} must decode its input as the teacher's does (the teacher reads the "
                    f"same tensors), but its settings change it (teacher {a.shape}, student {b.shape}). Change only "
                    f"its encoder's options (units, filters, dropout, ...), not sizes, vocabulary or sample rate.")
        return student

    def fitting_model(self, student, heads):
        """(model to fit, its heads): the student's outputs plus the softened pair for the KL term.

        The label head's loss weight becomes `1 - alpha`; the pair's, `alpha`.
        """
        self.model.name = "teacher"  # both are built as "mmkeras_model"; names in one model must differ
        inputs = {tensor.name: keras.Input(tensor.shape[1:], dtype=tensor.dtype, name=tensor.name)
                  for tensor in self.model.inputs}
        taught = self.model(inputs, training=False)[constants.DEFAULT_HEAD]
        learned = student({tensor.name: inputs[tensor.name] for tensor in student.inputs})
        pair = TeacherStudentPair(name=DISTILL_OUTPUT)([taught, learned[constants.DEFAULT_HEAD]])
        combined = keras.Model(inputs, {**learned, DISTILL_OUTPUT: pair}, name=f"{student.name}_distillation")
        heads = [copy.copy(head) for head in heads]
        for head in heads:
            if head.name == constants.DEFAULT_HEAD:
                head.loss_weight = head.loss_weight * (1.0 - self.alpha)
        return combined, [*heads, _DistillTarget(self.temperature, self.alpha)]

    # ----------------------------------------------------------------- TrainingHooks
    def preprocessors(self, config, train_manifest):
        """The student keeps the teacher's vocabularies and labels; the data feed both models."""
        student = self.student_preprocessor(config["modalities"], train_manifest, config["data"]["columns"])
        return student, self.preprocessor

    def fitting(self, model, heads, train_ds, val_ds):
        combined, fit_heads = self.fitting_model(model, heads)
        return (combined, fit_heads, with_distill_target(train_ds),
                with_distill_target(val_ds) if val_ds is not None else None)

    def evaluation_data(self, dataset, model):
        return student_inputs(dataset, model)

    def metrics(self):
        return {"distillation": {"teacher": os.path.abspath(self.run_dir), "temperature": self.temperature,
                                 "alpha": self.alpha}}


def with_distill_target(dataset):
    """Adds the pair output's placeholder target (and sample weight, where there are weights)."""

    def add(features, targets, *weights):
        size = tf.shape(targets[constants.DEFAULT_HEAD])[0]
        targets = {**targets, DISTILL_OUTPUT: tf.zeros([size, 1])}
        if weights:
            return features, targets, {**weights[0], DISTILL_OUTPUT: tf.ones([size])}
        return features, targets

    return dataset.map(add)


def student_inputs(dataset, student):
    """`dataset` with only the features the student takes (the teacher may read more modalities)."""
    names = [tensor.name for tensor in student.inputs]
    return dataset.map(lambda features, *rest: ({name: features[name] for name in names}, *rest))


@keras.saving.register_keras_serializable(package="mmkeras")
class TeacherStudentPair(keras.layers.Layer):
    """[teacher probabilities, student probabilities] → `(batch, 2, classes)`; no gradient reaches the teacher."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._build_at_init()  # no weights: built on creation (unless a subclass builds), as Keras' own are

    def call(self, inputs):
        teacher, student = inputs
        return keras.ops.stack([keras.ops.stop_gradient(keras.ops.cast(teacher, student.dtype)), student], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[1][0], 2, input_shape[1][-1])


@keras.saving.register_keras_serializable(package="mmkeras")
class DistillationLoss(keras.losses.Loss):
    """T² · KL(teacher_T ‖ student_T) from a `TeacherStudentPair` output; the target is ignored.

    Example:

    >>> import numpy as np
    >>> pair = np.array([[[0.7, 0.2, 0.1], [0.7, 0.2, 0.1]]], "float32")
    >>> round(float(DistillationLoss(2.0)(np.zeros((1, 1)), pair)), 6)
    0.0
    """

    def __init__(self, temperature=DEFAULT_TEMPERATURE, name="distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = float(temperature)

    def call(self, y_true, y_pred):
        ops, t = keras.ops, self.temperature
        log_teacher = ops.log(ops.clip(y_pred[:, 0], 1e-7, 1.0)) / t
        log_student = ops.log(ops.clip(y_pred[:, 1], 1e-7, 1.0)) / t
        teacher = ops.softmax(log_teacher, axis=-1)
        kl = ops.sum(teacher * (ops.log_softmax(log_teacher, axis=-1) - ops.log_softmax(log_student, axis=-1)), axis=-1)
        return kl * t * t

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


class _DistillTarget:
    """The pair output as `compile_model` takes a head: its loss, weight and (no) metrics."""

    name = DISTILL_OUTPUT

    def __init__(self, temperature, alpha):
        self.temperature, self.loss_weight = temperature, alpha

    def loss(self):
        return DistillationLoss(self.temperature)

    def metrics(self):
        return []


def distill(teacher_run, config, output_dir, temperature=DEFAULT_TEMPERATURE, alpha=DEFAULT_ALPHA,
            callbacks=None, overwrite=False):
    """Trains a student run from a teacher run (see the module's docstring).

    Args:
        teacher_run: str. The teacher's run directory.
        config: dict or YAML path. The student's config (modalities required; data defaults to the teacher's).
        output_dir: str. The student's run directory.
        temperature: float. Softening temperature.
        alpha: float. Weight of the teacher's term (0: labels only, 1: teacher only).

    Returns:
        (student model, its Preprocessor, history dict), as `train()`.
    """
    teacher = Teacher(teacher_run, temperature, alpha)
    if isinstance(config, (str, os.PathLike)):
        raw, base_dir = config_lib.read_config_file(config)
    else:
        raw, base_dir = dict(config), None
    resolved = config_lib.resolve_config(teacher.student_config(raw), base_dir=base_dir)
    return train(resolved, output_dir, callbacks=callbacks, overwrite=overwrite, hooks=teacher)
