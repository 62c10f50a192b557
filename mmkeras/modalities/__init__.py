"""The registry of modality kinds: kind name → its `Modality` converter class.

Every place that treats a modality by its kind (specs, the Preprocessor, the data pipeline, the
robustness report, the model builder) looks the kind up here; nowhere else switches on it. A
new kind is a module defining a spec dataclass, a `Modality` subclass and an encoder builder,
added with `register_kind`.

Example:

>>> sorted(KINDS)
['audio', 'image', 'sensor', 'tabular', 'text', 'video']
>>> get_kind("image").spec_class.__name__
'ImageSpec'
"""

from mmkeras.modalities.audio import AudioModality
from mmkeras.modalities.image import ImageModality
from mmkeras.modalities.modality import Modality
from mmkeras.modalities.sensor import SensorModality
from mmkeras.modalities.tabular import TabularModality
from mmkeras.modalities.text import TextModality
from mmkeras.modalities.video import VideoModality

KINDS = {cls.kind: cls for cls in (TextModality, ImageModality, AudioModality, SensorModality, TabularModality,
                                    VideoModality)}


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


def converter(name, spec, state=None, folder=None):
    """The converter instance for modality `name` with settings `spec`."""
    return get_kind(spec.kind)(name, spec, state, folder)


__all__ = ["KINDS", "Modality", "converter", "get_kind", "register_kind"]
