"""mmkeras: multimodal (text, image, audio, sensor, tabular, video) deep learning in Keras 3, from files to TF Serving."""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mmkeras import constants  # noqa: E402
from mmkeras.data import BadRecordError  # noqa: E402
from mmkeras.data import BadRecordReport  # noqa: E402
from mmkeras.data import adapt_preprocessor  # noqa: E402
from mmkeras.data import make_dataset  # noqa: E402
from mmkeras.data import read_manifest  # noqa: E402
from mmkeras.data import stratified_split  # noqa: E402
from mmkeras.data import write_tfrecords  # noqa: E402
from mmkeras.distillation import distill  # noqa: E402
from mmkeras.evaluation import evaluate  # noqa: E402
from mmkeras.export import export_saved_model  # noqa: E402
from mmkeras.fusion import FUSIONS  # noqa: E402
from mmkeras.fusion import get_fusion  # noqa: E402
from mmkeras.heads import Head  # noqa: E402
from mmkeras.model import adapt_model  # noqa: E402
from mmkeras.model import build_audio_encoder  # noqa: E402
from mmkeras.model import build_image_encoder  # noqa: E402
from mmkeras.model import build_model  # noqa: E402
from mmkeras.model import build_sensor_encoder  # noqa: E402
from mmkeras.model import build_tabular_encoder  # noqa: E402
from mmkeras.model import build_text_encoder  # noqa: E402
from mmkeras.model import build_video_encoder  # noqa: E402
from mmkeras.model import compile_model  # noqa: E402
from mmkeras.model import with_modality_weights  # noqa: E402
from mmkeras.predict import predict  # noqa: E402 - the function (from mmkeras.predict import ... still reaches the module)
from mmkeras.preprocessor import Preprocessor  # noqa: E402
from mmkeras.task import MultimodalTask  # noqa: E402
from mmkeras.task import load_run  # noqa: E402
from mmkeras.tflite import export_tflite  # noqa: E402
from mmkeras.distributed import train  # noqa: E402 - one process, or every worker TF_CONFIG names
from mmkeras.modalities.audio import AudioSpec  # noqa: E402
from mmkeras.modalities.image import ImageSpec  # noqa: E402
from mmkeras.modalities.sensor import SensorSpec  # noqa: E402
from mmkeras.modalities.tabular import TabularSpec  # noqa: E402
from mmkeras.modalities.text import TextSpec  # noqa: E402
from mmkeras.modalities.video import VideoSpec  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AudioSpec",
    "BadRecordError",
    "BadRecordReport",
    "FUSIONS",
    "Head",
    "ImageSpec",
    "MultimodalTask",
    "Preprocessor",
    "SensorSpec",
    "TabularSpec",
    "TextSpec",
    "VideoSpec",
    "adapt_model",
    "adapt_preprocessor",
    "build_audio_encoder",
    "build_image_encoder",
    "build_model",
    "build_sensor_encoder",
    "build_tabular_encoder",
    "build_text_encoder",
    "build_video_encoder",
    "compile_model",
    "constants",
    "distill",
    "evaluate",
    "export_saved_model",
    "export_tflite",
    "get_fusion",
    "load_run",
    "make_dataset",
    "predict",
    "read_manifest",
    "stratified_split",
    "train",
    "with_modality_weights",
    "write_tfrecords",
]
