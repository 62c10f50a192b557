"""From a resolved config to what training needs: the data split, the fitted Preprocessor, the heads,
the model and the datasets.

One recipe for every trainer: `training.train`, `distributed.train_across_workers`,
`tuning.tune` and `mmkeras prepare` all build these the same way from the same config.
"""

import json
import os

from mmkeras import constants
from mmkeras.data import adapt_preprocessor
from mmkeras.data import make_dataset
from mmkeras.data import stratified_split
from mmkeras.data.manifest import LABEL_COLUMN
from mmkeras.heads import label_head
from mmkeras.model import build_model
from mmkeras.preprocessor import Preprocessor


def cluster_from_env(environ=None):
    """(workers, this worker's rank, is chief) from `TF_CONFIG`, or None for fewer than two workers.

    Example:

    >>> cluster_from_env({"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}'})
    (2, 1, False)
    """
    raw = (os.environ if environ is None else environ).get("TF_CONFIG")
    if not raw:
        return None
    tf_config = json.loads(raw)
    cluster, task = tf_config.get("cluster") or {}, tf_config.get("task") or {}
    chiefs, workers = list(cluster.get("chief") or []), list(cluster.get("worker") or [])
    if len(chiefs) + len(workers) < 2:
        return None
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    rank = index if kind == "chief" else index + len(chiefs)
    return len(chiefs) + len(workers), rank, rank == 0


def split_data(config):
    """(training source, validation source or None): the config's validation manifest, else a
    stratified `validation_split` of the training one."""
    data = config["data"]
    if data["validation"]:
        return data["train"], data["validation"]
    label_column = data["columns"].get(constants.DEFAULT_HEAD, LABEL_COLUMN)
    if not data["validation_split"]:
        return data["train"], None
    return stratified_split(data["train"], data["validation_split"], label_column, seed=config["training"]["seed"])


def new_preprocessor(config):
    """The config's Preprocessor before it has learned anything (vocabularies; the label names,
    unless `data.classes` lists them)."""
    classes = config["data"].get("classes", "sorted")
    return Preprocessor(config["modalities"], label_type=config["data"]["label_type"],
                        columns=config["data"]["columns"], label_names=[str(c) for c in classes] if isinstance(classes, list) else None)


def fitted_preprocessor(config, train_manifest):
    """The config's Preprocessor, adapted to the training manifest (it keeps the column mapping)."""
    preprocessor = new_preprocessor(config)
    classes = config["data"].get("classes", "sorted")
    adapt_preprocessor(preprocessor, train_manifest, label_order=classes if isinstance(classes, str) else "sorted")
    return preprocessor


def label_heads(preprocessor, train_cfg):
    """The run's one head, "label": the Preprocessor's label type, width and class names, with the
    training block's label smoothing."""
    return [label_head(preprocessor, train_cfg["label_smoothing"])]


def model_from_config(config, heads):
    """The uncompiled model a resolved config's modalities, fusion and model blocks describe."""
    fusion = dict(config["fusion"])
    return build_model(config["modalities"], heads=heads, fusion=fusion.pop("type"),
                       modality_dropout=fusion.pop("modality_dropout", 0.0), fusion_options=fusion or None,
                       hidden_units=config["model"]["hidden_units"], dropout=config["model"]["dropout"],
                       modality_logits=config["model"]["modality_logits"], compile=False)


def datasets(config, preprocessor, train_manifest, val_source):
    """(training dataset, validation dataset or None) as a resolved config's data and training blocks say."""
    data_cfg, train_cfg = config["data"], config["training"]
    common = dict(columns=data_cfg["columns"], batch_size=train_cfg["batch_size"], seed=train_cfg["seed"],
                  on_bad_record=data_cfg["on_bad_record"], cache=data_cfg["cache"],
                  deterministic=bool(train_cfg["deterministic"]))
    train_ds = make_dataset(train_manifest, preprocessor, training=True, **common)
    val_ds = make_dataset(val_source, preprocessor, **common) if val_source is not None else None
    return train_ds, val_ds
