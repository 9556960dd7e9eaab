"""EvoNorm-S0 as a Python plugin (for tests of the extension point): a method with a
divisibility constraint (groups divides C) that includes its own nonlinearity.

y = x * sigmoid(v * x) / sqrt(var_group(x) + eps) * weight + bias (timm EvoNorm2dS0; biased
group variance over (C/groups, spatial)).
"""
import numpy as np

NORMLAB_PLUGIN = {
    "name": "evonorm_s0_py",
    "summary": "EvoNorm-S0 written in Python (test plugin)",
    "reference": "Liu et al. 2020, arXiv:2004.02967",
    "options": {
        "groups": {"type": "integer", "default": 2, "min": 1, "help": "channel groups; must divide C",
                   "samples": [1]},
        "eps": {"type": "real", "default": 1e-5, "min": 0.0, "help": "added to the group variance"},
    },
    "ranks": [2, 5],
    "includes_activation": True,
    "constraints": {"divides_channels": ["groups"]},
    "reduction": "groups:groups",
}


def _sig(t):
    return 1.0 / (1.0 + np.exp(-t))


def _bc(a, ndim):
    return a.reshape((1, -1) + (1,) * (ndim - 2))


class Layer:
    def __init__(self, channels, spatial, options):
        self.groups = int(options["groups"])
        if channels % self.groups != 0:
            raise ValueError("channels %d not divisible by groups %d" % (channels, self.groups))
        self.eps = float(options["eps"])
        self.parameters = {"weight": np.ones(channels, np.float32), "bias": np.zeros(channels, np.float32),
                           "v": np.ones(channels, np.float32)}
        self.buffers = {}

    def forward(self, x, mode, params, buffers):
        out = reference(x, mode, None, params, buffers, {"groups": self.groups, "eps": self.eps})
        self._x = x
        return out["output"].astype(np.float32)

    def backward(self, grad_output, params):
        out = reference(self._x, "train", grad_output, params, {}, {"groups": self.groups, "eps": self.eps})
        grads = {k: out["grad_" + k].astype(np.float32) for k in ("weight", "bias", "v")}
        return out["grad_input"].astype(np.float32), grads


def reference(x, mode, grad_output, params, buffers, options):
    G, eps = int(options.get("groups", 2)), float(options.get("eps", 1e-5))
    x = np.asarray(x, np.float64)
    n, c = x.shape[0], x.shape[1]
    w, b, v = (_bc(np.asarray(params[k], np.float64), x.ndim) for k in ("weight", "bias", "v"))
    g = x.reshape(n, G, -1)
    m = g.shape[2]
    mu = g.mean(axis=2, keepdims=True)
    sd = np.sqrt(((g - mu) ** 2).mean(axis=2, keepdims=True) + eps)
    sdf = np.broadcast_to(sd, g.shape).reshape(x.shape)
    s = _sig(v * x)
    num = x * s
    out = {"output": num / sdf * w + b}
    if grad_output is not None:
        gy = np.asarray(grad_output, np.float64)
        axes = (0,) + tuple(range(2, x.ndim))
        out["grad_weight"] = (gy * num / sdf).sum(axis=axes)
        out["grad_bias"] = gy.sum(axis=axes)
        gn = gy * w / sdf
        out["grad_v"] = (gn * x * x * s * (1 - s)).sum(axis=axes)
        gsd = -(gy * w * num).reshape(n, G, m).sum(axis=2, keepdims=True) / sd ** 2
        out["grad_input"] = gn * (s + x * v * s * (1 - s)) + (gsd * (g - mu) / (m * sd)).reshape(x.shape)
    return out
