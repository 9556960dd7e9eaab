"""The numpy side of `normlab bench` (python/normlab_bench.py) against the float64 references.

The bench checks each numpy implementation before timing it, but a disagreement there only
drops its timings with a warning; these tests make one a failure.
"""
import importlib.util
import os

import numpy as np
import pytest

import normlab_bench
import normref

_PLUGIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "plugins", "rms_norm.py")

CASES = [
    ("batch_norm", (6, 4, 3, 5), {}),
    ("batch_norm", (16, 8), {}),
    ("batch_renorm", (6, 4, 3, 5), {"r_max": 1.5, "d_max": 0.5}),
    ("group_norm", (3, 8, 4, 4), {"num_groups": 4}),
    ("group_norm", (16, 12), {"num_groups": 3}),
    ("layer_norm", (5, 4, 3, 3), {}),
    ("layer_norm", (16, 10), {}),
    ("instance_norm", (3, 4, 5, 5), {}),
    ("instance_norm", (3, 4, 5, 5), {"affine": True}),
    ("instance_norm", (3, 4, 5, 5), {"affine": True, "track_running_stats": True}),
    ("filter_response_norm", (3, 4, 5, 5), {}),
]


def _inputs(method, shape, seed):
    r = np.random.RandomState(seed)
    x = (0.5 + r.randn(*shape)).astype(np.float32)
    g = r.randn(*shape).astype(np.float32)
    pshape = shape[1:] if method == "layer_norm" else (shape[1],)
    params = {"weight": (1 + 0.3 * r.randn(*pshape)).astype(np.float32),
              "bias": (0.3 * r.randn(*pshape)).astype(np.float32)}
    if method == "filter_response_norm":
        params["tau"] = (0.3 * r.randn(*pshape)).astype(np.float32)
    c = shape[1]
    buffers = {"running_mean": (0.2 * r.randn(c)).astype(np.float32),
               "running_var": (0.5 + r.rand(c)).astype(np.float32)}
    return x, g, params, buffers


def _close(got, want, what):
    scale = max(1.0, float(np.max(np.abs(want))))
    err = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want))) / scale
    assert err < 1e-4, "%s: max error %.3g (relative to max(1, max|ref|))" % (what, err)


@pytest.mark.parametrize("method,shape,options", CASES)
def test_numpy_implementation_matches_reference(method, shape, options):
    x, g, params, buffers = _inputs(method, shape, seed=len(shape) * 31 + shape[1])
    if method == "instance_norm" and not options.get("affine"):
        params = {}  # PyTorch's default: no affine
    tracks = method in ("batch_norm", "batch_renorm") or options.get("track_running_stats")
    bufs = buffers if tracks else {}
    impl = normlab_bench.make(method, x, params, bufs, options)
    y, gx, ye = normlab_bench.outputs(impl, g)
    ref = normref.run(method, x, "train", g, params=params, buffers=bufs, options=options)
    ref_eval = normref.run(method, x, "eval", None, params=params, buffers=bufs, options=options)
    _close(y, ref["output"], "train output")
    _close(gx, ref["grad_input"], "grad_input")
    _close(ye, ref_eval["output"], "eval output")
    grads = normlab_bench.make(method, x, params, bufs, options)
    grads.forward("train")
    out = grads.backward(g)
    names = ["weight", "bias", "tau"][: len(out) - 1]
    for name, got in zip(names, out[1:]):
        if got is not None and name in params:
            _close(got, ref["grad_" + name], "grad_" + name)
    if tracks and method != "instance_norm":
        _close(grads.run_m, ref["running_mean"], "running_mean")
        _close(grads.run_v, ref["running_var"], "running_var")


def test_rms_norm_matches_the_example_plugin():
    spec = importlib.util.spec_from_file_location("rms_norm_plugin", _PLUGIN)
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    x, g, params, _ = _inputs("rms_norm", (4, 6, 3, 3), seed=5)
    params = {"weight": params["weight"]}
    impl = normlab_bench.make("rms_norm_py", x, params, {}, {})
    y, gx, _ = normlab_bench.outputs(impl, g)
    ref = plugin.reference(x.astype(np.float64), "train", g.astype(np.float64), params, {}, {})
    _close(y, ref["output"], "output")
    _close(gx, ref["grad_input"], "grad_input")


def test_every_op_is_timed_and_unknown_ops_are_refused():
    x, g, params, buffers = _inputs("batch_norm", (4, 3, 2, 2), seed=1)
    impl = normlab_bench.make("batch_norm", x, params, buffers, {})
    for op in normlab_bench.OPS:
        times = normlab_bench.time_op(impl, op, g, 1, 3, 5, 0.0)
        assert 3 <= len(times) <= 5 and all(t >= 0 for t in times)
    with pytest.raises(ValueError, match="unknown op"):
        normlab_bench.time_op(impl, "sideways", g, 0, 1, 1, 0.0)
    assert normlab_bench.make("no_such_norm", x, {}, {}, {}) is None
    assert not normlab_bench.has("no_such_norm")
