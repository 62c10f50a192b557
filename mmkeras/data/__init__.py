"""Data: manifests, file decoding in TensorFlow ops, and tf.data pipelines."""

from mmkeras.data.bad_records import BadRecordReport
from mmkeras.data.dataset import adapt_preprocessor
from mmkeras.data.dataset import make_dataset
from mmkeras.data.dataset import write_tfrecords
from mmkeras.data.manifest import BadRecordError
from mmkeras.data.manifest import read_manifest
from mmkeras.data.manifest import stratified_split

__all__ = [
    "BadRecordError",
    "BadRecordReport",
    "adapt_preprocessor",
    "make_dataset",
    "read_manifest",
    "stratified_split",
    "write_tfrecords",
]
