"""Run configuration: a YAML file (loaded with `yaml.safe_load`) merged over the defaults."""

import copy
import os

import yaml

from mmkeras import specs as specs_lib

#: Every key a config may hold, with its default. `modalities` and `data.train` are required.
DEFAULTS = {
    "data": {
        "train": None,  # CSV/JSONL manifest or TFRecord shards; relative paths resolve from the config's folder
        "validation": None,  # a second manifest, or None to split off validation_split of train
        "validation_split": 0.2,
        "columns": {},  # modality (and "label") -> column name where they differ
        "label_type": "classification",  # or multilabel, regression
        "classes": "sorted",  # class order: sorted (numbers numerically), manifest (first seen), or a list
        "on_bad_record": "raise",  # or skip
        "cache": None,  # None, "memory" or a file prefix
    },
    "modalities": {},
    "fusion": {"type": "attention", "modality_dropout": 0.25},
    "model": {"hidden_units": 64, "dropout": 0.1, "modality_logits": True},
    "training": {
        "epochs": 40,
        "batch_size": 32,
        "learning_rate": 0.001,
        "weight_decay": 0.0001,  # AdamW's decoupled weight decay; 0 = plain Adam
        "label_smoothing": 0.1,  # classification and multi-label losses; 0 = off
        "lr_schedule": None,  # None, "cosine" or "plateau"
        "early_stopping_patience": 10,  # 0 turns early stopping off
        "frozen_epochs": 0,  # > 0: trainable pretrained encoders stay frozen this many epochs first
        "fine_tune_learning_rate": None,  # the learning rate after them; None = learning_rate / 10
        "class_weights": False,  # weight classes by inverse frequency
        "seed": 42,
        "deterministic": False,  # true: fixed pipeline order and op determinism, so a run repeats exactly
        "mixed_precision": "auto",  # "auto" (on with a GPU), true, false
        "jit_compile": False,
        "strategy": "auto",  # "auto" (mirrored with several GPUs), "mirrored", "default"
        "checkpoint": True,
        "backup": True,  # BackupAndRestore: a killed run resumes when started again
        "tensorboard": True,
        "verbose": "auto",
    },
    # What `mmkeras tune` searches (and `mmkeras train` ignores).
    "tuning": {
        "algorithm": "bayesian",  # bayesian, hyperband or random (KerasTuner)
        "objective": "val_loss",  # or val_accuracy
        "fusion": ["attention", "concat", "gated"],  # fusion types tried
        "learning_rate": [0.0003, 0.003],  # range, sampled on a log scale
        "dropout": [0.0, 0.3],  # model.dropout range
        "modality_dropout": [0.0, 0.4],  # fusion.modality_dropout range
        "hidden_units": [32, 64, 128],  # model.hidden_units choices
        "width": [0.5, 1.0, 2.0],  # multipliers of every encoder's widths (filters, units, embedding_dim)
    },
}


def _merge(defaults, given, where):
    merged = copy.deepcopy(defaults)
    for key, value in (given or {}).items():
        if key not in defaults:
            raise ValueError(f"Unknown config key '{where}{key}'. Expected one of {sorted(defaults)}.")
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
    ('/data/train.csv', 40, 'attention')
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


def _integer(minimum):
    def check(value):
        return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    return check, f"an integer >= {minimum}"


def _number(low, high=None, high_open=True):
    def check(value):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        return value >= low and (high is None or (value < high if high_open else value <= high))
    bound = "" if high is None else (f", < {high}" if high_open else f", <= {high}")
    return check, f"a number >= {low}{bound}"


def _range(positive=False, high=None):
    def check(value):
        numbers = isinstance(value, list) and len(value) == 2 and all(_number(0.0)[0](v) for v in value)
        return (numbers and value[0] <= value[1] and (not positive or value[0] > 0)
                and (high is None or value[1] < high))
    return check, "[low, high] with 0 " + ("<" if positive else "<=") + " low <= high" + (f" < {high}" if high else "")


def _boolean():
    return (lambda value: isinstance(value, bool)), "true or false"


def _choice(*choices):
    return (lambda value: value in choices), f"one of {list(choices)}"


def _text(optional=False):
    return (lambda value: isinstance(value, str) or (optional and value is None)), "a string" + (" or null" if optional else "")


#: key -> (check, what is expected), for every key whose default is not a block.
CHECKS = {
    "data.train": _text(optional=True),  # required by `train`, not by `prepare`
    "data.validation": _text(optional=True),
    "data.validation_split": _number(0.0, 1.0),
    "data.columns": ((lambda v: isinstance(v, dict) and all(isinstance(c, str) for c in v.values())),
                     "a mapping of modality (or label) to column name"),
    "data.label_type": _choice("classification", "multilabel", "regression"),
    "data.classes": ((lambda v: v in ("sorted", "manifest") or (
        isinstance(v, list) and v and all(isinstance(c, (str, int)) and not isinstance(c, bool) and str(c)
                                          for c in v) and len({str(c) for c in v}) == len(v))),
                     "'sorted', 'manifest', or a list of distinct class names"),
    "data.on_bad_record": _choice("raise", "skip"),
    "data.cache": _text(optional=True),
    "model.hidden_units": _integer(0),
    "model.dropout": _number(0.0, 1.0),
    "model.modality_logits": _boolean(),
    "training.epochs": _integer(1),
    "training.batch_size": _integer(1),
    "training.learning_rate": ((lambda v: _number(0.0)[0](v) and v > 0), "a number > 0"),
    "training.weight_decay": _number(0.0),
    "training.label_smoothing": _number(0.0, 1.0),
    "training.lr_schedule": _choice(None, "cosine", "plateau"),
    "training.early_stopping_patience": _integer(0),
    "training.frozen_epochs": _integer(0),
    "training.fine_tune_learning_rate": ((lambda v: v is None or (_number(0.0)[0](v) and v > 0)),
                                         "a number > 0 or null"),
    "training.class_weights": _boolean(),
    "training.seed": _integer(0),
    "training.deterministic": _boolean(),
    "training.mixed_precision": _choice("auto", True, False),
    "training.jit_compile": _boolean(),
    "training.strategy": _choice("auto", "default", "mirrored"),
    "training.checkpoint": _boolean(),
    "training.backup": _boolean(),
    "training.tensorboard": _boolean(),
    "training.verbose": _choice("auto", 0, 1, 2),
    "tuning.algorithm": _choice("bayesian", "hyperband", "random"),
    "tuning.objective": _choice("val_loss", "val_accuracy"),
    "tuning.fusion": ((lambda v: isinstance(v, list) and v and all(isinstance(f, str) for f in v)),
                      "a non-empty list of fusion types"),
    "tuning.learning_rate": _range(positive=True),
    "tuning.dropout": _range(high=1.0),
    "tuning.modality_dropout": _range(high=1.0),
    "tuning.hidden_units": ((lambda v: isinstance(v, list) and v and all(_integer(1)[0](u) for u in v)),
                            "a non-empty list of integers >= 1"),
    "tuning.width": ((lambda v: isinstance(v, list) and v and all(_number(0.0)[0](w) and w > 0 for w in v)),
                     "a non-empty list of numbers > 0"),
}


def check_values(config):
    """Checks the type and range of every data/model/training key, naming the key when wrong.

    Example:

    >>> check_values({"data": {"train": "t.csv"}, "model": {}, "training": {"epochs": "ten"}})
    Traceback (most recent call last):
    ...
    ValueError: Config key 'training.epochs': expected an integer >= 1. Received: 'ten'
    """
    for key, (check, expected) in CHECKS.items():
        block, name = key.split(".")
        if name not in (config.get(block) or {}):
            continue
        value = config[block][name]
        if not check(value):
            raise ValueError(f"Config key {key!r}: expected {expected}. Received: {value!r}")


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
    import inspect

    from mmkeras.fusion import get_fusion
    from mmkeras.fusion.base_fusion import BaseFusion

    options = dict(fusion)
    name = options.pop("type")
    try:
        cls = get_fusion(name)
    except ValueError as error:
        raise ValueError(f"Config key 'fusion.type': {error}") from None
    rate = options.pop("modality_dropout", 0.0)
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate < 1.0:
        raise ValueError(f"Expected config key 'fusion.modality_dropout' to be a number in [0, 1). Received: {rate!r}")
    accepted = set()
    for klass in cls.__mro__:
        if klass is BaseFusion or klass is cls:
            accepted |= {p for p in inspect.signature(klass.__init__).parameters
                         if p not in ("self", "modalities", "kwargs")}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"Unknown config key 'fusion.{unknown[0]}' for the {name} fusion. "
                         f"Expected some of {sorted(accepted | {'type', 'modality_dropout'})}.")
    try:
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
