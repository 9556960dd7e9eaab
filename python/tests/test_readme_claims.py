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
import statistics

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


@pytest.mark.parametrize("preset", presets_in_readme())
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


# ---- results blocks: the preset's cell tables ----------------------------------------------

def results_module():
    load_script()  # puts scripts/ on sys.path
    import readme_results
    return readme_results


def results_keys():
    return [m.group("key") for m in results_module().BLOCK.finditer(readme())]


def test_readme_has_generated_results_blocks():
    presets = {k.split(":")[0] for k in results_keys()}
    assert {"batch-size", "learning-rate", "moving-average-training", "placement", "frn-eps",
            "inference-stats", "freeze", "default-recipe"} <= presets


def runs_stats(preset, table):
    """{cell hash: {metric: Stat}} recomputed from the committed per-run CSV with scipy:
    non-diverged runs with a finite value, mean ± t(0.975, n−1)·s/√n."""
    module = results_module()
    with open(os.path.join(ROOT, "notebooks-export", preset + "-runs.csv")) as f:
        runs = list(csv.DictReader(f))
    out = {}
    for cell in table["cells"]:
        rows = [r for r in runs if r["cell_hash"] == cell["hash"]]
        # a study still in progress (fmnist-resnet20) has cells with no run yet: n = 0 there
        diverged = sum(r["diverged"] == "true" for r in rows)
        per = {}
        for metric, m in cell["metrics"].items():
            values = [float(r[metric]) for r in rows if r["diverged"] == "false" and r[metric] not in ("", "nan")]
            values = [v for v in values if math.isfinite(v)]
            n = len(values)
            mean = sum(values) / n if n else None
            half = stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n) if n >= 2 else None
            per[metric] = module.Stat(mean, half, n, m["expected"], diverged)
        out[cell["hash"]] = per
    return out


@pytest.mark.parametrize("key", results_keys())
def test_results_block_equals_the_committed_runs(key):
    """Each results block is the rendering of means and CIs recomputed from the runs CSV, and
    table.json's statistics (which the script renders) agree with that CSV."""
    module = results_module()
    preset, _, requested = key.partition(":")
    table = module.load(preset, ROOT)
    metrics = module.metrics_of(table, requested)
    from_csv = runs_stats(preset, table)
    from_json = module.table_stats(table)
    for cell, per in from_csv.items():
        for metric in metrics:
            a, b = per[metric], from_json[cell][metric]
            assert (a.n, a.diverged) == (b.n, b.diverged), (preset, metric, cell)
            if a.n:
                assert a.mean == pytest.approx(b.mean, rel=1e-9, abs=1e-15)
            if a.n >= 2:
                assert a.half == pytest.approx(b.half, rel=1e-6, abs=1e-12)
    expected = module.format_table(preset, table, from_csv, metrics)
    assert module.block_body(readme(), key) == expected, \
        "README results table %s is stale: run scripts/readme-claims.py" % key


def test_results_entries_mark_diverged_and_missing_seeds():
    module = results_module()
    stat = module.Stat
    assert module.entry(stat(0.9412, 0.0123, 3, 3, 0), "test_accuracy", 3) == "94.1 ± 1.2"
    assert module.entry(stat(0.941, None, 1, 3, 2), "test_accuracy", 3) == "94.1 † 2 (1 of 3)"
    assert module.entry(stat(0.05, 0.004, 12, 12, 0), "test_error", 3) == "5.0 ± 0.4 (12 seeds)"
    assert module.entry(stat(None, None, 0, 3, 0), "steps_to_baseline", 3) == "not reached"
    assert module.entry(stat(837.0, 394.2, 2, 3, 0), "steps_to_baseline", 3) == "837 ± 394 (2 of 3)"
    assert module.entry(stat(1.0812, 0.0041, 3, 3, 0), "weight_norm_growth", 3) == "1.08 ± 0.00"
    assert module.entry(stat(4.1e-9, 1.9e-10, 3, 3, 0), "conv_bias_grad_rms", 3) == "4.1e-09 ± 1.9e-10"


def test_check_mode_flags_a_stale_results_block(tmp_path):
    module = results_module()
    text = readme()
    key = results_keys()[0]
    body = module.block_body(text, key)
    stale = tmp_path / "README.md"
    stale.write_text(text.replace(body, body.replace("±", "+-", 1)))
    assert load_script().main(["--check", "--readme", str(stale)]) == 1


def test_unknown_results_metric_is_an_error(tmp_path):
    text = "<!-- results:batch-size:no_such_metric -->\n<!-- /results:batch-size:no_such_metric -->\n"
    path = tmp_path / "README.md"
    path.write_text(text)
    with pytest.raises(SystemExit) as e:
        load_script().main(["--check", "--readme", str(path)])
    assert "no_such_metric" in str(e.value)


def test_no_typed_result_table_outside_generated_blocks():
    """Every table row with a mean ± CI in README.md lies inside a generated block."""
    text = readme()
    spans = [(m.start(), m.end()) for m in load_script().BLOCK.finditer(text)]
    spans += [(m.start(), m.end()) for m in results_module().BLOCK.finditer(text)]
    pos = 0
    typed = []
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("|") and "±" in line and not any(a <= pos < b for a, b in spans):
            typed.append(number)
        pos += len(line) + 1
    assert not typed, "typed result rows in README.md at lines %s" % typed
