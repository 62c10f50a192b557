"""`MultimodalTask`: what a trained model is, in one object that loads, predicts, exports and saves.

One run is trained here on a manifest whose columns are not the modality names (caption, img,
snd, digit), the case where a reader that forgets the column mapping predicts at chance.
"""

import csv
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import built_once
from media import tiny_config
from media import write_tiny_dataset

import mmkeras
from mmkeras.heads import Head
from mmkeras.predict import predict
from mmkeras.task import MultimodalTask
from mmkeras.training import train

RENAMED = {"text": "caption", "image": "img", "audio": "snd", "label": "digit"}


def _write_renamed(folder, rows, name="renamed.csv"):
    path = os.path.join(folder, name)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, [RENAMED[k] for k in ("text", "image", "audio", "label")])
        writer.writeheader()
        writer.writerows({RENAMED[k]: v for k, v in row.items()} for row in rows)
    return path


@pytest.fixture(scope="module")
def renamed_run(tmp_path_factory):
    """(run dir, manifest with renamed columns, rows): trained with `data.columns` mapping them."""
    def build(folder):
        _, rows = write_tiny_dataset(str(folder))
        manifest = _write_renamed(str(folder), rows)
        config = tiny_config(manifest, epochs=8)
        config["data"]["columns"] = dict(RENAMED)
        keras.utils.set_random_seed(0)
        train(config, str(folder / "run"))
        (folder / "rows.json").write_text(json.dumps([manifest, rows]))

    folder = built_once(tmp_path_factory, "renamed_run", build)
    manifest, rows = json.loads((folder / "rows.json").read_text())
    return str(folder / "run"), manifest, rows


def _probabilities(rows):
    return np.array([[row[k] for k in sorted(row) if k.startswith("prob_")] for row in rows])


def _same(a, b):
    assert [r["label"] for r in a] == [r["label"] for r in b]
    np.testing.assert_allclose(_probabilities(a), _probabilities(b), atol=1e-5)


def test_the_task_knows_its_heads_modalities_and_columns(renamed_run):
    run, _, _ = renamed_run
    task = MultimodalTask.from_preset(run)
    assert task.modalities == ["text", "image", "audio"]
    assert [(h.name, h.type, h.units, h.label_names) for h in task.heads] == [
        ("label", "classification", 3, ["class0", "class1", "class2"])]
    assert {k: task.columns[k] for k in RENAMED} == RENAMED
    with open(os.path.join(run, "task.json")) as f:
        assert json.load(f)["heads"][0]["label_names"] == ["class0", "class1", "class2"]
    assert "heads=(label: classification[3])" in repr(task)


def test_predict_equals_the_exported_saved_model_served_in_a_fresh_process(renamed_run, tmp_path):
    run, manifest, _ = renamed_run
    task = MultimodalTask.from_preset(run)
    ours = task.predict(manifest)
    version = task.export(str(tmp_path / "export"))
    with open(os.path.join(version, "assets.extra", "inputs.json")) as f:
        assert {name: entry["column"] for name, entry in json.load(f).items()} == {
            "text": "caption", "image": "img", "audio": "snd"}
    script = ("import json, sys; from mmkeras.predict import predict; "
              "print('ROWS', json.dumps(predict(sys.argv[1], sys.argv[2])))")
    done = subprocess.run([sys.executable, "-c", script, version, manifest], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    served = json.loads(done.stdout.split("ROWS", 1)[1])
    _same(ours, served)
    truth = [row[RENAMED["label"]] for row in csv.DictReader(open(manifest))]
    # the model learned something from the renamed columns: far above chance (1/3) on its training rows
    assert np.mean([r["label"] == t for r, t in zip(ours, truth)]) > 0.6
    # A manifest without the trained columns is refused by the SavedModel's predict too, naming them.
    with pytest.raises(ValueError, match=r"no column\(s\) \['caption', 'img', 'snd'\]"):
        predict(version, [{"foo": "1", "bar": "2"}])


def test_save_to_preset_then_from_preset_reproduces_the_answers(renamed_run, tmp_path):
    run, manifest, _ = renamed_run
    task = MultimodalTask.from_preset(run)
    task.save_to_preset(str(tmp_path / "preset"))
    assert sorted(os.listdir(tmp_path / "preset")) == ["config.yaml", "model.keras", "preprocessor", "task.json"]
    again = MultimodalTask.from_preset(str(tmp_path / "preset"))
    assert again.heads == task.heads and again.columns == task.columns
    _same(task.predict(manifest), again.predict(manifest))


def test_a_run_written_before_task_json_and_saved_columns_still_loads(renamed_run, tmp_path):
    run, manifest, _ = renamed_run
    old = str(tmp_path / "old_run")
    shutil.copytree(run, old)
    os.remove(os.path.join(old, "task.json"))
    state_file = os.path.join(old, "preprocessor", "preprocessor.json")
    with open(state_file) as f:
        state = json.load(f)
    del state["columns"]
    with open(state_file, "w") as f:
        json.dump(state, f)
    legacy = MultimodalTask.from_preset(old)
    task = MultimodalTask.from_preset(run)
    assert legacy.heads == [Head("label", "classification", 3, ["class0", "class1", "class2"])]
    assert legacy.columns == task.columns
    _same(task.predict(manifest), legacy.predict(manifest))


def test_predict_takes_a_dict_of_columns_and_a_column_override(renamed_run):
    run, manifest, rows = renamed_run
    task = MultimodalTask.from_preset(run)
    folder = os.path.dirname(manifest)
    table = {RENAMED[k]: [row[k] for row in rows[:4]] for k in ("text", "image", "audio")}
    expected = task.predict(manifest)[:4]
    got = task.predict(mmkeras.read_manifest(table, base_dir=folder))
    _same(expected, got)
    plain = {"words": table["caption"], "img": table["img"], "snd": table["snd"]}
    _same(expected, task.predict(mmkeras.read_manifest(plain, base_dir=folder), columns={"text": "words"}))


def test_a_manifest_without_a_trained_column_is_refused_naming_it(renamed_run):
    run, _, rows = renamed_run
    task = MultimodalTask.from_preset(run)
    plain = [{"text": r["text"], "image": r["image"], "audio": r["audio"]} for r in rows[:3]]
    with pytest.raises(ValueError, match="no column 'caption'"):
        task.predict(plain)


def test_heads_must_match_the_model_outputs(renamed_run):
    run, _, _ = renamed_run
    task = MultimodalTask.from_preset(run)
    with pytest.raises(ValueError, match="has 4 units but the model's output 'label' is 3 wide"):
        MultimodalTask(task.model, task.preprocessor, heads=[Head("label", "classification", 4)])
    with pytest.raises(ValueError, match=r"one head per model output \['label'\]"):
        MultimodalTask(task.model, task.preprocessor, heads=[Head("topic", "classification", 3)])


def test_from_preset_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a preset or finished run: no model.keras"):
        MultimodalTask.from_preset(str(tmp_path))
