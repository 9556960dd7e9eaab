"""End-to-end: `normlab parity` and Python plugins through the real binary."""
import importlib.util
import json
import os

import numpy as np

from cli_helpers import ROOT, close, run, save

RMS = os.path.join(ROOT, "python", "plugins", "rms_norm.py")
BROKEN = os.path.join(ROOT, "python", "tests", "broken_plugins")
METHODS = ["batch_norm", "batch_renorm", "group_norm", "layer_norm", "instance_norm", "filter_response_norm"]


def test_parity_all_builtins_json():
    res = run(["parity", "--cases", "50", "--seed", "4", "--json"])
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    report = json.loads(res.stdout)
    assert [m["method"] for m in report["methods"]][:len(METHODS)] == METHODS
    for m in report["methods"]:
        assert m["cases"] == 50 and m["failed"] == 0
        # a method computing in float64 and rounding once may match the float32 reference copy exactly
        assert 0 <= m["max_rel_error"] < 1e-4 and m["max_abs_error"] >= 0 and m["worst_case"]
        # float64-internal methods may match exactly; sensitivity is tested with a perturbed
        # reference in Tests/NormParityTests
        assert m["max_rel_error"] > 0 or m["method"] not in METHODS[:6]


def test_parity_table_and_selection():
    res = run(["parity", "--methods", "bn,GN", "--cases", "5"])
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:7] == ["method", "cases", "failed", "skipped", "max_abs_error", "max_rel_error", "worst_case"]
    assert [l.split()[0] for l in lines[2:4]] == ["batch_norm", "group_norm"]
    bad = run(["parity", "--methods", "nope"])
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1


def test_parity_fails_for_a_plugin_that_disagrees_with_its_reference(tmp_path):
    wrong = tmp_path / "rms_wrong.py"
    wrong.write_text(open(RMS).read().replace('self.eps = float(options["eps"])', 'self.eps = float(options["eps"]) + 1e-2'))
    res = run(["parity", "--plugin", wrong, "--methods", "rms_norm_py", "--cases", "5"])
    assert res.returncode == 1
    assert "MISMATCH" in res.stdout


def _rms_module():
    spec = importlib.util.spec_from_file_location("rms_plugin_for_test", RMS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rms_plugin_list_describe_apply_parity(tmp_path):
    assert "rms_norm_py" in run(["list", "--plugin", RMS]).stdout
    desc = run(["describe", "RMS_NORM_PY", "--plugin", RMS])
    assert desc.returncode == 0 and "eps" in desc.stdout and "Zhang" in desc.stdout
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    gy = rng.standard_normal((3, 4, 5)).astype(np.float32)
    w = rng.standard_normal(4).astype(np.float32)
    out = tmp_path / "o"
    res = run(["apply", "rms_norm_py", "--plugin", RMS, "--input", save(tmp_path, "x.npy", x), "--grad-output",
               save(tmp_path, "g.npy", gy), "--weight", save(tmp_path, "w.npy", w), "--set", "eps=0.01", "--out", out])
    assert res.returncode == 0, res.stderr
    ref = _rms_module().reference(x, "train", gy, {"weight": w}, {}, {"eps": 0.01})
    assert sorted(os.listdir(out)) == ["grad_input.npy", "grad_weight.npy", "output.npy"]
    for k in ("output", "grad_input", "grad_weight"):
        close(np.load(out / (k + ".npy")), ref[k])
    res = run(["parity", "--plugin", RMS, "--methods", "rms_norm_py", "--cases", "50", "--json"])
    assert res.returncode == 0, res.stdout[-1000:]
    assert json.loads(res.stdout)["methods"][0]["cases"] == 50


def test_plugin_directory_from_environment(tmp_path):
    env_dir = os.path.join(ROOT, "python", "plugins")
    import subprocess
    from cli_helpers import normlab_binary
    res = subprocess.run([normlab_binary(), "list"], capture_output=True, text=True,
                         env=dict(os.environ, NORMLAB_PLUGIN_PATH=env_dir))
    assert res.returncode == 0 and "rms_norm_py" in res.stdout


def test_broken_plugins_give_one_line_errors(tmp_path):
    x = save(tmp_path, "x.npy", np.ones((2, 3, 4), np.float32))
    cases = [("syntax_error.py", "anything", "SyntaxError"), ("hangs.py", "anything", "no Layer class"),
             ("raises.py", "raises_plugin", "deliberate failure"), ("wrong_shape.py", "wrong_shape", "shape"),
             ("wrong_dtype.py", "wrong_dtype", "dtype"), ("missing.py", "anything", "not found")]
    for file, method, message in cases:
        out = tmp_path / ("o_" + file)
        res = run(["apply", method, "--plugin", os.path.join(BROKEN, file), "--input", x, "--out", out], timeout=60)
        assert res.returncode == 1, (file, res)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (file, res.stderr)
        assert not out.exists()
