"""Batch renormalization (Ioffe 2017, Algorithm 1), float64.

train:  mu_B, var_B       batch mean / biased variance per channel
        sigma_B = sqrt(var_B + eps)
        sigma   = sqrt(running_var + eps)          (running stats before this step)
        r = clip(sigma_B / sigma, 1/r_max, r_max)
        d = clip((mu_B - running_mean) / sigma, -d_max, d_max)
        x_hat = (x - mu_B) / sigma_B * r + d       r, d: constants for the gradient
        y = weight * x_hat + bias
        running stats updated as batch_norm (unbiased variance, PyTorch momentum)
eval:   batch_norm eval (running statistics).

r_max = 1, d_max = 0 is exactly batch_norm. Requires track_running_stats = true.
"""

import numpy as np

from . import batch_norm, common

NAME = "batch_renorm"
ALIASES = ("brn",)
SUMMARY = "Batch renormalization: BN corrected towards the running statistics by r and d"
ORDER = 20
MIN_RANK = 2

OPTIONS = {k: v for k, v in batch_norm.OPTIONS.items() if k not in batch_norm.BN_ONLY_OPTIONS}
OPTIONS.update({
    "r_max": (common.parse_r_max, 3.0),
    "d_max": (common.parse_d_max, 5.0),
})

param_specs = batch_norm.param_specs


def correction(batch_mean, batch_var, running_mean, running_var, eps, r_max, d_max):
    """The per-channel r and d of Algorithm 1 (shape (C,))."""
    sigma_b = np.sqrt(batch_var + eps)
    sigma = np.sqrt(running_var + eps)
    r = np.clip(sigma_b / sigma, 1.0 / r_max, r_max)
    d = np.clip((batch_mean - running_mean) / sigma, -d_max, d_max)
    return r, d


def forward_train(x, weight, bias, running_mean, running_var, eps, r_max, d_max):
    """Returns (y, cache); cache["r"], cache["d"] are the corrections used."""
    v = x.reshape(x.shape[0], x.shape[1], -1)
    xn, mean, var, inv = common.standardize(v, (0, 2), eps)
    mean, var = mean.reshape(-1), var.reshape(-1)
    r, d = correction(mean, var, running_mean, running_var, eps, r_max, d_max)
    xhat = (xn * r[None, :, None] + d[None, :, None]).reshape(x.shape)
    y = xhat * common.bc(weight, x.ndim) + common.bc(bias, x.ndim)
    cache = {"xn": xn, "xhat": xhat, "inv": inv, "weight": weight, "r": r, "d": d,
             "stats": (mean, var)}
    return y, cache


def backward_train(grad_output, cache):
    """(grad_input, grad_weight, grad_bias) with r and d held constant."""
    gy = grad_output
    axes = common.channel_axes(gy.ndim)
    grad_weight = (gy * cache["xhat"]).sum(axis=axes)
    grad_bias = gy.sum(axis=axes)
    # d x_hat / d xn = r (constant); then the ordinary BN backward through mu_B, sigma_B
    gxn = (gy * common.bc(cache["weight"] * cache["r"], gy.ndim))
    gxn = gxn.reshape(cache["xn"].shape)
    gx = common.standardize_backward(gxn, cache["xn"], cache["inv"], (0, 2))
    return gx.reshape(gy.shape), grad_weight, grad_bias


def apply(x, mode, grad_output, params, buffers, opts):
    if not opts["track_running_stats"]:
        raise ValueError("%s: requires track_running_stats=true (r and d are defined "
                         "against the running statistics)" % NAME)
    if mode == "eval":
        bn_opts = {k: opts[k] for k in OPTIONS if k in batch_norm.OPTIONS}
        return batch_norm.apply(x, mode, grad_output, params, buffers, bn_opts, name=NAME)
    C = x.shape[1]
    p = common.collect(NAME, "parameter", params, param_specs(C, opts),
                       "" if opts["affine"] else " (affine is false)")
    buf = common.running_buffers(NAME, buffers, C, True)
    batch_norm.check_reduction(NAME, x, True)
    w = p.get("weight", np.ones(C))
    b = p.get("bias", np.zeros(C))
    y, cache = forward_train(x, w, b, buf["running_mean"], buf["running_var"],
                             opts["eps"], opts["r_max"], opts["d_max"])
    out = {"output": y}
    if grad_output is not None:
        gx, gw, gb = backward_train(grad_output, cache)
        out["grad_input"] = gx
        if opts["affine"]:
            out["grad_weight"] = gw
            out["grad_bias"] = gb
    mean, var = cache["stats"]
    rm, rv, nbt = batch_norm.update_running_stats(
        buf["running_mean"], buf["running_var"], buf["num_batches_tracked"], mean, var,
        x.size // C, opts)
    out["running_mean"] = rm
    out["running_var"] = rv
    out["num_batches_tracked"] = nbt
    out["r"] = cache["r"]
    out["d"] = cache["d"]
    return out
