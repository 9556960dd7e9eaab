"""Filter response normalization + thresholded linear unit (Singh & Krishnan 2019), float64.

Per (sample, channel), over the spatial axes (no mean subtraction):
    nu2   = mean(x^2)
    x_hat = x / sqrt(nu2 + |eps|)
    z     = weight[c] * x_hat + bias[c]
    y     = max(z, tau[c])   (tlu=true, default)  |  z   (tlu=false)
Defaults eps=1e-6, affine=true, tlu=true, learnable_eps=false. With learnable_eps the
eps parameter (shape (1,), initial value the eps option) receives a gradient through
|eps| (d|eps|/deps = sign(eps), 0 at eps == 0). Identical in train and eval; no buffers.

Gradient of max(z, tau): goes to z where z > tau and to tau where z < tau; on an exact
tie z == tau the whole gradient goes to z (tau gets none). A single spatial value
(1x1 maps) is allowed: it is the method's designed case.
"""

import numpy as np

from . import common

NAME = "filter_response_norm"
ALIASES = ("frn",)
SUMMARY = "Filter response normalization with a thresholded linear unit (FRN + TLU)"
ORDER = 60
MIN_RANK = 3

OPTIONS = {
    "eps": (common.parse_eps, 1e-6),
    "affine": (common.parse_bool, True),
    "tlu": (common.parse_bool, True),
    "learnable_eps": (common.parse_bool, False),
}


def param_specs(channels, opts):
    specs = {}
    if opts["affine"]:
        specs["weight"] = ((channels,), 1.0)
        specs["bias"] = ((channels,), 0.0)
    if opts["tlu"]:
        specs["tau"] = ((channels,), 0.0)
    if opts["learnable_eps"]:
        specs["eps"] = ((1,), opts["eps"])
    return specs


def forward(x, weight, bias, tau, eps, tlu):
    """``eps`` is the (possibly learnable, possibly negative) eps value; |eps| is used.
    ``tau`` is ignored when ``tlu`` is false."""
    N, C = x.shape[:2]
    v = x.reshape(N, C, -1)
    nu2 = (v * v).mean(axis=2, keepdims=True)
    s = nu2 + abs(eps)
    inv = 1.0 / np.sqrt(s)
    xhat = (v * inv).reshape(x.shape)
    z = xhat * common.bc(weight, x.ndim) + common.bc(bias, x.ndim)
    if tlu:
        t = common.bc(tau, x.ndim)
        y = np.maximum(z, t)
        to_z = ~(z < t)  # ties (and NaN) go to z
    else:
        y = z
        to_z = None
    cache = {"xhat": xhat, "inv": inv, "s": s, "weight": weight, "eps": eps, "to_z": to_z}
    return y, cache


def backward(grad_output, cache):
    """Returns dict with grad_input, grad_weight, grad_bias, grad_tau (None without
    tlu), grad_eps (shape (1,))."""
    gy = grad_output
    axes = common.channel_axes(gy.ndim)
    to_z = cache["to_z"]
    if to_z is None:
        gz, grad_tau = gy, None
    else:
        gz = np.where(to_z, gy, 0.0)
        grad_tau = np.where(to_z, 0.0, gy).sum(axis=axes)
    xhat = cache["xhat"]
    grad_weight = (gz * xhat).sum(axis=axes)
    grad_bias = gz.sum(axis=axes)
    N, C = gy.shape[:2]
    gxhat = (gz * common.bc(cache["weight"], gy.ndim)).reshape(N, C, -1)
    xh = xhat.reshape(N, C, -1)
    inv, s = cache["inv"], cache["s"]
    # x_hat_i = x_i * s^-1/2, s = mean(x^2) + |eps|  =>
    # dL/dx_j = inv * (g_j - x_hat_j * mean_i(g_i * x_hat_i))
    gx = inv * (gxhat - xh * (gxhat * xh).mean(axis=2, keepdims=True))
    # d x_hat_i / d|eps| = -x_hat_i / (2 s)
    g_abs = (gxhat * xh * (-0.5 / s)).sum()
    grad_eps = np.array([g_abs * np.sign(cache["eps"])], dtype=np.float64)
    return {"grad_input": gx.reshape(gy.shape), "grad_weight": grad_weight,
            "grad_bias": grad_bias, "grad_tau": grad_tau, "grad_eps": grad_eps}


def apply(x, mode, grad_output, params, buffers, opts):
    C = x.shape[1]
    common.no_buffers(NAME, buffers)
    hint = ""
    if params and "eps" in params and not opts["learnable_eps"]:
        hint = " (eps is a parameter only with learnable_eps=true; otherwise set the eps option)"
    p = common.collect(NAME, "parameter", params, param_specs(C, opts), hint)
    w = p.get("weight", np.ones(C))
    b = p.get("bias", np.zeros(C))
    tau = p.get("tau", np.zeros(C))
    eps = float(p["eps"][0]) if opts["learnable_eps"] else opts["eps"]
    y, cache = forward(x, w, b, tau, eps, opts["tlu"])
    out = {"output": y}
    if grad_output is not None:
        g = backward(grad_output, cache)
        out["grad_input"] = g["grad_input"]
        if opts["affine"]:
            out["grad_weight"] = g["grad_weight"]
            out["grad_bias"] = g["grad_bias"]
        if opts["tlu"]:
            out["grad_tau"] = g["grad_tau"]
        if opts["learnable_eps"]:
            out["grad_eps"] = g["grad_eps"]
    return out
