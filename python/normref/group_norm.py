"""Group normalization (Wu & He 2018), float64.

Channels are split into num_groups groups of C / num_groups consecutive channels;
per (sample, group): mean and biased variance over (channels in the group, spatial);
y = weight[c] * (x - mu) / sqrt(var + eps) + bias[c] (per-channel affine, shape (C,)).
Identical in train and eval; no buffers.
"""

import numpy as np

from . import common

NAME = "group_norm"
ALIASES = ("gn",)
SUMMARY = "Group normalization: per-sample statistics over groups of channels"
ORDER = 30
MIN_RANK = 2

OPTIONS = {
    "num_groups": (common.parse_positive_int, common.REQUIRED),
    "eps": (common.parse_eps, 1e-5),
    "affine": (common.parse_bool, True),
}


def param_specs(channels, opts):
    if not opts["affine"]:
        return {}
    return {"weight": ((channels,), 1.0), "bias": ((channels,), 0.0)}


def check(x, num_groups):
    C = x.shape[1]
    if C % num_groups != 0:
        raise ValueError("%s: channels C=%d not divisible by num_groups=%d"
                         % (NAME, C, num_groups))
    if (C // num_groups) * common.spatial_size(x.shape) == 1:
        raise ValueError("%s: statistics over a single value per group (input shape %s, "
                         "num_groups=%d); need (C / num_groups) * spatial > 1"
                         % (NAME, x.shape, num_groups))


def forward(x, weight, bias, num_groups, eps):
    N = x.shape[0]
    v = x.reshape(N, num_groups, -1)
    xhat, mean, var, inv = common.standardize(v, (2,), eps)
    xhat = xhat.reshape(x.shape)
    y = xhat * common.bc(weight, x.ndim) + common.bc(bias, x.ndim)
    cache = {"xhat": xhat, "inv": inv, "weight": weight, "num_groups": num_groups,
             "mean": mean.reshape(N, num_groups), "var": var.reshape(N, num_groups)}
    return y, cache


def backward(grad_output, cache):
    """(grad_input, grad_weight, grad_bias)."""
    gy = grad_output
    xhat, G = cache["xhat"], cache["num_groups"]
    axes = common.channel_axes(gy.ndim)
    grad_weight = (gy * xhat).sum(axis=axes)
    grad_bias = gy.sum(axis=axes)
    gxhat = (gy * common.bc(cache["weight"], gy.ndim)).reshape(gy.shape[0], G, -1)
    gx = common.standardize_backward(gxhat, xhat.reshape(gxhat.shape), cache["inv"], (2,))
    return gx.reshape(gy.shape), grad_weight, grad_bias


def apply(x, mode, grad_output, params, buffers, opts):
    C = x.shape[1]
    common.no_buffers(NAME, buffers)
    check(x, opts["num_groups"])
    p = common.collect(NAME, "parameter", params, param_specs(C, opts),
                       "" if opts["affine"] else " (affine is false)")
    w = p.get("weight", np.ones(C))
    b = p.get("bias", np.zeros(C))
    y, cache = forward(x, w, b, opts["num_groups"], opts["eps"])
    out = {"output": y}
    if grad_output is not None:
        gx, gw, gb = backward(grad_output, cache)
        out["grad_input"] = gx
        if opts["affine"]:
            out["grad_weight"] = gw
            out["grad_bias"] = gb
    return out
