"""Tests of the float64 numpy references (normref).

Run (from the repository root): /usr/bin/python3 -m pytest python/tests -q
"""

import numpy as np
import pytest

import normref
from normref import batch_norm, common

H = 1e-6  # finite-difference step


# --------------------------------------------------------------------------- helpers

def rng(seed):
    return np.random.RandomState(seed)


def rand_params(r, shape, names):
    out = {}
    for n in names:
        if n == "weight":
            out[n] = 1.0 + 0.5 * r.randn(*shape)
        elif n in ("bias", "tau"):
            out[n] = 0.3 * r.randn(*shape)
    return out


def rand_buffers(r, C):
    return {"running_mean": 0.5 * r.randn(C), "running_var": 0.5 + r.rand(C),
            "num_batches_tracked": 3}


def loss(method, x, params, gy, **kw):
    return float(np.sum(gy * normref.run(method, x, params=params, **kw)["output"]))


def numeric_grad(f, a):
    """Central differences of scalar f() w.r.t. every element of a (modified in place)."""
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


def assert_close(a, b, rtol=1e-6, atol=1e-7, what=""):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * scale, err_msg=what)


def check_fd(method, x, params, gy, **kw):
    """Analytic grad_input and grad_<param> of run() against central differences."""
    res = normref.run(method, x, grad_output=gy, params=params, **kw)
    x = x.copy()
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}

    def f():
        return loss(method, x, params, gy, **kw)

    assert_close(res["grad_input"], numeric_grad(f, x), what="grad_input")
    grads = sorted(k for k in res if k.startswith("grad_") and k != "grad_input")
    for g in grads:
        name = g[len("grad_"):]
        assert name in params, "test must pass every learnable parameter explicitly: " + name
        assert res[g].shape == params[name].shape, (g, res[g].shape, params[name].shape)
        assert_close(res[g], numeric_grad(f, params[name]), what=g)
    return res


# --------------------------------------------------------------------------- names / API

def test_names_and_aliases():
    # the first references in their ORDER; further method files are discovered after them
    assert normref.METHODS[:7] == ("batch_norm", "batch_renorm", "group_norm", "layer_norm",
                                   "instance_norm", "filter_response_norm", "evonorm_s0")
    for alias, canon in [("bn", "batch_norm"), ("BN", "batch_norm"),
                         ("Batch_Norm", "batch_norm"), ("brn", "batch_renorm"),
                         ("GN", "group_norm"), ("ln", "layer_norm"),
                         ("In", "instance_norm"), ("FRN", "filter_response_norm"),
                         ("filter_response_norm", "filter_response_norm")]:
        assert normref.canonical_name(alias) == canon
    with pytest.raises(ValueError):
        normref.canonical_name("weight_norm")


def test_output_keys_and_dtypes():
    x = rng(0).randn(3, 4, 5).astype(np.float32)
    gy = np.ones(x.shape, np.float32)
    cases = {
        "bn": ({}, {"output", "grad_input", "grad_weight", "grad_bias", "running_mean",
                    "running_var", "num_batches_tracked"}),
        "brn": ({}, {"output", "grad_input", "grad_weight", "grad_bias", "running_mean",
                     "running_var", "num_batches_tracked", "r", "d"}),
        "gn": ({"num_groups": 2}, {"output", "grad_input", "grad_weight", "grad_bias"}),
        "ln": ({}, {"output", "grad_input", "grad_weight", "grad_bias"}),
        "in": ({}, {"output", "grad_input"}),
        "frn": ({}, {"output", "grad_input", "grad_weight", "grad_bias", "grad_tau"}),
    }
    for m, (opts, keys) in cases.items():
        res = normref.run(m, x, grad_output=gy, options=opts)
        assert set(res) == keys, m
        assert res["output"].dtype == np.float64 and res["output"].shape == x.shape
        if "num_batches_tracked" in res:
            assert type(res["num_batches_tracked"]) is int
            assert res["num_batches_tracked"] == 1
        # eval: no buffers, no r/d; no grad_output: no grads
        res = normref.run(m, x, mode="eval", options=opts)
        assert set(res) == {"output"}, m
    res = normref.run("frn", x, grad_output=gy,
                      options={"tlu": False, "learnable_eps": True, "affine": False})
    assert set(res) == {"output", "grad_input", "grad_eps"}
    assert res["grad_eps"].shape == (1,)
    res = normref.run("in", x, grad_output=gy,
                      options={"affine": True, "track_running_stats": True})
    assert set(res) == {"output", "grad_input", "grad_weight", "grad_bias",
                        "running_mean", "running_var", "num_batches_tracked"}
    res = normref.run("bn", x, grad_output=gy, options={"track_running_stats": False,
                                                         "affine": False})
    assert set(res) == {"output", "grad_input"}


def test_inputs_not_modified_and_float32_accepted():
    r = rng(1)
    x = r.randn(4, 3, 2).astype(np.float32)
    buf = rand_buffers(r, 3)
    params = rand_params(r, (3,), ["weight", "bias"])
    copies = (x.copy(), {k: np.copy(v) for k, v in buf.items()},
              {k: v.copy() for k, v in params.items()})
    res = normref.run("bn", x, params=params, buffers=buf)
    res64 = normref.run("bn", x.astype(np.float64), params=params, buffers=buf)
    assert_close(res["output"], res64["output"], rtol=0, atol=0)
    np.testing.assert_array_equal(x, copies[0])
    for k in buf:
        np.testing.assert_array_equal(buf[k], copies[1][k])
    for k in params:
        np.testing.assert_array_equal(params[k], copies[2][k])


def test_param_shape_differing_by_unit_axes_accepted():
    r = rng(2)
    x = r.randn(3, 4, 2, 2)
    w, b = 1 + r.rand(4), r.randn(4)
    ref = normref.run("bn", x, params={"weight": w, "bias": b})
    res = normref.run("bn", x, params={"weight": w.reshape(1, 4, 1, 1),
                                       "bias": b.reshape(4, 1)},
                      buffers={"running_mean": np.zeros((1, 4)),
                               "running_var": np.ones((1, 4, 1, 1))})
    for k in ("output", "running_mean", "running_var"):
        assert_close(res[k], ref[k], rtol=0, atol=0)
    # FRN eps as scalar or (1,)
    o = {"learnable_eps": True}
    a = normref.run("frn", x, params={"eps": 0.1}, options=o)["output"]
    c = normref.run("frn", x, params={"eps": np.array([0.1])}, options=o)["output"]
    d = normref.run("frn", x, options={"learnable_eps": True, "eps": 0.1})["output"]
    assert_close(a, c, rtol=0, atol=0)
    assert_close(a, d, rtol=0, atol=0)


# --------------------------------------------------------------------------- naive forwards

def test_naive_forwards():
    """Forward passes against loop-based formulas written directly from the papers."""
    r = rng(3)
    N, C, Hh, W = 3, 4, 2, 3
    x = r.randn(N, C, Hh, W)
    w, b = 1 + 0.5 * r.randn(C), r.randn(C)
    eps = 1e-3

    # BN train
    y = normref.run("bn", x, params={"weight": w, "bias": b}, options={"eps": eps})["output"]
    for c in range(C):
        v = x[:, c]
        assert_close(y[:, c], w[c] * (v - v.mean()) / np.sqrt(v.var() + eps) + b[c])

    # GN, 2 groups of 2 channels
    y = normref.run("gn", x, params={"weight": w, "bias": b},
                    options={"num_groups": 2, "eps": eps})["output"]
    for n in range(N):
        for g in range(2):
            v = x[n, 2 * g:2 * g + 2]
            for c in range(2 * g, 2 * g + 2):
                assert_close(y[n, c], w[c] * (x[n, c] - v.mean()) / np.sqrt(v.var() + eps)
                             + b[c])

    # LN, elementwise affine
    wl, bl = 1 + r.randn(C, Hh, W), r.randn(C, Hh, W)
    y = normref.run("ln", x, params={"weight": wl, "bias": bl},
                    options={"eps": eps})["output"]
    for n in range(N):
        assert_close(y[n], wl * (x[n] - x[n].mean()) / np.sqrt(x[n].var() + eps) + bl)

    # IN
    y = normref.run("in", x, options={"eps": eps})["output"]
    for n in range(N):
        for c in range(C):
            v = x[n, c]
            assert_close(y[n, c], (v - v.mean()) / np.sqrt(v.var() + eps))

    # FRN + TLU
    tau = 0.2 * r.randn(C)
    y = normref.run("frn", x, params={"weight": w, "bias": b, "tau": tau},
                    options={"eps": eps})["output"]
    for n in range(N):
        for c in range(C):
            v = x[n, c]
            z = w[c] * v / np.sqrt(np.mean(v ** 2) + eps) + b[c]
            assert_close(y[n, c], np.maximum(z, tau[c]))

    # BRN train: r, d by hand
    buf = rand_buffers(r, C)
    res = normref.run("brn", x, params={"weight": w, "bias": b}, buffers=buf,
                      options={"eps": eps, "r_max": 1.5, "d_max": 0.5})
    for c in range(C):
        v = x[:, c]
        sb = np.sqrt(v.var() + eps)
        s = np.sqrt(buf["running_var"][c] + eps)
        rr = min(max(sb / s, 1 / 1.5), 1.5)
        dd = min(max((v.mean() - buf["running_mean"][c]) / s, -0.5), 0.5)
        assert_close(res["r"][c], rr)
        assert_close(res["d"][c], dd)
        assert_close(res["output"][:, c], w[c] * ((v - v.mean()) / sb * rr + dd) + b[c])


# --------------------------------------------------------------------------- finite differences

SHAPES_BN = [(5, 3), (3, 2, 4), (2, 3, 2, 3), (2, 2, 2, 2, 2)]
SHAPES_SPATIAL = [(2, 3, 5), (2, 3, 2, 3), (2, 2, 2, 2, 2)]


@pytest.mark.parametrize("shape", SHAPES_BN)
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("track", [True, False])
def test_fd_batch_norm(shape, mode, track):
    r = rng(10)
    x, gy = r.randn(*shape), r.randn(*shape)
    C = shape[1]
    params = rand_params(r, (C,), ["weight", "bias"])
    buf = rand_buffers(r, C) if track else None
    check_fd("bn", x, params, gy, mode=mode, buffers=buf,
             options={"track_running_stats": track, "eps": 1e-3})


@pytest.mark.parametrize("shape", SHAPES_BN)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_fd_batch_renorm_clipped(shape, mode):
    """With r and d at their clips they are locally constant, so central differences of
    the true function equal the stop-gradient backward."""
    r = rng(11)
    x, gy = r.randn(*shape), r.randn(*shape)
    C = shape[1]
    params = rand_params(r, (C,), ["weight", "bias"])
    # huge running var -> sigma_B / sigma << 1/r_max; far running mean -> |d| clipped
    buf = {"running_mean": np.full(C, 50.0) * np.where(np.arange(C) % 2, 1, -1),
           "running_var": np.full(C, 400.0), "num_batches_tracked": 7}
    opts = {"r_max": 2.0, "d_max": 1.0, "eps": 1e-3}
    res = check_fd("brn", x, params, gy, mode=mode, buffers=buf, options=opts)
    if mode == "train":
        assert_close(res["r"], np.full(C, 0.5), rtol=0, atol=0)
        assert_close(np.abs(res["d"]), np.ones(C), rtol=0, atol=0)


@pytest.mark.parametrize("shape", SHAPES_BN)
def test_fd_batch_renorm_unclipped_frozen_rd(shape):
    """Unclipped r, d: the backward must treat them as constants; compare with central
    differences of the forward with r and d frozen at the values run() reports."""
    r = rng(12)
    x, gy = r.randn(*shape), r.randn(*shape)
    C = shape[1]
    w, b = 1 + 0.5 * r.randn(C), r.randn(C)
    buf = {"running_mean": 0.1 * r.randn(C), "running_var": 0.8 + 0.4 * r.rand(C)}
    eps = 1e-3
    res = normref.run("brn", x, grad_output=gy, params={"weight": w, "bias": b},
                      buffers=buf, options={"eps": eps})
    rr, dd = res["r"], res["d"]
    assert np.all((rr > 1 / 3) & (rr < 3)) and np.all(np.abs(dd) < 5)  # not clipped
    ax = common.channel_axes(x.ndim)
    bc = lambda v: common.bc(v, x.ndim)

    def frozen():
        mu = x.mean(axis=ax)
        var = ((x - bc(mu)) ** 2).mean(axis=ax)
        xh = (x - bc(mu)) / bc(np.sqrt(var + eps)) * bc(rr) + bc(dd)
        return float(np.sum(gy * (bc(w) * xh + bc(b))))

    assert_close(frozen(), float(np.sum(gy * res["output"])))
    assert_close(res["grad_input"], numeric_grad(frozen, x), what="grad_input")
    assert_close(res["grad_weight"], numeric_grad(frozen, w), what="grad_weight")
    assert_close(res["grad_bias"], numeric_grad(frozen, b), what="grad_bias")
    # ... and it is NOT the gradient of the true function (r, d depend on x)
    true_fd = numeric_grad(lambda: loss("brn", x, {"weight": w, "bias": b}, gy,
                                        buffers=buf, options={"eps": eps}), x.copy())
    assert not np.allclose(true_fd, res["grad_input"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("shape,groups", [((3, 4), 2), ((3, 4), 1), ((2, 4, 3), 2),
                                          ((2, 4, 3), 4), ((2, 6, 2, 2), 3),
                                          ((2, 4, 2, 2), 1), ((2, 4, 2, 1, 2), 2)])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_fd_group_norm(shape, groups, mode):
    r = rng(13)
    x, gy = r.randn(*shape), r.randn(*shape)
    params = rand_params(r, (shape[1],), ["weight", "bias"])
    check_fd("gn", x, params, gy, mode=mode, options={"num_groups": groups, "eps": 1e-3})


@pytest.mark.parametrize("shape", SHAPES_BN)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_fd_layer_norm(shape, mode):
    r = rng(14)
    x, gy = r.randn(*shape), r.randn(*shape)
    params = rand_params(r, shape[1:], ["weight", "bias"])
    check_fd("ln", x, params, gy, mode=mode, options={"eps": 1e-3})


@pytest.mark.parametrize("shape", SHAPES_SPATIAL)
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("track", [False, True])
def test_fd_instance_norm(shape, mode, track):
    r = rng(15)
    x, gy = r.randn(*shape), r.randn(*shape)
    C = shape[1]
    params = rand_params(r, (C,), ["weight", "bias"])
    buf = rand_buffers(r, C) if track else None
    check_fd("in", x, params, gy, mode=mode, buffers=buf,
             options={"affine": True, "track_running_stats": track, "eps": 1e-3})


def _frn_params(r, x, opts):
    """Random FRN parameters with tau kept away from ties with z (for differences)."""
    C = x.shape[1]
    params = {}
    if opts.get("affine", True):
        params.update(rand_params(r, (C,), ["weight", "bias"]))
    if opts.get("learnable_eps"):
        params["eps"] = np.array([opts.pop("eps_value")])
    if opts.get("tlu", True):
        z = normref.run("frn", x, params=dict(params, tau=np.full(C, -1e9)),
                        options=opts)["output"]
        tau = np.empty(C)
        for c in range(C):
            zc = np.sort(z[:, c].ravel())
            gaps = np.diff(zc)
            i = int(np.argmax(gaps[1:-1])) + 1 if gaps.size > 2 else 0
            tau[c] = 0.5 * (zc[i] + zc[i + 1])  # the middle of a wide gap: no near tie
            assert np.min(np.abs(zc - tau[c])) > 1e-4
        params["tau"] = tau
    return params


@pytest.mark.parametrize("shape", SHAPES_SPATIAL + [(3, 2, 1, 1)])
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("variant", [
    {},
    {"tlu": False},
    {"learnable_eps": True, "eps_value": 0.3},
    {"learnable_eps": True, "eps_value": -0.2, "affine": False},
    {"learnable_eps": True, "eps_value": 0.05, "tlu": False},
])
def test_fd_filter_response_norm(shape, mode, variant):
    r = rng(16)
    x, gy = r.randn(*shape), r.randn(*shape)
    opts = dict(variant)
    opts.setdefault("eps", 1e-3)
    params = _frn_params(r, x, opts)
    res = check_fd("frn", x, params, gy, mode=mode, options=opts)
    if opts.get("tlu", True):
        assert "grad_tau" in res and np.any(res["grad_tau"] != 0)
    if opts.get("learnable_eps"):
        assert res["grad_eps"].shape == (1,)


def test_frn_tie_goes_to_z():
    x = np.zeros((2, 3, 2, 2))
    b = np.array([0.1, -0.2, 0.3])
    gy = rng(17).randn(*x.shape)
    res = normref.run("frn", x, grad_output=gy, params={"bias": b, "tau": b.copy()})
    assert_close(res["output"], np.broadcast_to(b[None, :, None, None], x.shape))
    assert_close(res["grad_tau"], np.zeros(3), rtol=0, atol=0)
    assert_close(res["grad_bias"], gy.sum(axis=(0, 2, 3)))


def test_frn_eps_sign():
    r = rng(18)
    x, gy = r.randn(2, 2, 3), r.randn(2, 2, 3)
    o = {"learnable_eps": True}
    gp = normref.run("frn", x, grad_output=gy, params={"eps": 0.2}, options=o)
    gm = normref.run("frn", x, grad_output=gy, params={"eps": -0.2}, options=o)
    gz = normref.run("frn", x, grad_output=gy, params={"eps": 0.0}, options=o)
    assert_close(gp["output"], gm["output"], rtol=0, atol=0)
    assert_close(gp["grad_eps"], -gm["grad_eps"], rtol=0, atol=0)
    assert gz["grad_eps"][0] == 0.0


# --------------------------------------------------------------------------- identities

@pytest.mark.parametrize("shape", SHAPES_BN)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_brn_limits_is_bn(shape, momentum):
    r = rng(20)
    x, gy = r.randn(*shape), r.randn(*shape)
    C = shape[1]
    params = rand_params(r, (C,), ["weight", "bias"])
    buf = rand_buffers(r, C)
    for mode in ("train", "eval"):
        bn = normref.run("bn", x, mode=mode, grad_output=gy, params=params, buffers=buf,
                         options={"momentum": momentum})
        brn = normref.run("brn", x, mode=mode, grad_output=gy, params=params, buffers=buf,
                          options={"momentum": momentum, "r_max": 1, "d_max": 0})
        for k in bn:
            if k == "num_batches_tracked":
                assert bn[k] == brn[k]
            else:
                assert_close(brn[k], bn[k], rtol=1e-12, atol=1e-13, what=k)
        if mode == "train":
            assert set(brn) == set(bn) | {"r", "d"}
            assert_close(brn["r"], np.ones(C), rtol=0, atol=0)
            assert_close(brn["d"], np.zeros(C), rtol=0, atol=0)


@pytest.mark.parametrize("shape", SHAPES_SPATIAL)
def test_gn_all_groups_is_in(shape):
    r = rng(21)
    x, gy = r.randn(*shape), r.randn(*shape)
    C = shape[1]
    params = rand_params(r, (C,), ["weight", "bias"])
    gn = normref.run("gn", x, grad_output=gy, params=params, options={"num_groups": C})
    inn = normref.run("in", x, grad_output=gy, params=params, options={"affine": True})
    assert set(gn) == set(inn)
    for k in gn:
        assert_close(gn[k], inn[k], rtol=1e-12, atol=1e-13, what=k)


@pytest.mark.parametrize("shape", [(4, 3)] + SHAPES_SPATIAL)
def test_gn_one_group_is_ln_with_broadcast_weight(shape):
    r = rng(22)
    x, gy = r.randn(*shape), r.randn(*shape)
    C = shape[1]
    w, b = 1 + 0.5 * r.randn(C), r.randn(C)
    gn = normref.run("gn", x, grad_output=gy, params={"weight": w, "bias": b},
                     options={"num_groups": 1})
    wl = np.broadcast_to(w.reshape((C,) + (1,) * (len(shape) - 2)), shape[1:]).copy()
    bl = np.broadcast_to(b.reshape((C,) + (1,) * (len(shape) - 2)), shape[1:]).copy()
    ln = normref.run("ln", x, grad_output=gy, params={"weight": wl, "bias": bl})
    assert_close(gn["output"], ln["output"], rtol=1e-12, atol=1e-13)
    assert_close(gn["grad_input"], ln["grad_input"], rtol=1e-12, atol=1e-13)
    sp = tuple(range(1, len(shape) - 1))
    assert_close(gn["grad_weight"], ln["grad_weight"].sum(axis=sp), rtol=1e-12, atol=1e-13)
    assert_close(gn["grad_bias"], ln["grad_bias"].sum(axis=sp), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("shape", SHAPES_BN)
def test_bn_eval_with_batch_stats_is_train(shape):
    r = rng(23)
    x = r.randn(*shape)
    C = shape[1]
    params = rand_params(r, (C,), ["weight", "bias"])
    ax = common.channel_axes(x.ndim)
    buf = {"running_mean": x.mean(axis=ax), "running_var": x.var(axis=ax)}
    train = normref.run("bn", x, params=params, buffers=buf)
    ev = normref.run("bn", x, mode="eval", params=params, buffers=buf)
    assert_close(ev["output"], train["output"], rtol=1e-12, atol=1e-13)
    # and BRN eval is BN eval
    brn = normref.run("brn", x, mode="eval", params=params, buffers=buf)
    assert_close(brn["output"], ev["output"], rtol=0, atol=0)


def test_track_false_eval_equals_train():
    r = rng(24)
    x, gy = r.randn(3, 4, 5), r.randn(3, 4, 5)
    for m, o in [("bn", {"track_running_stats": False}), ("in", {}),
                 ("gn", {"num_groups": 2}), ("ln", {}), ("frn", {})]:
        a = normref.run(m, x, grad_output=gy, options=o)
        b = normref.run(m, x, mode="eval", grad_output=gy, options=o)
        assert set(a) == set(b)
        for k in a:
            assert_close(a[k], b[k], rtol=0, atol=0, what=m + " " + k)


# --------------------------------------------------------------------------- running stats

@pytest.mark.parametrize("method", ["bn", "brn"])
@pytest.mark.parametrize("shape", [(6, 3), (3, 3, 4), (2, 3, 2, 2)])
def test_running_stats_numeric_momentum(method, shape):
    r = rng(30)
    C = shape[1]
    m = 0.3
    rm, rv, nbt = np.zeros(C), np.ones(C), 0
    buf = None
    ax = common.channel_axes(len(shape))
    for step in range(4):
        x = 2.0 + 1.5 * r.randn(*shape)
        res = normref.run(method, x, buffers=buf, options={"momentum": m})
        rm = (1 - m) * rm + m * x.mean(axis=ax)
        rv = (1 - m) * rv + m * x.var(axis=ax, ddof=1)
        nbt += 1
        assert_close(res["running_mean"], rm, rtol=1e-12, atol=1e-13)
        assert_close(res["running_var"], rv, rtol=1e-12, atol=1e-13)
        assert res["num_batches_tracked"] == nbt
        buf = {k: res[k] for k in ("running_mean", "running_var", "num_batches_tracked")}
    # eval does not touch buffers
    assert set(normref.run(method, x, mode="eval", buffers=buf)) == {"output"}


@pytest.mark.parametrize("method", ["bn", "brn"])
def test_running_stats_cumulative_average(method):
    r = rng(31)
    C, ax = 3, (0, 2)
    buf = {"running_mean": 5 + r.randn(C), "running_var": 5 + r.rand(C)}
    means, vars_ = [], []
    for step in range(5):
        x = r.randn(4, C, 3) * (1 + step) + step
        res = normref.run(method, x, buffers=buf, options={"momentum": None})
        means.append(x.mean(axis=ax))
        vars_.append(x.var(axis=ax, ddof=1))
        # the first step (counter 0 -> 1, m = 1) wipes the initial buffers; afterwards a
        # plain cumulative mean of the batch statistics
        assert_close(res["running_mean"], np.mean(means, axis=0), rtol=1e-12, atol=1e-13)
        assert_close(res["running_var"], np.mean(vars_, axis=0), rtol=1e-12, atol=1e-13)
        assert res["num_batches_tracked"] == step + 1
        buf = {k: res[k] for k in ("running_mean", "running_var", "num_batches_tracked")}


def test_cumulative_average_continues_from_counter():
    r = rng(32)
    x = r.randn(5, 2)
    rm0, rv0 = np.array([1.0, -1.0]), np.array([2.0, 3.0])
    res = normref.run("bn", x, buffers={"running_mean": rm0, "running_var": rv0,
                                        "num_batches_tracked": 2},
                      options={"momentum": None})
    # counter 2 -> 3, m = 1/3: the running values are the mean of 2 earlier batches
    assert_close(res["running_mean"], (2 * rm0 + x.mean(0)) / 3)
    assert_close(res["running_var"], (2 * rv0 + x.var(0, ddof=1)) / 3)
    assert res["num_batches_tracked"] == 3
    assert common.momentum_factor(None, 4) == 0.25
    assert common.momentum_factor(0.2, 4) == 0.2


def test_momentum_zero_and_one():
    x = rng(33).randn(4, 2, 3)
    buf = {"running_mean": np.array([0.5, 0.7]), "running_var": np.array([1.5, 2.5])}
    res0 = normref.run("bn", x, buffers=buf, options={"momentum": 0.0})
    assert_close(res0["running_mean"], buf["running_mean"], rtol=0, atol=0)
    res1 = normref.run("bn", x, buffers=buf, options={"momentum": 1.0})
    assert_close(res1["running_var"], x.var(axis=(0, 2), ddof=1))


@pytest.mark.parametrize("momentum", [0.25, None])
def test_instance_norm_running_stats(momentum):
    r = rng(34)
    N, C = 3, 2
    rm, rv = np.zeros(C), np.ones(C)
    buf = None
    means = []
    vars_ = []
    opts = {"track_running_stats": True, "momentum": momentum}
    for step in range(3):
        x = r.randn(N, C, 2, 3) * 2 + 1
        res = normref.run("in", x, buffers=buf, options=opts)
        bm = x.mean(axis=(2, 3)).mean(axis=0)
        bv = x.reshape(N, C, -1).var(axis=2, ddof=1).mean(axis=0)
        means.append(bm)
        vars_.append(bv)
        if momentum is None:
            rm, rv = np.mean(means, axis=0), np.mean(vars_, axis=0)
        else:
            rm = (1 - momentum) * rm + momentum * bm
            rv = (1 - momentum) * rv + momentum * bv
        assert_close(res["running_mean"], rm, rtol=1e-12, atol=1e-13)
        assert_close(res["running_var"], rv, rtol=1e-12, atol=1e-13)
        assert res["num_batches_tracked"] == step + 1
        buf = {k: res[k] for k in ("running_mean", "running_var", "num_batches_tracked")}
    # eval uses the running statistics per channel
    ev = normref.run("in", x, mode="eval", buffers=buf, options=opts)["output"]
    assert_close(ev, (x - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + 1e-5))


def test_brn_running_stats_use_pre_update_values():
    """r, d come from the running stats before this step's update."""
    r = rng(35)
    x = r.randn(8, 2)
    buf = {"running_mean": np.array([0.3, -0.1]), "running_var": np.array([0.5, 2.0])}
    res = normref.run("brn", x, buffers=buf, options={"r_max": 10, "d_max": 10, "eps": 0.0})
    s = np.sqrt(buf["running_var"])
    assert_close(res["r"], x.std(axis=0) / s)
    assert_close(res["d"], (x.mean(axis=0) - buf["running_mean"]) / s)
    # r*xhat + d with exact (unclipped) r, d reproduces normalising with running stats
    assert_close(res["output"], (x - buf["running_mean"]) / s)


# --------------------------------------------------------------------------- errors

ERROR_CASES = [
    ("nonexistent", (2, 3), {}, {}),
    ("bn", (2, 3), {"options": {"foo": 1}}, {}),
    ("bn", (2, 3), {"options": {"num_groups": 2}}, {}),        # not a BN option
    ("gn", (2, 4, 3), {}, {}),                                   # num_groups missing
    ("gn", (2, 4, 3), {"options": {"num_groups": 0}}, {}),
    ("gn", (2, 4, 3), {"options": {"num_groups": 3}}, {}),       # 4 % 3
    ("gn", (2, 4), {"options": {"num_groups": 4}}, {}),          # one value per group
    ("gn", (2, 4, 1, 1), {"options": {"num_groups": 4}}, {}),
    ("gn", (2, 4, 3), {"options": {"num_groups": 1.5}}, {}),
    ("bn", (1, 3), {}, {}),                                      # one value per channel
    ("bn", (1, 3, 1, 1), {}, {}),
    ("brn", (1, 3), {}, {}),
    ("bn", (1, 3), {"mode": "eval", "options": {"track_running_stats": False}}, {}),
    ("in", (2, 3, 1), {}, {}),                                   # spatial size 1
    ("in", (2, 3, 1, 1), {"options": {"track_running_stats": True}}, {}),
    ("ln", (2, 1), {}, {}),
    ("ln", (3, 1, 1, 1), {}, {}),
    ("in", (2, 3), {}, {}),                                      # rank 2
    ("frn", (2, 3), {}, {}),
    ("bn", (2, 3, 2, 2, 2, 2), {}, {}),                          # rank 6
    ("ln", (6,), {}, {}),                                        # rank 1
    ("bn", (0, 3, 4), {}, {}),                                   # empty batch
    ("gn", (0, 4), {"options": {"num_groups": 2}}, {}),
    ("frn", (0, 3, 2), {}, {}),
    ("bn", (2, 3), {"mode": "test"}, {}),
    ("brn", (4, 3), {"options": {"track_running_stats": False}}, {}),
    ("bn", (4, 3), {"options": {"momentum": 1.5}}, {}),
    ("bn", (4, 3), {"options": {"eps": -1}}, {}),
    ("bn", (4, 3), {"options": {"eps": float("nan")}}, {}),
    ("bn", (4, 3), {"options": {"affine": "maybe"}}, {}),
    ("brn", (4, 3), {"options": {"r_max": 0.5}}, {}),
    ("brn", (4, 3), {"options": {"d_max": -1}}, {}),
    ("bn", (4, 3), {"params": {"gamma": np.ones(3)}}, {}),
    ("bn", (4, 3), {"params": {"weight": np.ones(4)}}, {}),
    ("bn", (4, 3), {"params": {"weight": np.ones((3, 2))}}, {}),
    ("bn", (4, 3), {"params": {"weight": np.ones(3)}, "options": {"affine": False}}, {}),
    ("in", (4, 3, 2), {"params": {"weight": np.ones(3)}}, {}),    # IN affine off by default
    ("ln", (4, 3, 2), {"params": {"weight": np.ones(3)}}, {}),    # LN needs (3, 2)
    ("frn", (4, 3, 2), {"params": {"eps": np.ones(1)}}, {}),      # not learnable
    ("frn", (4, 3, 2), {"params": {"tau": np.ones(3)}, "options": {"tlu": False}}, {}),
    ("frn", (4, 3, 2), {"params": {"eps": np.ones(2)}, "options": {"learnable_eps": True}}, {}),
    ("bn", (4, 3), {"buffers": {"running_mean": np.ones(4)}}, {}),
    ("bn", (4, 3), {"buffers": {"running_std": np.ones(3)}}, {}),
    ("bn", (4, 3), {"buffers": {"num_batches_tracked": -1}}, {}),
    ("bn", (4, 3), {"buffers": {"num_batches_tracked": 1.5}}, {}),
    ("bn", (4, 3), {"buffers": {"running_mean": np.ones(3)},
                    "options": {"track_running_stats": False}}, {}),
    ("in", (4, 3, 2), {"buffers": {"running_mean": np.ones(3)}}, {}),  # IN does not track
    ("gn", (4, 4, 2), {"buffers": {"running_mean": np.ones(4)},
                       "options": {"num_groups": 2}}, {}),
    ("bn", (4, 3), {"grad_output": np.ones((4, 2))}, {}),
    ("bn", (4, 3), {"grad_output": np.ones((4, 3), dtype=np.int64)}, {}),
    ("bn", (4, 3), {}, {"int": True}),                            # integer input
]


@pytest.mark.parametrize("method,shape,kw,flags", ERROR_CASES)
def test_errors(method, shape, kw, flags):
    x = np.arange(int(np.prod(shape))).reshape(shape) % 5
    if not flags.get("int"):
        x = x * 0.3
    with pytest.raises(ValueError):
        normref.run(method, x, **kw)


def test_error_messages_name_the_method():
    with pytest.raises(ValueError, match="batch_norm.*single value"):
        normref.run("BN", np.ones((1, 3)))
    with pytest.raises(ValueError, match="group_norm.*not divisible"):
        normref.run("gn", np.ones((2, 4, 3)), options={"num_groups": 3})
    with pytest.raises(ValueError, match="group_norm.*num_groups is required"):
        normref.run("gn", np.ones((2, 4, 3)))
    with pytest.raises(ValueError, match="batch_renorm"):
        normref.run("brn", np.ones((2, 3)), mode="eval", params={"w": np.ones(3)})


def test_allowed_edge_cases():
    # BN eval with running stats on a single sample is fine (no reduction)
    y = normref.run("bn", np.array([[1.0, 2.0, 3.0]]), mode="eval")["output"]
    assert_close(y, np.array([[1.0, 2.0, 3.0]]) / np.sqrt(1 + 1e-5))
    # IN eval with tracked stats on 1x1 maps is fine
    normref.run("in", np.ones((2, 3, 1, 1)), mode="eval",
                options={"track_running_stats": True})
    # FRN on 1x1 maps (its designed case) works and has correct gradients
    r = rng(40)
    x, gy = r.randn(3, 2, 1, 1), r.randn(3, 2, 1, 1)
    y = normref.run("frn", x, options={"tlu": False})["output"]
    assert_close(y, x / np.sqrt(x ** 2 + 1e-6))
    # string option values as a CLI would pass them
    a = normref.run("bn", x, options={"momentum": "none", "affine": "false",
                                      "eps": "1e-3", "track_running_stats": "true"})
    b = normref.run("bn", x, options={"momentum": None, "affine": False, "eps": 1e-3})
    for k in a:
        assert_close(a[k], b[k], rtol=0, atol=0)
    # NaN propagates
    xn = r.randn(3, 2, 2)
    xn[0, 0, 0] = np.nan
    out = normref.run("bn", xn)["output"]
    assert np.all(np.isnan(out[:, 0])) and np.all(np.isfinite(out[:, 1]))
