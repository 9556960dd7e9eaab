"""The README's claim verdicts are the committed results: generated, never typed.

`scripts/readme-claims.py` renders each `<!-- claims:PRESET -->` block from
`notebooks-export/PRESET/table.json`; these tests check that README.md equals that rendering
and recompute every claim's effect, CI, p-value and verdict from the committed per-run CSV
(`notebooks-export/PRESET-runs.csv`) with scipy, independently of the Swift statistics.
"""
import csv
import importlib.util
import json
import math
import os

import pytest
from scipy import stats

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_script():
    spec = importlib.util.spec_from_file_location("readme_claims", os.path.join(ROOT, "scripts", "readme-claims.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def presets_in_readme():
    return [m.group("preset") for m in load_script().BLOCK.finditer(readme())]


def test_readme_has_generated_claims_blocks():
    assert {"freeze", "batch-size"} <= set(presets_in_readme())


def test_readme_claims_tables_equal_the_committed_results():
    script = load_script()
    text = readme()
    new, presets = script.regenerate(text)
    for p in presets:
        assert script.block_body(text, p) == script.block_body(new, p), \
            "README claims table of %s is stale: run scripts/readme-claims.py" % p


def committed_values(preset, cell_hash, metric):
    with open(os.path.join(ROOT, "notebooks-export", preset + "-runs.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["cell_hash"] == cell_hash and r["diverged"] == "false"]
    out = {}
    for r in rows:
        v = float(r[metric]) if r[metric] not in ("", "nan") else math.nan
        if math.isfinite(v):
            out[int(r["seed"])] = v
    return out


@pytest.mark.parametrize("preset", ["freeze", "batch-size"])
def test_committed_claims_recomputed_from_the_runs(preset):
    with open(os.path.join(ROOT, "notebooks-export", preset, "table.json")) as f:
        table = json.load(f)
    claims = {c["name"]: c for c in table["claims"]}
    assert claims
    for c in table["claims"]:
        x = committed_values(preset, c["compare_hash"], c["metric"])
        y = committed_values(preset, c["against_hash"], c["metric"])
        expect = c["expect"]
        if isinstance(expect, dict):
            ref = claims[expect["of"]]
            u = committed_values(preset, ref["compare_hash"], ref["metric"])
            v = committed_values(preset, ref["against_hash"], ref["metric"])
            seeds = sorted(set(x) & set(y) & set(u) & set(v))
            sign = -1.0 if ref["expect"] == "less" else 1.0
            d = [sign * ((x[s] - y[s]) - expect["less_than_fraction"] * (u[s] - v[s])) for s in seeds]
            below = True
        else:
            seeds = sorted(set(x) & set(y))
            d = [x[s] - y[s] for s in seeds]
            below = expect == "less"
        n = len(d)
        assert n == c["n"] and n >= 2
        mean = sum(d) / n
        sd = stats.tstd(d)
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        assert c["effect"] == pytest.approx(mean, rel=1e-12, abs=1e-15)
        assert c["ci_low"] == pytest.approx(mean - half, rel=1e-9, abs=1e-12)
        assert c["ci_high"] == pytest.approx(mean + half, rel=1e-9, abs=1e-12)
        if sd > 0:
            assert c["p"] == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue, rel=1e-8, abs=1e-14)
            mde = (stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.8, n - 1)) * sd / math.sqrt(n)
            assert c["mde"] == pytest.approx(mde, rel=1e-9)
        lo, hi = mean - half, mean + half
        if sd == 0:
            verdict = "inconclusive"   # zero-variance differences: no t-interval
        elif below:
            verdict = "supported" if hi < 0 else ("contradicted" if lo > 0 else "inconclusive")
        else:
            verdict = "supported" if lo > 0 else ("contradicted" if hi < 0 else "inconclusive")
        assert c["verdict"] == verdict, c["name"]


def test_check_mode_flags_a_stale_readme(tmp_path):
    script = load_script()
    text = readme()
    stale = tmp_path / "README.md"
    # change one number inside the first block
    preset = presets_in_readme()[0]
    body = script.block_body(text, preset)
    stale.write_text(text.replace(body, body.replace("supported", "contradicted", 1).replace("inconclusive", "supported", 1) + "x"))
    assert script.main(["--check", "--readme", str(stale)]) == 1
    assert script.main(["--check", "--readme", os.path.join(ROOT, "README.md")]) == 0
