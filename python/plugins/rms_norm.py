"""RMSNorm as a normlab plugin (Zhang & Sennrich 2019, arXiv:1910.07467): the example plugin.

normlab has a native built-in ``rms_norm`` (aliases rms, rmsnorm) with the same conventions;
this example registers under its own name, ``rms_norm_py``, so that both can be loaded.

Per sample, over every non-batch axis (C, spatial...): x_hat = x / sqrt(mean(x^2) + eps),
y = weight[c] * x_hat (per-channel weight, shape (C,)). No centering, no running statistics.

This file is a normlab plugin: load it with `normlab --plugin python/plugins/rms_norm.py ...`
or put its directory in NORMLAB_PLUGIN_PATH. The contract a plugin file follows:

- ``NORMLAB_PLUGIN``: a dict describing the method (name, aliases, summary, reference, options,
  ranks). Each option is ``{"type": "real"|"integer"|"bool"|"choice", "default": value or None
  (required), "min"/"max" (numbers), "choices" (choice), "help": text}``.
- ``class Layer``: ``Layer(channels, spatial, options)`` validates (raise ValueError) and sets
  ``self.parameters`` (dict name -> float32 array) and optionally ``self.buffers``;
  ``forward(x, mode, params, buffers) -> y`` (params/buffers are the current values as float32
  arrays; a buffer is updated by writing into it in place, in train mode only);
  ``backward(grad_output, params) -> (grad_input, {param name: grad})``.
- optional ``reference(x, mode, grad_output, params, buffers, options) -> dict``: a float64
  reference in normref.run's format, used by `normlab parity`.
- every array handed to normlab (parameters, buffers, forward's output, backward's gradients)
  is float32: any other dtype, float64 included, is refused (no silent narrowing);
  ``backward`` returns a gradient for every parameter in ``self.parameters``.
- plugin code runs inside normlab: whatever it prints goes to stderr (stdout stays normlab's),
  and ``os._exit``/``sys.exit`` are errors naming the plugin, not a way to end normlab.
"""
import numpy as np

NORMLAB_PLUGIN = {
    "name": "rms_norm_py",
    "aliases": [],
    "summary": "RMSNorm: per-sample root-mean-square over (C, spatial), no centering",
    "reference": "Zhang & Sennrich 2019, arXiv:1910.07467",
    "options": {
        "eps": {"type": "real", "default": 1e-6, "min": 0.0, "help": "added to the mean square"},
        "affine": {"type": "bool", "default": True, "help": "learnable per-channel weight"},
    },
    "ranks": [2, 5],
}


def _axes(x):
    return tuple(range(1, x.ndim))


def _channel_view(a, ndim):
    return a.reshape((1, -1) + (1,) * (ndim - 2))


class Layer:
    def __init__(self, channels, spatial, options):
        if channels < 1:
            raise ValueError("channels must be positive")
        self.eps = float(options["eps"])
        self.affine = bool(options["affine"])
        self.parameters = {"weight": np.ones(channels, np.float32)} if self.affine else {}
        self.buffers = {}
        self._cache = None

    def forward(self, x, mode, params, buffers):
        x64 = x.astype(np.float64)
        r = 1.0 / np.sqrt(np.mean(x64 * x64, axis=_axes(x), keepdims=True) + self.eps)
        x_hat = x64 * r
        y = x_hat * _channel_view(params["weight"].astype(np.float64), x.ndim) if self.affine else x_hat
        self._cache = (x_hat, r)
        return y.astype(np.float32)

    def backward(self, grad_output, params):
        x_hat, r = self._cache
        g = grad_output.astype(np.float64)
        grads = {}
        if self.affine:
            w = _channel_view(params["weight"].astype(np.float64), g.ndim)
            grads["weight"] = np.sum(g * x_hat, axis=(0,) + tuple(range(2, g.ndim))).astype(np.float32)
            g = g * w
        m = np.mean(g * x_hat, axis=_axes(g), keepdims=True)
        gx = r * (g - x_hat * m)
        return gx.astype(np.float32), grads


def reference(x, mode, grad_output, params, buffers, options):
    """Independent float64 reference: forward by the formula, backward by the chain rule
    written per element sum (no shared code with Layer)."""
    eps = float(options.get("eps", 1e-6))
    affine = bool(options.get("affine", True))
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    flat = x.reshape(n, -1)
    ms = (flat ** 2).sum(axis=1) / flat.shape[1]
    inv = 1.0 / np.sqrt(ms + eps)
    x_hat = (flat * inv[:, None]).reshape(x.shape)
    w = np.asarray(params.get("weight", np.ones(x.shape[1])), np.float64).reshape(-1) if affine else np.ones(x.shape[1])
    wb = w.reshape((1, -1) + (1,) * (x.ndim - 2))
    out = {"output": x_hat * wb}
    if grad_output is not None:
        g = np.asarray(grad_output, np.float64)
        gh = (g * wb).reshape(n, -1)
        dot = (gh * flat).sum(axis=1)
        m = flat.shape[1]
        gx = inv[:, None] * gh - flat * (inv ** 3 * dot / m)[:, None]
        out["grad_input"] = gx.reshape(x.shape)
        if affine:
            out["grad_weight"] = (g * x_hat).sum(axis=(0,) + tuple(range(2, x.ndim)))
    return out
