"""Local response normalization (Krizhevsky, Sutskever & Hinton 2012, section 3.3), float64,
with torch.nn.LocalResponseNorm(size, alpha=1e-4, beta=0.75, k=1.0) semantics.

    b_c = a_c / (k + alpha / size * sum_{c' = c - size//2}^{c + (size-1)//2} a_{c'}^2) ** beta

per sample and spatial position, across the channel axis; channels outside 0..C-1 are zeros
(PyTorch pads size//2 channels before and (size-1)//2 after and average-pools with the padding
counted, hence alpha / size). No parameters, no state; train and eval are identical. Rank 3..5.
size defaults to 5 (AlexNet's n; PyTorch requires it); k must be > 0.

Backward, from the chain rule with d_c = k + alpha/size * S_c:
    dL/da_j = g_j d_j^-beta - 2 beta alpha/size a_j sum_{c: j in W(c)} g_c a_c d_c^(-beta-1)
where j in W(c) <=> j - (size-1)//2 <= c <= j + size//2.
"""

import numpy as np

from . import common

NAME = "local_response_norm"
ALIASES = ("lrn",)
SUMMARY = "Local response normalization across channels (AlexNet; PyTorch LocalResponseNorm)"
MIN_RANK = 3
ORDER = 100


def _parse_nonnegative(method, key, v):
    f = common._to_number(method, key, v)
    if f < 0:
        raise ValueError("%s: option %s must be >= 0, got %r" % (method, key, v))
    return f


def _parse_k(method, key, v):
    f = common._to_number(method, key, v)
    if f <= 0:
        raise ValueError("%s: option %s must be > 0, got %r" % (method, key, v))
    return f


OPTIONS = {
    "size": (common.parse_positive_int, 5),
    "alpha": (_parse_nonnegative, 1e-4),
    "beta": (_parse_nonnegative, 0.75),
    "k": (_parse_k, 1.0),
}


def _window_sum(a, lo, hi):
    """out[:, c] = sum_{j=c+lo}^{c+hi} a[:, j] with zeros outside 0..C-1 (lo <= 0 <= hi)."""
    C = a.shape[1]
    out = np.zeros_like(a)
    for c in range(C):
        j0, j1 = max(c + lo, 0), min(c + hi, C - 1)
        out[:, c] = a[:, j0:j1 + 1].sum(axis=1)
    return out


def apply(x, mode, grad_output, params, buffers, opts):
    common.no_buffers(NAME, buffers)
    common.collect(NAME, "parameter", params, {})
    size, alpha, beta, k = opts["size"], opts["alpha"], opts["beta"], opts["k"]
    d = k + alpha / size * _window_sum(x * x, -(size // 2), (size - 1) // 2)
    out = {"output": x * d ** (-beta)}
    if grad_output is not None:
        g = grad_output
        t = g * x * d ** (-beta - 1)
        back = _window_sum(t, -((size - 1) // 2), size // 2)
        out["grad_input"] = g * d ** (-beta) - 2 * beta * alpha / size * x * back
    return out


class Bench:
    """Straightforward float32 numpy LRN for `normlab bench`: squares zero-padded along the
    channel axis, the window as a sum of `size` shifted slices (PyTorch's avg-pool formulation)."""

    def __init__(self, x, params, buffers, options):
        self.x = x.astype(np.float32)
        self.size = int(options.get("size", 5))
        self.alpha = np.float32(options.get("alpha", 1e-4))
        self.beta = np.float32(options.get("beta", 0.75))
        self.k = np.float32(options.get("k", 1.0))

    def _window(self, a, before, after):
        C = a.shape[1]
        pad = [(0, 0)] * a.ndim
        pad[1] = (before, after)
        p = np.pad(a, pad)
        out = p[:, 0:C].copy()
        for i in range(1, self.size):
            out += p[:, i:i + C]
        return out

    def train(self):
        x = self.x
        d = self.k + self.alpha / self.size * self._window(x * x, self.size // 2, (self.size - 1) // 2)
        scale = d ** -self.beta
        self.saved = (d, scale)
        return x * scale

    def eval(self):
        return self.train()

    def forward(self, mode):
        return self.train()

    def backward(self, g):
        x = self.x
        d, scale = self.saved
        t = g * x * scale / d
        back = self._window(t, (self.size - 1) // 2, self.size // 2)
        return (g * scale - 2 * self.beta * self.alpha / self.size * x * back,)
