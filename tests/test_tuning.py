"""`mmkeras tune`: a KerasTuner search over the config's tuning ranges, resumable, writing a config train takes."""

import csv

import pytest
import yaml

from mmkeras_cli import main
from mmkeras.config import load_config
from mmkeras.config import resolve_config
from mmkeras.tuning import tune

from media import tiny_config
from media import write_tiny_dataset


def test_tuning_ranges_are_checked_when_the_config_is_read(tmp_path):
    base = {"data": {"train": "t.csv"}, "modalities": {"text": {}}}
    with pytest.raises(ValueError, match=r"Config key 'tuning.learning_rate': expected \[low, high\] with 0 < low"):
        resolve_config({**base, "tuning": {"learning_rate": [0.01, 0.001]}})
    with pytest.raises(ValueError, match="Unknown config key 'tuning.epochs'"):
        resolve_config({**base, "tuning": {"epochs": 3}})
    with pytest.raises(ValueError, match=r"'tuning.fusion': unknown fusion type\(s\) \['atention'\]"):
        tune({**base, "tuning": {"fusion": ["atention"]}}, str(tmp_path))


@pytest.mark.slow
def test_a_search_resumes_and_its_best_config_trains(tmp_path):
    manifest, _ = write_tiny_dataset(str(tmp_path))
    config = tiny_config(manifest, epochs=1)
    config["tuning"] = {"fusion": ["attention", "concat"], "width": [0.5, 1.0], "hidden_units": [4, 8]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    search = str(tmp_path / "search")
    assert main(["tune", "--config", str(tmp_path / "c.yaml"), "--output", search, "--trials", "2"]) == 0
    assert main(["tune", "--config", str(tmp_path / "c.yaml"), "--output", search, "--trials", "3"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "search" / "trials.csv")))
    assert len(rows) == 3 and {r["trial"] for r in rows} == {"0", "1", "2"}  # two kept, one more run
    assert all(r["status"] == "COMPLETED" for r in rows)
    assert float(rows[0]["score"]) == min(float(r["score"]) for r in rows)  # best first (val_loss)
    best = load_config(str(tmp_path / "search" / "best_config.yaml"))
    assert best["fusion"]["type"] == rows[0]["fusion"] and best["model"]["hidden_units"] == int(rows[0]["hidden_units"])
    assert 0.0003 <= best["training"]["learning_rate"] <= 0.003
    if float(rows[0]["width"]) == 0.5:
        assert best["modalities"]["image"]["filters"] == [2]  # the tiny config's [4], halved
    assert main(["train", "--config", str(tmp_path / "search" / "best_config.yaml"), "--output",
                 str(tmp_path / "run")]) == 0


def test_without_keras_tuner_the_command_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "keras_tuner", None)
    manifest, _ = write_tiny_dataset(str(tmp_path), count=6)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_config(manifest)))
    assert main(["tune", "--config", str(tmp_path / "c.yaml"), "--output", str(tmp_path / "s")]) == 2
    assert 'mmkeras tune: error: mmkeras tune needs KerasTuner: pip install "mmkeras[tune]"' in capsys.readouterr().err
