"""The keys behind the internal-covariate-shift preset through the real binary: the `mlp`
model, `eval_every` / `early_step` and `activation_probe`, and curve plots of several curves.
Bad input is one line on stderr naming the key, a non-zero exit and no store; a good spec
stores the curves and metrics the report plots."""
import sqlite3

import pytest

from cli_helpers import run

BASE = """name: probe-keys
base:
  model: %(model)s
  dataset: synthetic
  batch_size: 16
  steps: 10
  optimizer: {lr: 0.5, momentum: 0, weight_decay: 0, nesterov: false}
  schedule: {name: constant, warmup_steps: 0}
%(extra)s
grid:
  model.norm: [bn, none]
seeds: 1
%(report)s"""

MLP = "{name: mlp, hidden: [8, 6], activation: sigmoid, norm: bn}"


def spec_text(model=MLP, extra="", report=""):
    return BASE % {"model": model, "extra": extra, "report": report}


@pytest.mark.parametrize("model, extra, report, message", [
    ("{name: mlp, hidden: [8, 0], norm: bn}", "", "", "model.hidden: must be a non-empty list of positive integers"),
    ("{name: mlp, hidden: [], norm: bn}", "", "", "model.hidden: must be a non-empty list of positive integers"),
    ("{name: mlp, hidden: [8], depth: 3, norm: bn}", "", "", "model.depth: applies to conv nets, not to an mlp"),
    ("{depth: 1, width: 4, hidden: [8], norm: bn}", "", "", "model.hidden: applies to mlp models only"),
    (MLP, "  eval_every: 0", "", "eval_every: must be a positive integer (steps), got 0"),
    (MLP, "  early_step: 50", "", "early_step: 50 is beyond the run's 10 steps"),
    (MLP, "  activation_probe: {unit: 6}", "", "unit 6 is out of range: the input of blocks.1.act has 6 channels"),
    (MLP, "  activation_probe: {layer: classifier}", "", "the model has no layer 'classifier' before its head"),
    (MLP, "  activation_probe: {mode: test}", "", "activation_probe.mode: must be train or eval, got 'test'"),
    (MLP, "  activation_probe: {bins: 3}", "", "activation_probe.bins: unknown key"),
    (MLP, "  activation_probe: 5", "", "activation_probe: must be true, false or {layer, unit, every, examples, mode}"),
    (MLP, "  activation_probe: {every: 0}", "", "every must be >= 1, got 0"),
    (MLP, "  activation_probe: {examples: 1}", "", "examples must be >= 2, got 1"),
    (MLP, "", "report:\n  plots:\n    - {kind: curve, metric: [probe_p15, nope], x: probe_steps}",
     "records no per-epoch curve 'nope'"),
    (MLP, "", "report:\n  plots:\n    - {kind: curve, metric: probe_p15, x: nope}", "must be epoch or steps, or a step curve"),
    (MLP, "", "report:\n  plots:\n    - {kind: curve, metric: probe_p15, x: nope_steps}",
     "must be epoch or steps, or a step curve the runner records (steps, eval_steps, probe_steps), got 'nope_steps'"),
    (MLP, "", "report:\n  plots:\n    - {kind: bar, metric: [test_accuracy]}", "a list of curves applies to curve plots only"),
])
def test_bad_keys_are_one_line_and_no_store(tmp_path, model, extra, report, message):
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(model, extra, report))
    store = tmp_path / "s.sqlite"
    p = run(["ablate", "run", spec, "--store", store])
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr
    assert not store.exists()


def test_probe_and_step_evaluation_are_stored(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(extra="  eval_every: 5\n  early_step: 3\n  activation_probe: {every: 2, examples: 40}",
                              report="report:\n  plots:\n    - {kind: curve, metric: [probe_p15, probe_p50, probe_p85], x: probe_steps, name: pct}\n"
                                     "    - {kind: curve, metric: eval_test_accuracy, x: eval_steps, name: acc}"))
    store = tmp_path / "s.sqlite"
    p = run(["ablate", "run", spec, "--store", store, "--jobs", "1"])
    assert p.returncode == 0, p.stderr
    db = sqlite3.connect(str(store))
    curves = {}
    for run_id, name, epoch, value in db.execute("SELECT run_id, name, epoch, value FROM curves ORDER BY run_id, name, epoch"):
        curves.setdefault(run_id, {}).setdefault(name, []).append(value)
    metrics = {}
    for run_id, name, value in db.execute("SELECT run_id, name, value FROM metrics"):
        metrics.setdefault(run_id, {})[name] = value
    assert len(curves) == 2
    for run_id, c in curves.items():
        assert c["probe_steps"] == [0, 2, 4, 6, 8, 10] and c["eval_steps"] == [0, 5, 10]
        assert all(0 <= a <= 1 for a in c["eval_test_accuracy"])
        assert all(a <= b <= d for a, b, d in zip(c["probe_p15"], c["probe_p50"], c["probe_p85"]))
        spread = [d - a for a, d in zip(c["probe_p15"], c["probe_p85"])]
        m = metrics[run_id]
        assert m["probe_spread_drift"] == pytest.approx(max(spread) - min(spread), abs=1e-12)
        assert m["probe_median_drift"] == pytest.approx(max(c["probe_p50"]) - min(c["probe_p50"]), abs=1e-12)
        assert 0 <= m["early_test_accuracy"] <= 1
        # the last eval point is the final eval-mode test accuracy
        assert c["eval_test_accuracy"][-1] == pytest.approx(m["test_accuracy"], abs=1e-12)
    report = tmp_path / "s-report"
    for stem in ("pct", "acc"):
        assert (report / "figures" / (stem + ".png")).stat().st_size > 1000


@pytest.mark.parametrize("flag", [["--depth", "2"], ["--width", "8"], ["--kernel", "5"]])
def test_train_refuses_conv_options_for_an_mlp(tmp_path, flag):
    out = tmp_path / "model.npz"
    p = run(["train", "--model", "mlp", "--dataset", "synthetic", "--steps", "1", "--json", "--save", out] + flag)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "apply to conv nets; an mlp's layers are its hidden widths" in lines[0], p.stderr
    assert p.stdout == "" and not out.exists()


def test_train_builds_the_papers_mlp(tmp_path):
    import json
    p = run(["train", "--model", "mlp", "--dataset", "synthetic", "--steps", "2", "--json", "--quiet"])
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["model"]["name"] == "mlp" and r["model"]["hidden"] == [100, 100, 100]
    # (1x32 inputs) 32*100+100 + 2 * (100*100+100) + 3 * 2 * 100 (BN affine) + 100*4+4
    assert r["model"]["parameters"] == 3300 + 2 * 10100 + 600 + 404
    assert [t["layer"] for t in r["norm_telemetry"]] == ["blocks.0.norm", "blocks.1.norm", "blocks.2.norm"]
