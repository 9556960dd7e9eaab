"""The float64 references of EvoNorm-B0, Switchable Normalization and Batch-Channel
Normalization: gradients by central differences, running statistics, identities between
methods, and each reference's float32 Bench against the reference itself."""
import zlib

import numpy as np
import pytest

import normref

H = 1e-6


def numeric_grad(f, a):
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + H
        fp = f()
        flat[i] = old - H
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * H)
    return g


def state(method, rng, C, opts):
    if method == "evonorm_b0":
        return ({"weight": rng.normal(size=C) + 1, "bias": rng.normal(size=C), "v": rng.normal(size=C)},
                {"running_var": rng.uniform(0.5, 2, size=C)})
    bufs = {"running_mean": rng.normal(size=C), "running_var": rng.uniform(0.5, 2, size=C), "num_batches_tracked": 2}
    if method == "switchable_norm":
        return ({"weight": rng.normal(size=C) + 1, "bias": rng.normal(size=C),
                 "mean_weight": rng.normal(size=3), "var_weight": rng.normal(size=3)}, bufs)
    G = opts["num_groups"]
    return ({"weight": rng.normal(size=C) + 1, "bias": rng.normal(size=C),
             "group_weight": rng.normal(size=G) + 1, "group_bias": rng.normal(size=G)}, bufs)


CASES = [("evonorm_b0", (3, 4, 3, 2), {}), ("evonorm_b0", (2, 3, 5), {}),
         ("switchable_norm", (3, 4, 3, 2), {}), ("switchable_norm", (2, 3, 2, 2, 2), {}),
         ("batch_channel_norm", (3, 4, 3, 2), {"num_groups": 2}), ("batch_channel_norm", (5, 6), {"num_groups": 2}),
         ("batch_channel_norm", (2, 4, 3), {"num_groups": 1})]


@pytest.mark.parametrize("method,shape,opts", CASES)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_gradients_match_central_differences(method, shape, opts, mode):
    rng = np.random.default_rng(zlib.crc32(repr((method, shape, mode)).encode()))
    x = rng.normal(size=shape) + 0.3
    g = rng.normal(size=shape)
    params, bufs = state(method, rng, shape[1], opts)
    out = normref.run(method, x, mode, g, params, bufs, opts)

    def loss():
        return (normref.run(method, x, mode, None, params, bufs, opts)["output"] * g).sum()

    for name, array in [("input", x)] + sorted(params.items()):
        numeric = numeric_grad(loss, array)
        analytic = out["grad_" + name]
        assert np.abs(numeric - analytic).max() <= 1e-6 * max(1, np.abs(numeric).max()), name
        assert np.abs(analytic).max() > 1e-6, name


def test_evonorm_b0_running_var_is_timm_unbiased_update():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 4, 2))
    out = normref.run("evonorm_b0", x, "train", options={"momentum": 0.25}, buffers={"running_var": np.array([2.0, 0.5])})
    n = x.size // 2
    var = x.transpose(1, 0, 2, 3).reshape(2, -1).var(axis=1)
    assert np.allclose(out["running_var"], 0.75 * np.array([2.0, 0.5]) + 0.25 * var * n / (n - 1), rtol=1e-13)
    assert set(out) == {"output", "running_var"}


def test_switchable_norm_one_hot_branches():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4, 2, 3))
    S = 6
    hot = lambda k: np.array([40.0 if i == k else 0.0 for i in range(3)])  # noqa: E731
    sn_in = normref.run("sn", x, "train", params={"mean_weight": hot(0), "var_weight": hot(0)}, options={"eps": 0.0})["output"]
    inorm = normref.run("in", x, "train", options={"eps": 0.0})["output"]
    assert np.allclose(sn_in, inorm * np.sqrt((S - 1) / S), rtol=1e-12, atol=1e-12)  # unbiased IN variance
    rm, rv = rng.normal(size=4), rng.uniform(0.5, 2, size=4)
    sn_bn = normref.run("sn", x, "eval", params={"mean_weight": hot(2), "var_weight": hot(2)},
                        buffers={"running_mean": rm, "running_var": rv})["output"]
    bn = normref.run("bn", x, "eval", buffers={"running_mean": rm, "running_var": rv})["output"]
    assert np.allclose(sn_bn, bn, rtol=1e-12, atol=1e-12)
    out = normref.run("sn", x, "train")
    assert np.allclose(out["running_mean"], 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    assert out["num_batches_tracked"] == 1


def test_batch_channel_norm_is_bn_then_group_norm():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 6, 2, 2)) * 2 + 1
    w, b = rng.normal(size=6) + 1, rng.normal(size=6)
    gw, gb = rng.normal(size=3), rng.normal(size=3)
    out = normref.run("bcn", x, "train", params={"weight": w, "bias": b, "group_weight": gw, "group_bias": gb},
                      options={"num_groups": 3})
    u = normref.run("bn", x, "train", params={"weight": w, "bias": b})
    gn = normref.run("gn", u["output"], "train", options={"num_groups": 3, "affine": False})["output"]
    expected = gn * np.repeat(gw, 2)[None, :, None, None] + np.repeat(gb, 2)[None, :, None, None]
    assert np.allclose(out["output"], expected, rtol=1e-12, atol=1e-12)
    assert np.allclose(out["running_var"], u["running_var"], rtol=1e-14)


@pytest.mark.parametrize("method,shape,opts", [("evonorm_b0", (4, 3, 4, 4), {}), ("switchable_norm", (4, 3, 4, 4), {}),
                                               ("batch_channel_norm", (4, 6, 4, 4), {"num_groups": 3})])
def test_bench_implementation_matches_reference(method, shape, opts):
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape).astype(np.float32)
    g = rng.normal(size=shape).astype(np.float32)
    params, bufs = state(method, rng, shape[1], opts)
    params = {k: v.astype(np.float32) for k, v in params.items()}
    bufs = {k: np.float32(v) if np.ndim(v) == 0 else v.astype(np.float32) for k, v in bufs.items() if k != "num_batches_tracked"}
    bench = normref.module(method).Bench(x, params, bufs, opts)
    for mode in ("train", "eval"):
        ref = normref.run(method, x, mode, g, params, bufs, opts)
        y = bench.forward(mode)
        gx = bench.backward(g)[0]
        assert np.allclose(y, ref["output"], atol=1e-4 * max(1, np.abs(ref["output"]).max()))
        assert np.allclose(gx, ref["grad_input"], atol=1e-4 * max(1, np.abs(ref["grad_input"]).max()))
