import json
import os

import numpy as np
import pytest

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
    assert set(result["robustness"]) == {"image_noise_0.1", "image_noise_0.3", "image_occlusion_0.5",
                                         "audio_noise_snr_20db", "audio_noise_snr_10db", "audio_noise_snr_0db",
                                         "text_drop_0.5_tokens"}
    for name in ("metrics.json", "classification_report.txt", "confusion_matrix.png", "robustness.png"):
        assert os.path.getsize(tmp_path / name) > 0
    with open(tmp_path / "confusion_matrix.png", "rb") as f:
        assert f.read(4) == b"\x89PNG"
    under = result["modality_weights_under_corruption"]
    assert set(under) == {"all"} | set(result["robustness"])
    assert all(abs(sum(w.values()) - 1) < 1e-3 for w in under.values())
    saved = json.load(open(tmp_path / "metrics.json"))
    assert saved["ablation"] == result["ablation"]
    assert result["files"] == {"metrics": str(tmp_path / "metrics.json"),
                               "report": str(tmp_path / "classification_report.txt"),
                               "confusion matrix": str(tmp_path / "confusion_matrix.png"),
                               "robustness plot": str(tmp_path / "robustness.png")}


def test_corruptions_touch_only_present_examples(tiny_run):
    import numpy as np

    from mmkeras.evaluation import corruptions

    _, preprocessor, _ = load_run(tiny_run[0])
    rng = np.random.default_rng(0)
    features = {"text": np.full((2, 5), 3, "int32"), "text_present": np.array([[1.0], [0.0]], "float32"),
                "image": np.full((2, 8, 8, 1), 0.5, "float32"), "image_present": np.array([[1.0], [0.0]], "float32"),
                "audio": np.ones((2, 4000), "float32"), "audio_present": np.array([[1.0], [0.0]], "float32")}
    for name, corrupt in corruptions(preprocessor).items():
        out = corrupt(features, rng)
        m = name.split("_")[0]
        assert not np.array_equal(out[m][0], features[m][0]), name
        assert np.array_equal(out[m][1], features[m][1]), name


def test_plots_have_titles_and_legends(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from mmkeras import evaluation

    saved = []
    real_savefig = matplotlib.figure.Figure.savefig

    def keep(fig, path, **kwargs):
        ax = fig.axes[0]
        saved.append((os.path.basename(path), ax.get_title(), [t.get_text() for t in ax.get_legend().get_texts()]
                      if ax.get_legend() else None, len(fig.axes)))
        return real_savefig(fig, path, **kwargs)

    matrix = np.array([[3, 1], [0, 4]])
    ablation = {"all": {"accuracy": 0.9}, "without_text": {"accuracy": 0.6}}
    robustness = {"image noise 0.3": {"accuracy": 0.7}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(matplotlib.figure.Figure, "savefig", keep)
        evaluation.plot_confusion_matrix(matrix, ["a", "b"], str(tmp_path / "c.png"), title="Confusion matrix: t.csv")
        evaluation.plot_robustness(ablation, robustness, str(tmp_path / "r.png"), chance=0.5, title="Accuracy")
    plt.close("all")
    assert saved[0] == ("c.png", "Confusion matrix: t.csv", None, 2)  # the matrix and its colour scale
    assert saved[1] == ("r.png", "Accuracy", ["all modalities present", "modalities missing (ablation)",
                                              "input corrupted", "chance (0.50)"], 1)
