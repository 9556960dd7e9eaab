"""scripts/verify-reproduction.py: a committed export is re-run from the current build and
compared run by run (bit for bit), else claim by claim (verdict and CI)."""
import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

from cli_helpers import ROOT, normlab_binary

SCRIPT = os.path.join(ROOT, "scripts", "verify-reproduction.py")
PRESET = """name: tiny
description: Two norms on digits for a few steps.
base:
  dataset: {name: digits, train_examples: 256}
  model: {depth: 2, width: 8, norm: bn}
  steps: 20
  batch_size: 16
grid:
  model.norm: [bn, none]
seeds: 3
report:
  rows: [model.norm]
  metrics: [test_accuracy]
claims:
  - {name: bn differs from none, metric: test_loss, compare: {norm: bn}, against: {norm: none}, expect: less}
"""


@pytest.fixture(scope="module")
def committed(tmp_path_factory):
    """A preset folder and its 'committed' export, made by the binary under test."""
    root = tmp_path_factory.mktemp("verify")
    (root / "presets").mkdir()
    (root / "presets" / "tiny.yaml").write_text(PRESET)
    env = dict(os.environ, NORMLAB_PRESETS_DIR=str(root / "presets"))
    store = root / "tiny.sqlite"
    for args in (["ablate", "--preset", "tiny", "--store", store, "--threads", "1", "--no-report"],
                 ["ablate", "report", "--preset", "tiny", "--store", store, "--out", root / "exports" / "tiny", "--no-plots"]):
        done = subprocess.run([normlab_binary()] + [str(a) for a in args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    return root, env


def verify(root, env, exports, *extra):
    return subprocess.run([sys.executable, SCRIPT, "tiny", "--bin", normlab_binary(), "--exports", str(exports), *extra],
                          env=env, capture_output=True, text=True, timeout=300)


def copy_export(root, name):
    target = root / name / "tiny"
    shutil.copytree(root / "exports" / "tiny", target)
    return root / name, target


def test_an_unchanged_build_reproduces_every_run(committed):
    root, env = committed
    done = verify(root, env, root / "exports")
    assert done.returncode == 0, done.stderr
    assert "tiny: 6 of 6 re-run runs bit-identical to the committed ones (1 thread per run)" in done.stdout
    only = verify(root, env, root / "exports", "--claims-only")
    assert only.returncode == 0 and "tiny: 6 of 6 re-run runs bit-identical" in only.stdout, only.stdout + only.stderr


def edit_runs(path, change):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    change(rows)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_changed_arithmetic_falls_back_to_the_verdicts(committed):
    root, env = committed
    exports, export = copy_export(root, "moved")
    edit_runs(export / "runs.csv", lambda rows: rows[0].update(test_loss=str(float(rows[0]["test_loss"]) + 1e-9)))
    done = verify(root, env, exports)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 of 6 re-run runs bit-identical to the committed ones, 1 differ" in done.stdout
    assert "first difference:" in done.stdout and ": holds" in done.stdout
    # a committed CI the re-run's effect lies outside of: the verdict does not hold
    table = json.loads((export / "table.json").read_text())
    table["claims"][0]["ci_low"] = table["claims"][0]["ci_high"] = table["claims"][0]["effect"] + 1.0
    (export / "table.json").write_text(json.dumps(table))
    bad = verify(root, env, exports)
    assert bad.returncode == 1 and "DOES NOT HOLD (effect outside the committed CI)" in bad.stdout, bad.stdout


def test_bad_input_is_one_line(committed):
    root, env = committed
    missing = verify(root, env, root / "nowhere")
    assert missing.returncode == 1 and missing.stderr.strip().count("\n") == 0
    assert "no committed export (runs.csv and table.json)" in missing.stderr
    jobs = verify(root, env, root / "exports", "--jobs", "0")
    assert jobs.returncode == 1 and jobs.stderr.strip() == "verify-reproduction: --jobs must be at least 1, got 0"
    nobin = subprocess.run([sys.executable, SCRIPT, "tiny", "--bin", str(root / "no-normlab"), "--exports", str(root / "exports")],
                           env=env, capture_output=True, text=True, timeout=60)
    assert nobin.returncode == 1 and "no normlab binary at" in nobin.stderr
    # a preset the binary does not know: the failing command's last line
    exports, _ = copy_export(root, "unknown")
    os.rename(exports / "tiny", exports / "nosuch")
    unknown = subprocess.run([sys.executable, SCRIPT, "nosuch", "--bin", normlab_binary(), "--exports", str(exports)],
                             env=env, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 1 and unknown.stderr.startswith("verify-reproduction: nosuch: `normlab ablate run` failed:"), unknown.stderr
