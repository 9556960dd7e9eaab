"""batch_norm's train_statistics=running (Ioffe 2017, section 2 ablation): the float64
reference and `normlab apply` agree, and the reference behaves as specified (train normalizes
like eval with the pre-step running statistics, constants for the gradient; the batch
statistics still update the running statistics)."""
import os

import numpy as np
import pytest

import normref
from cli_helpers import close, run, save

SHAPES = {2: (6, 4), 3: (3, 4, 5), 4: (2, 4, 3, 5), 5: (2, 4, 2, 3, 2)}
RUNNING = {"train_statistics": "running"}


def _state(rng, C):
    return ({"weight": rng.standard_normal(C).astype(np.float32), "bias": rng.standard_normal(C).astype(np.float32)},
            {"running_mean": rng.standard_normal(C).astype(np.float32),
             "running_var": (rng.random(C) + 0.5).astype(np.float32)})


def _apply(tmp_path, tag, x, mode, gy, opts, params, buffers):
    """Runs `normlab apply bn`; returns (returncode, stderr, {name: array})."""
    d = tmp_path / ("in_" + tag)
    d.mkdir(exist_ok=True)
    out = tmp_path / ("out_" + tag)
    args = ["apply", "bn", "--input", save(d, "x.npy", x), "--out", out, "--mode", mode]
    if gy is not None:
        args += ["--grad-output", save(d, "gy.npy", gy)]
    for name, value in params.items():
        args += ["--" + name, save(d, name + ".npy", value)]
    for name, value in buffers.items():
        args += ["--" + name.replace("_", "-"), save(d, name + ".npy", value)]
    for k, v in opts.items():
        args += ["--set", "%s=%s" % (k, "none" if v is None else str(v).lower())]
    res = run(args)
    got = {f[:-4]: np.load(out / f) for f in os.listdir(out)} if res.returncode == 0 else {}
    return res.returncode, res.stderr, got


def _compare(got, ref):
    expected = {k for k in ref if k not in ("num_batches_tracked",)}
    assert set(got) == expected
    for k in expected:
        assert got[k].dtype == np.float32
        close(got[k], ref[k])


@pytest.mark.parametrize("rank", [2, 3, 4, 5])
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("opts", [{}, {"affine": False}, {"momentum": None}, {"keras_decay": 0.9},
                                  {"running_var": "biased", "eps": 0.01}, {"skip_nonfinite": True}])
def test_apply_matches_reference(tmp_path, rank, mode, opts):
    rng = np.random.default_rng(rank * 100 + len(opts) * 7 + (mode == "eval"))
    shape = SHAPES[rank]
    x = (rng.standard_normal(shape) * 1.5 + 0.7).astype(np.float32)
    gy = rng.standard_normal(shape).astype(np.float32)
    params, buffers = _state(rng, shape[1])
    if opts.get("affine") is False:
        params = {}
    o = dict(opts, **RUNNING)
    code, err, got = _apply(tmp_path, "a", x, mode, gy, o, params, buffers)
    assert code == 0, err
    ref = normref.run("bn", x, mode=mode, grad_output=gy, params=params, buffers=buffers, options=o)
    _compare(got, ref)


def test_apply_trajectory_matches_reference(tmp_path):
    """Three train steps, each reading the previous step's running statistics, then eval."""
    rng = np.random.default_rng(11)
    shape = SHAPES[4]
    params, buffers = _state(rng, shape[1])
    opts = dict(RUNNING, momentum=0.3)
    ref_buffers = {k: v.astype(np.float64) for k, v in buffers.items()}
    for step, mode in enumerate(("train", "train", "train", "eval")):
        x = (rng.standard_normal(shape) * (1 + step) + step).astype(np.float32)
        gy = rng.standard_normal(shape).astype(np.float32)
        code, err, got = _apply(tmp_path, str(step), x, mode, gy, opts, params, buffers)
        assert code == 0, err
        ref = normref.run("bn", x, mode=mode, grad_output=gy, params=params, buffers=ref_buffers, options=opts)
        _compare(got, ref)
        if mode == "train":
            buffers = {k: got[k] for k in ("running_mean", "running_var")}
            ref_buffers = {k: ref[k] for k in ("running_mean", "running_var")}


@pytest.mark.parametrize("rank", [2, 4])
def test_reference_train_running_is_eval_with_constant_statistics(rank):
    rng = np.random.default_rng(rank)
    shape = SHAPES[rank]
    x = rng.standard_normal(shape) * 2 + 1
    gy = rng.standard_normal(shape)
    params, buffers = _state(rng, shape[1])
    tr = normref.run("bn", x, mode="train", grad_output=gy, params=params, buffers=buffers, options=RUNNING)
    ev = normref.run("bn", x, mode="eval", grad_output=gy, params=params, buffers=buffers)
    for k in ("output", "grad_input", "grad_weight", "grad_bias"):
        np.testing.assert_array_equal(tr[k], ev[k])
    # the gradient treats the running statistics as constants
    inv = 1 / np.sqrt(buffers["running_var"].astype(np.float64) + 1e-5)
    bc = (1, -1) + (1,) * (rank - 2)
    np.testing.assert_allclose(tr["grad_input"], gy * (params["weight"] * inv).reshape(bc), rtol=1e-12)
    # the running statistics are updated exactly as with batch statistics
    bt = normref.run("bn", x, mode="train", grad_output=gy, params=params, buffers=buffers)
    for k in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_array_equal(tr[k], bt[k])
    assert not np.allclose(tr["output"], bt["output"])


def test_requires_tracking_and_is_bn_only(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 2)).astype(np.float32)
    code, err, _ = _apply(tmp_path, "untracked", x, "train", None, dict(RUNNING, track_running_stats=False), {}, {})
    assert code > 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "train_statistics=running" in lines[0] and "track_running_stats" in lines[0], err
    with pytest.raises(ValueError, match="track_running_stats"):
        normref.run("bn", x, options=dict(RUNNING, track_running_stats=False))
    with pytest.raises(ValueError, match="batch or running"):
        normref.run("bn", x, options={"train_statistics": "moving"})
    # batch_renorm does not take the option (neither in normlab nor in the reference)
    assert "train_statistics" in normref.options_spec("bn") and "train_statistics" not in normref.options_spec("brn")
    with pytest.raises(ValueError, match="unknown option"):
        normref.run("brn", x, options=RUNNING)
    res = run(["apply", "brn", "--input", save(tmp_path, "x.npy", x), "--out", tmp_path / "brn", "--set", "train_statistics=running"])
    assert res.returncode > 0 and "unknown option 'train_statistics'" in res.stderr
    # brn eval still delegates to bn eval without the option
    normref.run("brn", x, mode="eval")
