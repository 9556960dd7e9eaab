"""RMSNorm (Zhang & Sennrich 2019, arXiv:1910.07467), float64.

Paper, eq. (4): a_bar_i = a_i / RMS(a) * g_i with RMS(a) = sqrt(1/n * sum_i a_i^2), no
re-centering. Here, per sample over every non-batch axis (C and spatial):
    nu2 = mean(x^2),  y = x / sqrt(nu2 + eps) * weight[c]
with eps inside the square root, default 1e-6 (timm RmsNorm; PyTorch nn.RMSNorm's default
eps=None means finfo(dtype).eps), and a per-channel gain of shape (C,) initialized to 1, no
bias (affine=false: no gain). No running statistics; train and eval are identical. A sample
of a single value is valid (no centering).

The backward is written per element from the chain rule: with u = g * weight[c] and
r = 1/sqrt(nu2 + eps), dr/dx_j = -r^3 * x_j / M, so dx_j = r*u_j - x_j * r^3 * sum(u*x) / M.
"""

import numpy as np

from . import common

NAME = "rms_norm"
ALIASES = ("rms", "rmsnorm")
SUMMARY = "RMSNorm: per-sample root mean square over (C, spatial), per-channel gain"
MIN_RANK = 2
ORDER = 80

OPTIONS = {
    "eps": (common.parse_eps, 1e-6),
    "affine": (common.parse_bool, True),
}


def param_specs(channels, opts):
    return {"weight": ((channels,), 1.0)} if opts["affine"] else {}


def apply(x, mode, grad_output, params, buffers, opts):
    common.no_buffers(NAME, buffers)
    N, C = x.shape[0], x.shape[1]
    p = common.collect(NAME, "parameter", params, param_specs(C, opts),
                       "" if opts["affine"] else " (affine is false)")
    w = common.bc(p.get("weight", np.ones(C)), x.ndim)
    flat = x.reshape(N, -1)
    M = flat.shape[1]
    r = 1.0 / np.sqrt((flat * flat).sum(axis=1) / M + opts["eps"])       # (N,)
    r_full = r.reshape((N,) + (1,) * (x.ndim - 1))
    out = {"output": x * r_full * w}
    if grad_output is not None:
        g = grad_output
        u = g * w
        dot = (u * x).reshape(N, -1).sum(axis=1).reshape(r_full.shape)
        out["grad_input"] = r_full * u - x * r_full ** 3 * dot / M
        if opts["affine"]:
            out["grad_weight"] = (g * x * r_full).sum(axis=common.channel_axes(x.ndim))
    return out


class Bench:
    """Straightforward float32 numpy RMSNorm for `normlab bench`'s numpy comparison."""

    def __init__(self, x, params, buffers, options):
        self.x = x.astype(np.float32)
        C = x.shape[1]
        shape = (1, C) + (1,) * (x.ndim - 2)
        self.w = params.get("weight", np.ones(C, np.float32)).astype(np.float32).reshape(shape)
        self.eps = np.float32(options.get("eps", 1e-6))
        self.axes = tuple(range(1, x.ndim))

    def train(self):
        x = self.x
        inv = 1 / np.sqrt((x * x).mean(axis=self.axes, keepdims=True) + self.eps)
        self.saved = inv
        return x * inv * self.w

    def eval(self):
        return self.train()

    def forward(self, mode):
        return self.train()

    def backward(self, g):
        x, inv = self.x, self.saved
        xhat = x * inv
        grad_w = (g * xhat).sum(axis=(0,) + tuple(range(2, x.ndim)))
        gh = g * self.w
        gx = inv * (gh - xhat * (gh * xhat).mean(axis=self.axes, keepdims=True))
        return gx, grad_w
