"""Custom Keras layers used inside mmkeras models."""

from mmkeras.layers.frame_mask import FrameMask
from mmkeras.layers.log_mel_spectrogram import LogMelSpectrogram
from mmkeras.layers.modality_corruption import ModalityCorruption
from mmkeras.layers.modality_dropout import ModalityDropout
from mmkeras.layers.modality_logits import ModalityLogits
from mmkeras.layers.saved_model_encoder import SavedModelEncoder
from mmkeras.layers.spec_augment import SpecAugment
from mmkeras.layers.walk import find_layer
from mmkeras.layers.walk import walk_layers

__all__ = ["FrameMask", "LogMelSpectrogram", "ModalityCorruption", "ModalityDropout", "ModalityLogits", "SavedModelEncoder", "SpecAugment",
           "find_layer", "walk_layers"]
