"""Distillation: a student run trained on a teacher run's softened outputs, through Python and the CLI."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import yaml

from mmkeras_cli import main
from mmkeras.distillation import DistillationLoss
from mmkeras.distillation import distill
from mmkeras.export import load_saved_model
from mmkeras.training import load_run


def test_the_loss_is_the_temperature_scaled_kl_of_softened_distributions():
    teacher = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], "float32")
    student = np.array([[0.3, 0.3, 0.4], [0.2, 0.2, 0.6]], "float32")
    t = 3.0

    def soften(p):
        z = np.exp(np.log(p) / t)
        return z / z.sum(axis=1, keepdims=True)

    pt, ps = soften(teacher), soften(student)
    expected = (t * t * (pt * (np.log(pt) - np.log(ps))).sum(axis=1)).mean()
    got = DistillationLoss(t)(np.zeros((2, 1)), np.stack([teacher, student], axis=1))
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    assert float(DistillationLoss(t)(np.zeros((2, 1)), np.stack([teacher, teacher], axis=1))) == pytest.approx(0, abs=1e-6)


def test_a_student_may_not_read_inputs_the_teacher_cannot(tiny_run, tmp_path):
    run, _, _ = tiny_run
    with pytest.raises(ValueError, match=r"Student modalities \['video'\] are not the teacher's"):
        distill(run, {"modalities": {"video": {"kind": "video"}}}, str(tmp_path / "a"))
    with pytest.raises(ValueError, match="Student modality 'image' must decode its input as the teacher's does"):
        distill(run, {"modalities": {"image": {"height": 4}}, "training": {"epochs": 1}}, str(tmp_path / "b"))
    with pytest.raises(ValueError, match=r"Student modalities \['image'\] set 'augment', which a student cannot change"):
        distill(run, {"modalities": {"image": {"augment": {}}, "audio": {}}}, str(tmp_path / "d"))
    with pytest.raises(ValueError, match=r"Expected alpha in \[0, 1\]"):
        distill(run, {"modalities": {"image": {}}}, str(tmp_path / "c"), alpha=1.5)


@pytest.mark.slow
def test_distill_trains_a_smaller_student_run_that_evaluates_and_exports(tiny_run, tmp_path):
    run, manifest, _ = tiny_run
    teacher, _, _ = load_run(run)
    before = [w.copy() for w in teacher.get_weights()]
    student = {"modalities": {"image": {"filters": [2]}, "audio": {"lstm_units": 2, "conv_filters": [4]}},
               "training": {"epochs": 2}}  # data: the teacher's; every other training default as documented
    (tmp_path / "student.yaml").write_text(yaml.safe_dump(student))
    assert main(["distill", "--teacher", run, "--config", str(tmp_path / "student.yaml"), "--output",
                 str(tmp_path / "student"), "--temperature", "3", "--alpha", "0.7"]) == 0
    model, pre, config = load_run(str(tmp_path / "student"))
    assert sorted(pre.specs) == ["audio", "image"] and pre.label_names == load_run(run)[1].label_names
    assert sorted(model.input) == ["audio", "audio_present", "image", "image_present"]
    assert model.count_params() < teacher.count_params() / 2
    metrics = json.load(open(tmp_path / "student" / "metrics.json"))
    assert metrics["distillation"]["temperature"] == 3.0 and metrics["distillation"]["alpha"] == 0.7
    assert "accuracy" in metrics["validation"]
    log = open(tmp_path / "student" / "training.csv").readline()
    assert "distill_loss" in log and "label_loss" in log  # both terms were trained on
    for a, b in zip(before, load_run(run)[0].get_weights()):
        np.testing.assert_array_equal(a, b)  # the teacher's run is untouched
    assert main(["evaluate", "--run", str(tmp_path / "student"), "--data", manifest,
                 "--output", str(tmp_path / "eval")]) == 0
    assert main(["export", "--run", str(tmp_path / "student"), "--output", str(tmp_path / "served")]) == 0
    restored, _ = load_saved_model(str(tmp_path / "served"))
    assert sorted(restored.signatures["serving_default"].structured_input_signature[1]) == ["audio", "image"]
    # best.keras holds the fitted pair (TeacherStudentPair, DistillationLoss): `import mmkeras` registers them
    script = ("import sys, keras, mmkeras; m = keras.saving.load_model(sys.argv[1]); "
              "print('OUTPUTS', sorted(m.output))")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "student" / "best.keras")],
                          capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'distill'" in done.stdout.split("OUTPUTS", 1)[1]
    keras.backend.clear_session()
