"""The numpy side of `normlab bench`: straightforward float32 numpy code for every built-in
method (and the example RMSNorm plugin), timed inside the embedded interpreter.

"Straightforward" means the code a numpy user writes from the formulas: keepdims reductions,
broadcasting, one temporary per operation, e.g. for BatchNorm's train forward::

    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps) * w + b

and the textbook backward through the batch statistics, from the statistics the forward
saved (as a framework does)::

    xhat = (x - mean) * inv
    gxhat = g * w
    gx = inv * (gxhat - gxhat.mean(axes) - xhat * (gxhat * xhat).mean(axes))

Everything is float32 (the inputs are float32 views of Swift memory; parameters are
converted to float32 once, outside the timed region). Timing (`time_op`) happens inside
Python with `time.perf_counter` around each call, so the Swift -> Python call overhead is
*not* included; numpy's own per-call overhead and its temporaries (fresh allocations,
page faults) are.

Swift (NormBench) calls only `make`, `outputs` and `time_op`.
"""
import time

import numpy as np

OPS = ("train_fwd", "eval_fwd", "backward")


def _f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def _bc(a, ndim):
    """A per-channel (C,) vector broadcast against (N, C, ...)."""
    return a.reshape((1, -1) + (1,) * (ndim - 2))


def _moments(x, axes):
    """Mean and biased variance over `axes` (keepdims), the two-pass textbook way."""
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return mean, var


def _through_statistics(inv, gxhat, xhat, axes):
    """dL/dx through statistics taken over `axes`: inv * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat))."""
    return inv * (gxhat - gxhat.mean(axis=axes, keepdims=True)
                  - xhat * (gxhat * xhat).mean(axis=axes, keepdims=True))


class _Impl:
    """Shared parameter handling; subclasses define train/eval/backward."""

    elementwise_affine = False

    def __init__(self, x, params, buffers, options):
        self.x = x
        self.options = dict(options)
        self.eps = np.float32(abs(float(self.options.get("eps", 1e-5))))
        c = x.shape[1]
        self.w = _f32(params["weight"]) if "weight" in params else None
        self.b = _f32(params["bias"]) if "bias" in params else None
        self.rm = _f32(buffers["running_mean"]) if "running_mean" in buffers else None
        self.rv = _f32(buffers["running_var"]) if "running_var" in buffers else None
        self.channels = c
        self.saved = None
        # weight and bias broadcast against x: per channel unless elementwise (LayerNorm)
        ew = self.elementwise_affine
        self.wb = np.float32(1) if self.w is None else self.w if ew else _bc(self.w, x.ndim)
        self.bb = np.float32(0) if self.b is None else self.b if ew else _bc(self.b, x.ndim)

    def forward(self, mode):
        return self.train() if mode == "train" else self.eval()

    def eval(self):
        return self.train()

    def eval_with_running_statistics(self):
        nd = self.x.ndim
        return (self.x - _bc(self.rm, nd)) / np.sqrt(_bc(self.rv, nd) + self.eps) * self.wb + self.bb


class BatchNorm(_Impl):
    def __init__(self, x, params, buffers, options):
        super().__init__(x, params, buffers, options)
        self.axes = (0,) + tuple(range(2, x.ndim))
        self.m = float(self.options.get("momentum", 0.1) or 0.1)
        # running statistics the train step updates (eval uses the given rm / rv)
        self.run_m = None if self.rm is None else self.rm.copy()
        self.run_v = None if self.rv is None else self.rv.copy()

    def train(self):
        x, axes = self.x, self.axes
        mean, var = _moments(x, axes)
        y = (x - mean) / np.sqrt(var + self.eps) * self.wb + self.bb
        if self.rm is not None:
            n = x.size // x.shape[1]
            self.run_m = (1 - self.m) * self.run_m + self.m * mean.reshape(-1)
            self.run_v = (1 - self.m) * self.run_v + self.m * var.reshape(-1) * (n / (n - 1))
        self.saved = (mean, 1 / np.sqrt(var + self.eps))
        return y

    def eval(self):
        return self.train() if self.rm is None else self.eval_with_running_statistics()

    def backward(self, g):
        x, axes = self.x, self.axes
        mean, inv = self.saved
        xhat = (x - mean) * inv
        grad_w = (g * xhat).sum(axis=axes)
        grad_b = g.sum(axis=axes)
        return _through_statistics(inv, g * self.wb, xhat, axes), grad_w, grad_b


class BatchRenorm(BatchNorm):
    def __init__(self, x, params, buffers, options):
        super().__init__(x, params, buffers, options)
        self.r_max = np.float32(self.options.get("r_max", 3.0))
        self.d_max = np.float32(self.options.get("d_max", 5.0))

    def train(self):
        x, axes, nd = self.x, self.axes, self.x.ndim
        mean, var = _moments(x, axes)
        sigma_b = np.sqrt(var + self.eps)
        sigma = np.sqrt(_bc(self.rv, nd) + self.eps)
        r = np.clip(sigma_b / sigma, 1 / self.r_max, self.r_max)
        d = np.clip((mean - _bc(self.rm, nd)) / sigma, -self.d_max, self.d_max)
        y = ((x - mean) / sigma_b * r + d) * self.wb + self.bb
        n = x.size // x.shape[1]
        self.run_m = (1 - self.m) * self.run_m + self.m * mean.reshape(-1)
        self.run_v = (1 - self.m) * self.run_v + self.m * var.reshape(-1) * (n / (n - 1))
        self.saved = (mean, 1 / sigma_b, r, d)
        return y

    def eval(self):
        return self.eval_with_running_statistics()

    def backward(self, g):
        x, axes = self.x, self.axes
        mean, inv, r, d = self.saved
        xn = (x - mean) * inv
        grad_w = (g * (xn * r + d)).sum(axis=axes)
        grad_b = g.sum(axis=axes)
        return _through_statistics(inv, g * (self.wb * r), xn, axes), grad_w, grad_b


class GroupNorm(_Impl):
    def __init__(self, x, params, buffers, options):
        super().__init__(x, params, buffers, options)
        self.groups = int(self.options["num_groups"])

    def train(self):
        x = self.x
        v = x.reshape(x.shape[0], self.groups, -1)
        mean, var = _moments(v, 2)
        xhat = ((v - mean) / np.sqrt(var + self.eps)).reshape(x.shape)
        self.saved = (mean, 1 / np.sqrt(var + self.eps))
        return xhat * self.wb + self.bb

    def backward(self, g):
        x = self.x
        mean, inv = self.saved
        axes = (0,) + tuple(range(2, x.ndim))
        v = x.reshape(x.shape[0], self.groups, -1)
        xhat = (v - mean) * inv
        grad_w = (g * xhat.reshape(x.shape)).sum(axis=axes)
        grad_b = g.sum(axis=axes)
        gx = _through_statistics(inv, (g * self.wb).reshape(v.shape), xhat, 2)
        return gx.reshape(x.shape), grad_w, grad_b


class LayerNorm(_Impl):
    elementwise_affine = True

    def __init__(self, x, params, buffers, options):
        super().__init__(x, params, buffers, options)
        self.axes = tuple(range(1, x.ndim))

    def train(self):
        x, axes = self.x, self.axes
        mean, var = _moments(x, axes)
        self.saved = (mean, 1 / np.sqrt(var + self.eps))
        return (x - mean) / np.sqrt(var + self.eps) * self.wb + self.bb

    def backward(self, g):
        x, axes = self.x, self.axes
        mean, inv = self.saved
        xhat = (x - mean) * inv
        grad_w = (g * xhat).sum(axis=0)
        grad_b = g.sum(axis=0)
        return _through_statistics(inv, g * self.wb, xhat, axes), grad_w, grad_b


class InstanceNorm(_Impl):
    def __init__(self, x, params, buffers, options):
        super().__init__(x, params, buffers, options)
        self.axes = tuple(range(2, x.ndim))

    def train(self):
        x, axes = self.x, self.axes
        mean, var = _moments(x, axes)
        self.saved = (mean, 1 / np.sqrt(var + self.eps))
        return (x - mean) / np.sqrt(var + self.eps) * self.wb + self.bb

    def eval(self):
        return self.train() if self.rm is None else self.eval_with_running_statistics()

    def backward(self, g):
        x, axes = self.x, self.axes
        mean, inv = self.saved
        xhat = (x - mean) * inv
        caxes = (0,) + axes
        grad_w = (g * xhat).sum(axis=caxes)
        grad_b = g.sum(axis=caxes)
        return _through_statistics(inv, g * self.wb, xhat, axes), grad_w, grad_b


class FilterResponseNorm(_Impl):
    def __init__(self, x, params, buffers, options):
        super().__init__(x, params, buffers, options)
        if "eps" in params:
            self.eps = np.float32(abs(float(np.asarray(params["eps"]).reshape(-1)[0])))
        else:
            self.eps = np.float32(abs(float(self.options.get("eps", 1e-6))))
        self.axes = tuple(range(2, x.ndim))
        self.tau = _bc(_f32(params["tau"]), x.ndim) if "tau" in params else None

    def train(self):
        x = self.x
        nu2 = (x * x).mean(axis=self.axes, keepdims=True)
        inv = 1 / np.sqrt(nu2 + self.eps)
        y = x * inv * self.wb + self.bb
        self.saved = inv
        return np.maximum(y, self.tau) if self.tau is not None else y

    def backward(self, g):
        x, axes = self.x, self.axes
        inv = self.saved
        caxes = (0,) + axes
        xhat = x * inv
        if self.tau is not None:
            mask = xhat * self.wb + self.bb >= self.tau
            gz = g * mask
            grad_tau = (g * ~mask).sum(axis=caxes)
        else:
            gz, grad_tau = g, None
        grad_w = (gz * xhat).sum(axis=caxes)
        grad_b = gz.sum(axis=caxes)
        gxhat = gz * self.wb
        gx = inv * (gxhat - xhat * (gxhat * xhat).mean(axis=axes, keepdims=True))
        return gx, grad_w, grad_b, grad_tau


class RMSNorm(_Impl):
    """The example plugin python/plugins/rms_norm.py, in float32."""

    def __init__(self, x, params, buffers, options):
        super().__init__(x, params, buffers, options)
        self.eps = np.float32(float(self.options.get("eps", 1e-6)))
        self.axes = tuple(range(1, x.ndim))

    def train(self):
        x = self.x
        inv = 1 / np.sqrt((x * x).mean(axis=self.axes, keepdims=True) + self.eps)
        self.saved = inv
        return x * inv * self.wb

    def backward(self, g):
        x, inv = self.x, self.saved
        xhat = x * inv
        grad_w = (g * xhat).sum(axis=(0,) + tuple(range(2, x.ndim)))
        gh = g * self.wb
        gx = inv * (gh - xhat * (gh * xhat).mean(axis=self.axes, keepdims=True))
        return gx, grad_w


IMPLEMENTATIONS = {
    "batch_norm": BatchNorm,
    "batch_renorm": BatchRenorm,
    "group_norm": GroupNorm,
    "layer_norm": LayerNorm,
    "instance_norm": InstanceNorm,
    "filter_response_norm": FilterResponseNorm,
    "rms_norm_py": RMSNorm,
}


def _reference_benches():
    """Float32 bench implementations a reference module ships (``class Bench``), so a new
    method's numpy comparison lives in its one reference file."""
    import normref
    return {name: mod.Bench for name, mod in normref._MODULES.items() if hasattr(mod, "Bench")}


IMPLEMENTATIONS.update({k: v for k, v in _reference_benches().items() if k not in IMPLEMENTATIONS})


def has(method):
    """Whether a numpy implementation exists for a canonical method name."""
    return method in IMPLEMENTATIONS


def make(method, x, params, buffers, options):
    """An implementation object for `method` on input `x` (a float32 array), or None."""
    cls = IMPLEMENTATIONS.get(method)
    if cls is None:
        return None
    return cls(np.asarray(x), dict(params), dict(buffers), dict(options))


def outputs(impl, g):
    """(train output, grad_input, eval output) as float32 arrays, for checking the
    implementation against the references before it is timed."""
    y = impl.forward("train")
    gx = impl.backward(g)[0]
    ye = impl.forward("eval")
    return _f32(y), _f32(gx), _f32(ye)


def time_op(impl, op, g, warmup, min_reps, max_reps, min_seconds):
    """Per-call seconds of `op` ("train_fwd", "eval_fwd", "backward"), measured with
    time.perf_counter around each call after `warmup` untimed calls; at least `min_reps`
    calls and at least `min_seconds` in total, at most `max_reps` calls."""
    if op == "train_fwd":
        fn = lambda: impl.forward("train")  # noqa: E731
    elif op == "eval_fwd":
        fn = lambda: impl.forward("eval")  # noqa: E731
    elif op == "backward":
        impl.forward("train")
        fn = lambda: impl.backward(g)  # noqa: E731
    else:
        raise ValueError("unknown op %r" % (op,))
    for _ in range(int(warmup)):
        fn()
    times = []
    total = 0.0
    while len(times) < int(max_reps) and (len(times) < int(min_reps) or total < float(min_seconds)):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        total += dt
    return times
