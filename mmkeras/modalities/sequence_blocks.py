"""The recurrent tail shared by the sequence encoders (audio frames, sensor steps)."""

import keras


def conv_lstm(x, p, conv_filters, lstm_units, kernel_size=5, conv_pool=1, bidirectional=False, pooling="mean_max"):
    """`(batch, steps, features)` → `[Conv1D → BatchNormalization → ReLU (→ MaxPooling1D)] * n` → LSTM → vector.

    Layer names carry the prefix `p` (`{p}_conv_1`, `{p}_lstm`, ...). `conv_pool` is the
    MaxPooling1D size after every Conv1D layer, or a sequence with one size per layer (1: no
    pooling after that layer). `pooling="mean_max"` concatenates the mean and the max of the
    LSTM's outputs over time (an event anywhere in the sequence counts); "last" keeps its final
    state.
    """
    pools = layer_pools(conv_pool, conv_filters)
    for i, (filters, pool) in enumerate(zip(conv_filters, pools), start=1):
        x = keras.layers.Conv1D(filters, kernel_size, padding="same", use_bias=False, name=f"{p}_conv_{i}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{p}_bn_{i}")(x)
        x = keras.layers.Activation("relu", name=f"{p}_relu_{i}")(x)  # (batch, steps, filters)
        if pool > 1:  # fewer steps for the LSTM: faster on long sequences, coarser in time
            x = keras.layers.MaxPooling1D(pool, name=f"{p}_pool_{i}")(x)  # (batch, steps / pool, filters)
    sequences = pooling != "last"
    lstm = keras.layers.LSTM(lstm_units, return_sequences=sequences, name=f"{p}_lstm")
    if bidirectional:
        lstm = keras.layers.Bidirectional(lstm, name=f"{p}_bilstm")
    x = lstm(x)  # (batch, [steps,] lstm_units [* 2])
    if sequences:
        x = keras.layers.Concatenate(name=f"{p}_pool")([
            keras.layers.GlobalAveragePooling1D(name=f"{p}_mean_pool")(x),
            keras.layers.GlobalMaxPooling1D(name=f"{p}_max_pool")(x),
        ])  # (batch, 2 * lstm_units [* 2])
    return x


def layer_pools(conv_pool, conv_filters):
    """`conv_pool` (one size, or one per Conv1D layer) as a tuple with a size per layer.

    Example:

    >>> layer_pools(4, (32, 32)), layer_pools([1, 16], (32, 32))
    ((4, 4), (1, 16))
    """
    if isinstance(conv_pool, (list, tuple)):
        if len(conv_pool) != len(conv_filters):
            raise ValueError(f"Expected conv_pool to hold one size per Conv1D layer ({len(conv_filters)}, as "
                             f"conv_filters={list(conv_filters)}), or one size for all. Received: conv_pool={list(conv_pool)}")
        return tuple(conv_pool)
    return (conv_pool,) * len(conv_filters)
