"""normref: independent float64 numpy references for normlab's normalization layers.

Entry point::

    normref.run(method, x, mode="train", grad_output=None, params=None,
                buffers=None, options=None) -> dict

See python/README.md and docs/apply-contract.md for the exact semantics.
Works on numpy 1.24 (Debian's /usr/bin/python3).
"""

import importlib
import pkgutil

import numpy as np

from . import common


def _discover():
    """Every module of this package that defines a method (NAME and apply), ordered by its
    ORDER (then name): a new reference is one new file here, nothing else."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name == "common":
            continue
        mod = importlib.import_module("." + info.name, __name__)
        if hasattr(mod, "NAME") and hasattr(mod, "apply"):
            found.append(mod)
    found.sort(key=lambda m: (getattr(m, "ORDER", 100), m.NAME))
    return {m.NAME: m for m in found}


_MODULES = _discover()

#: canonical method names, in the contract's order
METHODS = tuple(_MODULES)

#: every accepted (lower-case) name -> canonical name
ALIASES = {}
for _m in _MODULES.values():
    ALIASES[_m.NAME] = _m.NAME
    for _a in _m.ALIASES:
        ALIASES[_a] = _m.NAME
del _m, _a

__all__ = ["run", "METHODS", "ALIASES", "canonical_name", "module", "options_spec"]


def canonical_name(method):
    """'BN', 'Batch_Norm', 'bn' -> 'batch_norm' (case-insensitive). ValueError if unknown."""
    if not isinstance(method, str):
        raise ValueError("method name must be a string, got %r" % (method,))
    key = method.strip().lower()
    if key not in ALIASES:
        raise ValueError("unknown method %r (known: %s; aliases: %s)" % (
            method, ", ".join(METHODS),
            ", ".join(sorted(k for k in ALIASES if k not in _MODULES))))
    return ALIASES[key]


def module(method):
    """The reference module of a method (name or alias)."""
    return _MODULES[canonical_name(method)]


def options_spec(method):
    """{option: default} for a method; a required option (GN num_groups) maps to None."""
    return {k: (None if d is common.REQUIRED else d)
            for k, (_, d) in module(method).OPTIONS.items()}


def run(method, x, mode="train", grad_output=None, params=None, buffers=None, options=None):
    """Run one normalization layer forward (and backward when grad_output is given).

    x: float array, channel axis 1, rank 2..5 (IN/FRN: 3..5); converted to float64.
    params: {"weight", "bias", FRN "tau", FRN "eps" (learnable_eps)}, defaults
        ones / zeros / zeros / the eps option. Shapes (C,) (LN: x.shape[1:]); a shape
        differing only by size-1 axes is accepted.
    buffers: {"running_mean", "running_var", "num_batches_tracked"} for tracking
        BN / BRN / IN; defaults zeros / ones / 0.
    options: hyper-parameters (eps, momentum, affine, track_running_stats, num_groups,
        r_max, d_max, tlu, learnable_eps), per method; unknown keys raise ValueError.

    Returns a dict of float64 arrays: "output"; with grad_output "grad_input" and
    "grad_<param>" per learnable parameter; in train mode with tracked running stats
    "running_mean", "running_var" and "num_batches_tracked" (int); BRN train also "r"
    and "d". Bad input raises ValueError.
    """
    name = canonical_name(method)
    mod = _MODULES[name]
    mode = common.check_mode(name, mode)
    if options and options.get("keras_decay") is not None and "momentum" in options:
        raise ValueError("%s: set either momentum (PyTorch convention) or keras_decay (Keras "
                         "convention), not both" % name)
    opts = common.parse_options(name, options, mod.OPTIONS)
    x = common.check_input(name, x, mod.MIN_RANK)
    gy = common.check_grad_output(name, grad_output, x)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return mod.apply(x, mode, gy, params, buffers, opts)
