"""EvoNorm-S0 (Liu, Brock, Simonyan & Le 2020, arXiv:2004.02967), float64.

Paper, Table 1 / Figure 6 (S0): y = x * sigmoid(v * x) / s_{w,h,c/g}(x) * gamma + beta, where
s_{w,h,c/g}(x) = sqrt(var + eps) is the per-sample standard deviation over a group of channels
and all spatial positions. Conventions of timm's EvoNorm2dS0 (its group_std): biased variance,
eps = 1e-5 inside the square root, groups = 32 by default; v, gamma, beta per channel,
initialized 1, 1, 0. No running statistics; train and eval are identical.

The backward below is written per element from the chain rule (sigma depends on x through the
group variance); it shares nothing with the Swift plugin.
"""

import numpy as np

from . import common

NAME = "evonorm_s0"
ALIASES = ("evonorms0", "evonorm-s0")
SUMMARY = "EvoNorm-S0: x*sigmoid(v*x) / group std * weight + bias"
MIN_RANK = 2
ORDER = 70

OPTIONS = {
    "groups": (common.parse_positive_int, 32),
    "eps": (common.parse_eps, 1e-5),
}


def param_specs(channels, opts):
    return {"weight": ((channels,), 1.0), "bias": ((channels,), 0.0), "v": ((channels,), 1.0)}


def _sigmoid(t):
    return 1.0 / (1.0 + np.exp(-t))


def apply(x, mode, grad_output, params, buffers, opts):
    N, C = x.shape[0], x.shape[1]
    G = opts["groups"]
    common.no_buffers(NAME, buffers)
    if C % G != 0:
        raise ValueError("%s: channels C=%d not divisible by groups=%d" % (NAME, C, G))
    m = (C // G) * common.spatial_size(x.shape)
    if m == 1:
        raise ValueError("%s: group std over a single value (input shape %s, groups=%d)" % (NAME, x.shape, G))
    p = common.collect(NAME, "parameter", params, param_specs(C, opts))
    w, b, v = (common.bc(p[k], x.ndim) for k in ("weight", "bias", "v"))
    groups = x.reshape(N, G, m)
    mu = groups.sum(axis=2, keepdims=True) / m
    var = ((groups - mu) ** 2).sum(axis=2, keepdims=True) / m
    sigma = np.sqrt(var + opts["eps"])
    sigma_full = np.broadcast_to(sigma, groups.shape).reshape(x.shape)
    s = _sigmoid(v * x)
    numerator = x * s
    out = {"output": numerator / sigma_full * w + b}
    if grad_output is not None:
        g = grad_output
        axes = common.channel_axes(x.ndim)
        out["grad_weight"] = (g * numerator / sigma_full).sum(axis=axes)
        out["grad_bias"] = g.sum(axis=axes)
        g_num = g * w / sigma_full                                  # dL/d(numerator)
        out["grad_v"] = (g_num * x * x * s * (1 - s)).sum(axis=axes)
        # sigma's gradient: dL/dsigma = -sum(g * w * numerator) / sigma^2 per group, and
        # dsigma/dx_i = (x_i - mu) / (m * sigma).
        g_sigma = -(g * w * numerator).reshape(N, G, m).sum(axis=2, keepdims=True) / sigma ** 2
        through_sigma = (g_sigma * (groups - mu) / (m * sigma)).reshape(x.shape)
        out["grad_input"] = g_num * (s + x * v * s * (1 - s)) + through_sigma
    return out


class Bench:
    """Straightforward float32 numpy EvoNorm-S0 for `normlab bench`'s numpy comparison."""

    def __init__(self, x, params, buffers, options):
        self.x = x.astype(np.float32)
        C = x.shape[1]
        shape = (1, C) + (1,) * (x.ndim - 2)
        self.w = params.get("weight", np.ones(C, np.float32)).astype(np.float32).reshape(shape)
        self.b = params.get("bias", np.zeros(C, np.float32)).astype(np.float32).reshape(shape)
        self.v = params.get("v", np.ones(C, np.float32)).astype(np.float32).reshape(shape)
        self.groups = int(options.get("groups", 32))
        self.eps = np.float32(options.get("eps", 1e-5))

    def _grouped(self, a):
        return a.reshape(a.shape[0], self.groups, -1)

    def train(self):
        x = self.x
        g = self._grouped(x)
        inv = 1 / np.sqrt(g.var(axis=2, keepdims=True) + self.eps)
        s = 1 / (1 + np.exp(-self.v * x))
        u = x * s
        self.saved = (g, inv, s, u)
        return (self._grouped(u) * inv).reshape(x.shape) * self.w + self.b

    def eval(self):
        return self.train()

    def forward(self, mode):
        return self.train()

    def backward(self, gy):
        x = self.x
        g, inv, s, u = self.saved
        m = g.shape[2]
        gu = self._grouped(gy * self.w) * inv
        axes = (0,) + tuple(range(2, x.ndim))
        grad_w = (gy * (self._grouped(u) * inv).reshape(x.shape)).sum(axis=axes)
        grad_b = gy.sum(axis=axes)
        gu_full = gu.reshape(x.shape)
        grad_v = (gu_full * x * x * s * (1 - s)).sum(axis=axes)
        d_sigma = -(gu * self._grouped(u)).sum(axis=2, keepdims=True) * inv
        gx = gu_full * (s + x * self.v * s * (1 - s)) + (d_sigma * (g - g.mean(axis=2, keepdims=True)) * inv / m).reshape(x.shape)
        return gx, grad_w, grad_b, grad_v
