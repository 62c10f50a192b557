"""Keras' own layer-test harness (`keras.src.testing.TestCase.run_layer_test`) over mmkeras' layers.

The harness builds each layer, calls it symbolically and eagerly, round-trips its config, takes a
training step and repeats the call under a `mixed_float16` policy (the one a Colab GPU gets),
checking that declared output dtypes equal the returned ones and that weights stay float32.
Layers called with a list of tensors and a presence matrix (fusions, ModalityLogits,
ModalityCorruption) cannot be expressed to it; `LIST_CASES` puts them through the harness'
building blocks instead: eager and symbolic calls and a fit step in a small functional model
(`helpers.run_layer_test`), a config and serialization round trip, and a mixed-precision pass
whose declared (symbolic) output dtypes must equal the returned ones, with float32 weights.

Every layer the package registers with Keras must have a case here (the coverage test), so a
new layer is covered by adding it to `CASES` or `LIST_CASES`. Under the JAX backend the same file
runs the backend-agnostic cases (`TF_ONLY` names the others).
"""

import keras
import numpy as np
import pytest
from helpers import TINY_FUSION_OPTIONS
from helpers import run_layer_test
from helpers import run_serialization_test
from keras.src import testing

from mmkeras.fusion import FUSIONS
from mmkeras.layers import ModalityCorruption
from mmkeras.layers import ModalityLogits

from mmkeras.distillation import TeacherStudentPair
from mmkeras.layers import FrameMask
from mmkeras.layers import LogMelSpectrogram
from mmkeras.layers import ModalityDropout
from mmkeras.layers import SpecAugment
from mmkeras.pretrained import PixelScaling

MEL = dict(sample_rate=8000, num_mel_bins=16, frame_length=200, frame_step=80, fft_length=256)

#: name → (layer class, constructor arguments, run_layer_test arguments)
CASES = {
    "log_mel_example": (LogMelSpectrogram, MEL, dict(input_shape=(2, 4000), expected_output_shape=(2, 51, 16))),
    "log_mel_bin": (LogMelSpectrogram, {**MEL, "normalization": "bin"},
                    dict(input_shape=(2, 4000), expected_output_shape=(2, 51, 16),
                         expected_num_non_trainable_weights=2)),
    "log_mel_none": (LogMelSpectrogram, {**MEL, "normalization": "none"},
                     dict(input_shape=(2, 4000), expected_output_shape=(2, 51, 16))),
    "spec_augment": (SpecAugment, {"seed": 1}, dict(input_shape=(2, 20, 8), expected_output_shape=(2, 20, 8))),
    # the mask output is boolean: no gradient flows through it, so no training step
    "frame_mask": (FrameMask, {}, dict(input_shape=(2, 3, 4, 4, 2), expected_output_shape=((2, 3, 4, 4, 1), (2, 3)),
                                       run_training_check=False)),
    "modality_dropout": (ModalityDropout, {"rate": 0.5, "seed": 1},
                         dict(input_shape=(2, 3), expected_output_shape=(2, 3))),
    "pixel_scaling": (PixelScaling, {}, dict(input_shape=(2, 4, 4, 3), expected_output_shape=(2, 4, 4, 3))),
    "teacher_student_pair": (TeacherStudentPair, {},
                             dict(input_data=[np.full((2, 3), 1 / 3, "float32")] * 2, expected_output_shape=(2, 2, 3),
                                  run_training_check=False)),
}


class _Harness(testing.TestCase):
    def runTest(self):  # unittest needs a test method to make an instance
        pass


#: Layers without weights: built on creation, as Keras' own stateless layers are.
STATELESS = {"spec_augment", "frame_mask", "modality_dropout", "pixel_scaling", "teacher_student_pair"}
#: Layers whose output keeps its input's positions: they pass a mask on.
MASKING = {"spec_augment", "modality_dropout", "pixel_scaling"}


#: Cases whose layers run TensorFlow ops (tf.signal, SavedModels): not run under another backend.
TF_ONLY = {"log_mel_example", "log_mel_bin", "log_mel_none", "teacher_student_pair", "saved_model_encoder"}
ON_TF = keras.backend.backend() == "tensorflow"


def _backend_cases(cases):
    return sorted(name for name in cases if ON_TF or name not in TF_ONLY)


@pytest.mark.parametrize("case", _backend_cases(CASES))
def test_keras_layer_harness(case):
    layer_cls, init_kwargs, arguments = CASES[case]
    _Harness().run_layer_test(layer_cls, init_kwargs, assert_built_after_instantiation=case in STATELESS,
                              supports_masking=True if case in MASKING else None, **arguments)


MODALITIES = ["text", "image", "audio"]


def _vectors(batch=4, widths=(3, 5, 7)):
    rng = np.random.default_rng(0)
    vectors = [rng.normal(size=(batch, width)).astype("float32") for width in widths]
    presence = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1], [1, 1, 0]][:batch], "float32")
    return vectors, presence


def _fusion_case(name):
    def make(**kwargs):
        return FUSIONS[name](MODALITIES, **TINY_FUSION_OPTIONS[name], **kwargs)

    # decision-level late fusion fuses per-modality probabilities of one width
    widths = (3, 3, 3) if name == "late" else (3, 5, 7)
    return make, lambda: _vectors(widths=widths)


#: name → (make(**layer kwargs) → layer, () → (list of tensors, presence))
LIST_CASES = {f"fusion_{name}": _fusion_case(name) for name in FUSIONS}
LIST_CASES["modality_logits"] = (lambda **kw: ModalityLogits(MODALITIES, 3, **kw), _vectors)
LIST_CASES["modality_corruption"] = (lambda **kw: ModalityCorruption(rate=0.5, seed=1, **kw), _vectors)


def _outputs(value):
    return [v for v in keras.tree.flatten(value)]


@pytest.mark.parametrize("case", sorted(LIST_CASES))
def test_list_input_layers_pass_the_harness_building_blocks(case):
    make, inputs = LIST_CASES[case]
    vectors, presence = inputs()
    layer = make()
    eager = _outputs(layer(vectors, presence))
    if case != "modality_corruption":  # its outputs are its inputs, passed on: nothing to train
        run_layer_test(make(), [vectors, presence], [tuple(o.shape) for o in eager])
    run_serialization_test(make(name="under_test"))


@pytest.mark.parametrize("case", sorted(LIST_CASES))
def test_list_input_layers_declare_the_dtypes_they_return_under_mixed_precision(case):
    make, inputs = LIST_CASES[case]
    vectors, presence = inputs()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = make()
        symbolic = _outputs(layer([keras.Input(v.shape[1:]) for v in vectors], keras.Input(presence.shape[1:])))
        eager = _outputs(layer(vectors, presence))
    finally:
        keras.config.set_dtype_policy(previous)
    declared = [keras.backend.standardize_dtype(o.dtype) for o in symbolic]
    returned = [keras.backend.standardize_dtype(o.dtype) for o in eager]
    assert declared == returned, f"{case}: declared {declared}, returned {returned}"
    assert all(np.all(np.isfinite(keras.ops.convert_to_numpy(o))) for o in eager)
    assert all(w.dtype == "float32" for w in layer.weights), [(w.path, w.dtype) for w in layer.weights]


def test_every_registered_layer_of_the_package_has_a_harness_case():
    from mmkeras.layers import SavedModelEncoder

    covered = {CASES[c][0] for c in CASES} | {type(LIST_CASES[c][0]()) for c in LIST_CASES}
    # SavedModelEncoder wraps a SavedModel folder: tests/test_pretrained.py covers it with a real one
    covered.add(SavedModelEncoder)
    registered = {obj for name, obj in keras.saving.get_custom_objects().items()
                  if name.startswith("mmkeras>") and isinstance(obj, type) and issubclass(obj, keras.layers.Layer)}
    missing = sorted(cls.__name__ for cls in registered - covered)
    assert registered and not missing, f"registered layers without a harness case: {missing}"
