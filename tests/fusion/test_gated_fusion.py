import numpy as np

from mmkeras.fusion import GatedFusion


def test_fused_vector_is_gate_times_tanh_projection():
    layer = GatedFusion(["a", "b"], units=3)
    vectors = [np.full((1, 2), 0.5, "float32"), np.full((1, 2), -0.5, "float32")]
    presence = np.array([[1, 1]], "float32")
    fused, _ = layer(vectors, presence)
    gate_input = np.concatenate(vectors + [presence], axis=-1)
    expected = sum(
        np.asarray(g(gate_input)) * np.asarray(p(v)) for g, p, v in zip(layer.gates, layer.projections, vectors)
    )
    np.testing.assert_allclose(np.asarray(fused), expected, rtol=1e-5)
    assert np.all(np.abs(np.asarray(layer.projections[0](vectors[0]))) < 1.0)  # tanh projections
