"""Every layer inside a model, through nested models and wrappers, with public attributes only."""

import keras


def walk_layers(model):
    """Yields every layer under `model` (not `model` itself), depth first: the layers of nested
    models (a modality's encoder) and the layer a wrapper runs (`TimeDistributed`, `Bidirectional`).

    Example:

    >>> inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")], name="enc")
    >>> outer = keras.Sequential([keras.Input((4, 3)), keras.layers.TimeDistributed(inner, name="td")])
    >>> [layer.name for layer in walk_layers(outer)]
    ['td', 'enc', 'd']
    """
    for layer in model.layers:
        yield layer
        inner = layer.layer if isinstance(layer, keras.layers.Wrapper) else None
        if inner is not None:
            yield inner
            if isinstance(inner, keras.Model):
                yield from walk_layers(inner)
        elif isinstance(layer, keras.Model):
            yield from walk_layers(layer)


def find_layer(model, name):
    """The layer called `name` anywhere under `model` (`walk_layers`), or None."""
    return next((layer for layer in walk_layers(model) if layer.name == name), None)
