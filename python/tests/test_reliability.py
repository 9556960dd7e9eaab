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


# -- item 7: a negative number after an option is a value, and its message says so --------

NEGATIVE_CASES = [
    (["train", "--steps", "-1"], "steps must be at least 1, got -1"),
    (["train", "--steps", "1", "--epochs", "-3"], "give --epochs or --steps, not both"),
    (["train", "--epochs", "-3"], "epochs must be at least 1, got -3"),
    (["train", "--steps", "1", "--seed", "-1"], "--seed: the value -1 is negative"),
    (["train", "--steps", "1", "--data-seed", "-2"], "--data-seed: the value -2 is negative"),
    (["train", "--steps", "1", "--lr", "-1"], "learning rate must be finite and >= 0, got -1"),
    (["train", "--steps", "1", "--momentum", "-0.5"], "momentum must be >= 0"),
    (["train", "--steps", "1", "--weight-decay", "-1e-3"], "weight decay must be >= 0"),
    (["train", "--steps", "1", "--depth", "-1"], "depth must be at least 1, got -1"),
    (["train", "--steps", "1", "--width", "-1"], "width must be at least 1, got -1"),
    (["train", "--steps", "1", "--kernel", "-3"], "kernel must be odd and positive"),
    (["train", "--steps", "1", "--width-growth", "-1"], "width growth must be at least 1"),
    (["train", "--steps", "1", "--frozen-stages", "-2"], "frozen_stages must be >= -1, got -2"),
    (["train", "--steps", "1", "--warmup-steps", "-1"], "warm-up steps must be >= 0"),
    (["train", "--steps", "1", "--batch-size", "-2"], "batch size must be at least 1, got -2"),
    (["train", "--steps", "1", "--threads", "-1"], "--threads must be at least 1"),
    (["train", "--steps", "1", "--precise-bn", "-1"], "needs at least 1 batch, got -1"),
    (["train", "--steps", "1", "--inference-stats", "precise", "--inference-batches", "-1"], "needs at least 1 batch, got -1"),
    (["train", "--steps", "1", "--renorm-hold", "-1"], "must be >= 0, got -1"),
    (["train", "--steps", "1", "--renorm-ramp", "-1"], "must be >= 0, got 0, -1"),
    (["ablate", "run", "--preset", "freeze", "--quick", "--runner", "fake", "--jobs", "-1"], "--jobs must be at least 1, got -1"),
    (["ablate", "run", "--preset", "freeze", "--quick", "--runner", "fake", "--threads", "-2"], "--threads must be at least 1, got -2"),
    (["parity", "--cases", "-1"], "--cases must be at least 1, got -1"),
    (["parity", "--seed", "-1"], "--seed: the value -1 is negative"),
    (["bench", "--rounds", "-1"], "--rounds must be between 1 and 100, got -1"),
]


@pytest.mark.parametrize("args,expected", NEGATIVE_CASES, ids=[" ".join(a[-2:]) for a, _ in NEGATIVE_CASES])
def test_negative_option_value_is_named(tmp_path, args, expected):
    if args[0] == "train":
        args = args + ["--dataset", "synthetic", "--quiet"]
    r = subprocess.run([normlab_binary()] + args, capture_output=True, text=True, timeout=120,
                       cwd=str(tmp_path), stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], r.stderr
    assert "Missing value" not in r.stderr
    assert os.listdir(str(tmp_path)) == []


def test_frozen_stages_minus_one_is_accepted():
    r = run(["train", "--dataset", "synthetic", "--steps", "1", "--quiet", "--json", "--frozen-stages", "-1"])
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)


# -- item 2: values that would overflow float32 statistics ---------------------------------

def write_plugin(directory, name, body, parameters="{}"):
    """A plugin file `name.py` whose Layer has `parameters` and the given method bodies."""
    path = os.path.join(str(directory), name + ".py")
    with open(path, "w") as f:
        f.write("import numpy as np\n"
                "NORMLAB_PLUGIN = {'name': %r, 'summary': 'test', 'reference': 'test', 'options': {}, 'ranks': [2, 5]}\n"
                "class Layer:\n"
                "    def __init__(self, channels, spatial, options):\n"
                "        self.parameters = %s\n"
                "        self.buffers = {}\n" % (name, parameters))
        for line in body.strip("\n").splitlines():
            f.write("    " + line + "\n")
    return path


def test_huge_float32_value_in_a_bn_channel_is_refused(tmp_path):
    x = np.random.default_rng(0).standard_normal((8, 3, 4)).astype(np.float32)
    x[2, 1, 3] = -3e38
    out = tmp_path / "o"
    r = run(["apply", "bn", "--input", save(tmp_path, "x.npy", x), "--out", out, "--mode", "train"])
    assert r.returncode == 1
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "x.npy" in line and "-3e+38" in line and "magnitude limit" in line, line
    assert no_files(out)


def test_value_at_the_limit_gives_finite_statistics(tmp_path):
    x = np.random.default_rng(0).standard_normal((64, 2, 40)).astype(np.float32)
    x[5, 0, 7] = -1e17
    out = tmp_path / "o"
    r = run(["apply", "bn", "--input", save(tmp_path, "x.npy", x), "--out", out, "--mode", "train"])
    assert r.returncode == 0, r.stderr
    for name in ("output", "running_mean", "running_var"):
        assert np.all(np.isfinite(np.load(str(out / (name + ".npy"))))), name


@pytest.mark.parametrize("array", ["input", "weight"])
def test_float64_value_beyond_float32_is_refused(tmp_path, array):
    x = np.random.default_rng(1).standard_normal((4, 3, 5))
    w = np.ones(3)
    (x if array == "input" else w)[1] = 1e39
    out = tmp_path / "o"
    r = run(["apply", "bn", "--input", save(tmp_path, "x.npy", x), "--weight", save(tmp_path, "w.npy", w),
             "--out", out])
    assert r.returncode == 1
    line = r.stderr.strip()
    name = "x.npy" if array == "input" else "w.npy"
    assert len(line.splitlines()) == 1 and name in line and "1e+39" in line and "float32" in line, line
    assert no_files(out)


def test_output_that_overflows_from_finite_inputs_is_refused(tmp_path):
    plugin = write_plugin(tmp_path, "blows_up", """
def forward(self, x, mode, params, buffers):
    return (x * np.float32(1e30) * np.float32(1e30)).astype(np.float32)
def backward(self, grad_output, params):
    return grad_output, {}
""")
    out = tmp_path / "o"
    x = np.ones((2, 3), dtype=np.float32)
    r = run(["apply", "blows_up", "--plugin", plugin, "--input", save(tmp_path, "x.npy", x), "--out", out])
    assert r.returncode == 1
    # (numpy's own RuntimeWarning from the plugin may come first on stderr)
    assert r.stderr.strip().splitlines()[-1].startswith("normlab: error: output holds inf"), r.stderr
    assert no_files(out)


# -- item 4: the Python plugin contract -----------------------------------------------------

SCALE_FORWARD = """
def forward(self, x, mode, params, buffers):
    return (x * params["weight"].reshape((1, -1) + (1,) * (x.ndim - 2))).astype(np.float32)
"""
WEIGHT = "{'weight': np.ones(channels, np.float32)}"


def apply_plugin(tmp_path, plugin, name, grad=True, extra=()):
    x = np.random.default_rng(2).standard_normal((4, 3, 5)).astype(np.float32)
    out = tmp_path / "o"
    args = ["apply", name, "--plugin", plugin, "--input", save(tmp_path, "x.npy", x), "--out", out]
    if grad:
        args += ["--grad-output", save(tmp_path, "gy.npy", np.ones_like(x))]
    return run(args + list(extra), timeout=60), out


def test_missing_gradient_for_a_declared_parameter_is_an_error(tmp_path):
    plugin = write_plugin(tmp_path, "no_grad", SCALE_FORWARD + """
def backward(self, grad_output, params):
    return grad_output, {}
""", WEIGHT)
    r, out = apply_plugin(tmp_path, plugin, "no_grad")
    assert r.returncode == 1
    assert r.stderr.strip() == ("normlab: error: plugin no_grad: backward returned no gradient for parameter "
                                "'weight'; return one for every parameter in Layer.parameters"), r.stderr
    assert no_files(out)


def test_missing_gradient_stops_training(tmp_path):
    plugin = write_plugin(tmp_path, "no_grad", SCALE_FORWARD + """
def backward(self, grad_output, params):
    return grad_output, {}
""", WEIGHT)
    r = run(["train", "--dataset", "synthetic", "--steps", "2", "--quiet", "--json", "--norm", "no_grad", "--plugin", plugin])
    assert r.returncode == 1
    assert "no gradient for parameter 'weight'" in r.stderr and r.stdout == "", (r.stdout, r.stderr)


@pytest.mark.parametrize("dtype", ["float64", "float16", "int32"])
def test_forward_must_return_float32(tmp_path, dtype):
    plugin = write_plugin(tmp_path, "wide", """
def forward(self, x, mode, params, buffers):
    return x.astype(np.%s)
def backward(self, grad_output, params):
    return grad_output, {}
""" % dtype)
    r, out = apply_plugin(tmp_path, plugin, "wide", grad=False)
    assert r.returncode == 1
    assert r.stderr.strip() == ("normlab: error: plugin wide: forward returned dtype %s, expected float32 "
                                "(convert with .astype(np.float32))" % dtype), r.stderr
    assert no_files(out)


def test_float64_parameter_is_refused(tmp_path):
    plugin = write_plugin(tmp_path, "wide_param", SCALE_FORWARD + """
def backward(self, grad_output, params):
    return grad_output, {"weight": np.zeros(3, np.float32)}
""", "{'weight': np.ones(channels)}")
    r, out = apply_plugin(tmp_path, plugin, "wide_param")
    assert r.returncode == 1 and "parameter 'weight' returned dtype float64, expected float32" in r.stderr, r.stderr


def test_plugin_prints_go_to_stderr_and_json_stays_one_object(tmp_path):
    plugin = write_plugin(tmp_path, "chatty", """
print("chatty: constructed")
def forward(self, x, mode, params, buffers):
    print("chatty forward", x.shape)
    return x.copy()
def backward(self, grad_output, params):
    print("chatty backward")
    return grad_output.copy(), {}
""")
    r = run(["train", "--dataset", "synthetic", "--steps", "2", "--quiet", "--json", "--norm", "chatty", "--plugin", plugin])
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 1
    assert isinstance(json.loads(r.stdout), dict)
    assert "chatty forward" in r.stderr and "chatty backward" in r.stderr


@pytest.mark.parametrize("call", ["os._exit(0)", "os._exit(3)", "sys.exit(0)", "import posix; posix._exit(0)"])
def test_plugin_that_exits_is_an_error(tmp_path, call):
    plugin = write_plugin(tmp_path, "quitter", """
def forward(self, x, mode, params, buffers):
    import os, sys
    %s
    return x.copy()
def backward(self, grad_output, params):
    return grad_output.copy(), {}
""" % call)
    r, out = apply_plugin(tmp_path, plugin, "quitter", grad=False)
    assert r.returncode == 1, (r.returncode, r.stderr)
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("normlab: error: plugin quitter: ") and "exit" in line, line
    assert no_files(out)


def test_plugin_that_exits_while_loading_is_an_error(tmp_path):
    path = tmp_path / "leaves.py"
    path.write_text("import os\nos._exit(0)\n")
    r = run(["list", "--plugin", path])
    assert r.returncode == 1 and "os._exit(0)" in r.stderr and len(r.stderr.strip().splitlines()) == 1, (r.returncode, r.stderr)


# -- item 3: Ctrl-C and the plugin time limit ----------------------------------------------

SPIN = """
def forward(self, x, mode, params, buffers):
    open(%r, "w").close()
    while True:
        pass
def backward(self, grad_output, params):
    return grad_output, {}
"""


def start(args, env=None, cwd=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.Popen([normlab_binary()] + [str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env, cwd=cwd, stdin=subprocess.DEVNULL)


def wait_for(predicate, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def interrupt(process, after=None):
    """Sends SIGINT (once `after()` holds); returns (status, stderr, seconds it took to end)."""
    if after is not None:
        assert wait_for(after, 60), "the process never got to the point to interrupt"
    assert process.poll() is None, process.communicate()
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("normlab did not stop within 10 s of Ctrl-C")
    process.captured_stdout = out
    return process.returncode, err, time.monotonic() - sent


def test_ctrl_c_stops_plugin_code(tmp_path):
    marker = tmp_path / "started"
    plugin = write_plugin(tmp_path, "spin", SPIN % str(marker))
    x = save(tmp_path, "x.npy", np.ones((4, 3), np.float32))
    out = tmp_path / "o"
    p = start(["apply", "spin", "--plugin", plugin, "--input", x, "--out", out])
    status, err, took = interrupt(p, after=marker.exists)
    assert status == 130 and err == "normlab: interrupted (Ctrl-C)\n", (status, err)
    assert took < 5 and no_files(out)


def test_ctrl_c_stops_training(tmp_path):
    p = start(["train", "--dataset", "synthetic", "--steps", "100000", "--json"])
    time.sleep(2)
    status, err, took = interrupt(p)
    assert status == 130 and err.strip().splitlines()[-1] == "normlab: interrupted (Ctrl-C)", (status, err)
    assert p.captured_stdout == "" and took < 5


def test_ctrl_c_stops_bench(tmp_path):
    p = start(["bench", "--quick", "--quiet"], cwd=str(tmp_path))
    time.sleep(1.5)
    status, err, took = interrupt(p)
    assert status == 130 and err.strip().splitlines()[-1] == "normlab: interrupted (Ctrl-C)", (status, err)
    assert took < 5


def ablate_status(store):
    r = run(["ablate", "status", "--store", store])
    assert r.returncode == 0, r.stderr
    line = [l for l in r.stdout.splitlines() if l.strip().startswith("runs:")][0]
    return int(line.split()[1].split("/")[0]), int(line.split()[1].split("/")[1])


def test_ctrl_c_in_ablate_keeps_finished_runs(tmp_path):
    store = tmp_path / "s.sqlite"
    args = ["ablate", "run", "--preset", "freeze", "--quick", "--runner", "fake", "--store", store, "--no-report"]
    p = start(args, env={"NORMLAB_FAKE_SLEEP": "0.3"})
    def two_stored():
        r = run(["ablate", "status", "--store", store])   # fails until the study is registered
        return r.returncode == 0 and ablate_status(store)[0] >= 2
    status, err, took = interrupt(p, after=lambda: store.exists() and two_stored())
    assert status == 130, (status, err)
    assert err.strip().splitlines()[-1].startswith("normlab: interrupted (Ctrl-C); every finished run is stored in ")
    assert took < 5
    stored, planned = ablate_status(store)
    assert 2 <= stored < planned
    again = run(args)
    assert again.returncode == 0, again.stderr
    assert ablate_status(store) == (planned, planned)


def test_plugin_time_limit(tmp_path):
    plugin = write_plugin(tmp_path, "spin", SPIN % str(tmp_path / "started"))
    x = save(tmp_path, "x.npy", np.ones((4, 3), np.float32))
    out = tmp_path / "o"
    start_time = time.monotonic()
    r = run(["apply", "spin", "--plugin", plugin, "--plugin-timeout", "0.5", "--input", x, "--out", out], timeout=30)
    assert time.monotonic() - start_time < 10
    assert r.returncode == 1
    assert r.stderr.strip() == "normlab: error: plugin spin: forward exceeded the time limit of 0.5 s per call (--plugin-timeout)"
    assert no_files(out)


def test_plugin_time_limit_lets_quick_calls_through(tmp_path):
    plugin = os.path.join(os.path.dirname(HERE), "plugins", "rms_norm.py")
    r = run(["train", "--dataset", "synthetic", "--steps", "3", "--quiet", "--json", "--norm", "rms_norm_py",
             "--plugin", plugin, "--plugin-timeout", "30"])
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)


# -- item 5: divergence ---------------------------------------------------------------------

def test_huge_learning_rate_is_flagged_diverged_with_its_step():
    r = run(["train", "--dataset", "synthetic", "--lr", "1000", "--steps", "60", "--quiet", "--json"])
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["diverged"] is True
    assert isinstance(d["diverged_at_step"], int) and 0 < d["diverged_at_step"] < 60
    assert float(d["divergence_loss"]) > 1000


def test_normal_run_is_not_diverged():
    r = run(["train", "--dataset", "synthetic", "--steps", "60", "--quiet", "--json"])
    d = json.loads(r.stdout)
    assert d["diverged"] is False and d["diverged_at_step"] is None


# -- item 6: concurrent ablate processes on one store ---------------------------------------

def ran_count(stderr):
    line = [l for l in stderr.splitlines() if ": ran " in l][-1]
    return int(line.split(": ran ")[1].split()[0])


def test_two_ablate_processes_share_one_store(tmp_path):
    store = tmp_path / "s.sqlite"
    args = ["ablate", "run", "--preset", "freeze", "--quick", "--runner", "fake", "--store", store, "--no-report"]
    first = run(args + ["--dry-run"])
    assert first.returncode == 0, first.stderr
    planned = int(first.stdout.split(" runs")[0].split("= ")[-1])
    env = {"NORMLAB_FAKE_SLEEP": "0.4"}   # 16 runs: several seconds, so the second process surely joins
    a = start(args, env=env)
    time.sleep(0.3)
    b = start(args + ["--jobs", "2"], env=env)
    out_a, err_a = a.communicate(timeout=120)
    out_b, err_b = b.communicate(timeout=120)
    assert a.returncode == 0 and b.returncode == 0, (err_a, err_b)
    ran_a, ran_b = ran_count(err_a), ran_count(err_b)
    assert ran_a + ran_b == planned, (ran_a, ran_b, planned)   # each run executed exactly once
    assert ran_a > 0 and ran_b > 0
    assert ablate_status(store) == (planned, planned)


def claim_count(store):
    import sqlite3
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(str(store), timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM claims").fetchone()[0]
    except sqlite3.OperationalError:   # not created yet
        return 0


def test_runs_of_a_killed_worker_are_recovered(tmp_path):
    store = tmp_path / "s.sqlite"
    args = ["ablate", "run", "--preset", "freeze", "--quick", "--runner", "fake", "--store", store, "--no-report"]
    victim = start(args, env={"NORMLAB_FAKE_SLEEP": "30"})   # claims its first run, then sleeps in it
    assert wait_for(lambda: claim_count(store) == 1, 30)
    victim.kill()
    victim.communicate()
    start_time = time.monotonic()
    r = run(args, timeout=120)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - start_time < 30    # the dead worker's claim is taken over at once
    stored, planned = ablate_status(store)
    assert stored == planned and claim_count(store) == 0
