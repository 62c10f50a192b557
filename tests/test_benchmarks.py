"""Benchmarks that must keep running on a CPU machine (CI) at a small size."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.mark.slow
def test_gpu_training_benchmark_runs_every_mode_on_cpu():
    command = [sys.executable, "gpu_training.py", "--examples", "16", "--batch-size", "8", "--epochs", "2",
               "--feeds", "files"]  # the pipeline only: the cached-tensor comparison says nothing on CPU
    result = subprocess.run(command, cwd=BENCHMARKS, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "examples/s" not in line
            and "---" not in line]
    assert [row.split("|")[1].strip() for row in rows] == ["float32", "mixed_float16", "mixed_float16 + XLA"]
    assert all(float(row.split("|")[2].replace(",", "")) > 0 for row in rows)
    assert "device: CPU" in result.stdout


@pytest.mark.parametrize("name", ["tones", "shapes"])
def test_benchmark_data_sets_read_as_manifests(tmp_path, name, monkeypatch):
    # The data sets the fusion benchmark judges defaults on; tones' extra test rows once broke
    # when the demo's manifests gained columns.
    monkeypatch.syspath_prepend(BENCHMARKS)
    import datasets

    from mmkeras.data.manifest import read_manifest

    writer = {"tones": lambda f: datasets.write_tones(f, examples=40, extra_test=20),
              "shapes": lambda f: datasets.write_shapes(f, examples=40)}[name]
    paths = writer(str(tmp_path))
    sizes = {split: len(read_manifest(path)) for split, path in paths.items()}
    assert sizes == ({"train": 28, "validation": 6, "test": 26} if name == "tones"
                     else {"train": 28, "validation": 6, "test": 6})
    assert all(set(datasets.MODALITIES) <= set(read_manifest(path).rows[0]) for path in paths.values())


def test_defaults_table_judges_issue_31_targets(monkeypatch):
    # The table's verdicts decide which defaults change: a branch 3.5 points under its best plain
    # baseline, or a fused model whose seeds spread 4 points, must read as missed.
    monkeypatch.syspath_prepend(BENCHMARKS)
    import defaults_table

    def runs(*values):
        return {seed: {"all": v, "classes": 10} for seed, v in zip((1, 2, 3), values)}

    results = {"toy": {
        "fused, mmkeras defaults": runs(0.90, 0.92, 0.94),
        "image alone, mmkeras defaults": runs(0.70, 0.70, 0.70),
        "image alone, augment: {}": runs(0.80, 0.80, 0.80),
        "image alone, plain: small CNN": runs(0.735, 0.735, 0.735),
        "audio alone, mmkeras defaults": runs(0.60, 0.60, 0.60),
        "audio alone, plain: Conv1D + pooling": runs(0.50, 0.62, 0.62),
        "fused, plain concat": runs(0.93, 0.93, 0.93),
    }}
    checks = defaults_table.check_targets(results, {"toy": {"image": {}, "audio": {}}}, [1, 2, 3])
    assert [ok for _, ok in checks] == [False, True, False, True, False], checks
    image, audio, versus_plain, versus_single, spread = (text for text, _ in checks)
    assert "image default 0.700 vs plain: small CNN 0.735: -3.5 points" in image
    assert "audio default 0.600 vs plain: Conv1D + pooling 0.580: +2.0 points" in audio
    assert "-1.0 points" in versus_plain
    assert "image alone, augment: {}" in versus_single and "+12.0 points" in versus_single
    assert "spread over seeds 4.0 points" in spread
    # A run cut short (one seed missing) is left out of the verdicts instead of judged on two seeds.
    del results["toy"]["audio alone, plain: Conv1D + pooling"][3]
    checks = defaults_table.check_targets(results, {"toy": {"image": {}, "audio": {}}}, [1, 2, 3])
    assert not any("audio default" in text for text, _ in checks)
    assert [text for text, ok in checks if ok is None] == [
        "toy: audio alone against its plain baseline: not judged, the default or every plain model lacks seeds "
        "[1, 2, 3]"]


def test_defaults_table_names_each_candidate_row_after_what_it_changes(monkeypatch):
    # Results are kept per row name, so a candidate's rows must never share a name with the
    # defaults' rows; a fusion setting belongs to the fused row only (a model of one modality has none).
    monkeypatch.syspath_prepend(BENCHMARKS)
    import defaults_table

    rows = defaults_table.mmkeras_rows({"image": {"kind": "image"}, "audio": {"kind": "audio"}},
                                       {"image": {"dropout": 0.3}}, [("ema", 0.99)], [("modality_dropout", 0.1)])
    fused = [name for name in rows if name.startswith("fused")]
    assert fused == ["fused, mmkeras defaults, image.dropout: 0.3, ema: 0.99, fusion.modality_dropout: 0.1"]
    assert rows[fused[0]]["image"]["dropout"] == 0.3 and "dropout" not in rows[fused[0]]["audio"]
    alone = [name for name in rows if " alone, " in name]
    assert "image alone, mmkeras defaults, image.dropout: 0.3, ema: 0.99" in alone
    assert not any("fusion." in name for name in alone)
    assert set(defaults_table.mmkeras_rows({"image": {}, "audio": {}}, {})) & set(rows) == set()


def test_two_defaults_table_starts_never_train_the_same_run(tmp_path, monkeypatch):
    # Two starts into one folder once trained the same run side by side (one deleted the other's
    # run folder) and both failed. A run is claimed first: a live holder keeps it, a dead one's
    # claim is taken over, and the claim goes once the result is written.
    monkeypatch.syspath_prepend(BENCHMARKS)
    import defaults_table

    result = str(tmp_path / "row-1.json")
    assert defaults_table.claim(result) and defaults_table.claim(result)  # its own claim, again
    (tmp_path / "row-1.json.claim").write_text(str(os.getppid()))  # a live process holds it
    assert not defaults_table.claim(result)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "row-1.json.claim").write_text(finished.stdout.strip())  # a start that has died
    assert defaults_table.claim(result)
    assert (tmp_path / "row-1.json.claim").read_text() == str(os.getpid())
    (tmp_path / "row-2.json.claim").write_text("")  # just created by another start, its id not yet written
    assert not defaults_table.claim(str(tmp_path / "row-2.json"))

    (tmp_path / "test.csv").write_text("label\na\nb\n")
    job = {"result": str(tmp_path / "row-3.json"), "set": "s", "row": "r", "seed": 1, "how": "mmkeras",
           "paths": {"test": str(tmp_path / "test.csv")}, "test_rows": 2, "run_dir": str(tmp_path / "run-3")}
    monkeypatch.setattr(defaults_table, "_run_claimed", lambda job: {"all": 1.0})
    assert defaults_table.run_job(job) == {"all": 1.0} and not os.path.exists(job["result"] + ".claim")
    (tmp_path / "row-3.json.claim").write_text(str(os.getppid()))
    assert defaults_table.run_job(job) is None  # left to the live start
    os.remove(job["result"] + ".claim")

    def claim_after_the_other_start_finished(result):  # its result lands between the check and the claim
        with open(result, "w") as f:
            f.write('{"all": 0.5, "test_examples": 2}')
        return True

    monkeypatch.setattr(defaults_table, "claim", claim_after_the_other_start_finished)
    monkeypatch.setattr(defaults_table, "_run_claimed", lambda job: pytest.fail("trained a finished run again"))
    assert defaults_table.run_job(job) == {"all": 0.5, "test_examples": 2}


def test_a_result_scored_on_a_smaller_test_split_is_scored_again_or_trained_again(tmp_path, monkeypatch):
    # The sensor sets' test splits grew from 180 to 720 rows: a result from before says nothing of
    # its test size and must not sit in a table beside results on the larger split. A kept run is
    # scored again, reading the test rows with its own Preprocessor; a plain model, which keeps
    # none, is trained again.
    monkeypatch.syspath_prepend(BENCHMARKS)
    import defaults_table
    import fusion_comparison

    import mmkeras
    import mmkeras.evaluation

    (tmp_path / "test.csv").write_text("label\na\nb\nb\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "finished.json").write_text("{}")
    (tmp_path / "old.json").write_text('{"all": 0.5, "epochs": 7, "classes": 2}')
    job = {"result": str(tmp_path / "old.json"), "set": "s", "row": "r", "seed": 1, "how": "mmkeras",
           "paths": {"test": str(tmp_path / "test.csv")}, "test_rows": 3, "run_dir": str(tmp_path / "run"),
           "modalities": {"m": {}}}
    monkeypatch.setattr(mmkeras, "load_run", lambda run_dir: ("the run's model", "the run's preprocessor", None))
    read_with = []
    monkeypatch.setattr(mmkeras, "make_dataset", lambda path, preprocessor, batch_size: read_with.append(preprocessor))
    monkeypatch.setattr(mmkeras.evaluation, "collect", lambda dataset: ({}, np.array([0, 1, 1])))
    scored = []
    monkeypatch.setattr(fusion_comparison, "score", lambda model, *args: scored.append(model) or {"all": 2 / 3})
    monkeypatch.setattr(defaults_table, "_run_claimed", lambda job: pytest.fail("trained a kept run again"))
    assert defaults_table._current(job) is None
    row = defaults_table.run_job(job)
    assert row == {"all": 2 / 3, "epochs": 7, "classes": 2, "test_examples": 3, "rescored": True}
    assert scored == ["the run's model"] and read_with == ["the run's preprocessor"]
    assert defaults_table._current(job) == row and not os.path.exists(job["result"] + ".claim")  # written back
    assert defaults_table.run_job(job) == row and len(scored) == 1  # not scored twice

    (tmp_path / "plain.json").write_text('{"all": 0.5, "classes": 2}')
    plain = {**job, "result": str(tmp_path / "plain.json"), "how": ("concat",), "run_dir": str(tmp_path / "none")}
    monkeypatch.setattr(defaults_table, "_run_claimed", lambda job: {"all": 1.0, "test_examples": 3})
    assert defaults_table.run_job(plain) == {"all": 1.0, "test_examples": 3}


def test_a_data_folder_written_before_its_test_split_grew_is_written_again(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(BENCHMARKS)
    import defaults_table

    for split in ("train", "validation", "test"):
        (tmp_path / f"{split}.csv").write_text("label\na\nb\n")
    written = []

    def writer(folder):
        written.append(folder)
        return {s: os.path.join(folder, f"{s}.csv") for s in ("train", "validation", "test")}

    monkeypatch.setattr(defaults_table, "_grown_sets", lambda: {"grown": 2})
    defaults_table._data("grown", writer, str(tmp_path))
    defaults_table._data("other", writer, str(tmp_path))
    assert written == []  # as many test rows as the set has, or a set that never grew
    monkeypatch.setattr(defaults_table, "_grown_sets", lambda: {"grown": 5})
    defaults_table._data("grown", writer, str(tmp_path))
    assert written == [str(tmp_path)]


def test_seed_agreement_counts_the_examples_two_runs_disagree_on(monkeypatch):
    # Runs right on different examples differ by the examples' draw: sqrt(d) / n for d examples
    # right in one run only; runs right on the same examples do not.
    monkeypatch.syspath_prepend(BENCHMARKS)
    import seed_agreement

    right = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 0]], bool)
    found = {(a, b): rest for a, b, *rest in seed_agreement.pairs(right)}
    assert found[(0, 1)] == [2, 0.0, np.sqrt(2) / 4]
    assert found[(0, 2)] == [0, 0.0, 0.0]
    assert found[(1, 3)] == [1, -0.25, 0.25]  # run 2 (a) right on one example fewer than run 4 (b)


def test_extra_test_rows_leave_the_other_rows_of_a_seeded_set_as_they_were(tmp_path, monkeypatch):
    # Earlier results were trained on the sets' first rows: a larger test split must not change
    # them, or the earlier runs could not be scored on it.
    monkeypatch.syspath_prepend(BENCHMARKS)
    from _seeded import write_balanced

    def example(i, name, rng):
        return {"i": i, "value": f"{rng.random():.6f}", "label": name}

    sizes = {"train": 6, "validation": 4, "test": 4}
    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    before = write_balanced(str(tmp_path / "before"), sizes, ["a", "b"], 3, example)
    after = write_balanced(str(tmp_path / "after"), sizes, ["a", "b"], 3, example, extra_test=6)
    for split in ("train", "validation"):
        assert Path(before[split]).read_text() == Path(after[split]).read_text()
    old, new = Path(before["test"]).read_text().splitlines(), Path(after["test"]).read_text().splitlines()
    assert new[: len(old)] == old and len(new) == len(old) + 6
    assert sorted(row.split(",")[-1] for row in new[len(old):]) == ["a"] * 3 + ["b"] * 3
    assert [int(row.split(",")[0]) for row in new[1:]] == list(range(10, 20))  # files named apart


def test_sensor_activity_set_reads_as_a_manifest_of_sensor_and_tabular_columns(tmp_path, monkeypatch):
    # The only benchmark set of the sensor and tabular kinds: every split balanced over the
    # activities, every recording three channels, and the columns the modalities name present.
    monkeypatch.syspath_prepend(BENCHMARKS)
    import sensor_activity

    from mmkeras.data.manifest import read_manifest

    paths = sensor_activity.write_sensor_activity(str(tmp_path), sizes={"train": 12, "validation": 6, "test": 6})
    for split, path in paths.items():
        rows = read_manifest(path).rows
        assert sorted(r["label"] for r in rows) == sorted(sensor_activity.ACTIVITIES * (len(rows) // 6)), split
        columns = sensor_activity.MODALITIES["wearer"]["numeric"] + sensor_activity.MODALITIES["wearer"]["categorical"]
        assert set(columns) | {"motion"} <= set(rows[0])
        for row in rows:
            readings = np.loadtxt(tmp_path / row["motion"], delimiter=",", skiprows=1)
            assert readings.shape[1] == 3 and 130 <= len(readings) <= 190


def test_clip_sensor_columns_set_splits_each_label_between_the_clip_and_the_sensor(tmp_path, monkeypatch):
    # The set of three kinds: balanced classes, every clip 8 frames, every recording 3 channels;
    # each row's clip is drawn with its class's motion and its recording with its class's
    # activity (so neither alone can tell the class), and the heading leans with the motion.
    monkeypatch.syspath_prepend(BENCHMARKS)
    import clip_sensor_columns as csc
    import motion_clips
    import sensor_activity
    from PIL import Image

    from mmkeras.data.manifest import read_manifest

    drawn = []
    draw_clip, movement = motion_clips.draw_clip, sensor_activity.movement
    monkeypatch.setattr(motion_clips, "draw_clip", lambda glyph, motion, rng: drawn.append(motion) or draw_clip(glyph, motion, rng))
    monkeypatch.setattr(sensor_activity, "movement", lambda activity, placement, rng: drawn.append(activity) or movement(activity, placement, rng))
    paths = csc.write_clip_sensor_columns(str(tmp_path), sizes={"train": 60, "validation": 6, "test": 6})
    labels = [r["label"] for split in ("train", "validation", "test") for r in read_manifest(paths[split]).rows]
    assert list(zip(drawn[0::2], drawn[1::2])) == [tuple(label.split(" ", 1)) for label in labels]
    rows = read_manifest(paths["train"]).rows
    assert sorted(r["label"] for r in rows) == sorted(csc.CLASSES * 10)
    for row in rows[:6]:
        assert Image.open(tmp_path / row["clip"]).n_frames == 8
        assert np.loadtxt(tmp_path / row["motion"], delimiter=",", skiprows=1).shape[1] == 3
    heading = {m: [float(r["heading"]) for r in rows if r["heading"] and r["label"].startswith(m + " ")]
               for m in csc.MOTIONS}
    assert np.mean(heading["left"]) < np.mean(heading["still"]) < np.mean(heading["right"])


def test_the_plain_fused_model_takes_a_clip_branch_without_the_mask_plane(monkeypatch):
    # The plain concat baseline of the set of three kinds reads the grey plane of the
    # Preprocessor's (frames, height, width, 2) clips: the mask plane changes nothing.
    monkeypatch.syspath_prepend(BENCHMARKS)
    import encoder_baselines

    model = encoder_baselines.plain_model({"clip": (8, 24, 24, 2), "wearer": (5,)}, 6, {"clip": "video", "wearer": "tabular"})
    clips = np.random.default_rng(0).random((3, 8, 24, 24, 2)).astype("float32")
    columns = np.random.default_rng(1).random((3, 5)).astype("float32")
    masked = clips.copy()
    masked[..., 1] = 0.0
    out = model.predict({"clip": clips, "wearer": columns}, verbose=0)
    assert out.shape == (3, 6)
    np.testing.assert_allclose(model.predict({"clip": masked, "wearer": columns}, verbose=0), out, rtol=1e-6)
    clips[..., 0] = 0.0  # the grey plane does count
    assert not np.allclose(model.predict({"clip": clips, "wearer": columns}, verbose=0), out)


def test_sensor_ceiling_adds_the_heart_rate_by_bayes_rule(monkeypatch):
    # The ceiling of what the sensor set's columns can add: an uninformed sensor model is decided
    # by the heart rate alone, an empty heart rate leaves the model's probabilities as they are,
    # and a confident model is not overturned by a heart rate that only leans the other way.
    monkeypatch.syspath_prepend(BENCHMARKS)
    import sensor_ceiling

    classes = ["still", "shake", "run"]
    heart = np.array([150.0, 73.0, np.nan, 80.0])
    likelihood = sensor_ceiling.heart_rate_likelihood(heart, classes)
    uniform = np.full((4, 3), 1 / 3)
    combined = sensor_ceiling.combine(uniform, likelihood)
    assert [classes[i] for i in combined[:2].argmax(axis=1)] == ["run", "still"]
    np.testing.assert_allclose(combined[2], uniform[2], rtol=1e-6)
    np.testing.assert_allclose(combined.sum(axis=1), 1.0, rtol=1e-6)
    # 80 beats/min leans to shake (mean 84) over still (72), not enough to overturn a sure model.
    sure_still = np.array([[0.9, 0.08, 0.02]])
    assert classes[sensor_ceiling.combine(sure_still, likelihood[3:]).argmax()] == "still"
    # A softer model (a higher temperature) lets the heart rate decide more.
    unsure = np.array([[0.55, 0.45, 0.0]])
    hard = sensor_ceiling.combine(unsure, sensor_ceiling.heart_rate_likelihood(np.array([90.0]), classes), 0.1)
    soft = sensor_ceiling.combine(unsure, sensor_ceiling.heart_rate_likelihood(np.array([90.0]), classes), 4.0)
    assert classes[hard.argmax()] == "still" and classes[soft.argmax()] == "shake"


def test_branch_probe_scores_an_encoders_vectors_on_present_examples_only(monkeypatch):
    # The probe says whether a branch learned inside a fused model: separable vectors score high,
    # noise near chance, and examples missing the modality (zero vectors) are left out.
    monkeypatch.syspath_prepend(BENCHMARKS)
    import branch_probe

    import mmkeras

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 40)
    signal = np.eye(3)[labels] * 3 + rng.normal(0, 0.5, (120, 3))
    noise = rng.normal(0, 1, (120, 3))
    assert branch_probe.probe_accuracy(signal[::2], labels[::2], signal[1::2], labels[1::2]) > 0.9
    assert branch_probe.probe_accuracy(noise[::2], labels[::2], noise[1::2], labels[1::2]) < 0.6

    model = mmkeras.build_model({"motion": {"kind": "sensor", "channels": 2, "length": 8, "conv_filters": [4],
                                            "lstm_units": 4},
                                 "wearer": {"kind": "tabular", "numeric": ["a"]}}, num_classes=3)
    features = {"motion": rng.normal(size=(5, 8, 2)).astype("float32"), "wearer": np.ones((5, 1), "float32"),
                "motion_present": np.array([[1], [0], [1], [1], [0]], "float32"),
                "wearer_present": np.ones((5, 1), "float32")}
    vectors, present = branch_probe.encoder_vectors(model, "motion", features)
    assert vectors.shape[0] == 5 and present.tolist() == [True, False, True, True, False]
