"""End-to-end: `normlab ablate` with the real training runner on a tiny synthetic study."""
import csv
import json
import os
import sqlite3

from cli_helpers import run

SPEC = """
name: tiny-e2e
description: two norms x two learning rates on the synthetic task
base:
  model: {depth: 2, width: 8, kernel: 3, norm: {name: bn}}
  dataset: {name: synthetic}
  batch_size: 32
  steps: 30
  optimizer: {lr: 0.05}
grid:
  model.norm.name: [bn, none]
  optimizer.lr: [0.05, 1.0e+9]
seeds: 2
report:
  rows: [model.norm.name]
  columns: [optimizer.lr]
  metrics: [test_accuracy]
"""


def test_ablate_trains_stores_reports_and_resumes(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    store = tmp_path / "tiny.sqlite"
    res = run(["ablate", spec, "--store", store, "--jobs", "2", "--threads", "1"], timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    con = sqlite3.connect(store)
    rows = con.execute("select count(*) from runs").fetchone()[0]
    con.close()
    assert rows == 8
    report_dir = tmp_path / "tiny-report"
    table = json.loads((report_dir / "table.json").read_text())
    assert table  # aggregated table exists
    with open(report_dir / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 8
    diverged = [r for r in runs if r.get("diverged") in ("1", "true", "True")]
    assert len(diverged) == 4  # lr = 1e9 diverges for both norms and both seeds, clearly reported
    again = run(["ablate", spec, "--store", store], timeout=600)
    assert again.returncode == 0, again.stderr
    assert "0 to run" in again.stdout + again.stderr
    status = run(["ablate", "status", "--store", store])
    assert status.returncode == 0 and "8" in status.stdout


def test_ablate_rejects_a_bad_spec_with_its_path(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(SPEC.replace("batch_size: 32", "batch_size: 32\n  bogus_key: 1"))
    res = run(["ablate", spec, "--store", tmp_path / "bad.sqlite"])
    assert res.returncode != 0
    assert "base.bogus_key" in res.stderr
    assert not os.path.exists(tmp_path / "bad.sqlite")


def test_freeze_preset_quick_trains_end_to_end(tmp_path):
    """The main job's quick form with real training: 8 cells x 2 seeds, report, figures, notebook."""
    store = tmp_path / "freeze-quick.sqlite"
    res = run(["ablate", "--preset", "freeze", "--quick", "--jobs", "2", "--store", store], timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "16/16 runs stored" in res.stdout + res.stderr
    report = tmp_path / "freeze-quick-report"
    with open(report / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 16
    accuracies = [float(r["test_accuracy"]) for r in runs]
    assert min(accuracies) > 0.3  # the shifted task is learnable; chance is 0.1
    for name in ("accuracy.png", "accuracy.svg", "accuracy-curves.png"):
        assert (report / "figures" / name).stat().st_size > 1000
    import nbformat
    nbformat.validate(nbformat.read(str(report / "freeze-quick.ipynb"), as_version=4))


PAPER = """
paper:
  base: {steps: 40}
  grid:
    model.norm.name: [bn, none, ln]
    optimizer.lr: [0.05]
  seeds: 1
"""


def test_scale_paper_runs_the_larger_form_as_its_own_study(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC + PAPER)
    store = tmp_path / "paper.sqlite"
    res = run(["ablate", spec, "--scale", "paper", "--store", store, "--threads", "1", "--dry-run"], timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    res = run(["ablate", spec, "--scale", "paper", "--store", store, "--threads", "1", "--no-report"], timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    con = sqlite3.connect(store)
    names = [r[0] for r in con.execute("select name from studies")]
    runs = con.execute("select count(*) from runs").fetchone()[0]
    con.close()
    assert names == ["tiny-e2e-paper"] and runs == 3   # ln (the paper form's new value) x 1 lr x 1 seed, and bn, none
    # the full form of the same spec is another study: its store refuses to mix them
    mixed = run(["ablate", spec, "--store", store, "--threads", "1"], timeout=300)
    assert mixed.returncode != 0 and "tiny-e2e-paper" in mixed.stderr


def test_scale_errors_are_one_line(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    cases = [
        (["ablate", spec, "--scale", "huge"], "--scale must be one of quick, full, paper, got 'huge'"),
        (["ablate", spec, "--scale", "paper"], "has no paper section"),
        (["ablate", spec, "--quick", "--scale", "paper"], "--quick and --scale paper contradict each other"),
        (["ablate", "status", "--scale", "paper"], "--scale needs a spec file or --preset"),
    ]
    for args, message in cases:
        res = run(args + ["--store", tmp_path / "x.sqlite"])
        assert res.returncode != 0, args
        assert message in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not os.path.exists(tmp_path / "x.sqlite")
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC + "paper:\n  grid: {model.depth: [3]}\n")
    res = run(["ablate", bad, "--dry-run"])
    assert res.returncode != 0 and "paper.grid.model.depth" in res.stderr
