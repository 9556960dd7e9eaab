"""Every preset's quick form through the real command: runs, table, figures, notebook.

Each test also checks the one property its preset is about, where a quick run can show it
(the full runs and their verdicts are in the README and notebooks-export/).
"""
import csv
import re

import nbformat
import pytest

from cli_helpers import run

# preset -> (runs in the quick form, figure stems)
QUICK = {
    "batch-size": (8, ["error-vs-batch", "accuracy"]),
    "learning-rate": (4, ["accuracy", "steps-to-baseline", "accuracy-curves"]),
    "moving-average-training": (3, ["accuracy", "weight-norm-growth", "loss-curves", "weight-norm-curves"]),
    "placement": (4, ["accuracy", "bias-gradient"]),
    "frn-eps": (4, ["accuracy", "loss-curves"]),
    "inference-stats": (3, ["accuracy", "test-loss-vs-batch"]),
}


def quick_runs(tmp_path, preset):
    store = tmp_path / (preset + ".sqlite")
    res = run(["ablate", "--preset", preset, "--quick", "--jobs", "2", "--store", store], timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    expected, figures = QUICK[preset]
    assert "%d/%d runs stored" % (expected, expected) in res.stdout + res.stderr
    report = tmp_path / (preset + "-report")
    with open(report / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == expected
    for stem in figures:
        for ext in ("png", "svg"):
            assert (report / "figures" / ("%s.%s" % (stem, ext))).stat().st_size > 1000, stem
    nbformat.validate(nbformat.read(str(report / (preset + "-quick.ipynb")), as_version=4))
    assert (report / "table.md").read_text().startswith("## %s-quick" % preset)
    return runs


def by(runs, **axes):
    return [r for r in runs if all(r[k] == v for k, v in axes.items())]


def test_every_preset_is_listed():
    res = run(["ablate", "presets"])
    assert res.returncode == 0
    names = [line.split()[0] for line in res.stdout.splitlines() if line.strip()]
    assert names == sorted(["freeze"] + list(QUICK))


def test_batch_size_quick(tmp_path):
    runs = quick_runs(tmp_path, "batch-size")
    assert {r["norm"] for r in runs} == {"bn", "gn(num_groups=4)", "frn", "none"}
    assert {r["batch_size"] for r in runs} == {"4", "32"}
    # lr scaled with the batch size: the same epochs at batch 4 take 8x the steps of batch 32
    steps = {r["batch_size"]: float(r["train_steps"]) for r in by(runs, norm="bn")}
    assert steps["4"] == 8 * steps["32"]
    for r in runs:
        assert abs(float(r["test_error"]) - (1 - float(r["test_accuracy"]))) < 1e-12


def test_learning_rate_quick(tmp_path):
    runs = quick_runs(tmp_path, "learning-rate")
    assert all("steps_to_baseline" in r for r in runs)
    baseline = by(runs, norm="none", lr="0.01")[0]
    assert float(baseline["steps_to_baseline"]) > 0  # the baseline reaches its own mean
    bn_fast = by(runs, norm="bn", lr="0.3")[0]
    assert bn_fast["diverged"] == "false" and float(bn_fast["test_accuracy"]) > 0.5


def test_moving_average_training_quick(tmp_path):
    runs = quick_runs(tmp_path, "moving-average-training")
    assert {r["norm"] for r in runs} == {"bn", "bn(train_statistics=running)", "brn"}
    for r in runs:
        assert float(r["weight_norm_growth"]) > 0


def test_placement_quick(tmp_path):
    runs = quick_runs(tmp_path, "placement")
    before = by(runs, norm_position="before", conv_bias="true")[0]
    after = by(runs, norm_position="after", conv_bias="true")[0]
    # BN paper 3.2: a bias before train-mode BN is cancelled, its gradient is rounding noise
    assert float(before["conv_bias_grad_rms"]) < 1e-6
    assert float(after["conv_bias_grad_rms"]) > 1e-4
    assert by(runs, conv_bias="false")[0]["conv_bias_grad_rms"] in ("", "nan")


def test_frn_eps_quick(tmp_path):
    runs = quick_runs(tmp_path, "frn-eps")
    assert float(by(runs, norm="bn")[0]["test_accuracy"]) > 0.8
    fixed = float(by(runs, norm="frn(learnable_eps=false, eps=0.01)")[0]["test_accuracy"])
    learned = float(by(runs, norm="frn(learnable_eps=true, eps=0.01)")[0]["test_accuracy"])
    assert learned > fixed  # on 1x1 maps a learnable eps escapes the sign-function regime


def test_inference_stats_quick(tmp_path):
    runs = quick_runs(tmp_path, "inference-stats")
    assert {r["estimator"] for r in runs} == {"ema", "precise", "last_batches"}
    assert {r["schedule.name"] for r in runs} == {"constant"}
    # only the statistics differ: the same training, so train-mode accuracy is identical
    assert len({r["test_accuracy_train_mode"] for r in runs}) == 1
    assert len({r["test_loss"] for r in runs}) == 3


def test_describe_spec_documents_the_knobs():
    res = run(["describe", "--spec"])
    assert res.returncode == 0
    for key in ("inference_stats.estimator", "model.activation", "model.norm_position", "model.conv_bias",
                "dataset.as_channels", "optimizer.lr_reference_batch_size"):
        assert key in res.stdout
    bn = run(["describe", "batch_norm"])
    assert re.search(r"train_statistics\s+one of batch, running", bn.stdout)
    frn = run(["describe", "frn"])
    assert "learnable_eps" in frn.stdout and "tlu" in frn.stdout
    both = run(["describe", "bn", "--spec"])
    assert both.returncode != 0 and len(both.stderr.strip().splitlines()) <= 3
