"""The recurrent tail shared by the sequence encoders (audio frames, sensor steps)."""

import keras


def conv_lstm(x, p, conv_filters, lstm_units, kernel_size=5, conv_pool=1, bidirectional=False, pooling="mean_max"):
    """`(batch, steps, features)` → `[Conv1D → BatchNormalization → ReLU (→ MaxPooling1D)] * n` → LSTM → vector.

    Layer names carry the prefix `p` (`{p}_conv_1`, `{p}_lstm`, ...). `pooling="mean_max"`
    concatenates the mean and the max of the LSTM's outputs over time (an event anywhere in the
    sequence counts); "last" keeps its final state.
    """
    for i, filters in enumerate(conv_filters, start=1):
        x = keras.layers.Conv1D(filters, kernel_size, padding="same", use_bias=False, name=f"{p}_conv_{i}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{p}_bn_{i}")(x)
        x = keras.layers.Activation("relu", name=f"{p}_relu_{i}")(x)  # (batch, steps, filters)
        if conv_pool > 1:  # fewer steps for the LSTM: faster on long sequences, coarser in time
            x = keras.layers.MaxPooling1D(conv_pool, name=f"{p}_pool_{i}")(x)  # (batch, steps / pool**i, filters)
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
