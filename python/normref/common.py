"""Shared helpers for the float64 reference implementations.

Everything here is plain numpy (works on numpy 1.24) and float64.

Conventions (see docs/apply-contract.md):
- layout: channel axis 1, shapes (N,C), (N,C,L), (N,C,H,W), (N,C,D,H,W);
- momentum: PyTorch, ``running = (1 - m) * running + m * batch``; ``momentum=None``
  means a cumulative average, ``m = 1 / num_batches_tracked`` after the counter was
  incremented for the current step;
- normalise with the biased variance, store the unbiased one in ``running_var``.
"""

import math
import numbers

import numpy as np

MODES = ("train", "eval")

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


# --------------------------------------------------------------------------- options

def _is_bool(v):
    return isinstance(v, (bool, np.bool_))


def _to_number(method, key, v):
    """A python/numpy real number or a numeric string -> float (no bools)."""
    if _is_bool(v):
        raise ValueError("%s: option %s: expected a number, got %r" % (method, key, v))
    if isinstance(v, np.ndarray) and v.size == 1 and v.dtype.kind in "fiu":
        v = v.reshape(()).item()
    if isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            raise ValueError("%s: option %s: %r is not a number" % (method, key, v)) from None
    elif isinstance(v, numbers.Real):
        f = float(v)
    else:
        raise ValueError("%s: option %s: expected a number, got %r" % (method, key, v))
    if not math.isfinite(f):
        raise ValueError("%s: option %s must be finite, got %r" % (method, key, v))
    return f


def parse_bool(method, key, v):
    if _is_bool(v):
        return bool(v)
    if isinstance(v, (int, np.integer)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str):
        s = v.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
    raise ValueError("%s: option %s: expected true or false, got %r" % (method, key, v))


def parse_eps(method, key, v):
    f = _to_number(method, key, v)
    if f < 0:
        raise ValueError("%s: option %s must be >= 0, got %r" % (method, key, v))
    return f


def parse_momentum(method, key, v):
    if v is None or (isinstance(v, str) and v.strip().lower() in ("none", "null")):
        return None
    f = _to_number(method, key, v)
    if not 0.0 <= f <= 1.0:
        raise ValueError("%s: option %s must be in [0, 1] or None (cumulative average), "
                         "got %r" % (method, key, v))
    return f


def parse_r_max(method, key, v):
    f = _to_number(method, key, v)
    if f < 1.0:
        raise ValueError("%s: option %s must be >= 1, got %r" % (method, key, v))
    return f


def parse_d_max(method, key, v):
    f = _to_number(method, key, v)
    if f < 0.0:
        raise ValueError("%s: option %s must be >= 0, got %r" % (method, key, v))
    return f


def parse_positive_int(method, key, v):
    if v is None:
        raise ValueError("%s: option %s is required" % (method, key))
    f = _to_number(method, key, v)
    if f != int(f):
        raise ValueError("%s: option %s must be an integer, got %r" % (method, key, v))
    i = int(f)
    if i <= 0:
        raise ValueError("%s: option %s must be a positive integer, got %r" % (method, key, v))
    return i


def parse_running_var(method, key, v):
    s = str(v).strip().lower()
    if s not in ("unbiased", "biased"):
        raise ValueError("%s: option %s must be unbiased or biased, got %r" % (method, key, v))
    return s


def parse_train_statistics(method, key, v):
    s = str(v).strip().lower()
    if s not in ("batch", "running"):
        raise ValueError("%s: option %s must be batch or running, got %r" % (method, key, v))
    return s


#: running-statistics options shared by BN, BRN and IN (normlab extensions to PyTorch):
#: keras_decay (Keras convention, momentum = 1 - decay), running_var (stored estimate),
#: skip_nonfinite (skip an update whose batch statistics are not finite).
RUNNING_OPTIONS = {
    "keras_decay": (parse_momentum, None),
    "running_var": (parse_running_var, "unbiased"),
    "skip_nonfinite": (parse_bool, False),
}


def running_policy(momentum_or_opts):
    """(momentum, unbiased, skip_nonfinite) from a momentum value or a parsed options dict."""
    if isinstance(momentum_or_opts, dict):
        o = momentum_or_opts
        decay = o.get("keras_decay")
        m = (1.0 - decay) if decay is not None else o["momentum"]
        return m, o.get("running_var", "unbiased") == "unbiased", bool(o.get("skip_nonfinite", False))
    return momentum_or_opts, True, False


REQUIRED = object()  # default marker for an option without a default


def parse_options(method, options, spec):
    """Validate ``options`` against ``spec`` ({key: (parser, default)}).

    Returns a dict with every key of ``spec``. Unknown keys and missing required
    options raise ValueError.
    """
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ValueError("%s: options must be a dict, got %s" % (method, type(options).__name__))
    out = {}
    for key in options:
        if key not in spec:
            raise ValueError("%s: unknown option %r (known: %s)"
                             % (method, key, ", ".join(sorted(spec))))
    for key, (parser, default) in spec.items():
        if key in options:
            out[key] = parser(method, key, options[key])
        elif default is REQUIRED:
            raise ValueError("%s: option %s is required" % (method, key))
        else:
            out[key] = default
    return out


def momentum_factor(momentum, num_batches_tracked):
    """The factor m in ``running = (1 - m) * running + m * batch``.

    ``num_batches_tracked`` is the counter *after* it was incremented for this step;
    ``momentum=None`` gives PyTorch's cumulative average ``1 / num_batches_tracked``.
    """
    if momentum is None:
        return 1.0 / float(num_batches_tracked)
    return float(momentum)


def update_running(running_mean, running_var, num_batches_tracked, batch_mean,
                   batch_var_unbiased, momentum):
    """One running-statistics step. Returns new (running_mean, running_var, count)."""
    nbt = int(num_batches_tracked) + 1
    m = momentum_factor(momentum, nbt)
    new_mean = (1.0 - m) * running_mean + m * batch_mean
    new_var = (1.0 - m) * running_var + m * batch_var_unbiased
    return new_mean, new_var, nbt


# --------------------------------------------------------------------------- arrays

def check_mode(method, mode):
    if not isinstance(mode, str) or mode.strip().lower() not in MODES:
        raise ValueError("%s: mode must be 'train' or 'eval', got %r" % (method, mode))
    return mode.strip().lower()


def as_float64(method, what, value):
    """Any floating array-like -> a fresh float64 ndarray (integer/bool/complex rejected)."""
    try:
        a = np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError("%s: %s is not an array: %s" % (method, what, exc)) from None
    if a.dtype.kind != "f":
        raise ValueError("%s: %s must be a floating-point array, got dtype %s"
                         % (method, what, a.dtype))
    return np.array(a, dtype=np.float64, order="C", copy=True)


def check_input(method, x, min_rank, max_rank=5):
    x = as_float64(method, "input", x)
    if not min_rank <= x.ndim <= max_rank:
        if min_rank >= 3:
            need = "at least one spatial axis: rank %d..%d, (N,C,L) .. (N,C,D,H,W)" % (
                min_rank, max_rank)
        else:
            need = "rank %d..%d, (N,C) .. (N,C,D,H,W)" % (min_rank, max_rank)
        raise ValueError("%s: input has rank %d, shape %s; needs %s"
                         % (method, x.ndim, x.shape, need))
    if x.size == 0:
        raise ValueError("%s: empty input, shape %s" % (method, x.shape))
    return x


def fit_shape(method, what, value, shape):
    """float64 array of exactly ``shape``; a shape differing only by size-1 axes is
    reshaped, anything else raises ValueError."""
    a = as_float64(method, what, value)
    shape = tuple(int(s) for s in shape)
    if a.shape == shape:
        return a
    if [d for d in a.shape if d != 1] == [d for d in shape if d != 1]:
        return a.reshape(shape)
    raise ValueError("%s: %s has shape %s, expected %s" % (method, what, a.shape, shape))


def collect(method, kind, given, specs, hint=""):
    """Fill named arrays from ``given`` (dict or None) according to ``specs``:
    {name: (shape, default_array)}. Unknown names raise ValueError."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ValueError("%s: %ss must be a dict, got %s" % (method, kind, type(given).__name__))
    for name in given:
        if name not in specs:
            known = ", ".join(specs) if specs else "none"
            raise ValueError("%s: unknown %s %r (expected: %s)%s"
                             % (method, kind, name, known, hint))
    out = {}
    for name, (shape, default) in specs.items():
        v = given.get(name)
        if v is None:
            out[name] = np.array(np.broadcast_to(np.asarray(default, np.float64), shape))
        else:
            out[name] = fit_shape(method, "%s %s" % (kind, name), v, shape)
    return out


def parse_count(method, value):
    """num_batches_tracked: a non-negative integer (python int, numpy integer, or a
    size-1 integer array)."""
    if value is None:
        return 0
    if isinstance(value, np.ndarray):
        if value.size != 1 or value.dtype.kind not in "iu":
            raise ValueError("%s: buffer num_batches_tracked must be one integer, got %r"
                             % (method, value))
        value = value.reshape(()).item()
    if _is_bool(value) or not isinstance(value, (int, np.integer)):
        raise ValueError("%s: buffer num_batches_tracked must be an integer, got %r"
                         % (method, value))
    if value < 0:
        raise ValueError("%s: buffer num_batches_tracked must be >= 0, got %r" % (method, value))
    return int(value)


def running_buffers(method, buffers, channels, track):
    """running_mean (C,) zeros, running_var (C,) ones, num_batches_tracked 0.

    Returns None when the layer does not track (then passing buffers is an error)."""
    if not track:
        if buffers:
            raise ValueError("%s: buffers %s given but track_running_stats is false"
                             % (method, ", ".join(sorted(buffers))))
        return None
    buffers = dict(buffers or {})
    count = parse_count(method, buffers.pop("num_batches_tracked", None))
    specs = {"running_mean": ((channels,), 0.0), "running_var": ((channels,), 1.0)}
    for name in buffers:
        if name not in specs:
            raise ValueError("%s: unknown buffer %r (expected: running_mean, running_var, "
                             "num_batches_tracked)" % (method, name))
    out = collect(method, "buffer", buffers, specs)
    out["num_batches_tracked"] = count
    return out


def no_buffers(method, buffers):
    if buffers:
        raise ValueError("%s: has no buffers, got %s" % (method, ", ".join(sorted(buffers))))


def check_grad_output(method, grad_output, x):
    if grad_output is None:
        return None
    gy = as_float64(method, "grad_output", grad_output)
    if gy.shape != x.shape:
        raise ValueError("%s: grad_output has shape %s, input has shape %s"
                         % (method, gy.shape, x.shape))
    return gy


def bc(v, ndim):
    """Per-channel vector (C,) -> shape (1, C, 1, ...) broadcasting against rank ``ndim``."""
    return np.reshape(v, (1, -1) + (1,) * (ndim - 2))


def channel_axes(ndim):
    """Every axis but the channel axis 1."""
    return (0,) + tuple(range(2, ndim))


def spatial_size(shape):
    return int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1


def standardize(v, axes, eps):
    """(v - mean) / sqrt(var + eps) over ``axes`` with the biased variance.

    Returns xhat, mean, var, inv (the statistics with keepdims=True)."""
    mean = v.mean(axis=axes, keepdims=True)
    d = v - mean
    var = (d * d).mean(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    return d * inv, mean, var, inv


def standardize_backward(gxhat, xhat, inv, axes):
    """Gradient of xhat = standardize(v) w.r.t. v, through the batch statistics:
    dv = inv * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat))."""
    m1 = gxhat.mean(axis=axes, keepdims=True)
    m2 = (gxhat * xhat).mean(axis=axes, keepdims=True)
    return inv * (gxhat - m1 - xhat * m2)
