"""Run configuration: a YAML file (loaded with `yaml.safe_load`) merged over the defaults."""

import copy
import os

import yaml

from mmkeras import checks
from mmkeras import specs as specs_lib
from mmkeras.fusion import FUSIONS


class Option:
    """One config key: its default, the values it takes, and what it does (one line for docs and errors).

    Args:
        default: the value when the config leaves the key out.
        check: (fn(value) -> bool, "what is expected") from `mmkeras.checks`, or None for a
            key nothing checks.
        help: str. What the key does.
    """

    def __init__(self, default, check, help):
        self.default, self.check, self.help = default, check, help

    def __repr__(self):
        return f"Option({self.default!r}, {self.check[1] if self.check else None!r})"


def _columns():
    return ((lambda value: isinstance(value, dict) and all(isinstance(c, str) for c in value.values())),
            "a mapping of modality (or label) to column name")


def _classes():
    def check(value):
        if value in ("sorted", "manifest"):
            return True
        return (isinstance(value, list) and bool(value) and len({str(c) for c in value}) == len(value)
                and all(isinstance(c, (str, int)) and not isinstance(c, bool) and str(c) for c in value))
    return check, "'sorted', 'manifest', or a list of distinct class names"


#: Every key of a config's data/fusion/model/training/tuning blocks: default, check and meaning,
#: in one place (`modalities` entries are the kinds' spec dataclasses; the `fusion` block's other
#: keys are the chosen fusion layer's `OPTIONS`). `data.train` and `modalities` are required.
SCHEMA = {
    "data": {
        "train": Option(None, checks.optional(checks.text()), "CSV/JSONL manifest or TFRecord shards; relative paths "
                        "resolve from the config's folder (required by train, not by prepare)"),
        "validation": Option(None, checks.optional(checks.text()),
                             "a second manifest, or null to split off validation_split"),
        "validation_split": Option(0.2, checks.number(0.0, 1.0), "share of train held out, stratified by label"),
        "columns": Option({}, _columns(), "modality (and label) -> column name where they differ"),
        "label_type": Option("classification", checks.choice("classification", "multilabel", "regression"),
                             "what the label column holds"),
        "classes": Option("sorted", _classes(), "class order: sorted (numbers numerically), manifest (first "
                          "seen), or a list"),
        "on_bad_record": Option("raise", checks.choice("raise", "skip"), "a bad record stops the run, or is "
                                "left out, counted and listed"),
        "cache": Option(None, checks.optional(checks.text()), "keep decoded examples: null, memory, or a file prefix"),
    },
    "fusion": {
        # The other keys of the block are the chosen fusion layer's own options (its OPTIONS table).
        "type": Option("attention", ((lambda value: value in FUSIONS), f"one of {sorted(FUSIONS)}"),
                       "the fusion layer (mmkeras.fusion.FUSIONS)"),
        "modality_dropout": Option(0.25, checks.number(0, 1), "training only: drop whole modalities at this rate"),
    },
    "model": {
        "hidden_units": Option(64, checks.integer(0), "width of the dense layer after the fusion; 0 = none"),
        "dropout": Option(0.1, checks.number(0.0, 1.0), "dropout after it"),
        "modality_logits": Option(True, checks.boolean(), "each modality also gets its own classifier (auxiliary logits)"),
    },
    "training": {
        "epochs": Option(80, checks.integer(1), "at most this many (early stopping may end sooner)"),
        "batch_size": Option(32, checks.integer(1), "examples per step (over all replicas and workers)"),
        "learning_rate": Option(0.001, checks.positive(), "the optimizer's learning rate"),
        "weight_decay": Option(0.0001, checks.number(0.0), "AdamW's decoupled weight decay; 0 = plain Adam"),
        "label_smoothing": Option(0.1, checks.number(0.0, 1.0), "classification and multi-label losses; 0 = off"),
        "ema": Option(None, checks.optional(checks.number(0.0, 1.0, low_open=True)), "momentum of a moving average of the "
                      "weights over steps (e.g. 0.99), which validation, best.keras and the run's model use; "
                      "null = off"),
        "lr_schedule": Option(None, checks.choice(None, "cosine", "plateau"), "null, cosine or plateau"),
        "early_stopping_patience": Option(20, checks.integer(0), "epochs without a better val_loss; 0 = off"),
        "frozen_epochs": Option(0, checks.integer(0), "> 0: trainable pretrained encoders stay frozen this many "
                                "epochs first"),
        "fine_tune_learning_rate": Option(None, checks.optional(checks.positive()),
                                          "the learning rate after them; null = learning_rate / 10"),
        "class_weights": Option(False, checks.boolean(), "weight classes by inverse frequency"),
        "seed": Option(42, checks.integer(0), "seed of weights, splits, shuffling and augmentation"),
        "deterministic": Option(False, checks.boolean(), "fixed pipeline order and op determinism: a run repeats exactly"),
        "mixed_precision": Option("auto", checks.choice("auto", True, False), "auto: mixed_float16 with a GPU"),
        "jit_compile": Option(False, checks.boolean(), "XLA-compile the training step"),
        "strategy": Option("auto", checks.choice("auto", "default", "mirrored"),
                           "auto: mirrored with several GPUs, several workers with TF_CONFIG"),
        "checkpoint": Option(True, checks.boolean(), "keep the best epoch's model (best.keras)"),
        "backup": Option(True, checks.boolean(), "a killed run resumes from its last epoch when started again"),
        "tensorboard": Option(True, checks.boolean(), "TensorBoard logs in RUN_DIR/logs"),
        "verbose": Option("auto", checks.choice("auto", 0, 1, 2), "Keras' progress output; auto: a bar on a "
                          "terminal, a line per epoch in a log"),
    },
    # What `mmkeras tune` searches (and `mmkeras train` ignores).
    "tuning": {
        "algorithm": Option("bayesian", checks.choice("bayesian", "hyperband", "random"), "KerasTuner's search"),
        "objective": Option("val_loss", checks.choice("val_loss", "val_accuracy"), "what the search optimises"),
        "fusion": Option(["attention", "concat", "gated"], checks.non_empty_list(
            checks.text()[0], "a non-empty list of fusion types"), "fusion types tried"),
        "learning_rate": Option([0.0003, 0.003], checks.value_range(positive=True), "range, sampled on a log scale"),
        "dropout": Option([0.0, 0.3], checks.value_range(high=1.0), "model.dropout range"),
        "modality_dropout": Option([0.0, 0.4], checks.value_range(high=1.0), "fusion.modality_dropout range"),
        "hidden_units": Option([32, 64, 128], checks.non_empty_list(
            checks.integer(1)[0], "a non-empty list of integers >= 1"), "model.hidden_units choices"),
        "width": Option([0.5, 1.0, 2.0], checks.non_empty_list(
            checks.positive()[0], "a non-empty list of numbers > 0"),
            "multipliers of every encoder's widths (filters, units, embedding_dim)"),
    },
}

#: The defaults, block by block, as SCHEMA holds them (`modalities` has none).
DEFAULTS = {block: ({key: copy.deepcopy(option.default) for key, option in SCHEMA[block].items()}
                    if block in SCHEMA else {})
            for block in ("data", "modalities", "fusion", "model", "training", "tuning")}

#: "block.key" -> (check, what is expected), for every key SCHEMA checks here.
CHECKS = {f"{block}.{key}": option.check for block, options in SCHEMA.items()
          for key, option in options.items() if option.check is not None}


def _merge(defaults, given, where):
    merged = copy.deepcopy(defaults)
    for key, value in (given or {}).items():
        if key not in defaults:
            checks.reject_unknown([key], defaults, where)
        if isinstance(defaults[key], dict) and key not in ("columns",) and defaults[key]:
            merged[key] = _merge(defaults[key], value, f"{where}{key}.")
        else:
            merged[key] = value
    return merged


def resolve_config(config, base_dir=None):
    """Merges a config dict over the defaults, checks it, and makes data paths absolute.

    Example:

    >>> cfg = resolve_config({"data": {"train": "train.csv"}, "modalities": {"text": {}}}, "/data")
    >>> cfg["data"]["train"], cfg["training"]["epochs"], cfg["fusion"]["type"]
    ('/data/train.csv', 80, 'attention')
    """
    config = dict(config or {})
    fusion = dict(config.get("fusion") or {})
    resolved = _merge({k: v for k, v in DEFAULTS.items() if k != "fusion"},
                      {k: v for k, v in config.items() if k != "fusion"}, "")
    resolved["fusion"] = {**DEFAULTS["fusion"], **fusion}  # fusion options are the fusion layer's own
    if not resolved["modalities"]:
        raise ValueError("The config needs a 'modalities' block, e.g. modalities: {text: {}, image: {}}")
    for name, options in resolved["modalities"].items():
        specs_lib.make_spec(name, options)  # fails early, naming the modality and the bad option
    check_fusion(resolved["fusion"], list(resolved["modalities"]))
    check_values(resolved)
    check_fine_tuning(resolved)
    base_dir = base_dir or os.getcwd()
    for key in ("train", "validation"):
        path = resolved["data"][key]
        if path and not os.path.isabs(str(path)):
            resolved["data"][key] = os.path.normpath(os.path.join(base_dir, str(path)))
    for options in resolved["modalities"].values():
        encoder = (options or {}).get("encoder") if isinstance(options, dict) else None
        if encoder:  # .keras files, SavedModel folders and weights files are beside the config too
            options["encoder"] = encoder = dict(encoder)
            source, weights = encoder.get("source"), encoder.get("weights")
            if isinstance(source, str) and source and not source.startswith(("keras.applications:", "hub:",
                                                                              "keras_hub:")):
                encoder["source"] = _beside(base_dir, source)
            elif isinstance(source, str) and source.startswith("keras_hub:"):
                preset = source[len("keras_hub:"):]  # a preset name, a handle, or a folder beside the config
                if not os.path.isabs(preset) and os.path.isdir(os.path.join(base_dir, preset)):
                    encoder["source"] = "keras_hub:" + _beside(base_dir, preset)
            if isinstance(weights, str) and weights != "imagenet":
                encoder["weights"] = _beside(base_dir, weights)
    return resolved


def _beside(base_dir, path):
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base_dir, path))


def check_values(config):
    """Checks the type and range of every data/model/training key, naming the key when wrong.

    Example:

    >>> check_values({"data": {"train": "t.csv"}, "model": {}, "training": {"epochs": "ten"}})
    Traceback (most recent call last):
    ...
    ValueError: Config key 'training.epochs': expected an integer >= 1. Received: 'ten'
    """
    for key, check in CHECKS.items():
        block, name = key.split(".")
        if name in (config.get(block) or {}):
            checks.require(key, config[block][name], check)


def fine_tuned_modalities(config):
    """Names of the modalities whose pretrained encoder is fine-tuned (`encoder.trainable: true`)."""
    return [name for name, options in config["modalities"].items()
            if isinstance(options, dict) and (options.get("encoder") or {}).get("trainable")]


def check_fine_tuning(config):
    """Checks the two-stage schedule (`training.frozen_epochs`) against the epochs and encoders.

    Example:

    >>> check_fine_tuning({"modalities": {"text": {}}, "training": {"frozen_epochs": 3, "epochs": 10}})
    Traceback (most recent call last):
    ...
    ValueError: Config key 'training.frozen_epochs': 3 frozen epochs first, but no modality has a pretrained encoder with trainable: true to unfreeze after them.
    """
    frozen, epochs = config["training"].get("frozen_epochs", 0), config["training"]["epochs"]
    if not frozen:
        return
    if frozen >= epochs:
        raise ValueError(f"Config key 'training.frozen_epochs': expected fewer than training.epochs ({epochs}), so "
                         f"that some epochs fine-tune. Received: {frozen}")
    if not fine_tuned_modalities(config):
        raise ValueError(f"Config key 'training.frozen_epochs': {frozen} frozen epochs first, but no modality has a "
                         f"pretrained encoder with trainable: true to unfreeze after them.")


def check_fusion(fusion, modalities):
    """Checks a config's `fusion` block by building the fusion layer it describes.

    Raises ValueError naming the bad key, so a typo fails before any data is read.

    Example:

    >>> check_fusion({"type": "attention", "num_heads": 4}, ["text", "image"])
    Traceback (most recent call last):
    ...
    ValueError: Unknown config key 'fusion.num_heads' for the attention fusion. Expected some of ['activation', 'attention_units', 'balance', 'corruption', 'missing_embeddings', 'modality_dropout', 'mode', 'reliability', 'type', 'units'].
    """
    block = {key: option.check for key, option in SCHEMA["fusion"].items()}
    name = fusion.get("type")
    checks.require("fusion.type", name, block["type"])
    cls = FUSIONS[name]
    checks.require_table(fusion, {**cls.OPTIONS, **block}, "fusion.", f"the {name} fusion")
    options = {key: value for key, value in fusion.items() if key not in block}
    try:  # what no single key can say (a transformer's units divisible by its heads)
        cls(modalities, **options)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Config block 'fusion' ({name}): {error}") from None


#: Values (mappings, lists and scalars, aliases expanded) a config may hold: a few hundred in
#: practice; YAML aliases nested a few levels deep ("billion laughs") expand to billions.
MAX_CONFIG_VALUES = 100_000


def _expanded_size(value, limit):
    """How many values `value` holds with shared (aliased) parts counted each time; stops past `limit`."""
    count, stack = 0, [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return count


def read_config_file(path):
    """(the YAML config at `path` as written, the folder its relative paths start from)."""
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    if _expanded_size(config, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
        raise ValueError(f"{path}: the config expands to more than {MAX_CONFIG_VALUES} values (YAML aliases nested "
                         "into each other?); a config holds a few hundred")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a YAML mapping at the top level, got {type(config).__name__}")
    return config, os.path.dirname(os.path.abspath(path))


def load_config(path):
    """Reads a YAML config file and resolves it (paths relative to the file's folder)."""
    config, base_dir = read_config_file(path)
    return resolve_config(config, base_dir)


def as_config(config):
    """A resolved config from what a user passes: a YAML path, or a dict (resolved or not)."""
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    return resolve_config(config)


def save_config(config, path):
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
