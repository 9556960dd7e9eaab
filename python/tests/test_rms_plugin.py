"""The RMSNorm example plugin: its Layer against its own reference and finite differences."""
import importlib.util
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("rms_norm_plugin", os.path.join(HERE, "..", "plugins", "rms_norm.py"))
rms = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rms)


def run_layer(x, gy, w, eps=1e-6):
    layer = rms.Layer(x.shape[1], list(x.shape[2:]), {"eps": eps, "affine": True})
    params = {"weight": w.astype(np.float32)}
    y = layer.forward(x.astype(np.float32), "train", params, {})
    gx, grads = layer.backward(gy.astype(np.float32), params)
    return y, gx, grads


def test_layer_matches_reference():
    rng = np.random.default_rng(0)
    for shape in [(3, 4), (2, 3, 5), (2, 4, 3, 3)]:
        x, gy, w = rng.standard_normal(shape), rng.standard_normal(shape), rng.standard_normal(shape[1])
        y, gx, grads = run_layer(x, gy, w)
        ref = rms.reference(x.astype(np.float32), "train", gy.astype(np.float32), {"weight": w}, {}, {"eps": 1e-6})
        np.testing.assert_allclose(y, ref["output"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(gx, ref["grad_input"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(grads["weight"], ref["grad_weight"], rtol=1e-4, atol=1e-5)


def test_reference_gradient_by_finite_differences():
    rng = np.random.default_rng(1)
    x, gy, w = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4)), rng.standard_normal(3)
    ref = rms.reference(x, "train", gy, {"weight": w}, {}, {"eps": 1e-3})
    loss = lambda xx, ww: float(np.sum(gy * rms.reference(xx, "train", None, {"weight": ww}, {}, {"eps": 1e-3})["output"]))
    h = 1e-6
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x); d[i] = h
        num[i] = (loss(x + d, w) - loss(x - d, w)) / (2 * h)
    np.testing.assert_allclose(ref["grad_input"], num, rtol=1e-6, atol=1e-8)
    numw = np.array([(loss(x, w + h * e) - loss(x, w - h * e)) / (2 * h) for e in np.eye(3)])
    np.testing.assert_allclose(ref["grad_weight"], numw, rtol=1e-6, atol=1e-8)
