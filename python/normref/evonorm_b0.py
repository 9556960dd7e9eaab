"""EvoNorm-B0 (Liu, Brock, Simonyan & Le 2020, arXiv:2004.02967), float64.

Paper, Table 1 / Figure 6 (B0): y = x / max(sqrt(s^2_{b,w,h}(x) + eps), v * x + sqrt(s^2_{w,h}(x) + eps))
* gamma + beta. Conventions of timm's EvoNorm2dB0:
- s^2_{b,w,h}: per-channel variance over (N, spatial), BIASED (var(unbiased=False)) in train;
  in eval the buffer running_var replaces it (there is no running mean);
- s^2_{w,h}: per-(n, c) variance over spatial, BIASED (timm's instance_std), in both modes;
- eps = 1e-3 by default, inside both square roots; momentum = 0.1 (PyTorch convention);
- train updates running_var = (1 - m) * running_var + m * var_batch * n / (n - 1) (the
  UNBIASED batch variance, n = N * spatial); running_var starts at ones;
- v, gamma, beta per channel, initialized 1, 1, 0; the max is the nonlinearity (a norm-act
  layer: nothing follows it).
Gradient of the max: the larger branch takes it all; a tie splits it evenly (torch.maximum).

The host passes the batch counter num_batches_tracked with every buffer set: it is accepted
and ignored (B0 keeps no counter).
"""

import numpy as np

from . import common

NAME = "evonorm_b0"
ALIASES = ("evonormb0", "evonorm-b0")
SUMMARY = "EvoNorm-B0: x / max(sqrt(batch var + eps), v*x + instance std) * weight + bias"
MIN_RANK = 3
ORDER = 110


def _parse_momentum(method, key, v):
    m = common.parse_momentum(method, key, v)
    if m is None:
        raise ValueError("%s: option %s must be a number in [0, 1] (no cumulative average)" % (method, key))
    return m


OPTIONS = {
    "eps": (common.parse_eps, 1e-3),
    "momentum": (_parse_momentum, 0.1),
}


def param_specs(channels, opts):
    return {"weight": ((channels,), 1.0), "bias": ((channels,), 0.0), "v": ((channels,), 1.0)}


def _buffers(buffers, channels):
    given = dict(buffers or {})
    given.pop("num_batches_tracked", None)
    return common.collect(NAME, "buffer", given, {"running_var": ((channels,), 1.0)})


def _variance(a, axes):
    mu = a.mean(axis=axes, keepdims=True)
    return ((a - mu) ** 2).mean(axis=axes, keepdims=True), mu


def apply(x, mode, grad_output, params, buffers, opts):
    C = x.shape[1]
    spatial = tuple(range(2, x.ndim))
    batch_axes = common.channel_axes(x.ndim)
    S = common.spatial_size(x.shape)
    if S == 1:
        raise ValueError("%s: instance variance over a single value (input shape %s)" % (NAME, x.shape))
    p = common.collect(NAME, "parameter", params, param_specs(C, opts))
    buf = _buffers(buffers, C)
    w, b, v = (common.bc(p[k], x.ndim) for k in ("weight", "bias", "v"))
    eps = opts["eps"]
    var_i, mu_i = _variance(x, spatial)
    std_i = np.sqrt(var_i + eps)
    train = mode == "train"
    if train:
        var_b, mu_b = _variance(x, batch_axes)
    else:
        var_b, mu_b = common.bc(buf["running_var"], x.ndim), None
    left = np.broadcast_to(np.sqrt(var_b + eps), x.shape)
    right = v * x + std_i
    d = np.maximum(left, right)
    out = {"output": x / d * w + b}
    if train:
        n = x.size // C
        m = opts["momentum"]
        out["running_var"] = (1 - m) * buf["running_var"] + m * var_b.reshape(C) * n / (n - 1.0)
    if grad_output is not None:
        g = grad_output
        out["grad_weight"] = (g * x / d).sum(axis=batch_axes)
        out["grad_bias"] = g.sum(axis=batch_axes)
        g_d = -g * w * x / d ** 2
        share_right = np.where(right > left, 1.0, np.where(right == left, 0.5, 0.0))
        g_right = g_d * share_right
        g_left = g_d - g_right
        out["grad_v"] = (g_right * x).sum(axis=batch_axes)
        # right = v x + sqrt(var_i + eps); var_i's derivative is 2 (x - mu_i) / S.
        g_var_i = g_right.sum(axis=spatial, keepdims=True) / (2 * std_i)
        gx = g * w / d + g_right * v + g_var_i * 2 * (x - mu_i) / S
        if train:
            M = x.size // C
            g_var_b = g_left.sum(axis=batch_axes, keepdims=True) / (2 * np.sqrt(var_b + eps))
            gx = gx + g_var_b * 2 * (x - mu_b) / M
        out["grad_input"] = gx
    return out


class Bench:
    """Straightforward float32 numpy EvoNorm-B0 for `normlab bench`'s numpy comparison
    (stateless: train mode does not write running_var, so eval reads the given buffer)."""

    def __init__(self, x, params, buffers, options):
        self.x = x.astype(np.float32)
        C = x.shape[1]
        shape = (1, C) + (1,) * (x.ndim - 2)
        self.w = params.get("weight", np.ones(C, np.float32)).astype(np.float32).reshape(shape)
        self.b = params.get("bias", np.zeros(C, np.float32)).astype(np.float32).reshape(shape)
        self.v = params.get("v", np.ones(C, np.float32)).astype(np.float32).reshape(shape)
        self.rv = buffers.get("running_var", np.ones(C, np.float32)).astype(np.float32).reshape(shape)
        self.eps = np.float32(options.get("eps", 1e-3))
        self.spatial = tuple(range(2, x.ndim))
        self.axes = (0,) + self.spatial

    def _run(self, var_b):
        x = self.x
        mu_i = x.mean(axis=self.spatial, keepdims=True)
        std_i = np.sqrt(((x - mu_i) ** 2).mean(axis=self.spatial, keepdims=True) + self.eps)
        left = np.sqrt(var_b + self.eps)
        right = self.v * x + std_i
        d = np.maximum(left, right)
        return x / d * self.w + self.b, (mu_i, std_i, left, right, d)

    def train(self):
        x = self.x
        mu_b = x.mean(axis=self.axes, keepdims=True)
        y, saved = self._run(((x - mu_b) ** 2).mean(axis=self.axes, keepdims=True))
        self.saved = saved + (mu_b, True)
        return y

    def eval(self):
        y, saved = self._run(self.rv)
        self.saved = saved + (None, False)
        return y

    def forward(self, mode):
        return self.train() if mode == "train" else self.eval()

    def backward(self, gy):
        x = self.x
        mu_i, std_i, left, right, d, mu_b, train = self.saved
        grad_w = (gy * x / d).sum(axis=self.axes)
        grad_b = gy.sum(axis=self.axes)
        g_d = -gy * self.w * x / (d * d)
        share = (right > left).astype(np.float32) + np.float32(0.5) * (right == left)
        g_right = g_d * share
        grad_v = (g_right * x).sum(axis=self.axes)
        s = x[0, 0].size
        gx = gy * self.w / d + g_right * self.v + g_right.sum(axis=self.spatial, keepdims=True) / std_i * (x - mu_i) / s
        if train:
            m = x.size // x.shape[1]
            gx += (g_d - g_right).sum(axis=self.axes, keepdims=True) / left * (x - mu_b) / m
        return gx, grad_w, grad_b, grad_v
