import numpy as np

from mmkeras.fusion import ConcatFusion


def test_output_is_projections_then_presence_flags():
    layer = ConcatFusion(["a", "b"], units=2)
    vectors = [np.ones((1, 3), "float32"), np.ones((1, 4), "float32")]
    out = np.asarray(layer(vectors, np.array([[1, 0]], "float32")))
    np.testing.assert_allclose(out[0, :2], np.asarray(layer.projections[0](vectors[0]))[0], rtol=1e-6)
    assert out[0, 2:4].tolist() == [0.0, 0.0]  # absent modality: zeros
    assert out[0, 4:].tolist() == [1.0, 0.0]  # the flags themselves
