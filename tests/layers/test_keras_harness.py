"""Keras' own layer-test harness (`keras.src.testing.TestCase.run_layer_test`) over mmkeras' layers.

The harness builds each layer, calls it symbolically and eagerly, round-trips its config, takes a
training step and repeats the call under a `mixed_float16` policy (the one a Colab GPU gets),
checking that declared output dtypes equal the returned ones and that weights stay float32.
Layers called with a list of tensors and a presence matrix (fusions, ModalityLogits,
ModalityCorruption) cannot be expressed to it: `tests/fusion/` and `tests/layers/` cover those
with the harness' building blocks (`helpers.run_layer_test`, serialization, mixed precision).
"""

import numpy as np
import pytest
from keras.src import testing

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


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_layer_harness(case):
    layer_cls, init_kwargs, arguments = CASES[case]
    _Harness().run_layer_test(layer_cls, init_kwargs, assert_built_after_instantiation=case in STATELESS,
                              supports_masking=True if case in MASKING else None, **arguments)
