"""`claims:` and the seed policy through the CLI, with the fake runner (milliseconds per run)."""
import json
import os

from cli_helpers import run

SPEC = """
name: claims-cli
base:
  model: {depth: 2, width: 8, norm: {name: bn}}
  optimizer: {lr: 0.1}
  batch_size: 32
  epochs: 2
grid:
  model.norm.name: [bn, gn]
  batch_size: [2, 32]
SEEDS
report:
  rows: [model.norm.name]
  columns: [batch_size]
  metrics: [test_accuracy]
  baseline: {cell: {model.norm.name: bn, batch_size: 32}}
claims:
  - name: bn loses at batch 2
    metric: test_accuracy
    compare: {norm.name: bn, batch_size: 2}
    against: {norm.name: bn, batch_size: 32}
    expect: less
  - name: gn changes less
    metric: test_accuracy
    compare: {norm.name: gn, batch_size: BATCH}
    against: {norm.name: gn, batch_size: 32}
    expect: {less_than_fraction: 0.5, of: bn loses at batch 2}
"""


def write(tmp_path, seeds="seeds: 3", batch="2"):
    spec = tmp_path / "claims.yaml"
    spec.write_text(SPEC.replace("SEEDS", seeds).replace("BATCH", batch))
    return spec


def test_a_claim_on_a_missing_cell_is_refused_before_the_store_exists(tmp_path):
    spec = write(tmp_path, batch="4")
    store = tmp_path / "s.sqlite"
    res = run(["ablate", spec, "--runner", "fake", "--store", store])
    assert res.returncode != 0
    assert "claims[1].compare" in res.stderr and "no cell of the grid has" in res.stderr
    assert "line" in res.stderr or ":" in res.stderr.split("claims[1]")[0]
    assert not os.path.exists(store)
    assert len(res.stderr.strip().splitlines()) <= 3


def test_report_has_claims_and_paired_differences(tmp_path):
    spec = write(tmp_path)
    store = tmp_path / "s.sqlite"
    res = run(["ablate", spec, "--runner", "fake", "--store", store])
    assert res.returncode == 0, res.stderr
    assert "### Claims" in res.stdout and "### Paired differences against the baseline" in res.stdout
    table = json.loads((tmp_path / "s-report" / "table.json").read_text())
    assert [c["name"] for c in table["claims"]] == ["bn loses at batch 2", "gn changes less"]
    assert all(c["n"] == 3 and c["verdict"] in ("supported", "contradicted", "inconclusive") for c in table["claims"])
    diffs = table["baseline_differences"]
    assert len(diffs) == 3 and all(d["p_holm"] >= d["p"] for d in diffs)
    assert "Student t" in table["statistics"]
    cell = table["cells"][0]["metrics"]["test_accuracy"]
    assert cell["ci_low"] < cell["mean"] < cell["ci_high"]
    for name in ("claims-effects.png", "claims-effects.svg"):
        assert (tmp_path / "s-report" / "figures" / name).stat().st_size > 1000


def test_seed_policy_adds_rounds_and_resumes(tmp_path):
    spec = write(tmp_path, seeds="seeds: {min: 2, max: 6, until_ci_halfwidth: 1.0e-9, step: 2}")
    store = tmp_path / "s.sqlite"
    env_fail = dict(os.environ, NORMLAB_FAKE_FAIL_AFTER="10")
    import subprocess
    from cli_helpers import normlab_binary
    first = subprocess.run([normlab_binary(), "ablate", str(spec), "--runner", "fake", "--store", str(store)],
                           capture_output=True, text=True, env=env_fail, timeout=120)
    assert first.returncode != 0  # stopped inside the first seed round (8 runs, then 2 of it)
    again = run(["ablate", spec, "--runner", "fake", "--store", store])
    assert again.returncode == 0, again.stderr
    assert "seed round" in again.stderr
    table = json.loads((tmp_path / "s-report" / "table.json").read_text())
    # every claim depends on all four cells here (the fraction claim refers to BN's), so all reach max
    assert all(c["n"] == 6 for c in table["claims"])
    assert "24 of 24 runs stored" in (tmp_path / "s-report" / "table.md").read_text()
    status = run(["ablate", "status", "--store", store])
    assert status.returncode == 0
