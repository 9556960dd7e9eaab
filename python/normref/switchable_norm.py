"""Switchable Normalization (Luo, Ren, Peng, Zhang & Li 2019, arXiv:1806.10779), float64.

Follows the reference implementation's SwitchNorm2d (switchablenorms/Switchable-Normalization,
devkit/ops/switchable_norm.py), moving-average variant, for any rank 3..5:
- IN statistics per (n, c) over spatial: mean_in and the UNBIASED var_in (torch.var default);
- temp = var_in + mean_in^2; LN per n: mean_ln = mean_c(mean_in), var_ln = mean_c(temp) - mean_ln^2;
- BN per c (train): mean_bn = mean_n(mean_in), var_bn = mean_n(temp) - mean_bn^2;
  eval: running_mean, running_var (both start at ZEROS, as the repository);
- mean = softmax(mean_weight) . (in, ln, bn), var = softmax(var_weight) . (in, ln, bn);
  y = (x - mean) / sqrt(var + eps) * weight + bias; mean_weight, var_weight init ones;
- running = (1 - m) * running + m * batch with var_bn stored as computed (no n/(n-1));
  the repository's Keras decay 0.9 is momentum m = 0.1 here; keras_decay=d gives m = 1 - d;
  momentum=None is a cumulative average over num_batches_tracked (normlab extension).

The backward is written with the statistics as explicit functions of x (a vector-Jacobian
product per statistic); it shares nothing with the Swift plugin.
"""

import numpy as np

from . import common

NAME = "switchable_norm"
ALIASES = ("sn", "switchnorm")
SUMMARY = "Switchable Normalization: softmax-weighted IN/LN/BN means and variances"
MIN_RANK = 3
ORDER = 120

OPTIONS = {
    "eps": (common.parse_eps, 1e-5),
    "momentum": (common.parse_momentum, 0.1),
    "keras_decay": (common.parse_momentum, None),
}


def param_specs(channels, opts):
    return {"weight": ((channels,), 1.0), "bias": ((channels,), 0.0),
            "mean_weight": ((3,), 1.0), "var_weight": ((3,), 1.0)}


def _buffers(buffers, channels):
    given = dict(buffers or {})
    count = common.parse_count(NAME, given.pop("num_batches_tracked", None))
    out = common.collect(NAME, "buffer", given, {"running_mean": ((channels,), 0.0),
                                                 "running_var": ((channels,), 0.0)})
    out["num_batches_tracked"] = count
    return out


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def apply(x, mode, grad_output, params, buffers, opts):
    N, C = x.shape[0], x.shape[1]
    S = common.spatial_size(x.shape)
    if S == 1:
        raise ValueError("%s: unbiased instance variance over a single value (input shape %s)" % (NAME, x.shape))
    p = common.collect(NAME, "parameter", params, param_specs(C, opts))
    buf = _buffers(buffers, C)
    v = x.reshape(N, C, S)
    mean_in = v.mean(axis=2)                                   # (N, C)
    var_in = ((v - mean_in[:, :, None]) ** 2).sum(axis=2) / (S - 1)
    temp = var_in + mean_in ** 2
    mean_ln = mean_in.mean(axis=1, keepdims=True)              # (N, 1)
    var_ln = temp.mean(axis=1, keepdims=True) - mean_ln ** 2
    train = mode == "train"
    if train:
        mean_bn = mean_in.mean(axis=0, keepdims=True)          # (1, C)
        var_bn = temp.mean(axis=0, keepdims=True) - mean_bn ** 2
    else:
        mean_bn = buf["running_mean"][None, :]
        var_bn = buf["running_var"][None, :]
    a = _softmax(p["mean_weight"])
    b = _softmax(p["var_weight"])
    mean = a[0] * mean_in + a[1] * mean_ln + a[2] * mean_bn    # (N, C)
    var = b[0] * var_in + b[1] * var_ln + b[2] * var_bn
    inv = 1.0 / np.sqrt(var + opts["eps"])
    xhat = (v - mean[:, :, None]) * inv[:, :, None]
    w, bias = p["weight"], p["bias"]
    out = {"output": (xhat * w[None, :, None] + bias[None, :, None]).reshape(x.shape)}
    if train:
        decay = opts["keras_decay"]
        m = (1.0 - decay) if decay is not None else opts["momentum"]
        nbt = buf["num_batches_tracked"] + 1
        m = common.momentum_factor(m, nbt)
        out["running_mean"] = (1 - m) * buf["running_mean"] + m * mean_bn[0]
        out["running_var"] = (1 - m) * buf["running_var"] + m * var_bn[0]
        out["num_batches_tracked"] = nbt
    if grad_output is not None:
        g = grad_output.reshape(N, C, S)
        out["grad_weight"] = (g * xhat).sum(axis=(0, 2))
        out["grad_bias"] = g.sum(axis=(0, 2))
        gxhat = g * w[None, :, None]
        g_mean = -(gxhat * inv[:, :, None]).sum(axis=2)                       # dL/dmean (N, C)
        g_var = (gxhat * xhat).sum(axis=2) * (-0.5) * inv ** 2                # dL/dvar (N, C)
        # softmax weights: dL/da_k = sum g_mean * stat_k; logits through the softmax Jacobian.
        ga = np.array([(g_mean * mean_in).sum(), (g_mean * mean_ln).sum(), (g_mean * mean_bn).sum()])
        gb = np.array([(g_var * var_in).sum(), (g_var * var_ln).sum(), (g_var * var_bn).sum()])
        out["grad_mean_weight"] = (np.diag(a) - np.outer(a, a)) @ ga
        out["grad_var_weight"] = (np.diag(b) - np.outer(b, b)) @ gb
        # each branch statistic's gradient
        g_mean_in = a[0] * g_mean
        g_var_in = b[0] * g_var
        g_mean_ln = a[1] * g_mean.sum(axis=1, keepdims=True)
        g_var_ln = b[1] * g_var.sum(axis=1, keepdims=True)
        # var_ln = mean_c(temp) - mean_ln^2
        g_temp = np.broadcast_to(g_var_ln / C, (N, C)).copy()
        g_mean_ln = g_mean_ln - 2 * mean_ln * g_var_ln
        g_mean_in = g_mean_in + g_mean_ln / C
        if train:
            g_mean_bn = a[2] * g_mean.sum(axis=0, keepdims=True)
            g_var_bn = b[2] * g_var.sum(axis=0, keepdims=True)
            g_temp = g_temp + g_var_bn / N
            g_mean_in = g_mean_in + (g_mean_bn - 2 * mean_bn * g_var_bn) / N
        # temp = var_in + mean_in^2
        g_var_in = g_var_in + g_temp
        g_mean_in = g_mean_in + 2 * mean_in * g_temp
        gx = (gxhat * inv[:, :, None] + g_mean_in[:, :, None] / S
              + g_var_in[:, :, None] * 2 * (v - mean_in[:, :, None]) / (S - 1))
        out["grad_input"] = gx.reshape(x.shape)
    return out


class Bench:
    """Straightforward float32 numpy Switchable Normalization for `normlab bench` (stateless:
    train mode does not write the running statistics, so eval reads the given buffers)."""

    def __init__(self, x, params, buffers, options):
        N, C = x.shape[0], x.shape[1]
        self.shape = x.shape
        self.v = x.astype(np.float32).reshape(N, C, -1)
        self.w = params.get("weight", np.ones(C, np.float32)).astype(np.float32).reshape(1, C, 1)
        self.b = params.get("bias", np.zeros(C, np.float32)).astype(np.float32).reshape(1, C, 1)
        self.a = _softmax(np.asarray(params.get("mean_weight", np.ones(3)), np.float64)).astype(np.float32)
        self.bw = _softmax(np.asarray(params.get("var_weight", np.ones(3)), np.float64)).astype(np.float32)
        self.rm = buffers.get("running_mean", np.zeros(C, np.float32)).astype(np.float32).reshape(1, C, 1)
        self.rv = buffers.get("running_var", np.zeros(C, np.float32)).astype(np.float32).reshape(1, C, 1)
        self.eps = np.float32(options.get("eps", 1e-5))

    def _run(self, train):
        v = self.v
        S = v.shape[2]
        mean_in = v.mean(axis=2, keepdims=True)
        var_in = ((v - mean_in) ** 2).sum(axis=2, keepdims=True) / np.float32(S - 1)
        temp = var_in + mean_in ** 2
        mean_ln = mean_in.mean(axis=1, keepdims=True)
        var_ln = temp.mean(axis=1, keepdims=True) - mean_ln ** 2
        if train:
            mean_bn = mean_in.mean(axis=0, keepdims=True)
            var_bn = temp.mean(axis=0, keepdims=True) - mean_bn ** 2
        else:
            mean_bn, var_bn = self.rm, self.rv
        a, b = self.a, self.bw
        mean = a[0] * mean_in + a[1] * mean_ln + a[2] * mean_bn
        var = b[0] * var_in + b[1] * var_ln + b[2] * var_bn
        inv = 1 / np.sqrt(var + self.eps)
        xhat = (v - mean) * inv
        self.saved = (train, mean_in, var_in, mean_ln, var_ln, mean_bn, var_bn, inv, xhat)
        return (xhat * self.w + self.b).reshape(self.shape)

    def train(self):
        return self._run(True)

    def eval(self):
        return self._run(False)

    def forward(self, mode):
        return self._run(mode == "train")

    def backward(self, gy):
        train, mean_in, var_in, mean_ln, var_ln, mean_bn, var_bn, inv, xhat = self.saved
        v = self.v
        N, C, S = v.shape
        g = gy.reshape(v.shape)
        a, b = self.a, self.bw
        grad_w = (g * xhat).sum(axis=(0, 2))
        grad_b = g.sum(axis=(0, 2))
        gxhat = g * self.w
        g_mean = -(gxhat * inv).sum(axis=2, keepdims=True)
        g_var = -0.5 * (gxhat * xhat).sum(axis=2, keepdims=True) * inv * inv
        ga = np.array([(g_mean * mean_in).sum(), (g_mean * mean_ln).sum(), (g_mean * mean_bn).sum()], np.float32)
        gb = np.array([(g_var * var_in).sum(), (g_var * var_ln).sum(), (g_var * var_bn).sum()], np.float32)
        grad_a = a * (ga - (a * ga).sum())
        grad_bw = b * (gb - (b * gb).sum())
        g_var_ln = b[1] * g_var.sum(axis=1, keepdims=True)
        g_temp = g_var_ln / C
        g_mean_in = a[0] * g_mean + (a[1] * g_mean.sum(axis=1, keepdims=True) - 2 * mean_ln * g_var_ln) / C
        if train:
            g_var_bn = b[2] * g_var.sum(axis=0, keepdims=True)
            g_temp = g_temp + g_var_bn / N
            g_mean_in = g_mean_in + (a[2] * g_mean.sum(axis=0, keepdims=True) - 2 * mean_bn * g_var_bn) / N
        g_var_in = b[0] * g_var + g_temp
        g_mean_in = g_mean_in + 2 * mean_in * g_temp
        gx = gxhat * inv + g_mean_in / S + g_var_in * 2 * (v - mean_in) / (S - 1)
        return gx.reshape(self.shape), grad_w, grad_b, grad_a, grad_bw
