"""Helpers to drive the real `normlab` binary from pytest."""
import os
import subprocess

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def normlab_binary():
    """The binary under test: $NORMLAB_BIN, else the newest .build/{release,debug}/normlab."""
    env = os.environ.get("NORMLAB_BIN")
    if env:
        return env
    found = [os.path.join(ROOT, ".build", c, "normlab") for c in ("release", "debug")]
    found = [p for p in found if os.path.exists(p)]
    if not found:
        pytest.fail("normlab binary not found: build it (swift build) or set NORMLAB_BIN")
    return max(found, key=os.path.getmtime)


def run(args, timeout=120):
    """Run normlab with args; returns CompletedProcess (text)."""
    return subprocess.run([normlab_binary()] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def save(directory, name, array):
    path = os.path.join(str(directory), name)
    np.save(path, array)
    return path


def close(actual, expected, scale=1.0):
    """float32 result vs float64 reference.

    float32 rounds at 2**-24 ~ 6e-8 relative; the kernels do a handful of float32 roundings
    per element after float64 statistics, and backward formulas cancel terms of size |g|*|w|,
    so errors stay below ~1e-6 * scale. 1e-4 relative to the magnitude of the quantity leaves
    two orders of margin, while every semantic slip (biased vs unbiased, wrong axis, wrong
    momentum, missing term) moves values by far more.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    mag = max(float(np.max(np.abs(expected))) if expected.size else 0.0, 1.0) * scale
    err = np.abs(actual - expected)
    assert np.all(err <= 1e-4 * mag + 1e-4 * np.abs(expected)), "max abs error %g (magnitude %g)" % (err.max(), mag)
