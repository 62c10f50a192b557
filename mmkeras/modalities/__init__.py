"""The modality kinds: the built-in ones registered in `mmkeras.modalities.registry`.

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
from mmkeras.modalities.registry import KINDS
from mmkeras.modalities.registry import converter
from mmkeras.modalities.registry import get_kind
from mmkeras.modalities.registry import register_kind
from mmkeras.modalities.sensor import SensorModality
from mmkeras.modalities.tabular import TabularModality
from mmkeras.modalities.text import TextModality
from mmkeras.modalities.video import VideoModality

for _cls in (TextModality, ImageModality, AudioModality, SensorModality, TabularModality, VideoModality):
    register_kind(_cls)

__all__ = ["KINDS", "Modality", "converter", "get_kind", "register_kind"]
