import json
import os

from mmkeras.evaluation import evaluate
from mmkeras.training import load_run


def test_report_matrix_ablation_and_weights(tiny_run, tmp_path):
    run_dir, manifest, rows = tiny_run
    model, preprocessor, _ = load_run(run_dir)
    result = evaluate(model, preprocessor, manifest, output_dir=str(tmp_path))
    assert result["examples"] == len(rows)
    assert set(result["report"]) >= {"class0", "class1", "class2", "macro avg", "weighted avg"}
    assert sum(map(sum, result["confusion_matrix"])) == len(rows)
    assert set(result["ablation"]) == {"all", "without_text", "without_image", "without_audio", "without_text_image",
                                       "without_text_audio", "without_image_audio"}
    assert abs(result["ablation"]["all"]["accuracy"] - result["report"]["accuracy"]) < 1e-9
    weights = result["modality_weights_per_class"]
    assert set(weights) == {"class0", "class1", "class2"} and abs(sum(weights["class0"].values()) - 1) < 1e-3
    for name in ("metrics.json", "classification_report.txt", "confusion_matrix.png"):
        assert os.path.getsize(tmp_path / name) > 0
    with open(tmp_path / "confusion_matrix.png", "rb") as f:
        assert f.read(4) == b"\x89PNG"
    saved = json.load(open(tmp_path / "metrics.json"))
    assert saved["ablation"] == result["ablation"]
