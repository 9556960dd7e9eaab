"""Batch normalization (Ioffe & Szegedy 2015), PyTorch conventions, float64.

train:  mu, var = mean / biased variance over every axis but 1 (per channel)
        y = weight * (x - mu) / sqrt(var + eps) + bias
        running = (1 - m) * running + m * batch, with the UNBIASED batch variance
eval:   y = weight * (x - running_mean) / sqrt(running_var + eps) + bias
        (batch statistics again when track_running_stats is false)

train_statistics=running (default batch; Ioffe 2017, section 2 ablation):
        train normalizes like eval, with the running statistics before this step's update,
        constants for the gradient (dx = dy * weight / sqrt(running_var + eps)); the batch
        statistics are still computed and update the running statistics as above.
        Requires track_running_stats = true.
"""

import numpy as np

from . import common

NAME = "batch_norm"
ALIASES = ("bn",)
SUMMARY = "Batch normalization: per-channel statistics over the batch and spatial axes"
ORDER = 10
MIN_RANK = 2

OPTIONS = {
    "eps": (common.parse_eps, 1e-5),
    "momentum": (common.parse_momentum, 0.1),
    "affine": (common.parse_bool, True),
    "track_running_stats": (common.parse_bool, True),
    **common.RUNNING_OPTIONS,
    "train_statistics": (common.parse_train_statistics, "batch"),
}

#: options batch_renorm does not share (it copies OPTIONS without these)
BN_ONLY_OPTIONS = ("train_statistics",)


def param_specs(channels, opts):
    if not opts["affine"]:
        return {}
    return {"weight": ((channels,), 1.0), "bias": ((channels,), 0.0)}


def _view(x):
    """(N, C, S) view and its per-channel reduction axes."""
    return x.reshape(x.shape[0], x.shape[1], -1), (0, 2)


def batch_stats(x):
    """Per-channel mean, biased variance and element count n = N * spatial."""
    v, axes = _view(x)
    mean = v.mean(axis=axes)
    var = ((v - mean[None, :, None]) ** 2).mean(axis=axes)
    return mean, var, v.shape[0] * v.shape[2]


def forward(x, weight, bias, eps, use_batch_stats, running_mean=None, running_var=None):
    """Returns (y, cache). ``use_batch_stats`` selects train-style normalisation."""
    v, axes = _view(x)
    if use_batch_stats:
        xhat, mean, var, inv = common.standardize(v, axes, eps)
        stats = (mean.reshape(-1), var.reshape(-1))
    else:
        inv = (1.0 / np.sqrt(running_var + eps))[None, :, None]
        xhat = (v - running_mean[None, :, None]) * inv
        stats = None
    xhat = xhat.reshape(x.shape)
    y = xhat * common.bc(weight, x.ndim) + common.bc(bias, x.ndim)
    cache = {"xhat": xhat, "inv": inv, "weight": weight, "batch": use_batch_stats,
             "stats": stats}
    return y, cache


def backward(grad_output, cache):
    """Analytic gradients: returns (grad_input, grad_weight, grad_bias)."""
    xhat, w = cache["xhat"], cache["weight"]
    gy = grad_output
    axes = common.channel_axes(gy.ndim)
    grad_weight = (gy * xhat).sum(axis=axes)
    grad_bias = gy.sum(axis=axes)
    gxhat = gy * common.bc(w, gy.ndim)
    g3 = gxhat.reshape(gy.shape[0], gy.shape[1], -1)
    if cache["batch"]:
        x3 = xhat.reshape(g3.shape)
        gx = common.standardize_backward(g3, x3, cache["inv"], (0, 2))
    else:
        gx = g3 * cache["inv"]  # running statistics are constants
    return gx.reshape(gy.shape), grad_weight, grad_bias


def update_running_stats(running_mean, running_var, num_batches_tracked, batch_mean,
                         batch_var_biased, n, momentum):
    """PyTorch update with the unbiased variance var * n / (n - 1) (or the biased one with
    running_var=biased); ``momentum`` is a momentum value or the parsed options dict."""
    m, unbiased, skip = common.running_policy(momentum)
    if skip and not (np.all(np.isfinite(batch_mean)) and np.all(np.isfinite(batch_var_biased))):
        return running_mean, running_var, int(num_batches_tracked)
    var = batch_var_biased * (n / (n - 1.0)) if unbiased else batch_var_biased
    return common.update_running(running_mean, running_var, num_batches_tracked,
                                 batch_mean, var, m)


def check_reduction(method, x, use_batch_stats):
    n = x.size // x.shape[1]
    if use_batch_stats and n == 1:
        raise ValueError("%s: batch statistics over a single value per channel (input shape "
                         "%s); need N * spatial > 1" % (method, x.shape))


def apply(x, mode, grad_output, params, buffers, opts, name=NAME):
    """``name`` is the method named in error messages (batch_renorm reuses BN eval)."""
    C = x.shape[1]
    p = common.collect(name, "parameter", params, param_specs(C, opts),
                       "" if opts["affine"] else " (affine is false)")
    track = opts["track_running_stats"]
    train_running = opts.get("train_statistics", "batch") == "running"
    if train_running and not track:
        raise ValueError("%s: train_statistics=running normalizes with the running statistics, "
                         "which track_running_stats=false does not keep" % name)
    buf = common.running_buffers(name, buffers, C, track)
    use_batch = mode == "train" or not track
    check_reduction(name, x, use_batch)
    w = p.get("weight", np.ones(C))
    b = p.get("bias", np.zeros(C))
    # train_statistics=running: normalize (and differentiate) exactly as eval does, with the
    # running statistics before this step's update; the batch statistics only update them.
    normalize_with_batch = use_batch and not (mode == "train" and train_running)
    y, cache = forward(x, w, b, opts["eps"], normalize_with_batch,
                       buf and buf["running_mean"], buf and buf["running_var"])
    out = {"output": y}
    if grad_output is not None:
        gx, gw, gb = backward(grad_output, cache)
        out["grad_input"] = gx
        if opts["affine"]:
            out["grad_weight"] = gw
            out["grad_bias"] = gb
    if mode == "train" and track:
        if normalize_with_batch:
            mean, var = cache["stats"]
        else:
            mean, var, _ = batch_stats(x)
        n = x.size // C
        rm, rv, nbt = update_running_stats(buf["running_mean"], buf["running_var"],
                                           buf["num_batches_tracked"], mean, var, n,
                                           opts)
        out["running_mean"] = rm
        out["running_var"] = rv
        out["num_batches_tracked"] = nbt
    return out
