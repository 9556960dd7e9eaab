"""End-to-end checks of `normlab apply` against the float64 reference (apply-contract.md).

Each case writes .npy inputs, runs the real binary, and compares every output file (values,
gradients, running statistics) and the exact set of files written.
"""
import os

import numpy as np
import pytest

import normref
from cli_helpers import close, run, save

SHAPES = {2: (6, 4), 3: (3, 4, 5), 4: (2, 4, 3, 5), 5: (2, 4, 2, 3, 2)}


def make_case(rng, method, rank, mode, grad, opts, params=None, buffers=None, dtype=np.float32, shift=0.0):
    shape = SHAPES[rank]
    x = (rng.standard_normal(shape) * 2 + 0.5 + shift).astype(dtype)
    gy = rng.standard_normal(shape).astype(np.float32) if grad else None
    return dict(method=method, x=x, mode=mode, gy=gy, opts=opts, params=params or {}, buffers=buffers or {})


def run_case(tmp_path, case):
    d = tmp_path / "in"
    d.mkdir(exist_ok=True)
    out = tmp_path / "out"
    args = ["apply", case["method"], "--input", save(d, "x.npy", case["x"]), "--out", out, "--mode", case["mode"]]
    if case["gy"] is not None:
        args += ["--grad-output", save(d, "gy.npy", case["gy"])]
    for name, value in case["params"].items():
        path = save(d, name + ".npy", value)
        if name in ("weight", "bias"):
            args += ["--" + name, path]
        else:
            args += ["--param", "%s=%s" % (name, path)]
    for name, value in case["buffers"].items():
        args += ["--" + name.replace("_", "-"), save(d, name + ".npy", value)]
    for k, v in case["opts"].items():
        args += ["--set", "%s=%s" % (k, "none" if v is None else str(v).lower())]
    res = run(args)
    assert res.returncode == 0, res.stderr
    ref = normref.run(case["method"], case["x"], mode=case["mode"], grad_output=case["gy"],
                      params=case["params"], buffers=case["buffers"], options=case["opts"])
    expected_files = {k + ".npy" for k in ref if k not in ("num_batches_tracked", "r", "d")}
    assert set(os.listdir(out)) == expected_files
    for key in expected_files:
        got = np.load(out / key)
        assert got.dtype == np.float32
        close(got, ref[key[:-4]])
    return ref


def cases():
    rng = np.random.default_rng(7)
    c = []
    for mode in ("train", "eval"):
        for rank in (2, 3, 4, 5):
            C = SHAPES[rank][1]
            rm = rng.standard_normal(C).astype(np.float32)
            rv = (rng.random(C) + 0.5).astype(np.float32)
            w = rng.standard_normal(C).astype(np.float32)
            b = rng.standard_normal(C).astype(np.float32)
            c.append(make_case(rng, "bn", rank, mode, True, {}, {"weight": w, "bias": b}, {"running_mean": rm, "running_var": rv}))
            c.append(make_case(rng, "BatchNorm" if False else "Batch_Norm", rank, mode, True, {"momentum": None, "eps": 0.01}))
            c.append(make_case(rng, "bn", rank, mode, True, {"track_running_stats": False, "affine": False}))
            c.append(make_case(rng, "brn", rank, mode, True, {"r_max": 1.5, "d_max": 0.5}, {"weight": w, "bias": b},
                               {"running_mean": rm, "running_var": rv}))
            c.append(make_case(rng, "gn", rank, mode, True, {"num_groups": 2}, {"weight": w, "bias": b}))
            c.append(make_case(rng, "ln", rank, mode, True, {"eps": 0.1},
                               {"weight": rng.standard_normal(SHAPES[rank][1:]).astype(np.float32)}))
            if rank >= 3:
                c.append(make_case(rng, "in", rank, mode, True, {}))
                c.append(make_case(rng, "in", rank, mode, True, {"affine": True, "track_running_stats": True, "momentum": 0.3},
                                   {"weight": w, "bias": b}, {"running_mean": rm, "running_var": rv}))
                c.append(make_case(rng, "frn", rank, mode, True, {}, {"weight": w, "bias": b, "tau": rng.standard_normal(C).astype(np.float32) * 0.3}))
                c.append(make_case(rng, "FRN", rank, mode, True, {"learnable_eps": True, "tlu": False},
                                   {"eps": np.array([0.05], np.float32)}))
    # normlab's running-stat extensions
    c.append(make_case(rng, "bn", 3, "train", True, {"keras_decay": 0.9}))
    c.append(make_case(rng, "brn", 4, "train", True, {"running_var": "biased", "momentum": 0.5}))
    c.append(make_case(rng, "in", 3, "train", False, {"track_running_stats": True, "momentum": None, "running_var": "biased"}))
    # mean >> std, float64 input, size-1-axis parameter shapes
    c.append(make_case(rng, "bn", 4, "train", True, {}, shift=1000.0))
    c.append(make_case(rng, "gn", 4, "train", True, {"num_groups": 4}, shift=1000.0, dtype=np.float64))
    c.append(make_case(rng, "bn", 4, "train", True, {}, {"weight": np.full((1, 4, 1, 1), 2.0, np.float32)}))
    c.append(make_case(rng, "frn", 4, "train", True, {"learnable_eps": True}, {"eps": np.float32(0.1)}))
    return c


CASES = cases()


@pytest.mark.parametrize("index", range(len(CASES)))
def test_apply_matches_reference(tmp_path, index):
    run_case(tmp_path, CASES[index])


def test_frn_one_by_one_spatial(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 1, 1)).astype(np.float32)
    run_case(tmp_path, dict(method="frn", x=x, mode="train", gy=np.ones_like(x), opts={"learnable_eps": True},
                            params={}, buffers={}))


def bad(tmp_path, args, expect):
    out = tmp_path / "out"
    res = run(["apply"] + args + ["--out", out])
    assert res.returncode not in (0,) and res.returncode > 0, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert expect.lower() in lines[0].lower(), lines[0]
    assert not out.exists() or os.listdir(out) == []
    return lines[0]


def test_bad_inputs(tmp_path):
    rng = np.random.default_rng(0)
    x = save(tmp_path, "x.npy", rng.standard_normal((2, 4, 3)).astype(np.float32))
    bad(tmp_path, ["nope", "--input", x], "unknown normalization method")
    bad(tmp_path, ["bn", "--input", x, "--set", "colour=red"], "unknown option 'colour'")
    bad(tmp_path, ["bn", "--input", x, "--set", "eps=abc"], "invalid value 'abc'")
    bad(tmp_path, ["bn", "--input", x, "--set", "momentum=2"], "momentum")
    bad(tmp_path, ["gn", "--input", x, "--set", "num_groups=3"], "not divisible")
    bad(tmp_path, ["gn", "--input", x], "num_groups")
    bad(tmp_path, ["gn", "--input", x, "--set", "num_groups=0"], "num_groups")
    bad(tmp_path, ["bn", "--input", x, "--mode", "test"], "--mode")
    bad(tmp_path, ["bn", "--input", str(tmp_path / "missing.npy")], "not found")
    bad(tmp_path, ["bn", "--input", x, "--weight", save(tmp_path, "w.npy", np.ones(3, np.float32))], "weight")
    bad(tmp_path, ["bn", "--input", x, "--grad-output", save(tmp_path, "g.npy", np.ones((2, 4), np.float32))], "grad")
    bad(tmp_path, ["in", "--input", save(tmp_path, "x2.npy", np.ones((2, 4), np.float32))], "rank")
    bad(tmp_path, ["bn", "--input", save(tmp_path, "one.npy", np.ones((1, 4), np.float32))], "more than 1 value")
    bad(tmp_path, ["bn", "--input", save(tmp_path, "empty.npy", np.ones((0, 4), np.float32))], "empty batch")
    bad(tmp_path, ["bn", "--input", save(tmp_path, "int.npy", np.ones((2, 4), np.int64))], "integer")
    trunc = tmp_path / "trunc.npy"
    np.save(trunc, np.ones((8, 4), np.float32))
    trunc.write_bytes(trunc.read_bytes()[:-7])
    bad(tmp_path, ["bn", "--input", str(trunc)], "truncated")
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"hello world")
    bad(tmp_path, ["bn", "--input", str(junk)], "npy")
    bad(tmp_path, ["bn", "--input", x, "--param", "tau=" + save(tmp_path, "t.npy", np.ones(4, np.float32))], "tau")
    bad(tmp_path, ["gn", "--input", x, "--set", "num_groups=2", "--running-mean", save(tmp_path, "rm.npy", np.ones(4, np.float32))], "running_mean")
    bad(tmp_path, ["bn", "--input", x, "--bogus", "1"], "bogus")
    bad(tmp_path, ["bn", "--input", x, "--set", "momentum=0.1", "--set", "keras_decay=0.9"], "not both")
    bad(tmp_path, ["bn", "--input", x, "--param", "weight"], "--param")


def test_case_insensitive_names_and_aliases(tmp_path):
    x = save(tmp_path, "x.npy", np.random.default_rng(1).standard_normal((3, 2, 4)).astype(np.float32))
    for name in ("BN", "Batch_Norm", "batch_norm", "bn"):
        res = run(["apply", name, "--input", x, "--out", tmp_path / name])
        assert res.returncode == 0, res.stderr
        assert sorted(os.listdir(tmp_path / name)) == ["output.npy", "running_mean.npy", "running_var.npy"]


def test_eval_writes_no_running_stats_and_existing_dir_is_used(tmp_path):
    x = save(tmp_path, "x.npy", np.random.default_rng(1).standard_normal((3, 2, 4)).astype(np.float32))
    out = tmp_path / "existing"
    out.mkdir()
    res = run(["apply", "bn", "--input", x, "--out", out, "--mode", "eval"])
    assert res.returncode == 0, res.stderr
    assert os.listdir(out) == ["output.npy"]


def test_fortran_and_big_endian_inputs(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    ref = normref.run("bn", x)["output"]
    for variant, arr in (("f", np.asfortranarray(x)), ("be", x.astype(">f4")), ("be64", x.astype(">f8"))):
        out = tmp_path / variant
        res = run(["apply", "bn", "--input", save(tmp_path, variant + ".npy", arr), "--out", out])
        assert res.returncode == 0, res.stderr
        close(np.load(out / "output.npy"), ref)


def test_nan_propagates(tmp_path):
    x = np.random.default_rng(2).standard_normal((3, 2, 4)).astype(np.float32)
    x[0, 0, 0] = np.nan
    out = tmp_path / "o"
    res = run(["apply", "bn", "--input", save(tmp_path, "x.npy", x), "--out", out])
    assert res.returncode == 0, res.stderr
    y = np.load(out / "output.npy")
    assert np.isnan(y[:, 0]).all() and np.isfinite(y[:, 1]).all()
