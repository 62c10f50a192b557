"""Settings of each modality: one object per modality, read by the Preprocessor and the builders.

A spec holds both what the data pipeline needs (sizes, sample rate, crop policy) and what the
encoder needs (widths, depths), so one `modalities:` block of a config describes a modality once.
Each kind's spec dataclass lives in its module under `mmkeras/modalities/` (`TextSpec` in
`text.py`, ...); this module turns config entries into specs and back, whatever the kind.
"""

import dataclasses

from mmkeras import checks
from mmkeras.modalities.registry import KINDS
from mmkeras.modalities.registry import get_kind
from mmkeras.pretrained import check_encoder_options


def __getattr__(name):
    # The spec classes, and the name → class table, as the registry of kinds holds them now
    # (a kind registered later is found too).
    classes = {cls.spec_class.__name__: cls.spec_class for cls in KINDS.values()}
    if name in classes:
        return classes[name]
    if name == "SPECS":
        return {kind: cls.spec_class for kind, cls in KINDS.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_spec(spec, options, kind):
    """(spec, modality name) for an encoder builder called with a spec or with keyword options."""
    options = dict(options)
    name = options.pop("name", kind)
    if spec is None:
        spec = make_spec(name, {"kind": kind, **options})
    elif options:
        raise ValueError(f"Pass either a spec or keyword options, not both. Received options: {sorted(options)}")
    return spec, name


def check_choice(field, value, choices):
    if value not in choices:
        raise ValueError(f"Expected {field} to be one of {list(choices)}. Received: {field}={value!r}")


def check_keys(what, mapping, allowed):
    unknown = sorted(set(mapping or {}) - set(allowed))
    if unknown:
        raise ValueError(f"Unknown {what} option(s) {unknown}. Expected some of {sorted(allowed)}.")


def make_spec(name, options):
    """Turns one entry of a `modalities` mapping into a spec.

    The kind comes from `options["kind"]`, else from the name (`text`, `image`, `audio`), so
    `{"photo": {"kind": "image", "height": 64}}` is a second image modality named `photo`.

    Args:
        name: str. The modality's name (becomes the input and feature name).
        options: dict, spec or None. The settings; None takes every default.

    Example:

    >>> make_spec("photo", {"kind": "image", "height": 64}).height
    64
    """
    specs = {kind: entry.spec_class for kind, entry in KINDS.items()}
    if isinstance(options, tuple(specs.values())):
        return options
    if options is not None and not isinstance(options, dict):
        raise ValueError(f"Config key 'modalities.{name}': expected a mapping of its settings (e.g. "
                         f"{{kind: text, max_tokens: 20000}}), or nothing for the defaults. Received: {str(options)[:80]!r}")
    options = dict(options or {})
    kind = options.pop("kind", name)
    if kind not in specs:
        raise ValueError(
            f"Cannot tell the kind of modality {name!r}. Expected its name or its 'kind' option to "
            f"be one of {sorted(specs)}. Received: kind={kind!r}"
        )
    cls = specs[kind]
    table = {f.name: checks.for_field(f) for f in dataclasses.fields(cls)}
    checks.require_table(options, table, f"modalities.{name}.", f"a {kind} modality")
    for key in ("filters", "conv_filters", "hidden_units"):
        if key in options:
            options[key] = tuple(options[key])
    if options.get("encoder") is not None:
        check_encoder_options(name, options["encoder"])
        options["encoder"] = dict(options["encoder"])
    try:
        return cls(**options)
    except ValueError as error:  # a spec's check across its fields: say which modality it is
        raise ValueError(f"Config key 'modalities.{name}': {error}") from None


def settle_specs(specs):
    """Every spec with the defaults that depend on the model's other modalities filled in, by its
    kind's `settle_spec` (the image's shift: milder for an image alone; a sensor's pooling). Specs
    are not changed in place; a value that is not a spec (a custom encoder model) is left as it is
    and counts as one of the modalities.

    Example:

    >>> settle_specs({"image": make_spec("image", {})})["image"].augment
    {'shift': 0.05}
    """
    spec_classes = tuple(entry.spec_class for entry in KINDS.values())
    return {name: get_kind(spec.kind).settle_spec(spec, specs) if isinstance(spec, spec_classes) else spec
            for name, spec in specs.items()}


def model_input(spec):
    """(shape without the batch dimension, dtype) of the tensor the Preprocessor makes for `spec`.

    Example:

    >>> model_input(make_spec("image", {"height": 8, "width": 6, "channels": 1}))
    ((8, 6, 1), 'float32')
    """
    return get_kind(spec.kind).model_input(spec)


def spec_to_dict(spec):
    """The spec's settings as a plain dict (JSON/YAML friendly), with its kind."""
    config = dataclasses.asdict(spec)
    for key, value in config.items():
        if isinstance(value, tuple):
            config[key] = list(value)
    return {"kind": spec.kind, **config}
