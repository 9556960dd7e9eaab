"""End-to-end reliability checks of the real binary (issue 17): special inputs, overflowing
values, the Python plugin contract, Ctrl-C, divergence, concurrent ablation workers."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cli_helpers import normlab_binary, run, save

HERE = os.path.dirname(os.path.abspath(__file__))


def no_files(directory):
    return not os.path.exists(directory) or os.listdir(directory) == []


# -- item 1: devices and endless inputs ---------------------------------------------------

@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_device_input_is_refused_at_once(tmp_path, device):
    out = tmp_path / "o"
    start = time.monotonic()
    r = run(["apply", "bn", "--input", device, "--out", out], timeout=20)
    assert time.monotonic() - start < 10
    assert r.returncode != 0
    assert "character device" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert no_files(out)
