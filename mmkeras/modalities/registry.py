"""The table of modality kinds: kind name → its `Modality` converter class.

This module imports no kind: `mmkeras.modalities` registers the built-in ones when the package
is imported, so the kind modules, `mmkeras.specs` and `mmkeras.pretrained` can all look a kind
up here without importing each other.
"""

from mmkeras.modalities.modality import Modality

#: Kind name → `Modality` subclass. Filled by `register_kind`.
KINDS = {}


def get_kind(kind):
    """The `Modality` class registered for `kind`; a clear ValueError for an unknown one."""
    if kind not in KINDS:
        raise ValueError(f"Expected a modality kind in {sorted(KINDS)}. Received: kind={kind!r}")
    return KINDS[kind]


def register_kind(cls):
    """Adds a `Modality` subclass to the registry under `cls.kind` (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Modality)) or not cls.kind or cls.spec_class is None:
        raise ValueError(f"Expected a Modality subclass with `kind` and `spec_class` set. Received: {cls!r}")
    KINDS[cls.kind] = cls
    return cls


def kinds_that(predicate):
    """Sorted names of the registered kinds whose class satisfies `predicate` (for error messages)."""
    return sorted(kind for kind, cls in KINDS.items() if predicate(cls))


def converter(name, spec, state=None, folder=None):
    """The converter instance for modality `name` with settings `spec`."""
    return get_kind(spec.kind)(name, spec, state, folder)
