"""The one extension point (issue 13), end to end through the real binary: methods are asked
what they can do (constraints, activation, statistics), never known by name; `train` and an
ablation cell share one recipe; every cell is validated before anything is created."""
import json
import os
import re
import sqlite3

from cli_helpers import ROOT, run

EVO_PY = os.path.join(ROOT, "python", "tests", "plugins_extra", "evonorm_s0_py.py")


def test_python_plugin_with_a_divisibility_constraint_passes_parity():
    res = run(["parity", "--plugin", EVO_PY, "--methods", "evonorm_s0_py", "--cases", "40", "--json"])
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    m = json.loads(res.stdout)["methods"][0]
    assert m["failed"] == 0 and m["cases"] == 40
    assert m["cases"] - m["skipped"] >= 30, m["skip_reasons"]


def test_parity_set_pins_an_option_in_every_case():
    res = run(["parity", "--plugin", EVO_PY, "--methods", "evonorm_s0_py", "--cases", "12", "--set", "groups=3", "--json"])
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    m = json.loads(res.stdout)["methods"][0]
    assert m["failed"] == 0 and m["skipped"] == 0
    table = run(["parity", "--plugin", EVO_PY, "--methods", "evonorm_s0_py", "--cases", "12", "--set", "groups=3"])
    assert table.returncode == 0 and "groups=3" in table.stdout
    bad = run(["parity", "--methods", "gn", "--set", "nope=1"])
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "nope" in bad.stderr


def test_refused_cases_are_skipped_with_a_reason_not_failed(tmp_path):
    # The same plugin without its declared constraint: the generator no longer fits the
    # channels to `groups`, so the layer refuses some cases itself; they are skipped with the
    # layer's reason, never counted as mismatches.
    undeclared = tmp_path / "evonorm_undeclared.py"
    text = open(EVO_PY).read()
    text = text.replace('"name": "evonorm_s0_py"', '"name": "evonorm_undeclared"')
    text = text.replace('    "constraints": {"divides_channels": ["groups"]},\n', "").replace('    "reduction": "groups:groups",\n', "")
    assert "divides_channels" not in text
    undeclared.write_text(text)
    res = run(["parity", "--plugin", undeclared, "--methods", "evonorm_undeclared", "--cases", "30", "--set", "groups=2", "--json"])
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    m = json.loads(res.stdout)["methods"][0]
    assert m["failed"] == 0 and m["skipped"] > 0 and m["cases"] - m["skipped"] > 0
    assert all("not divisible by groups 2" in r for r in m["skip_reasons"]), m["skip_reasons"]


GN3 = """name: gn3
base:
  model: {depth: 2, width: 8, norm: bn}
  dataset: digits
  steps: 3
grid:
  model.norm:
    - bn
    - {name: gn, options: {num_groups: 3}}
seeds: 1
"""


def test_a_cell_whose_norm_does_not_fit_a_layer_is_refused_before_anything_is_created(tmp_path):
    spec = tmp_path / "gn3.yaml"
    spec.write_text(GN3)
    store = tmp_path / "gn3.sqlite"
    res = run(["ablate", spec, "--store", store])
    assert res.returncode != 0
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "blocks.0.norm" in line and "num_groups=3" in line and "1 of 2 cells" in line
    assert not store.exists() and not (tmp_path / "gn3-report").exists()


CELL = """name: same
base:
  model: {depth: 3, width: 16, norm: {name: gn, options: {num_groups: 4}}}
  dataset: digits
  batch_size: 32
  steps: 30
  optimizer: {lr: 0.05, momentum: 0.9, weight_decay: 1.0e-4, nesterov: true}
  schedule: {name: cosine, warmup_steps: 5}
seeds: [7]
"""


def test_train_and_an_ablation_cell_with_the_same_keys_are_bit_identical(tmp_path):
    spec = tmp_path / "same.yaml"
    spec.write_text(CELL)
    store = tmp_path / "same.sqlite"
    res = run(["ablate", spec, "--store", store, "--threads", "1"], timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    con = sqlite3.connect(store)
    metrics = dict(con.execute("select name, value from metrics").fetchall())
    con.close()
    train = run(["train", "--dataset", "digits", "--depth", "3", "--width", "16", "--norm", "gn", "--norm-set", "num_groups=4",
                 "--batch-size", "32", "--steps", "30", "--lr", "0.05", "--momentum", "0.9", "--weight-decay", "1e-4",
                 "--nesterov", "--schedule", "cosine", "--warmup-steps", "5", "--seed", "7", "--threads", "1",
                 "--json", "--quiet"], timeout=600)
    assert train.returncode == 0, train.stderr
    report = json.loads(train.stdout)
    result = report["result"] if "result" in report else report
    assert result["test_accuracy"] == metrics["test_accuracy"]
    assert result["train_loss"] == metrics["train_loss"]


def _builtin_names():
    """Canonical names and plugin types (as words) and aliases (as quoted strings) of every
    plugin in Sources/NormPlugins."""
    words, quoted = set(), set()
    folder = os.path.join(ROOT, "Sources", "NormPlugins")
    for f in os.listdir(folder):
        if not f.endswith(".swift"):
            continue
        text = open(os.path.join(folder, f)).read()
        for name, aliases in re.findall(r'NormDescriptor\(\s*name: "([a-z0-9_]+)", aliases: \[([^\]]*)\]', text):
            words.add(name)
            quoted.update(re.findall(r'"([^"]+)"', aliases))
        words.update(re.findall(r"public final class (\w+): NormalizationPlugin", text))
    return words, quoted


def test_no_code_outside_the_plugins_names_a_builtin_method():
    """The acceptance grep: outside Sources/NormPlugins no built-in method name, alias or
    plugin type appears in code (comments may describe the methods they serve)."""
    words, quoted = _builtin_names()
    assert {"batch_norm", "BatchNorm", "group_norm", "EvoNormS0", "FrozenBatchNorm"} <= words and "bn" in quoted
    pattern = re.compile(r"\b(" + "|".join(sorted(words, key=len, reverse=True)) + r")\b|\"("
                         + "|".join(re.escape(q) for q in sorted(quoted, key=len, reverse=True)) + r")\"")
    offenders = []
    for folder, _, files in os.walk(os.path.join(ROOT, "Sources")):
        if os.path.relpath(folder, ROOT).startswith(os.path.join("Sources", "NormPlugins")):
            continue
        for f in files:
            if not f.endswith(".swift"):
                continue
            path = os.path.join(folder, f)
            for i, line in enumerate(open(path), 1):
                code = line.split("//", 1)[0]
                if pattern.search(code):
                    offenders.append("%s:%d: %s" % (os.path.relpath(path, ROOT), i, line.strip()))
    assert not offenders, "\n".join(offenders)
