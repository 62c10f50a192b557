"""The audio branch's training augmentation on noisy synthetic speech (issue 31): mmkeras audio
alone with the defaults, with each augmentation off and with both off, against a plain Keras
log-mel + Conv1D model, all on the same files.

Run: `nice -n 19 .venv/bin/python benchmarks/keyword_speech.py [--seeds 1 2 3] [--epochs E]
      [--threads 1] [--variants NAME ...] [--no-baseline] [--training KEY=VALUE ...] [--output DIR]`
     `python benchmarks/keyword_speech.py --data-only DIR` writes the data set and stops.

Data (`write_keyword_speech`, needs Debian's `espeak-ng`; without it, `pip install espeakng-loader`
gives the same engine as a library, version 1.52, run by `_espeak.py`: its voices differ a little
from Debian's, so the files do too): 8 command words (yes no up down left
right stop go) spoken by espeak-ng with a random English voice (6 accents x 9 voice variants),
rate (120-200 words/min) and pitch (25-75), placed at a random offset in a 1 s clip, mixed with
white or brown noise at -12..0 dB SNR (measured over the word), at a random level; 16 kHz mono
16-bit WAV. 480 train / 160 validation / 240 test examples, every split balanced over the words;
seeded: the same seed writes the same files. Voices are drawn per example, so train and test
share voices (not a held-out-speaker test).

Models, each trained with every seed (test accuracy, mean ± standard deviation over the seeds):
- `mmkeras defaults`: `mmkeras.train` with `audio: {sample_rate: 16000, duration: 1.0}` and
  every other setting the library's default, with the audio augmentation that was the default
  until 2026-12-06 (`augment` = random gain of +/-6 dB, `spec_augment` = two time and two
  frequency masks; the library's default is now both off, the last row);
- `mmkeras augment: {}`, `mmkeras spec_augment: {}`, `mmkeras both off`: the same with that
  augmentation off;
- `plain Conv1D`: Keras' `MelSpectrogram` (64 bins, 25 ms / 10 ms) → LayerNormalization →
  Conv1D(32) x 2 → global mean and max pooling → Dense(64) → softmax, on the waveforms the
  library's Preprocessor decodes; Adam 1e-3, batch 32, early stopping on validation loss
  (patience 10, best weights restored), the same epoch budget as the library runs.
An augmentation default should help here or be off. (The random gain cannot change what the
default branch sees: `normalization: "example"` standardises each clip's log-mel, which removes a
gain; `augment: {}` differs from the defaults only in the random numbers drawn.) Writes
`keyword_speech.json` and `keyword_speech.md` in the output folder.
"""

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _seeded import add_training_option  # noqa: E402
from _seeded import run_comparison  # noqa: E402
from _seeded import run_folder  # noqa: E402
from _seeded import with_settings  # noqa: E402
from _seeded import write_splits  # noqa: E402

from datasets import _write_wav  # noqa: E402

WORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")
ACCENTS = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan")
VOICE_VARIANTS = ("", "+f1", "+f2", "+f3", "+f4", "+m1", "+m2", "+m3", "+m4")
SAMPLE_RATE = 16000
SNR_DB = (-12.0, 0.0)  # speech power over the word / noise power
CLIP_SECONDS = 1.0
SPLITS = {"train": 480, "validation": 160, "test": 240}

#: The modality settings of every run: only the clip format is set, the rest is the library's default.
AUDIO = {"sample_rate": SAMPLE_RATE, "duration": CLIP_SECONDS}

#: The audio augmentation defaults before 2026-12-06 (both are off by default since, on this benchmark).
GAIN = {"gain_db": 6.0}
MASKS = {"time_masks": 2, "time_width": 0.1, "freq_masks": 2, "freq_width": 0.1}
#: name → changes to `AUDIO` of each mmkeras run (named as measured on 2026-12-06).
VARIANTS = {
    "mmkeras defaults": {"augment": GAIN, "spec_augment": MASKS},
    "mmkeras augment: {}": {"augment": {}, "spec_augment": MASKS},
    "mmkeras spec_augment: {}": {"augment": GAIN, "spec_augment": {}},
    "mmkeras both off": {"augment": {}, "spec_augment": {}},
}
BASELINE = "plain Conv1D"
PATIENCE = 10


def _read_wav(data):
    """(float samples in [-1, 1], rate) of mono 16-bit WAV bytes."""
    with wave.open(io.BytesIO(data)) as w:
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    return np.frombuffer(frames, "<i2").astype("float64") / 32768.0, rate


def speak(word, voice, rate, pitch, scratch):
    """`word` spoken by espeak-ng, at `SAMPLE_RATE`, leading and trailing silence trimmed."""
    from scipy.signal import resample_poly

    path = os.path.join(scratch, "word.wav")
    engine = ["espeak-ng"] if shutil.which("espeak-ng") else [sys.executable, os.path.join(HERE, "_espeak.py")]
    spoken = subprocess.run([*engine, "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", path, word],
                            capture_output=True, text=True)
    if spoken.returncode != 0:  # say why (no engine, an unknown voice), not only the exit status
        raise RuntimeError(f"{os.path.basename(engine[-1])} could not speak {word!r} in voice {voice!r}: "
                           f"{spoken.stderr.strip()[-500:]}")
    with open(path, "rb") as f:
        samples, source_rate = _read_wav(f.read())
    samples = resample_poly(samples, SAMPLE_RATE, source_rate)
    loud = np.flatnonzero(np.abs(samples) > 0.02 * np.abs(samples).max())
    return samples[loud[0] : loud[-1] + 1]


def _noise(kind, n, rng):
    """Unit-power white or brown (integrated white, mean removed) noise."""
    noise = rng.normal(size=n)
    if kind == "brown":
        noise = np.cumsum(noise)
        noise = noise - np.linspace(noise[0], noise[-1], n)  # no drift from one end to the other
        noise = noise - noise.mean()
    return noise / np.sqrt(np.mean(noise**2))


def write_keyword_speech(folder, sizes=None, seed=7):
    """Writes the noisy keyword clips and `train.csv`, `validation.csv`, `test.csv` (columns
    `audio,label`, paths relative to `folder`); returns the manifests' paths."""
    sizes = sizes or SPLITS
    rng = np.random.default_rng(seed)
    labels = np.concatenate([rng.permutation(np.arange(size) % len(WORDS)) for size in sizes.values()])
    n = int(SAMPLE_RATE * CLIP_SECONDS)
    os.makedirs(os.path.join(folder, "audio"), exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for i, label in enumerate(labels):
            word = WORDS[label]
            voice = rng.choice(ACCENTS) + rng.choice(VOICE_VARIANTS)
            speech = speak(word, voice, int(rng.integers(120, 201)), int(rng.integers(25, 76)), scratch)[:n]
            start = int(rng.integers(0, n - len(speech) + 1))
            clip = np.zeros(n)
            clip[start : start + len(speech)] = speech
            snr_db = rng.uniform(*SNR_DB)
            noise = _noise(rng.choice(("white", "brown")), n, rng) * np.sqrt(np.mean(speech**2) / 10 ** (snr_db / 10))
            mixed = clip + noise
            mixed *= rng.uniform(0.2, 0.9) / np.abs(mixed).max()
            name = f"audio/{i:04d}.wav"
            _write_wav(os.path.join(folder, name), mixed, rate=SAMPLE_RATE)
            rows.append({"audio": name, "label": word})
    return write_splits(folder, rows, sizes)


def conv1d_baseline(samples, classes):
    """Log-mel → Conv1D(32) x 2 → global mean and max pooling → Dense(64): the plain Keras model."""
    import keras

    waveform = keras.Input((samples,), name="audio")  # (batch, samples)
    mel = keras.layers.MelSpectrogram(
        fft_length=512, sequence_stride=int(0.010 * SAMPLE_RATE), sequence_length=int(0.025 * SAMPLE_RATE),
        sampling_rate=SAMPLE_RATE, num_mel_bins=64, power_to_db=True, name="audio_mel")(waveform)  # (batch, 64, frames)
    x = keras.layers.Permute((2, 1), name="audio_frames")(mel)  # (batch, frames, 64)
    x = keras.layers.LayerNormalization(name="audio_norm")(x)
    for i in (1, 2):
        x = keras.layers.Conv1D(32, 5, padding="same", activation="relu", name=f"audio_conv_{i}")(x)  # (batch, frames, 32)
    x = keras.layers.Concatenate(name="audio_pool")([keras.layers.GlobalAveragePooling1D(name="audio_mean")(x),
                                                     keras.layers.GlobalMaxPooling1D(name="audio_max")(x)])  # (batch, 64)
    x = keras.layers.Dropout(0.3, name="audio_dropout")(x)
    x = keras.layers.Dense(64, activation="relu", name="hidden")(x)  # (batch, 64)
    probs = keras.layers.Dense(classes, activation="softmax", name="label_probs")(x)  # (batch, classes)
    return keras.Model(waveform, probs, name="plain_conv1d")


def fit_baseline(splits, classes, seed, epochs):
    import keras

    keras.utils.set_random_seed(seed)
    (x, y), (xv, yv), (xt, yt) = ((splits[s][0]["audio"], splits[s][1]) for s in ("train", "validation", "test"))
    model = conv1d_baseline(x.shape[1], classes)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(patience=PATIENCE, restore_best_weights=True)
    history = model.fit(x, y, validation_data=(xv, yv), epochs=epochs, batch_size=32, verbose=0, callbacks=[stop])
    accuracy = float((model.predict(xt, verbose=0).argmax(-1) == yt).mean())
    return {"all": accuracy, "epochs": len(history.history["loss"])}


def compare(paths, seeds, epochs, workdir, log, variants=tuple(VARIANTS), baseline=True, training=()):
    """Every variant and the baseline, seed by seed (so a cut-short run still has whole seeds)."""
    import mmkeras
    from fusion_comparison import run_one
    from mmkeras.evaluation import collect

    preprocessor = mmkeras.Preprocessor({"audio": AUDIO})
    mmkeras.adapt_preprocessor(preprocessor, paths["train"])
    splits = {s: collect(mmkeras.make_dataset(paths[s], preprocessor, batch_size=64)) for s in SPLITS}
    classes = len(preprocessor.label_names)
    rows = {}
    for seed in seeds:
        for name in variants:
            config = {"data": {"train": paths["train"], "validation": paths["validation"]},
                      "modalities": {"audio": {**AUDIO, **VARIANTS[name]}},
                      "training": {"verbose": 0, "tensorboard": False, "backup": False, "checkpoint": False,
                                   "seed": seed, "epochs": epochs, "early_stopping_patience": PATIENCE,
                                   **dict(training)}}
            slug = name.split(" ", 1)[1].replace(":", "").replace(" ", "_").replace("{}", "off")
            row_name = with_settings(name, training)
            rows.setdefault(row_name, []).append(run_one(config, run_folder(workdir, slug, seed, training),
                                                         *splits["test"]))
            log(row_name, seed, rows[row_name][-1])
        if not baseline:
            continue
        start = time.perf_counter()
        row = fit_baseline(splits, classes, seed, epochs)
        rows.setdefault(BASELINE, []).append({**row, "seconds": time.perf_counter() - start})
        log(BASELINE, seed, rows[BASELINE][-1])
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=None, help="for every model (default: the library's)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra- and inter-op threads (0: all cores)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--no-baseline", action="store_true", help=f"leave out the {BASELINE} baseline")
    add_training_option(parser)
    parser.add_argument("--data-only", metavar="DIR", help="write the data set to DIR and stop")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if args.data_only:
        print(write_keyword_speech(args.data_only))
        return
    from mmkeras.config import DEFAULTS

    args.epochs = args.epochs or DEFAULTS["training"]["epochs"]  # also named in the table's header and JSON

    def runs(paths, folder, log):
        return compare(paths, args.seeds, args.epochs, folder, log, args.variants, not args.no_baseline,
                       args.training)

    run_comparison("keyword_speech", "Keyword speech, 8 classes", write_keyword_speech, runs, args, SPLITS)


if __name__ == "__main__":
    main()
