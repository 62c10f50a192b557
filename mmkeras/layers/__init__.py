"""Custom Keras layers used inside mmkeras models."""

from mmkeras.layers.log_mel_spectrogram import LogMelSpectrogram
from mmkeras.layers.modality_dropout import ModalityDropout

__all__ = ["LogMelSpectrogram", "ModalityDropout"]
