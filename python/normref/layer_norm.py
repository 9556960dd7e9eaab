"""Layer normalization (Ba, Kiros & Hinton 2016), float64.

Per sample, mean and biased variance over every non-batch axis (C and spatial);
y = weight * (x - mu) / sqrt(var + eps) + bias with an ELEMENTWISE affine of shape
x.shape[1:] (PyTorch nn.LayerNorm(x.shape[1:])). Identical in train and eval.
"""

import numpy as np

from . import common

NAME = "layer_norm"
ALIASES = ("ln",)
SUMMARY = "Layer normalization: per-sample statistics over all non-batch axes"
ORDER = 40
MIN_RANK = 2

OPTIONS = {
    "eps": (common.parse_eps, 1e-5),
    "affine": (common.parse_bool, True),
}


def param_specs(shape, opts):
    """``shape`` is x.shape[1:]."""
    if not opts["affine"]:
        return {}
    return {"weight": (tuple(shape), 1.0), "bias": (tuple(shape), 0.0)}


def check(x):
    if x.size // x.shape[0] == 1:
        raise ValueError("%s: statistics over a single value per sample (input shape %s); "
                         "need C * spatial > 1" % (NAME, x.shape))


def forward(x, weight, bias, eps):
    N = x.shape[0]
    v = x.reshape(N, -1)
    xhat, mean, var, inv = common.standardize(v, (1,), eps)
    xhat = xhat.reshape(x.shape)
    y = xhat * weight[None] + bias[None]
    cache = {"xhat": xhat, "inv": inv, "weight": weight,
             "mean": mean.reshape(N), "var": var.reshape(N)}
    return y, cache


def backward(grad_output, cache):
    """(grad_input, grad_weight, grad_bias); weight gradients have shape x.shape[1:]."""
    gy = grad_output
    xhat = cache["xhat"]
    grad_weight = (gy * xhat).sum(axis=0)
    grad_bias = gy.sum(axis=0)
    N = gy.shape[0]
    gxhat = (gy * cache["weight"][None]).reshape(N, -1)
    gx = common.standardize_backward(gxhat, xhat.reshape(N, -1), cache["inv"], (1,))
    return gx.reshape(gy.shape), grad_weight, grad_bias


def apply(x, mode, grad_output, params, buffers, opts):
    common.no_buffers(NAME, buffers)
    check(x)
    shape = x.shape[1:]
    p = common.collect(NAME, "parameter", params, param_specs(shape, opts),
                       "" if opts["affine"] else " (affine is false)")
    w = p.get("weight", np.ones(shape))
    b = p.get("bias", np.zeros(shape))
    y, cache = forward(x, w, b, opts["eps"])
    out = {"output": y}
    if grad_output is not None:
        gx, gw, gb = backward(grad_output, cache)
        out["grad_input"] = gx
        if opts["affine"]:
            out["grad_weight"] = gw
            out["grad_bias"] = gb
    return out
