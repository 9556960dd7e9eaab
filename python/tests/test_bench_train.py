"""`normlab bench train`: the quick run's table and JSON, and every error path."""
import json
import os
import subprocess
import sys

import pytest

from cli_helpers import ROOT, run

sys.path.insert(0, os.path.join(ROOT, "python"))
import normlab_train_bench  # noqa: E402


def test_quick_run_writes_table_and_json(tmp_path):
    out = tmp_path / "train.json"
    r = run(["bench", "train", "--quick", "--no-frameworks", "--quiet", "--models", "plain-2d",
             "--batch-sizes", "2", "--threads", "1,2", "--save-json", out], timeout=300)
    assert r.returncode == 0, r.stderr
    assert "plain-2d" in r.stdout and "bit-identical" in r.stdout
    assert "Time per step by layer kind" in r.stdout
    report = json.loads(out.read_text())
    assert report["quick"] is True and report["frameworks"] == []
    recs = report["records"]
    assert [(x["model"], x["norm"], x["batch"], x["threads"]) for x in recs] == [
        ("plain-2d", "batch_norm", 2, 1), ("plain-2d", "batch_norm", 2, 2)]
    for x in recs:
        assert x["check"] == "bit-identical"
        assert x["steps_per_second"] > 0
        assert x["images_per_second"] == pytest.approx(2 * x["steps_per_second"])
        assert x["steps_per_second"] == pytest.approx(1e3 / x["timing"]["median"])
        for kind in ("conv", "norm", "activation", "pooling", "linear", "loss", "optimizer"):
            assert x["breakdown"][kind] > 0, kind


def test_steps_times_exactly_that_many_steps():
    r = run(["bench", "train", "--no-frameworks", "--quiet", "--models", "resnet20", "--batch-sizes", "2",
             "--threads", "1", "--steps", "2", "--json"], timeout=300)
    assert r.returncode == 0, r.stderr
    (rec,) = json.loads(r.stdout)["records"]
    assert rec["timing"]["reps"] == 2 and rec["check"] == "bit-identical"
    assert rec["breakdown"]["residual"] > 0 and rec["breakdown"]["conv"] > 0


def test_kernel_bench_is_still_the_default_subcommand():
    r = run(["bench", "--help"])
    assert r.returncode == 0 and "train" in r.stdout and "kernels" in r.stdout


def test_json_flag_norm_list_and_no_breakdown():
    r = run(["bench", "train", "--quick", "--no-frameworks", "--quiet", "--models", "plain-1d",
             "--norm", "gn:num_groups=8,none", "--batch-sizes", "4", "--threads", "1", "--no-breakdown", "--json"], timeout=300)
    assert r.returncode == 0, r.stderr
    recs = json.loads(r.stdout)["records"]
    assert [(x["norm"], x["threads"]) for x in recs] == [("gn:num_groups=8", 1), ("none", 1)]
    assert all("breakdown" not in x for x in recs)


@pytest.mark.parametrize("args,message", [
    (["--models", "resnet9000"], "unknown model 'resnet9000'"),
    (["--norm", "nosuchnorm"], "unknown norm method 'nosuchnorm'"),
    (["--norm", "bn,"], "--norm: empty method name"),
    (["--norm", "gn:num_groups"], "--norm: 'num_groups' in 'gn:num_groups' is not OPTION=VALUE"),
    (["--norm", "gn"], "option 'num_groups' is required"),
    (["--batch-sizes", "0"], "--batch-sizes: '0' is not a batch size"),
    (["--batch-sizes", "two"], "--batch-sizes: 'two' is not a batch size"),
    (["--threads", "0"], "bad thread count '0'"),
    (["--min-seconds", "-1"], "--min-seconds must be in (0, 600]"),
    (["--steps", "0"], "--steps must be between 1 and 1000000"),
    (["--save-json", "/nonexistent-dir/x.json"], "--save-json: directory '/nonexistent-dir' does not exist"),
])
def test_bad_arguments_fail_with_one_line(args, message, tmp_path):
    r = run(["bench", "train", "--quick", "--no-frameworks"] + args)
    assert r.returncode != 0
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stdout == ""


def test_framework_child_reports_unsupported_norm_without_importing_the_framework():
    request = json.dumps({"framework": "torch", "threads": 1, "jobs": [{"model": "plain-2d", "norm": "frn", "batch": 2}],
                          "min_seconds": 0.01, "min_steps": 1, "max_steps": 2})
    p = subprocess.run([sys.executable, normlab_train_bench.__file__], input=request, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [{"error": "norm not implemented on the framework side"}]


def test_available_lists_only_importable_frameworks():
    got = normlab_train_bench.available()
    assert set(got) <= {"torch", "jax"}
    for name in got:
        assert __import__("importlib").util.find_spec(name) is not None
