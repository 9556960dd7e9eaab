"""Every preset's quick form through the real command: runs, table, figures, notebook.

Each test also checks the one property its preset is about, where a quick run can show it
(the full runs and their verdicts are in the README and notebooks-export/), and for presets
with claims that the report prints each claim's verdict with its effect and 95 % CI.
"""
import csv
import json
import re

import nbformat
import pytest

from cli_helpers import run

# preset -> (runs in the quick form, figure stems)
QUICK = {
    # 4 cells x 2 seeds, then a seed round: 2 more seeds on the 4 cells the claims compare
    "batch-size": (24, ["error-vs-batch", "accuracy", "claims-effects"]),
    # 2 activations x 2 norms x 2 learning rates x 2 seeds
    "learning-rate": (16, ["accuracy", "steps-to-baseline", "accuracy-curves", "claims-effects"]),
    "moving-average-training": (6, ["accuracy", "weight-norm-growth", "loss-curves", "weight-norm-curves", "claims-effects"]),
    "placement": (8, ["accuracy", "bias-gradient", "claims-effects"]),
    "frn-eps": (8, ["accuracy", "loss-curves", "claims-effects"]),
    "inference-stats": (6, ["accuracy", "test-loss-vs-batch", "claims-effects"]),
    "dropout": (8, ["error", "claims-effects"]),
    "lrn": (6, ["error", "claims-effects"]),
    "zoo": (15, ["accuracy"]),
    "internal-covariate-shift": (4, ["accuracy-vs-steps", "sigmoid-input-percentiles", "spread-drift", "claims-effects"]),
    "fmnist-resnet20": (9, ["accuracy"]),
    "default-recipe": (4, ["accuracy"]),
}


def quick_runs(tmp_path, preset, printed=None):
    """Runs the quick form; returns its runs (and appends what it printed to `printed`)."""
    store = tmp_path / (preset + ".sqlite")
    res = run(["ablate", "--preset", preset, "--quick", "--jobs", "2", "--store", store], timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    if printed is not None:
        printed.append(res.stdout)
    expected, figures = QUICK[preset]
    report = tmp_path / (preset + "-report")
    assert "%d of %d runs stored" % (expected, expected) in (report / "table.md").read_text()
    with open(report / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == expected
    for stem in figures:
        for ext in ("png", "svg"):
            assert (report / "figures" / ("%s.%s" % (stem, ext))).stat().st_size > 1000, stem
    nbformat.validate(nbformat.read(str(report / (preset + "-quick.ipynb")), as_version=4))
    assert (report / "table.md").read_text().startswith("## %s-quick" % preset)
    return runs


def check_claims(tmp_path, preset, stdout, names):
    """Every claim is in the printed report and in table.json with an effect, a 95 % CI and
    the verdict that CI implies; the notebook has the claims section."""
    assert "### Claims" in stdout
    report = tmp_path / (preset + "-report")
    claims = json.loads((report / "table.json").read_text())["claims"]
    assert [c["name"] for c in claims] == names
    for c in claims:
        assert c["name"] in stdout
        assert c["n"] >= 2 and c["ci_low"] <= c["effect"] <= c["ci_high"]
        below = c["expect"] != "greater"
        lo, hi = c["ci_low"], c["ci_high"]
        if below:
            expected = "supported" if hi < 0 else ("contradicted" if lo > 0 else "inconclusive")
        else:
            expected = "supported" if lo > 0 else ("contradicted" if hi < 0 else "inconclusive")
        assert c["verdict"] == expected
        # the printed row: effect and CI as the JSON has them, then the verdict
        row = next(line for line in stdout.splitlines() if line.startswith("| " + c["name"].replace("|", "\\|") + " |"))
        assert "[%+.4f, %+.4f]" % (lo, hi) in row and "**%s**" % c["verdict"] in row
    nb = nbformat.read(str(report / (preset + "-quick.ipynb")), as_version=4)
    assert any(cell.source.startswith("## Claims") for cell in nb.cells)
    return claims


def by(runs, **axes):
    return [r for r in runs if all(r[k] == v for k, v in axes.items())]


def test_every_preset_is_listed():
    res = run(["ablate", "presets"])
    assert res.returncode == 0
    names = [line.split()[0] for line in res.stdout.splitlines() if line.strip()]
    assert names == sorted(["freeze"] + list(QUICK))


def test_batch_size_quick(tmp_path):
    printed = []
    runs = quick_runs(tmp_path, "batch-size", printed)
    claims = check_claims(tmp_path, "batch-size", printed[0],
                          ["BN's error rises from B=32 to B=4", "GN's change is under a third of BN's"])
    assert claims[0]["n"] == 4 and claims[0]["compare"] == "norm+weight_standardization=bn, false, batch_size=4"
    norm = "norm+weight_standardization"   # the zip axis (GN + WS is a cell of the full form)
    assert {r[norm] for r in runs} == {"bn, false", "gn(num_groups=8), false", "frn, false", "none, false"}
    assert {r["batch_size"] for r in runs} == {"4", "32"}
    # the seed policy added seeds 2 and 3 to the claims' cells (BN, GN) only
    for r in runs:
        assert int(r["seed"]) < (4 if r[norm] in ("bn, false", "gn(num_groups=8), false") else 2)
    # lr scaled with the batch size: the same epochs at batch 4 take 8x the steps of batch 32
    steps = {r["batch_size"]: float(r["train_steps"]) for r in runs if r[norm] == "bn, false"}
    assert steps["4"] == 8 * steps["32"]
    for r in runs:
        assert abs(float(r["test_error"]) - (1 - float(r["test_accuracy"]))) < 1e-12


def test_learning_rate_quick(tmp_path):
    printed = []
    runs = quick_runs(tmp_path, "learning-rate", printed)
    assert all("steps_to_baseline" in r for r in runs)
    baseline = by(runs, activation="relu", norm="none", lr="0.01")[0]
    assert float(baseline["steps_to_baseline"]) > 0  # the baseline reaches its own mean
    bn_fast = by(runs, activation="relu", norm="bn", lr="0.3")[0]
    assert bn_fast["diverged"] == "false" and float(bn_fast["test_accuracy"]) > 0.5
    check_claims(tmp_path, "learning-rate", printed[0],
                 ["BN at 30x the learning rate beats the no-norm baseline", "with sigmoid, BN trains where no norm does not"])


def test_moving_average_training_quick(tmp_path):
    printed = []
    runs = quick_runs(tmp_path, "moving-average-training", printed)
    assert {r["norm"] for r in runs} == {"bn(train_statistics=batch)", "bn(train_statistics=running)", "brn"}
    for r in runs:
        assert float(r["weight_norm_growth"]) > 0
    check_claims(tmp_path, "moving-average-training", printed[0],
                 ["normalizing with the moving averages in training costs accuracy", "and lets the weights grow more",
                  "BRN recovers from it"])


def test_placement_quick(tmp_path):
    printed = []
    runs = quick_runs(tmp_path, "placement", printed)
    check_claims(tmp_path, "placement", printed[0],
                 ["a conv bias right before BN gets no gradient", "BN before the activation beats BN after it"])
    before = by(runs, norm_position="before", conv_bias="true")[0]
    after = by(runs, norm_position="after", conv_bias="true")[0]
    # BN paper 3.2: a bias before train-mode BN is cancelled, its gradient is rounding noise
    assert float(before["conv_bias_grad_rms"]) < 1e-6
    assert float(after["conv_bias_grad_rms"]) > 1e-4
    assert by(runs, conv_bias="false")[0]["conv_bias_grad_rms"] in ("", "nan")


def test_frn_eps_quick(tmp_path):
    printed = []
    runs = quick_runs(tmp_path, "frn-eps", printed)
    for seed in ("0", "1"):
        assert float(by(runs, norm="bn", seed=seed)[0]["test_accuracy"]) > 0.8
        fixed = float(by(runs, norm="frn(learnable_eps=false, eps=0.01)", seed=seed)[0]["test_accuracy"])
        learned = float(by(runs, norm="frn(learnable_eps=true, eps=0.01)", seed=seed)[0]["test_accuracy"])
        assert learned > fixed  # on 1x1 maps a learnable eps escapes the sign-function regime
    check_claims(tmp_path, "frn-eps", printed[0], ["a learnable eps beats the same fixed eps (0.01)"])


def test_inference_stats_quick(tmp_path):
    printed = []
    runs = quick_runs(tmp_path, "inference-stats", printed)
    assert {r["estimator"] for r in runs} == {"ema", "precise", "last_batches"}
    assert {r["schedule.name"] for r in runs} == {"constant"}
    for seed in ("0", "1"):
        same_training = by(runs, seed=seed)
        # only the statistics differ: the same training, so train-mode accuracy is identical
        assert len({r["test_accuracy_train_mode"] for r in same_training}) == 1
        assert len({r["test_loss"] for r in same_training}) == 3
    check_claims(tmp_path, "inference-stats", printed[0], ["PreciseBN beats the EMA at B=4 with a constant learning rate"])


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


def test_freeze_quick_claims(tmp_path):
    """The main job's quick form prints both freezing claims' verdicts with their CIs."""
    store = tmp_path / "freeze.sqlite"
    res = run(["ablate", "--preset", "freeze", "--quick", "--jobs", "2", "--store", store], timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    claims = check_claims(tmp_path, "freeze", res.stdout,
                          ["frozen BN statistics beat updated ones at batch size 2", "freezing the affine as well costs accuracy"])
    assert all(c["n"] == 2 for c in claims)
    assert (tmp_path / "freeze-report" / "figures" / "claims-effects.png").stat().st_size > 1000


def test_dropout_quick(tmp_path):
    printed = []
    runs = quick_runs(tmp_path, "dropout", printed)
    assert {(r["norm"], r["dropout"]) for r in runs} == {("bn", "0"), ("bn", "0.5"), ("none", "0"), ("none", "0.5")}
    text = printed[0]
    assert "### Claims" in text and "removing it helps" in text
    assert any(v in text for v in ("**supported**", "**inconclusive**", "**contradicted**"))


def test_lrn_quick(tmp_path):
    printed = []
    runs = quick_runs(tmp_path, "lrn", printed)
    assert {r["norm"] for r in runs} == {"lrn", "bn", "none"}
    assert "BN's error is below LRN's" in printed[0] and "95 % CI" in printed[0]


def test_zoo_quick_every_method_trains(tmp_path):
    runs = quick_runs(tmp_path, "zoo")
    listed = run(["list"]).stdout
    methods = {line.split()[0] for line in listed.splitlines()[2:] if line.strip()}
    assert len(methods) >= 13
    assert len(runs) == 15 and all(r["diverged"] == "false" for r in runs)


def test_internal_covariate_shift_quick(tmp_path):
    """BN paper Figure 1's preset: the claims get computed verdicts with CIs, every run has the
    eval-interval and percentile curves, and (the one property a 40-step run shows) BN's
    sigmoid input starts standardized while the plain net's is narrow."""
    import sqlite3
    printed = []
    runs = quick_runs(tmp_path, "internal-covariate-shift", printed)
    assert {r["norm"] for r in runs} == {"bn", "none"}
    check_claims(tmp_path, "internal-covariate-shift", printed[0],
                 ["BN reaches a higher test accuracy early in training", "with BN the sigmoid input's spread drifts less",
                  "with BN the sigmoid input's median drifts less"])
    db = sqlite3.connect(str(tmp_path / "internal-covariate-shift.sqlite"))
    norm_of = {}
    for run_id, config in db.execute("SELECT runs.id, cells.config_json FROM runs JOIN cells ON runs.cell_hash = cells.cell_hash"):
        norm_of[run_id] = json.loads(config)["model"]["norm"]
    curves = {}
    for run_id, name, value in db.execute("SELECT run_id, name, value FROM curves ORDER BY run_id, name, epoch"):
        curves.setdefault(run_id, {}).setdefault(name, []).append(value)
    assert len(curves) == 4
    for run_id, c in curves.items():
        assert c["probe_steps"] == [0, 10, 20, 30, 40] and c["eval_steps"] == [0, 20, 40]
        spread0 = c["probe_p85"][0] - c["probe_p15"][0]
        if norm_of[run_id] == "bn":
            # batch-standardized: about 2 x 1.04 for a bell-shaped unit
            assert 1.0 < spread0 < 3.0
        else:
            assert spread0 < 1.0


def test_fmnist_resnet20_quick_cells_are_train_runs(tmp_path):
    """The ResNet-20 preset's cells are ResNet-20s over the zoo (its quick form trains them on
    digits), and a cell is exactly `normlab train --model resnet20 --norm M --norm-set ...`
    (one thread)."""
    runs = quick_runs(tmp_path, "fmnist-resnet20")
    assert sorted(r["norm"] for r in runs) == sorted([
        "bn", "gn(num_groups=8)", "none", "ghost_batch_norm(virtual_batch_size=16)", "evonorm_b0", "sn",
        "bcn(num_groups=8)", "rms", "lrn"])
    for r in runs:
        assert 0.0 <= float(r["test_accuracy"]) <= 1.0
    cell = by(runs, norm="ghost_batch_norm(virtual_batch_size=16)")[0]
    res = run(["train", "--dataset", "digits", "--model", "resnet20", "--norm", "ghost_batch_norm",
               "--norm-set", "virtual_batch_size=16", "--steps", "10", "--seed", cell["seed"],
               "--threads", "1", "--json"], timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    trained = json.loads(res.stdout)
    assert float(cell["test_accuracy"]) == trained["test_accuracy"]
    assert float(cell["train_loss"]) == trained["train_loss"]


def test_default_recipe_quick_cells_are_train_runs(tmp_path):
    """The default-recipe preset's cells are `normlab train --dataset D --norm M --seed S`:
    a quick cell and the same `train` command (one thread, as the cells run) agree exactly."""
    runs = quick_runs(tmp_path, "default-recipe")
    assert {(r["norm"], r["dataset"]) for r in runs} == {
        ("bn", "mnist1d"), ("bn", "digits"), ("none", "mnist1d"), ("none", "digits")}
    cell = by(runs, norm="bn", dataset="digits")[0]
    res = run(["train", "--dataset", "digits", "--norm", "bn", "--steps", "10", "--seed", cell["seed"],
               "--threads", "1", "--json"], timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    trained = json.loads(res.stdout)
    assert float(cell["test_accuracy"]) == trained["test_accuracy"]
    assert float(cell["train_loss"]) == trained["train_loss"]
