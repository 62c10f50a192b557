"""Feature names shared by datasets, `keras.Input`s, the serving signature and REST requests.

Every place that names a feature imports it from here, so a dataset dict, a model input and a
TF Serving request key can never disagree.
"""

#: Default names of the built-in kinds' modalities (a modality named after its kind needs no
#: `kind:` key). The kinds themselves are registered in `mmkeras.modalities.KINDS`.
TEXT = "text"
IMAGE = "image"
AUDIO = "audio"

#: Suffix of the 0/1 presence-flag input that goes with each modality.
PRESENT_SUFFIX = "_present"

#: Name of the output head made when only `num_classes` is given.
DEFAULT_HEAD = "label"

#: Output (and fusion-layer output) holding the per-modality weights.
MODALITY_WEIGHTS = "modality_weights"

#: Name of the fusion layer inside every built model.
FUSION_LAYER = "fusion"


def presence_name(modality):
    """Name of the presence-flag input of `modality`.

    Example:

    >>> presence_name("image")
    'image_present'
    """
    return f"{modality}{PRESENT_SUFFIX}"
