"""mmkeras: multimodal (text, image, audio, sensor, tabular, video) deep learning in Keras 3, from files to TF Serving."""

from mmkeras import constants
from mmkeras.data import BadRecordError
from mmkeras.data import BadRecordReport
from mmkeras.data import adapt_preprocessor
from mmkeras.data import make_dataset
from mmkeras.data import read_manifest
from mmkeras.data import stratified_split
from mmkeras.data import write_tfrecords
from mmkeras.distillation import distill
from mmkeras.evaluation import evaluate
from mmkeras.export import export_saved_model
from mmkeras.fusion import FUSIONS
from mmkeras.fusion import get_fusion
from mmkeras.heads import Head
from mmkeras.model import adapt_model
from mmkeras.model import build_audio_encoder
from mmkeras.model import build_image_encoder
from mmkeras.model import build_model
from mmkeras.model import build_sensor_encoder
from mmkeras.model import build_tabular_encoder
from mmkeras.model import build_text_encoder
from mmkeras.model import build_video_encoder
from mmkeras.model import compile_model
from mmkeras.model import with_modality_weights
from mmkeras.predict import predict  # the function (from mmkeras.predict import ... still reaches the module)
from mmkeras.preprocessor import Preprocessor
from mmkeras.task import MultimodalTask
from mmkeras.task import load_run
from mmkeras.tflite import export_tflite
from mmkeras.distributed import train  # one process, or every worker TF_CONFIG names
from mmkeras.modalities.audio import AudioSpec
from mmkeras.modalities.image import ImageSpec
from mmkeras.modalities.sensor import SensorSpec
from mmkeras.modalities.tabular import TabularSpec
from mmkeras.modalities.text import TextSpec
from mmkeras.modalities.video import VideoSpec

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
