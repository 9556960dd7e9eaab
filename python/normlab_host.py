"""The Python side of normlab's embedded interpreter.

Swift (NormPython) imports this module and calls only the functions below; they load plugin
files, validate everything a plugin returns (so the Swift side gets clean float32 arrays or a
one-line PluginError), and run float64 references (normref for built-ins, a plugin's own
``reference`` function for custom methods).
"""
import importlib.util
import os
import sys
import traceback

import numpy as np

import normref


class PluginError(Exception):
    """A plugin broke the contract; the message is one line naming plugin and problem."""


# Plugin code runs inside normlab's process, so it must not take over the process:
# - stdout belongs to normlab (`train --json` prints exactly one JSON object there), so
#   everything Python prints goes to stderr instead;
# - os._exit (and posix._exit) would end normlab at once with the plugin's status and no
#   message; they raise a PluginError naming the plugin instead (sys.exit is caught in _guard).
sys.stdout = sys.stderr

_RUNNING = [None]  # name of the plugin whose code is running, for messages


class TimeoutPluginError(PluginError):
    """Raised asynchronously in plugin code that exceeded the per-call time limit."""


_TIME_LIMIT = [None]  # seconds per plugin call, or None


def set_time_limit(seconds):
    """Limits every later call into plugin code to `seconds` (None or 0: no limit).

    A watchdog thread raises TimeoutPluginError in the calling thread when the limit passes
    (PyThreadState_SetAsyncExc). It interrupts Python bytecode, e.g. a `while True:` loop,
    not a single long-running C call (a huge numpy operation ends first)."""
    _TIME_LIMIT[0] = float(seconds) if seconds else None


class _Watchdog:
    """Arms the time limit around one call; thread-safe against the call ending as it fires."""

    def __init__(self, seconds):
        import threading
        self.ident = threading.get_ident()
        self.lock = threading.Lock()
        self.done = False
        self.fired = False
        self.timer = threading.Timer(seconds, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _fire(self):
        import ctypes
        with self.lock:
            if not self.done:
                self.fired = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.ident), ctypes.py_object(TimeoutPluginError))

    def disarm(self):
        import ctypes
        self.timer.cancel()
        with self.lock:
            self.done = True
            if self.fired:  # not raised yet if the call ended just as the limit passed: drop it
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.ident), None)


def _call_limited(fn, *args):
    if _TIME_LIMIT[0] is None:
        return fn(*args)
    watchdog = _Watchdog(_TIME_LIMIT[0])
    try:
        return fn(*args)
    finally:
        watchdog.disarm()


def _time_limit_text():
    return "exceeded the time limit of %g s per call (--plugin-timeout)" % _TIME_LIMIT[0]


def _refuse_exit(status=0, *args):
    raise PluginError("plugin %s: called os._exit(%s); a plugin must not end normlab's process"
                      % (_RUNNING[0] or "?", status))


os._exit = _refuse_exit
try:
    import posix
    posix._exit = _refuse_exit
except ImportError:  # pragma: no cover - not on POSIX
    pass


_PLUGINS = {}  # canonical name -> module

_OPTION_TYPES = ("real", "integer", "bool", "choice")


def _one_line(text):
    return " ".join(str(text).split())


def _describe_exception(e):
    if isinstance(e, SyntaxError):
        return "SyntaxError: %s (%s, line %s)" % (e.msg, os.path.basename(e.filename or "?"), e.lineno)
    return "%s: %s" % (type(e).__name__, _one_line(e))


def load_plugin(path):
    """Load a plugin file; returns its descriptor as plain data:
    {name, aliases, summary, reference, ranks: [lo, hi], has_reference, options: [
    {name, type, default, min, max, choices, help}]}."""
    label = os.path.basename(path)
    if not os.path.isfile(path):
        raise PluginError("plugin file %s: not found" % path)
    mod_name = "normlab_plugin_" + "".join(c if c.isalnum() else "_" for c in os.path.splitext(label)[0])
    _RUNNING[0] = "file " + label
    try:
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        _call_limited(spec.loader.exec_module, module)
    except TimeoutPluginError:
        raise PluginError("plugin file %s: loading %s" % (label, _time_limit_text()))
    except PluginError:
        raise
    except SystemExit as e:
        raise PluginError("plugin file %s: called sys.exit(%s) while loading" % (label, e.code))
    except Exception as e:  # noqa: BLE001 - any failure of user code becomes a PluginError
        raise PluginError("plugin file %s: %s" % (label, _describe_exception(e)))
    finally:
        _RUNNING[0] = None
    desc = getattr(module, "NORMLAB_PLUGIN", None)
    if not isinstance(desc, dict):
        raise PluginError("plugin file %s: no NORMLAB_PLUGIN dict describing the method" % label)
    name = desc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PluginError("plugin file %s: NORMLAB_PLUGIN['name'] must be a non-empty string" % label)
    if not isinstance(getattr(module, "Layer", None), type):
        raise PluginError("plugin %s (%s): defines no Layer class" % (name, label))
    options = []
    for key, spec_ in (desc.get("options") or {}).items():
        if not isinstance(spec_, dict) or spec_.get("type") not in _OPTION_TYPES:
            raise PluginError("plugin %s: option %r needs a dict with type one of %s" % (name, key, ", ".join(_OPTION_TYPES)))
        options.append({
            "name": str(key), "type": spec_["type"], "default": spec_.get("default"),
            "min": spec_.get("min"), "max": spec_.get("max"),
            "choices": [str(c) for c in spec_.get("choices", [])], "help": str(spec_.get("help", "")),
            "samples": list(spec_.get("samples", [])),
        })
    ranks = desc.get("ranks", [2, 5])
    if not (isinstance(ranks, (list, tuple)) and len(ranks) == 2 and 1 <= int(ranks[0]) <= int(ranks[1])):
        raise PluginError("plugin %s: ranks must be [lowest, highest]" % name)
    capabilities = _capabilities(name, desc, {o["name"]: o for o in options})
    _PLUGINS[name.lower()] = module
    return {**capabilities,
        "name": name, "aliases": [str(a) for a in desc.get("aliases", [])],
        "summary": str(desc.get("summary", "")), "reference": str(desc.get("reference", "")),
        "ranks": [int(ranks[0]), int(ranks[1])], "options": options,
        "has_reference": callable(getattr(module, "reference", None)),
    }


_REDUCTIONS = ("batch", "spatial", "channels")


def _capabilities(name, desc, options):
    """What the rest of normlab needs to know about the method (see the plugin contract):
    includes_activation (bool, or the name of a bool option that switches it on),
    running_buffers (buffer names that are running statistics; default: every buffer),
    constraints ({"divides_channels": [option], "divides_batch": [option]}) and reduction
    ("batch", "spatial", "channels" or "groups:OPTION")."""
    act = desc.get("includes_activation", False)
    if isinstance(act, str):
        if options.get(act, {}).get("type") != "bool":
            raise PluginError("plugin %s: includes_activation names %r, which is not a bool option" % (name, act))
    elif not isinstance(act, bool):
        raise PluginError("plugin %s: includes_activation must be true/false or the name of a bool option" % name)
    running = desc.get("running_buffers")
    if running is not None and not (isinstance(running, (list, tuple)) and all(isinstance(b, str) for b in running)):
        raise PluginError("plugin %s: running_buffers must be a list of buffer names" % name)
    constraints = []
    for kind, names in (desc.get("constraints") or {}).items():
        if kind not in ("divides_channels", "divides_batch"):
            raise PluginError("plugin %s: unknown constraint %r (known: divides_channels, divides_batch)" % (name, kind))
        for opt in ([names] if isinstance(names, str) else names):
            if options.get(opt, {}).get("type") != "integer":
                raise PluginError("plugin %s: constraint %s names %r, which is not an integer option" % (name, kind, opt))
            constraints.append([kind, opt])
    reduction = desc.get("reduction")
    if reduction is not None:
        ok = reduction in _REDUCTIONS or (isinstance(reduction, str) and reduction.startswith("groups:")
                                          and options.get(reduction[7:], {}).get("type") == "integer")
        if not ok:
            raise PluginError("plugin %s: reduction must be one of batch, spatial, channels or groups:OPTION" % name)
    return {
        "includes_activation": act if isinstance(act, bool) else None,
        "activation_option": act if isinstance(act, str) else None,
        "running_buffers": None if running is None else list(running),
        "constraints": constraints, "reduction": reduction,
    }


def _plugin(name):
    return _PLUGINS[name.lower()]


def _as_float32(name, what, value, shape=None):
    """The array a plugin handed over, which must be a float32 numpy array (of `shape`).

    Every other dtype is refused, float64 as much as int32: normlab computes in float32 and
    does not narrow silently (a float64 value beyond float32's range would become inf), so
    the plugin says what it means with `.astype(np.float32)`."""
    if not isinstance(value, np.ndarray):
        raise PluginError("plugin %s: %s returned %s, expected a numpy array" % (name, what, type(value).__name__))
    if value.dtype != np.float32:
        raise PluginError("plugin %s: %s returned dtype %s, expected float32 (convert with .astype(np.float32))"
                          % (name, what, value.dtype))
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise PluginError("plugin %s: %s returned shape %s, expected %s" % (name, what, tuple(value.shape), tuple(shape)))
    return np.ascontiguousarray(value, dtype=np.float32)


def _guard(name, what, fn, *args):
    _RUNNING[0] = name
    try:
        return _call_limited(fn, *args)
    except TimeoutPluginError:
        raise PluginError("plugin %s: %s %s" % (name, what, _time_limit_text()))
    except PluginError:
        raise
    except SystemExit as e:
        raise PluginError("plugin %s: %s called sys.exit(%s); a plugin must not end normlab's process" % (name, what, e.code))
    except Exception as e:  # noqa: BLE001
        raise PluginError("plugin %s: %s raised %s" % (name, what, _describe_exception(e)))
    finally:
        _RUNNING[0] = None


def make_layer(name, channels, spatial, options):
    """Build a plugin layer; returns (layer, parameters dict, buffers dict) as float32 arrays."""
    module = _plugin(name)
    layer = _guard(name, "Layer(...)", module.Layer, int(channels), None if spatial is None else list(spatial), dict(options))
    params = getattr(layer, "parameters", {}) or {}
    buffers = getattr(layer, "buffers", {}) or {}
    if not isinstance(params, dict) or not isinstance(buffers, dict):
        raise PluginError("plugin %s: Layer.parameters and Layer.buffers must be dicts of arrays" % name)
    params = {str(k): _as_float32(name, "parameter %r" % k, v) for k, v in params.items()}
    buffers = {str(k): _as_float32(name, "buffer %r" % k, v) for k, v in buffers.items()}
    return layer, params, buffers


def forward(name, layer, x, mode, params, buffers):
    """Run forward; buffers (float32 arrays viewing Swift memory) may be updated in place."""
    y = _guard(name, "forward", layer.forward, x, mode, params, buffers)
    return _as_float32(name, "forward", y, x.shape)


def backward(name, layer, grad_output, params):
    """Run backward; returns (grad_input, {param: grad}) validated against the shapes."""
    out = _guard(name, "backward", layer.backward, grad_output, params)
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
        raise PluginError("plugin %s: backward must return (grad_input, {name: grad})" % name)
    gx = _as_float32(name, "backward", out[0], grad_output.shape)
    grads = {}
    for k, v in out[1].items():
        if k not in params:
            raise PluginError("plugin %s: backward returned a gradient for unknown parameter %r" % (name, k))
        grads[k] = _as_float32(name, "backward gradient %r" % k, v, params[k].shape)
    missing = [k for k in params if k not in grads]
    if missing:
        raise PluginError("plugin %s: backward returned no gradient for parameter %s; return one for every "
                          "parameter in Layer.parameters" % (name, ", ".join(repr(k) for k in missing)))
    return gx, grads


def reference(method, x, mode, grad_output, params, buffers, batches, options):
    """Float64 reference for a built-in (normref) or a plugin with a reference function.
    Returns ({name: float32 array}, batches_tracked or None)."""
    try:
        canonical = normref.canonical_name(method)
    except ValueError:
        canonical = None
    if canonical is not None:
        bufs = dict(buffers)
        if bufs:
            bufs["num_batches_tracked"] = int(batches)
        out = normref.run(canonical, x, mode=mode, grad_output=grad_output, params=params, buffers=bufs, options=options)
    else:
        fn = getattr(_plugin(method), "reference", None)
        if fn is None:
            raise PluginError("plugin %s: has no reference function" % method)
        out = _guard(method, "reference", fn, x, mode, grad_output, params, buffers, options)
        if not isinstance(out, dict):
            raise PluginError("plugin %s: reference must return a dict of arrays" % method)
    n = out.pop("num_batches_tracked", None)
    arrays = {k: np.ascontiguousarray(np.asarray(v, dtype=np.float64), dtype=np.float32) for k, v in out.items()}
    return arrays, (None if n is None else int(n))
