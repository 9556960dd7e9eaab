"""The float64 references of rms_norm, ghost_batch_norm and local_response_norm: identities
with other references and other formulations, finite differences, option errors."""
import importlib.util
import os

import numpy as np
import pytest

import normref
import normlab_bench

HERE = os.path.dirname(os.path.abspath(__file__))


def _fd_grad_input(method, x, g, opts, mode="train", buffers=None, h=1e-6):
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        lp = (g * normref.run(method, xp, mode, None, None, buffers, opts)["output"]).sum()
        lm = (g * normref.run(method, xm, mode, None, None, buffers, opts)["output"]).sum()
        num[i] = (lp - lm) / (2 * h)
    return num


def test_rms_norm_matches_the_example_plugin_reference():
    spec = importlib.util.spec_from_file_location("rms_example", os.path.join(HERE, "..", "plugins", "rms_norm.py"))
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    r = np.random.default_rng(0)
    x, g, w = r.standard_normal((3, 4, 5)), r.standard_normal((3, 4, 5)), r.standard_normal(4)
    ours = normref.run("rms", x, "train", g, {"weight": w}, None, {"eps": 1e-3})
    theirs = plugin.reference(x, "train", g, {"weight": w}, {}, {"eps": 1e-3})
    for k in ("output", "grad_input", "grad_weight"):
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method,opts,shape", [
    ("rms_norm", {"eps": 1e-3}, (3, 4, 2)),
    ("ghost_batch_norm", {"virtual_batch_size": 2}, (4, 3, 2)),
    ("local_response_norm", {"size": 3, "alpha": 1.0, "beta": 0.75}, (2, 4, 3)),
    ("local_response_norm", {"size": 4, "alpha": 2.0, "beta": 2.0, "k": 2.0}, (2, 5, 2)),
])
def test_grad_input_matches_finite_differences(method, opts, shape):
    r = np.random.default_rng(1)
    x, g = r.standard_normal(shape) + 0.3, r.standard_normal(shape)
    got = normref.run(method, x, "train", g, None, None, opts)["grad_input"]
    np.testing.assert_allclose(got, _fd_grad_input(method, x, g, opts), rtol=1e-5, atol=1e-7)


def test_ghost_bn_with_the_whole_batch_is_batch_norm_and_chunks_update_in_order():
    r = np.random.default_rng(2)
    x, g = r.standard_normal((6, 3, 4)), r.standard_normal((6, 3, 4))
    bufs = {"running_mean": r.standard_normal(3), "running_var": r.uniform(0.5, 2, 3), "num_batches_tracked": 4}
    gbn = normref.run("gbn", x, "train", g, None, bufs, {"virtual_batch_size": 6, "momentum": 0.3})
    bn = normref.run("bn", x, "train", g, None, bufs, {"momentum": 0.3})
    assert sorted(gbn) == sorted(bn)
    for k in bn:
        np.testing.assert_allclose(gbn[k], bn[k], rtol=1e-12, atol=1e-12)
    # Three chunks of two: BN on each chunk in turn, buffers carried over.
    gbn = normref.run("gbn", x, "train", g, None, bufs, {"virtual_batch_size": 2, "momentum": None})
    state = dict(bufs)
    for k in range(3):
        part = normref.run("bn", x[2 * k:2 * k + 2], "train", g[2 * k:2 * k + 2], None, state, {"momentum": None})
        np.testing.assert_allclose(gbn["output"][2 * k:2 * k + 2], part["output"], rtol=1e-12)
        np.testing.assert_allclose(gbn["grad_input"][2 * k:2 * k + 2], part["grad_input"], rtol=1e-12, atol=1e-12)
        state = {n: part[n] for n in ("running_mean", "running_var", "num_batches_tracked")}
    for n in state:
        np.testing.assert_allclose(gbn[n], state[n], rtol=1e-12)
    assert gbn["num_batches_tracked"] == 7


def test_lrn_reference_equals_the_avg_pool_formulation():
    """The bench's float32 PyTorch-style formulation (zero padding, shifted slices) against the
    reference's explicit window, for odd and even sizes and a size above C."""
    r = np.random.default_rng(3)
    for size in (1, 2, 3, 4, 5, 9):
        x, g = r.standard_normal((2, 6, 3, 2)), r.standard_normal((2, 6, 3, 2))
        opts = {"size": size, "alpha": 0.5, "beta": 0.75, "k": 1.0}
        ref = normref.run("lrn", x, "train", g, None, None, opts)
        bench = normref.module("lrn").Bench(x.astype(np.float32), {}, {}, opts)
        np.testing.assert_allclose(bench.train(), ref["output"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bench.backward(g.astype(np.float32))[0], ref["grad_input"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method,opts,message", [
    ("lrn", {"k": 0}, "must be > 0"),
    ("lrn", {"size": 0}, "positive integer"),
    ("lrn", {"alpha": -1}, ">= 0"),
    ("gbn", {"virtual_batch_size": 4}, "not divisible by virtual_batch_size=4"),
    ("rms", {"eps": -1}, ">= 0"),
])
def test_bad_options_raise(method, opts, message):
    with pytest.raises(ValueError, match=message):
        normref.run(method, np.ones((6, 3, 2)), "train", None, None, None, opts)


def test_bench_implementations_come_from_the_references():
    for name in ("rms_norm", "ghost_batch_norm", "local_response_norm"):
        assert normlab_bench.IMPLEMENTATIONS[name] is normref.module(name).Bench
    assert normlab_bench.has("rms_norm_py")
