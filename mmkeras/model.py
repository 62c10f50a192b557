"""The model builders: inputs → one encoder per modality → fusion → heads, top to bottom.

Each modality kind's default encoder is built by its module in `mmkeras/modalities/`
(`build_text_encoder`, `build_image_encoder`, `build_audio_encoder`, `build_sensor_encoder`,
`build_tabular_encoder`, `build_video_encoder`, re-exported here).

Models take numeric tensors only, as a dict with one entry per modality plus a 0/1
`<modality>_present` flag for each; the Preprocessor makes these from raw files and is composed
back in front of the model at export time.
"""

import keras

from mmkeras import constants
from mmkeras import modalities
from mmkeras import specs as specs_lib
from mmkeras.fusion import LateFusion
from mmkeras.fusion import get_fusion
from mmkeras.fusion.base_fusion import BaseFusion
from mmkeras.heads import make_heads
from mmkeras.layers import LogMelSpectrogram
from mmkeras.layers import ModalityCorruption
from mmkeras.layers import ModalityDropout
from mmkeras.layers import ModalityLogits
from mmkeras.modalities.audio import build_audio_encoder  # noqa: F401 (part of this module's API)
from mmkeras.modalities.image import build_image_encoder  # noqa: F401
from mmkeras.modalities.sensor import build_sensor_encoder  # noqa: F401
from mmkeras.modalities.tabular import build_tabular_encoder  # noqa: F401
from mmkeras.modalities.text import build_text_encoder  # noqa: F401
from mmkeras.modalities.video import build_video_encoder  # noqa: F401


def _branch(name, value):
    """(encoder model, its input's shape and dtype, its training-corruption mode) for one entry of `modalities`.

    A custom encoder's input is corrupted as its dtype suggests (`ModalityCorruption` with no mode).
    """
    if isinstance(value, keras.Model):
        if len(value.inputs) != 1 or len(value.outputs) != 1 or len(value.outputs[0].shape) != 2:
            raise ValueError(
                f"A custom encoder for modality {name!r} must take one input and return one "
                f"(batch, features) output. Received: inputs={[tuple(t.shape) for t in value.inputs]}, "
                f"outputs={[tuple(t.shape) for t in value.outputs]}"
            )
        return value, tuple(value.inputs[0].shape[1:]), value.inputs[0].dtype, None
    spec = specs_lib.make_spec(name, value)
    kind = modalities.get_kind(spec.kind)
    encoder = kind.build_encoder(spec, name)
    return encoder, tuple(encoder.inputs[0].shape[1:]), encoder.inputs[0].dtype, kind.training_corruption


def build_model(
    modalities,
    num_classes=None,
    heads=None,
    fusion="attention",
    fusion_options=None,
    hidden_units=64,
    dropout=0.1,
    modality_logits=True,
    modality_dropout=0.25,
    compile=True,
    learning_rate=1e-3,
    weight_decay=0.0,
    name="mmkeras_model",
):
    """Builds one multi-input Keras model: an encoder per modality, a fusion layer, output heads.

    Inputs are a dict: for each modality `m`, the tensor `m` (token ids, image pixels or a
    waveform) and a `(1,)` float flag `m_present` (0 = the modality is missing for this example;
    its values then cannot change the prediction). Outputs are a dict keyed by head name.

    Args:
        modalities: dict. Modality name → settings dict (or `TextSpec`/`ImageSpec`/`AudioSpec`,
            or a `keras.Model` used as that modality's encoder). The kind is the name or the
            settings' "kind" key.
        num_classes: int. One softmax head named "label" with this many classes.
        heads: list of `Head` or dicts (name, type, units, loss_weight), instead of num_classes.
        fusion: str. One of "concat", "attention", "weighted", "gated", "transformer", "late",
            "low_rank".
        fusion_options: dict. Arguments of the fusion layer (units, num_heads, mode, ...). The
            attention fusion's `corruption` (0.15 by default) also puts a training-only
            `ModalityCorruption` layer in front of the encoders, whose flags train its trust gate.
        hidden_units: int. Width of the dense layer between fusion and heads (0 for none).
        dropout: float. Dropout after that layer.
        modality_logits: bool. Add a linear map of each present modality's vector to every
            head's logits (`ModalityLogits`), beside the fused path, so every encoder learns
            from the labels directly (feature-level fusions only).
        modality_dropout: float. Training-only probability of marking each modality absent (never
            all of an example's); it keeps every branch useful on its own. 0 turns it off.
        compile: bool. Compile with Adam (AdamW with `weight_decay`) and each head's loss and metrics.
        learning_rate: float. The optimizer's learning rate when compiling.
        weight_decay: float. AdamW's decoupled weight decay when compiling (0: plain Adam).
        name: str. The model's name.

    Example:

    >>> model = build_model(
    ...     {"text": {"max_tokens": 10, "sequence_length": 4, "lstm_units": 4},
    ...      "image": {"height": 8, "width": 8, "channels": 1, "filters": (4,)}},
    ...     num_classes=3, fusion="concat")
    >>> sorted(model.input)
    ['image', 'image_present', 'text', 'text_present']
    >>> sorted(model.output)
    ['label']
    """
    if not modalities:
        raise ValueError("Expected at least one modality. Received: modalities={}")
    head_list = make_heads(num_classes, heads)
    fusion_cls = get_fusion(fusion)
    names = list(modalities)

    fusion_layer = None
    if fusion_cls is not LateFusion:
        fusion_layer = fusion_cls(names, name=constants.FUSION_LAYER, **(fusion_options or {}))

    # Inputs and encoders: one branch per modality, each spec settled beside the others (a
    # sensor's pooling depends on whether it is alone).
    settled = specs_lib.settle_specs({m: value if isinstance(value, keras.Model) else specs_lib.make_spec(m, value)
                                      for m, value in modalities.items()})
    inputs, encoders, modes, flags = {}, [], [], []
    for m in names:
        encoder, shape, dtype, mode = _branch(m, settled[m])
        inputs[m] = keras.Input(shape, dtype=dtype, name=m)
        inputs[constants.presence_name(m)] = keras.Input((1,), name=constants.presence_name(m))
        encoders.append(encoder)
        modes.append(mode)
        flags.append(inputs[constants.presence_name(m)])
    presence = flags[0] if len(flags) == 1 else keras.layers.Concatenate(name="presence")(flags)  # (batch, M)
    available = presence
    if modality_dropout:
        presence = ModalityDropout(modality_dropout, name="modality_dropout")(presence)
    branch_inputs, corrupted = [inputs[m] for m in names], None
    if getattr(fusion_layer, "corruption", 0.0) and len(names) > 1:
        # Training only: some present modalities get degraded inputs, and the fusion learns to
        # give those a low weight (see AttentionFusion).
        branch_inputs, corrupted = ModalityCorruption(fusion_layer.corruption, modes=modes,
                                                      name="modality_corruption")(branch_inputs, presence,
                                                                                  available=available)
    vectors = [encoder(x) for encoder, x in zip(encoders, branch_inputs)]  # (batch, features_m) each

    outputs = {}
    if fusion_cls is LateFusion:
        # Decision-level: a head per modality and per task, combined by one LateFusion per task.
        for k, head in enumerate(head_list):
            per_modality = []
            for m, v in zip(names, vectors):
                x = v
                if hidden_units:
                    x = keras.layers.Dense(hidden_units, activation="relu", name=f"{m}_{head.name}_hidden")(x)
                    x = keras.layers.Dropout(dropout, name=f"{m}_{head.name}_dropout")(x)
                per_modality.append(
                    keras.layers.Dense(
                        head.units, activation=head.activation, dtype="float32",
                        name=f"{m}_{head.name}_{head.output_suffix}",
                    )(x)
                )  # (batch, head.units)
            options = {"activation": head.activation, **(fusion_options or {})}
            late = LateFusion(names, name=constants.FUSION_LAYER if k == 0 else f"{head.name}_fusion", **options)
            outputs[head.name], _ = late(per_modality, presence)  # (batch, head.units), (batch, M)
    else:
        fused = fusion_layer(vectors, presence) if corrupted is None else fusion_layer(vectors, presence, corrupted)
        if fusion_cls.returns_weights:
            fused, _ = fused  # (batch, units), (batch, M)
        x = fused
        if hidden_units:
            x = keras.layers.Dense(hidden_units, activation="relu", name="fusion_hidden")(x)  # (batch, hidden)
            x = keras.layers.Dropout(dropout, name="fusion_dropout")(x)
        for head in head_list:
            if not modality_logits:
                outputs[head.name] = keras.layers.Dense(
                    head.units, activation=head.activation, dtype="float32", name=f"{head.name}_{head.output_suffix}"
                )(x)  # (batch, head.units)
                continue
            logits = keras.layers.Dense(head.units, dtype="float32", name=f"{head.name}_fused_logits")(x)
            direct = ModalityLogits(names, head.units, dtype="float32", name=f"{head.name}_modality_logits")(
                vectors, presence)  # (batch, head.units)
            logits = keras.layers.Add(dtype="float32", name=f"{head.name}_logits")([logits, direct])
            outputs[head.name] = keras.layers.Activation(
                head.activation or "linear", dtype="float32", name=f"{head.name}_{head.output_suffix}")(logits)

    model = keras.Model(inputs, outputs, name=name)
    if compile:
        compile_model(model, head_list, learning_rate=learning_rate, weight_decay=weight_decay)
    return model


def walk_layers(model):
    """Every layer of `model`, looking inside nested models (the encoders)."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from walk_layers(layer)


def adapt_model(model, dataset, max_batches=100):
    """Learns the statistics that layers of `model` take from data, before training.

    Today: every `LogMelSpectrogram` with `normalization="bin"` learns per-mel-bin mean and
    variance from the real (non-silent) frames of the waveforms of the model input it reads.
    `mmkeras train` calls it; call it yourself after `build_model` when you train with
    `model.fit`. Layers that need nothing are left alone.

    Args:
        model: keras.Model from `build_model`.
        dataset: `tf.data.Dataset` of `(features, labels)` or `features` batches (from
            `make_dataset`).
        max_batches: int. Batches read at most (statistics settle long before).

    Returns:
        list of str. Names of the layers adapted.

    Example:

    >>> import numpy as np, tensorflow as tf
    >>> model = build_model({"audio": {"sample_rate": 8000, "duration": 0.25, "num_mel_bins": 8,
    ...                                "conv_filters": (), "lstm_units": 2, "normalization": "bin"}},
    ...                     num_classes=2, compile=False)
    >>> waves = np.sin(np.arange(2000) * 0.3).astype("float32")[None].repeat(4, 0)
    >>> adapt_model(model, tf.data.Dataset.from_tensors({"audio": waves}))
    ['audio_mel']
    """
    inputs = {tensor.name for tensor in model.inputs}
    wanted = {}
    for layer in walk_layers(model):
        if isinstance(layer, LogMelSpectrogram) and layer.normalization == "bin":
            source = layer.input.name  # the encoder's input, named after the model input that feeds it
            if source not in inputs:
                raise ValueError(f"{layer.name} reads {source!r}, which is not an input of the model ({sorted(inputs)}); "
                                 "adapt it with layer.adapt(waveforms)")
            wanted[source] = layer
    if not wanted:
        return []
    batches = dataset.take(max_batches) if max_batches else dataset

    def waveforms(name):
        for element in batches:
            features = element[0] if isinstance(element, tuple) else element
            yield features[name]

    for name, layer in wanted.items():
        layer.adapt(waveforms(name))
    return [layer.name for layer in wanted.values()]


def compile_model(model, heads, learning_rate=1e-3, optimizer=None, weight_decay=0.0, ema=None, **compile_kwargs):
    """Compiles `model` with each head's loss, metrics and loss weight.

    Args:
        model: keras.Model. A model from `build_model`.
        heads: list of `Head`. The model's heads.
        learning_rate: float or a `keras.optimizers.schedules` schedule. The learning rate.
        optimizer: keras optimizer. Overrides the default one.
        weight_decay: float. With a positive value the default optimizer is AdamW with this
            decoupled weight decay (biases, normalisation and embedding tables excluded), else Adam.
        ema: float or None. The default optimizer also keeps a moving average of the weights with
            this momentum (Keras' `use_ema`); `fit` ends with the model holding the average, and
            `keras.callbacks.SwapEMAWeights` evaluates with it during training.
        **compile_kwargs: passed to `model.compile` (e.g. `jit_compile`).
    """
    average = {"use_ema": True, "ema_momentum": ema} if ema else {}
    if optimizer is None and weight_decay:
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay, **average)
        # Decay weight matrices only: biases, normalisation scales and lookup tables are left alone.
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "embeddings", "missing_embedding"])
    elif optimizer is None:
        optimizer = keras.optimizers.Adam(learning_rate, **average)
    elif ema:
        raise ValueError("compile_model: ema applies to the default optimizer; give your own optimizer "
                         "use_ema=True instead")
    model.compile(
        optimizer=optimizer,
        loss={h.name: h.loss() for h in heads},
        loss_weights={h.name: h.loss_weight for h in heads},
        metrics={h.name: h.metrics() for h in heads},
        **compile_kwargs,
    )
    return model


def with_modality_weights(model):
    """The same model with its fusion's per-modality weights as an extra output.

    The returned model shares layers and weights with `model`; its outputs are `model`'s plus
    "modality_weights" `(batch, modalities)`. Fusions without weights ("concat",
    "transformer") raise a ValueError.

    Example:

    >>> model = build_model({"text": {"max_tokens": 10, "sequence_length": 4, "lstm_units": 4},
    ...                      "audio": {"sample_rate": 8000, "duration": 0.25, "num_mel_bins": 8,
    ...                                "conv_filters": (), "lstm_units": 4}},
    ...                     num_classes=2, fusion="attention", compile=False)
    >>> sorted(with_modality_weights(model).output)
    ['label', 'modality_weights']
    """
    fusions = [layer for layer in model.layers if isinstance(layer, (BaseFusion, LateFusion))]
    if not fusions:
        raise ValueError(f"Model {model.name!r} has no fusion layer, so no modality weights to show.")
    fusion = fusions[0]  # late fusion of several heads: the first head's, as build_model makes them in order
    if not getattr(fusion, "returns_weights", False):
        raise ValueError(f"The {type(fusion).__name__} fusion has no modality weights to show.")
    weights = fusion.output[1]
    outputs = dict(zip(model.output_names, model.outputs)) if not isinstance(model.output, dict) else dict(model.output)
    outputs[constants.MODALITY_WEIGHTS] = weights
    return keras.Model(model.input, outputs, name=f"{model.name}_with_weights")
