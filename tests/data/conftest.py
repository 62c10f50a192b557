"""Fixtures of the data tests."""

import pytest
from media import image_bytes
from media import tone
from media import wav_bytes


@pytest.fixture
def dataset_folder(tmp_path):
    """12 examples (3 classes) as PNG + WAV files and a CSV manifest with relative paths."""
    rows = []
    (tmp_path / "media").mkdir()
    for i in range(12):
        (tmp_path / "media" / f"img{i}.png").write_bytes(image_bytes("PNG", seed=i))
        (tmp_path / "media" / f"clip{i}.wav").write_bytes(wav_bytes(tone(16000, hz=300 + 100 * i), 16000))
        rows.append({"text": f"word{i % 3} sample", "image": f"media/img{i}.png", "audio": f"media/clip{i}.wav",
                     "label": f"class{i % 3}"})
    return tmp_path, rows
