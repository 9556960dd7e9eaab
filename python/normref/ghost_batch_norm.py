"""Ghost batch normalization (Hoffer, Hubara & Soudry 2017, arXiv:1705.08741, Algorithm 1), float64.

train:  the batch (N, C, ...) is split into N / virtual_batch_size chunks of consecutive
        samples; each chunk is batch-normalized on its own:
            mu_k, var_k = mean / biased variance per channel over (chunk samples, spatial)
            y = weight * (x - mu_k) / sqrt(var_k + eps) + bias
        the gradient flows through each chunk's own statistics. The running statistics are
        updated once per chunk, in chunk order, as PyTorch's BatchNorm called on each chunk
        in turn (the loop of the paper's and common PyTorch implementations):
            running = (1 - m) * running + m * chunk, unbiased chunk variance (running_var=unbiased),
            num_batches_tracked += 1 per chunk (momentum=None: cumulative over chunks).
eval:   batch_norm eval (running statistics, any batch size); with track_running_stats=false
        eval normalizes with per-chunk statistics like train (without an update).
A batch using batch statistics that is not a multiple of virtual_batch_size is an error.
virtual_batch_size = N is exactly batch_norm.
"""

import numpy as np

from . import batch_norm, common

NAME = "ghost_batch_norm"
ALIASES = ("ghost_bn", "gbn")
SUMMARY = "Ghost batch normalization: BN statistics per virtual batch of consecutive samples"
MIN_RANK = 2
ORDER = 90

OPTIONS = {
    "virtual_batch_size": (common.parse_positive_int, 32),
    "eps": (common.parse_eps, 1e-5),
    "affine": (common.parse_bool, True),
    "momentum": (common.parse_momentum, 0.1),
    "track_running_stats": (common.parse_bool, True),
    **common.RUNNING_OPTIONS,
}

param_specs = batch_norm.param_specs


def _chunks(x, size):
    N = x.shape[0]
    if N % size != 0:
        raise ValueError("%s: a batch of %d samples is not divisible by virtual_batch_size=%d"
                         % (NAME, N, size))
    if size * common.spatial_size(x.shape) == 1:
        raise ValueError("%s: each virtual batch holds 1 value per channel (input shape %s)"
                         % (NAME, x.shape))
    return [x[k:k + size] for k in range(0, N, size)]


def apply(x, mode, grad_output, params, buffers, opts):
    C = x.shape[1]
    track = opts["track_running_stats"]
    if mode == "eval" and track:
        bn_opts = {k: opts[k] for k in batch_norm.OPTIONS if k in opts}
        bn_opts["train_statistics"] = "batch"
        return batch_norm.apply(x, mode, grad_output, params, buffers, bn_opts, name=NAME)
    p = common.collect(NAME, "parameter", params, param_specs(C, opts),
                       "" if opts["affine"] else " (affine is false)")
    buf = common.running_buffers(NAME, buffers, C, track)
    w = p.get("weight", np.ones(C))
    b = p.get("bias", np.zeros(C))
    size = opts["virtual_batch_size"]
    outs, grads_in = [], []
    gw, gb = np.zeros(C), np.zeros(C)
    g_chunks = _chunks(grad_output, size) if grad_output is not None else None
    for k, xk in enumerate(_chunks(x, size)):
        v = xk.reshape(xk.shape[0], C, -1)
        xn, mean, var, inv = common.standardize(v, (0, 2), opts["eps"])
        xhat = xn.reshape(xk.shape)
        outs.append(xhat * common.bc(w, x.ndim) + common.bc(b, x.ndim))
        if g_chunks is not None:
            gk = g_chunks[k]
            axes = common.channel_axes(x.ndim)
            gw += (gk * xhat).sum(axis=axes)
            gb += gk.sum(axis=axes)
            gxn = (gk * common.bc(w, x.ndim)).reshape(v.shape)
            grads_in.append(common.standardize_backward(gxn, xn, inv, (0, 2)).reshape(xk.shape))
        if mode == "train" and track:
            n = v.shape[0] * v.shape[2]
            buf["running_mean"], buf["running_var"], buf["num_batches_tracked"] = \
                batch_norm.update_running_stats(buf["running_mean"], buf["running_var"],
                                                buf["num_batches_tracked"], mean.reshape(-1),
                                                var.reshape(-1), n, opts)
    out = {"output": np.concatenate(outs, axis=0)}
    if grad_output is not None:
        out["grad_input"] = np.concatenate(grads_in, axis=0)
        if opts["affine"]:
            out["grad_weight"] = gw
            out["grad_bias"] = gb
    if mode == "train" and track:
        out["running_mean"] = buf["running_mean"]
        out["running_var"] = buf["running_var"]
        out["num_batches_tracked"] = buf["num_batches_tracked"]
    return out


class Bench:
    """Straightforward float32 numpy ghost BN for `normlab bench`: the batch reshaped to
    (chunks, virtual_batch_size, C, spatial), statistics over axes (1, 3)."""

    def __init__(self, x, params, buffers, options):
        self.x = x.astype(np.float32)
        N, C = x.shape[0], x.shape[1]
        self.size = int(options.get("virtual_batch_size", 32))
        self.eps = np.float32(options.get("eps", 1e-5))
        self.v = self.x.reshape(N // self.size, self.size, C, -1)
        shape = (1, 1, C, 1)
        self.w = params.get("weight", np.ones(C, np.float32)).astype(np.float32).reshape(shape)
        self.b = params.get("bias", np.zeros(C, np.float32)).astype(np.float32).reshape(shape)
        self.rm = buffers.get("running_mean", np.zeros(C, np.float32)).astype(np.float32).reshape(shape)
        self.rv = buffers.get("running_var", np.ones(C, np.float32)).astype(np.float32).reshape(shape)
        self.momentum = np.float32(0.1)

    def train(self):
        v, axes = self.v, (1, 3)
        mean = v.mean(axis=axes, keepdims=True)
        var = ((v - mean) ** 2).mean(axis=axes, keepdims=True)
        inv = 1 / np.sqrt(var + self.eps)
        self.saved = (mean, inv, True)
        n = v.shape[1] * v.shape[3]
        rm, rv = self.rm, self.rv
        for k in range(v.shape[0]):
            rm = (1 - self.momentum) * rm + self.momentum * mean[k:k + 1]
            rv = (1 - self.momentum) * rv + self.momentum * var[k:k + 1] * (n / (n - 1))
        return ((v - mean) * inv * self.w + self.b).reshape(self.x.shape)

    def eval(self):
        inv = 1 / np.sqrt(self.rv + self.eps)
        self.saved = (self.rm, inv, False)
        return ((self.v - self.rm) * inv * self.w + self.b).reshape(self.x.shape)

    def forward(self, mode):
        return self.train() if mode == "train" else self.eval()

    def backward(self, g):
        mean, inv, batch = self.saved
        g = g.reshape(self.v.shape)
        xhat = (self.v - mean) * inv
        grad_w = (g * xhat).sum(axis=(0, 1, 3))
        grad_b = g.sum(axis=(0, 1, 3))
        gxhat = g * self.w
        if batch:
            axes = (1, 3)
            gx = inv * (gxhat - gxhat.mean(axis=axes, keepdims=True)
                        - xhat * (gxhat * xhat).mean(axis=axes, keepdims=True))
        else:
            gx = gxhat * inv
        return gx.reshape(self.x.shape), grad_w, grad_b
