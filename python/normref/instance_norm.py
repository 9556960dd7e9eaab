"""Instance normalization (Ulyanov, Vedaldi & Lempitsky 2016), PyTorch conventions, float64.

Per (sample, channel), mean and biased variance over the spatial axes;
y = weight[c] * (x - mu) / sqrt(var + eps) + bias[c]. Defaults affine=false,
track_running_stats=false.

With track_running_stats=true (as PyTorch's InstanceNorm):
- train normalises with the instance statistics and updates
  running = (1 - m) * running + m * mean_over_n(instance stat), where the variance
  statistic is the per-instance UNBIASED variance (S / (S - 1));
- eval normalises with the running statistics, per channel.
Without tracking, eval uses instance statistics too.

momentum=None means a cumulative average over num_batches_tracked, as for BN (the
project-wide convention; PyTorch's own InstanceNorm instead skips the update).
"""

import numpy as np

from . import common

NAME = "instance_norm"
ALIASES = ("in",)
SUMMARY = "Instance normalization: per-sample, per-channel statistics over spatial axes"
ORDER = 50
MIN_RANK = 3

OPTIONS = {
    "eps": (common.parse_eps, 1e-5),
    "momentum": (common.parse_momentum, 0.1),
    **common.RUNNING_OPTIONS,
    "affine": (common.parse_bool, False),
    "track_running_stats": (common.parse_bool, False),
}


def param_specs(channels, opts):
    if not opts["affine"]:
        return {}
    return {"weight": ((channels,), 1.0), "bias": ((channels,), 0.0)}


def check_reduction(x, use_instance_stats):
    if use_instance_stats and common.spatial_size(x.shape) == 1:
        raise ValueError("%s: instance statistics over a single value (input shape %s); "
                         "need spatial size > 1" % (NAME, x.shape))


def forward(x, weight, bias, eps, use_instance_stats, running_mean=None, running_var=None):
    N, C = x.shape[:2]
    v = x.reshape(N, C, -1)
    if use_instance_stats:
        xhat, mean, var, inv = common.standardize(v, (2,), eps)
        stats = (mean.reshape(N, C), var.reshape(N, C))
    else:
        inv = (1.0 / np.sqrt(running_var + eps))[None, :, None]
        xhat = (v - running_mean[None, :, None]) * inv
        stats = None
    xhat = xhat.reshape(x.shape)
    y = xhat * common.bc(weight, x.ndim) + common.bc(bias, x.ndim)
    cache = {"xhat": xhat, "inv": inv, "weight": weight, "instance": use_instance_stats,
             "stats": stats}
    return y, cache


def backward(grad_output, cache):
    """(grad_input, grad_weight, grad_bias)."""
    gy = grad_output
    xhat = cache["xhat"]
    axes = common.channel_axes(gy.ndim)
    grad_weight = (gy * xhat).sum(axis=axes)
    grad_bias = gy.sum(axis=axes)
    g3 = (gy * common.bc(cache["weight"], gy.ndim)).reshape(gy.shape[0], gy.shape[1], -1)
    if cache["instance"]:
        gx = common.standardize_backward(g3, xhat.reshape(g3.shape), cache["inv"], (2,))
    else:
        gx = g3 * cache["inv"]
    return gx.reshape(gy.shape), grad_weight, grad_bias


def update_running_stats(running_mean, running_var, num_batches_tracked, inst_mean,
                         inst_var_biased, spatial, momentum):
    """inst_mean, inst_var_biased: (N, C). Batch-mean over n of the per-instance mean
    and per-instance unbiased variance."""
    m, unbiased, skip = common.running_policy(momentum)
    mean, var = inst_mean.mean(axis=0), inst_var_biased.mean(axis=0)
    if skip and not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var))):
        return running_mean, running_var, int(num_batches_tracked)
    if unbiased:
        var = var * (spatial / (spatial - 1.0))
    return common.update_running(running_mean, running_var, num_batches_tracked, mean, var, m)


def apply(x, mode, grad_output, params, buffers, opts):
    C = x.shape[1]
    p = common.collect(NAME, "parameter", params, param_specs(C, opts),
                       "" if opts["affine"] else " (affine is false)")
    track = opts["track_running_stats"]
    buf = common.running_buffers(NAME, buffers, C, track)
    use_inst = mode == "train" or not track
    check_reduction(x, use_inst)
    w = p.get("weight", np.ones(C))
    b = p.get("bias", np.zeros(C))
    y, cache = forward(x, w, b, opts["eps"], use_inst,
                       buf and buf["running_mean"], buf and buf["running_var"])
    out = {"output": y}
    if grad_output is not None:
        gx, gw, gb = backward(grad_output, cache)
        out["grad_input"] = gx
        if opts["affine"]:
            out["grad_weight"] = gw
            out["grad_bias"] = gb
    if mode == "train" and track:
        mean, var = cache["stats"]
        rm, rv, nbt = update_running_stats(buf["running_mean"], buf["running_var"],
                                           buf["num_batches_tracked"], mean, var,
                                           common.spatial_size(x.shape), opts)
        out["running_mean"] = rm
        out["running_var"] = rv
        out["num_batches_tracked"] = nbt
    return out
