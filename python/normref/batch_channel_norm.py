"""Batch-Channel Normalization (Qiao, Wang, Liu, Shen & Yuille 2019, arXiv:1903.10520), float64.

Structure of the reference implementation (joe-siyuan-qiao/Batch-Channel-Normalization,
BCNorm and imagenet/models/layers.py):
    u = nn.BatchNorm2d(C)(x)          # stage 1: this package's batch_norm reference with
                                      # eps = bn_eps (1e-5), momentum 0.1, affine weight/bias
                                      # (C,), unbiased running_var, running stats in eval
    u = u.view(1, N * G, -1)          # stage 2: per (n, group) over (C/G channels, spatial)
    u = batch_norm(u, training=True, eps)   # biased variance, no state, same in train/eval
    y = group_weight[g] * u + group_bias[g] # per-GROUP affine (G,), init 1 / 0
Defaults as the repository: num_groups 32, eps 1e-5 (stage 2), bn_eps 1e-5.
"""

import numpy as np

from . import batch_norm, common

NAME = "batch_channel_norm"
ALIASES = ("bcn",)
SUMMARY = "Batch-Channel Normalization: BN, then per-sample channel-group normalization"
MIN_RANK = 2
ORDER = 130

OPTIONS = {
    "num_groups": (common.parse_positive_int, 32),
    "eps": (common.parse_eps, 1e-5),
    "bn_eps": (common.parse_eps, 1e-5),
    "momentum": (common.parse_momentum, 0.1),
    "track_running_stats": (common.parse_bool, True),
    **common.RUNNING_OPTIONS,
}


def param_specs(channels, opts):
    G = opts["num_groups"]
    return {"weight": ((channels,), 1.0), "bias": ((channels,), 0.0),
            "group_weight": ((G,), 1.0), "group_bias": ((G,), 0.0)}


def apply(x, mode, grad_output, params, buffers, opts):
    N, C = x.shape[0], x.shape[1]
    G = opts["num_groups"]
    if C % G != 0:
        raise ValueError("%s: channels C=%d not divisible by num_groups=%d" % (NAME, C, G))
    L = (C // G) * common.spatial_size(x.shape)
    if L == 1:
        raise ValueError("%s: channel group over a single value (input shape %s)" % (NAME, x.shape))
    track = opts["track_running_stats"]
    p = common.collect(NAME, "parameter", params, param_specs(C, opts))
    buf = common.running_buffers(NAME, buffers, C, track)
    use_batch = mode == "train" or not track
    batch_norm.check_reduction(NAME, x, use_batch)
    u, bn_cache = batch_norm.forward(x, p["weight"], p["bias"], opts["bn_eps"], use_batch,
                                     buf and buf["running_mean"], buf and buf["running_var"])
    runs = u.reshape(N, G, L)
    uhat, _, _, inv = common.standardize(runs, (2,), opts["eps"])
    gw, gb = p["group_weight"][None, :, None], p["group_bias"][None, :, None]
    out = {"output": (uhat * gw + gb).reshape(x.shape)}
    if grad_output is not None:
        g = grad_output.reshape(N, G, L)
        out["grad_group_weight"] = (g * uhat).sum(axis=(0, 2))
        out["grad_group_bias"] = g.sum(axis=(0, 2))
        gu = common.standardize_backward(g * gw, uhat, inv, (2,)).reshape(x.shape)
        gx, gwc, gbc = batch_norm.backward(gu, bn_cache)
        out["grad_input"] = gx
        out["grad_weight"] = gwc
        out["grad_bias"] = gbc
    if mode == "train" and track:
        mean, var = bn_cache["stats"]
        rm, rv, nbt = batch_norm.update_running_stats(buf["running_mean"], buf["running_var"],
                                                      buf["num_batches_tracked"], mean, var, x.size // C, opts)
        out["running_mean"] = rm
        out["running_var"] = rv
        out["num_batches_tracked"] = nbt
    return out


class Bench:
    """Straightforward float32 numpy BCN for `normlab bench` (stateless: train mode does not
    write the running statistics, so eval reads the given buffers)."""

    def __init__(self, x, params, buffers, options):
        N, C = x.shape[0], x.shape[1]
        self.x = x.astype(np.float32)
        self.G = int(options.get("num_groups", 32))
        shape = (1, C) + (1,) * (x.ndim - 2)
        self.w = params.get("weight", np.ones(C, np.float32)).astype(np.float32).reshape(shape)
        self.b = params.get("bias", np.zeros(C, np.float32)).astype(np.float32).reshape(shape)
        self.gw = params.get("group_weight", np.ones(self.G, np.float32)).astype(np.float32).reshape(1, self.G, 1)
        self.gb = params.get("group_bias", np.zeros(self.G, np.float32)).astype(np.float32).reshape(1, self.G, 1)
        self.rm = buffers.get("running_mean", np.zeros(C, np.float32)).astype(np.float32).reshape(shape)
        self.rv = buffers.get("running_var", np.ones(C, np.float32)).astype(np.float32).reshape(shape)
        self.eps = np.float32(options.get("eps", 1e-5))
        self.bn_eps = np.float32(options.get("bn_eps", 1e-5))
        self.axes = (0,) + tuple(range(2, x.ndim))

    def _channel_stage(self, u, bn):
        r = u.reshape(u.shape[0], self.G, -1)
        m = r.mean(axis=2, keepdims=True)
        inv = 1 / np.sqrt(((r - m) ** 2).mean(axis=2, keepdims=True) + self.eps)
        rhat = (r - m) * inv
        self.saved = (bn, rhat, inv)
        return (rhat * self.gw + self.gb).reshape(u.shape)

    def train(self):
        x = self.x
        mean = x.mean(axis=self.axes, keepdims=True)
        inv = 1 / np.sqrt(((x - mean) ** 2).mean(axis=self.axes, keepdims=True) + self.bn_eps)
        xhat = (x - mean) * inv
        return self._channel_stage(xhat * self.w + self.b, (True, xhat, inv))

    def eval(self):
        inv = 1 / np.sqrt(self.rv + self.bn_eps)
        xhat = (self.x - self.rm) * inv
        return self._channel_stage(xhat * self.w + self.b, (False, xhat, inv))

    def forward(self, mode):
        return self.train() if mode == "train" else self.eval()

    def backward(self, gy):
        (train, xhat, bn_inv), rhat, inv = self.saved
        g = gy.reshape(rhat.shape)
        grad_gw = (g * rhat).sum(axis=(0, 2))
        grad_gb = g.sum(axis=(0, 2))
        gr = g * self.gw
        gu = (inv * (gr - gr.mean(axis=2, keepdims=True) - rhat * (gr * rhat).mean(axis=2, keepdims=True))).reshape(gy.shape)
        grad_w = (gu * xhat).sum(axis=self.axes)
        grad_b = gu.sum(axis=self.axes)
        gxhat = gu * self.w
        if train:
            gx = bn_inv * (gxhat - gxhat.mean(axis=self.axes, keepdims=True)
                           - xhat * (gxhat * xhat).mean(axis=self.axes, keepdims=True))
        else:
            gx = gxhat * bn_inv
        return gx, grad_w, grad_b, grad_gw, grad_gb
