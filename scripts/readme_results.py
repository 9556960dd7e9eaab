"""The README's result tables: a preset's cells, rendered from its committed report.

A block of README.md between ``<!-- results:PRESET -->`` and ``<!-- /results:PRESET -->``
(or ``<!-- results:PRESET:METRIC -->``, ``<!-- results:PRESET:METRIC,METRIC -->`` with the
same closing key) is replaced by the cell table of ``notebooks-export/PRESET/table.json``
(written by ``normlab ablate report``) in the report's layout: one column per row axis, then
one column per combination of the column axes' values (times the metrics when there are
several). Each entry is the mean ± the half-width of the 95 % Student t-interval over the seeds
that finished with a value, t(0.975, n−1)·s/√n — the interval the report computes, taken from
``table.json`` (``ci_high − mean``) or, for exports written before the report stored it,
recomputed from the stored std and n — in the metric's unit (accuracies and errors in % with one
decimal). ``† d`` marks d diverged runs; ``(k of N)`` a cell where only k of its N seeds gave a
value (diverged, not reached, not run); ``(n seeds)`` a cell that got more seeds than the
study's base set (a claim's seed rounds). A generated caption names the source file, study,
spec hash, seeds and commit. Used by ``scripts/readme-claims.py``; checked against the committed
per-run CSV by ``python/tests/test_readme_claims.py``.
"""
import itertools
import json
import math
import os
import re
from collections import namedtuple

BLOCK = re.compile(r"(<!-- results:(?P<key>(?P<preset>[A-Za-z0-9_.-]+)(?::(?P<metrics>[A-Za-z0-9_,]+))?) -->\n)"
                   r"(?P<body>.*?)(<!-- /results:(?P=key) -->)", re.S)

#: One cell's statistics of one metric: mean, 95 % CI half-width (None below 2 values), the
#: number of values n, the seeds the cell should have (expected) and its diverged runs.
Stat = namedtuple("Stat", "mean half n expected diverged")


def percent(x):
    return "%.1f" % (100 * x)


PCT = " (one decimal)"


def integer(x):
    return "%.0f" % x


def ratio(x):
    return "%.2f" % x


def scientific(x):
    return "%.1e" % x


def loss(x):
    return "%.3f" % x


#: metric -> (header name, unit in the caption, formatter, word for a cell without a value)
METRICS = {
    "test_accuracy": ("accuracy %", "test accuracy in %" + PCT, percent, "—"),
    "test_error": ("error %", "test error in %" + PCT, percent, "—"),
    "test_accuracy_train_mode": ("train-mode accuracy %", "train-mode test accuracy in %" + PCT, percent, "—"),
    "train_eval_gap": ("train−eval gap %", "train-mode minus eval-mode accuracy in points" + PCT, percent, "—"),
    "steps_to_baseline": ("steps to baseline", "steps to reach the baseline cell's mean accuracy",
                          integer, "not reached"),
    "weight_norm_growth": ("‖W‖ growth ×", "weight-norm growth (final / initial ‖W‖)", ratio, "—"),
    "conv_bias_grad_rms": ("bias grad RMS", "conv-bias gradient RMS (mean over steps)", scientific, "no bias"),
    "test_loss": ("test loss", "test loss", loss, "—"),
    "train_loss": ("train loss", "train loss", loss, "—"),
}


def metric_info(metric):
    return METRICS.get(metric, (metric, metric, lambda x: "%.4g" % x, "—"))


def load(preset, root):
    path = os.path.join(root, "notebooks-export", preset, "table.json")
    if not os.path.exists(path):
        raise SystemExit("readme-claims: %s not found (run scripts/export-presets.sh %s)" % (path, preset))
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def t_half_width(std, n):
    """Half-width of the 95 % Student t-interval of a mean of n values with sample std `std`."""
    if n < 2 or std is None:
        return None
    from scipy import stats
    return stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)


def table_stats(table):
    """{cell hash: {metric: Stat}} as the report stored them in table.json."""
    out = {}
    for cell in table["cells"]:
        per = {}
        for metric, m in cell["metrics"].items():
            if m["n"] >= 2 and m.get("ci_high") is not None:
                half = m["ci_high"] - m["mean"]
            else:
                half = t_half_width(m.get("std"), m["n"])
            per[metric] = Stat(m["mean"], half, m["n"], m["expected"], m["diverged"])
        out[cell["hash"]] = per
    return out


def cell_grid(table):
    """Row keys, column keys and {(row, column): cell} in the report's layout."""
    axes = table["axes"]
    by_label = {c["label"]: c for c in table["cells"]}
    rows_axes = [a for a in axes if a["name"] in table["layout"]["rows"]]
    cols_axes = [a for a in axes if a["name"] in table["layout"]["columns"]]
    grid, rows, cols = {}, [], []
    for combo in itertools.product(*[a["values"] for a in axes]):
        label = ", ".join("%s=%s" % (a["label"], v) for a, v in zip(axes, combo))
        if label not in by_label:
            continue
        value = dict(zip((a["name"] for a in axes), combo))
        row = tuple(value[a["name"]] for a in rows_axes)
        col = tuple(value[a["name"]] for a in cols_axes)
        if row not in rows:
            rows.append(row)
        if col not in cols:
            cols.append(col)
        grid[(row, col)] = by_label[label]
    return rows_axes, cols_axes, rows, cols, grid


def entry(stat, metric, base_seeds):
    """One table entry: mean ± half-width, with the cell's diverged runs and seed count."""
    _, _, fmt, missing = metric_info(metric)
    if stat is None:
        return "—"
    if stat.n == 0 and missing != "—" and not stat.diverged:
        return missing                      # e.g. "not reached" in every seed
    if stat.n == 0:
        text = missing
    elif stat.half is None:
        text = fmt(stat.mean)
    else:
        text = "%s ± %s" % (fmt(stat.mean), fmt(stat.half))
    if stat.diverged:
        text += " † %d" % stat.diverged
    if stat.n < stat.expected:
        text += " (%d of %d)" % (stat.n, stat.expected)
    elif stat.n > base_seeds:
        text += " (%d seeds)" % stat.n
    return text


def escape(text):
    return str(text).replace("|", "\\|")


def metrics_of(table, requested):
    metrics = requested.split(",") if requested else [table["metrics"][0]]
    for metric in metrics:
        if not any(metric in c["metrics"] for c in table["cells"]):
            raise SystemExit("readme-claims: %s has no metric %r (metrics: %s)" % (
                table["study"], metric, ", ".join(table["metrics"])))
    return metrics


def format_table(preset, table, stats, metrics):
    """The Markdown of one results block from `stats` ({cell hash: {metric: Stat}})."""
    rows_axes, cols_axes, rows, cols, grid = cell_grid(table)
    base_seeds = len(table["seeds"])
    header = [a["label"] for a in rows_axes]
    for col in cols:
        name = ", ".join("%s=%s" % (a["label"], v) for a, v in zip(cols_axes, col))
        for metric in metrics:
            if name and len(metrics) > 1:
                header.append("%s · %s" % (name, metric_info(metric)[0]))
            else:
                header.append(name or metric_info(metric)[0])
    if not header:
        header = [metric_info(m)[0] for m in metrics]
    lines = ["| " + " | ".join(escape(h) for h in header) + " |",
             "|" + "---|" * len(rows_axes) + "---:|" * (len(header) - len(rows_axes))]
    for row in rows:
        entries = [escape(v) for v in row]
        for col in cols:
            cell = grid.get((row, col))
            for metric in metrics:
                stat = stats.get(cell["hash"], {}).get(metric) if cell else None
                entries.append(escape(entry(stat, metric, base_seeds)))
        lines.append("| " + " | ".join(entries) + " |")
    lines.append("")
    lines.append(caption(preset, table, metrics))
    return "\n".join(lines) + "\n"


def seed_text(seeds):
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return "seeds %d–%d" % (seeds[0], seeds[-1])
    return "seed%s %s" % ("" if len(seeds) == 1 else "s", ", ".join(str(s) for s in seeds))


def caption(preset, table, metrics):
    prov = table.get("provenance", {})
    runs = table.get("runs", {})
    units = "; ".join(metric_info(m)[1] for m in metrics)
    return ("Generated by `scripts/readme-claims.py` from `notebooks-export/%s/table.json` (study `%s`, spec `%s`, "
            "%s per cell, commit `%s`, threads per run: %s, %s runs, %s diverged). Entries: %s — mean ± half-width of "
            "the 95 %% Student t-interval over the seeds that gave a value; † d: d diverged runs; (k of N): only k "
            "of the cell's N seeds gave a value; (n seeds): a cell with extra seed rounds for a claim." % (
                preset, table["study"], table["spec_hash"][:12], seed_text(table["seeds"]),
                prov.get("git commit", "?"), prov.get("threads per run", "?"), runs.get("stored", "?"),
                runs.get("diverged", "?"), units))


def render(key, root):
    """The Markdown of the results block `key` (PRESET or PRESET:METRIC[,METRIC...])."""
    preset, _, requested = key.partition(":")
    table = load(preset, root)
    return format_table(preset, table, table_stats(table), metrics_of(table, requested))


def regenerate(text, root):
    """README text with every results block re-rendered; and the block keys found."""
    keys = []

    def sub(m):
        keys.append(m.group("key"))
        return m.group(1) + render(m.group("key"), root) + m.group(6)

    return BLOCK.sub(sub, text), keys


def block_body(text, key):
    for m in BLOCK.finditer(text):
        if m.group("key") == key:
            return m.group("body")
    return None
