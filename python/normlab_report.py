"""Figures and notebooks for ``normlab ablate report``.

Swift (``NormAblate``) aggregates the results and calls this module through the embedded
interpreter with JSON payloads; everything here only draws and writes files. Also usable
from ``/usr/bin/python3`` (e.g. ``python3 -c 'import normlab_report as r; r.validate_notebook("x.ipynb")'``).

- :func:`render_figures` draws each figure with matplotlib's object-oriented API (no
  ``pyplot`` global state, so concurrent callers cannot interfere) on the Agg backend and
  writes ``<name>.png`` and ``<name>.svg`` (SVG with a fixed hash salt and no date, so the
  same data gives the same file).
- :func:`write_notebook` builds an nbformat-4 notebook (spec, provenance, table, figures as
  attachments, and code cells that reload the exported CSV files), validates it with
  ``nbformat.validate`` and writes it.
"""
import base64
import json
import os

import matplotlib

matplotlib.use("Agg")
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# Deterministic SVG output (element ids are salted with this instead of a random value).
matplotlib.rcParams["svg.hashsalt"] = "normlab"
matplotlib.rcParams["svg.fonttype"] = "path"

_COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def _nan(x):
    return float("nan") if x is None else float(x)


def _errors(series):
    """Error bars: the 95 % CI half-widths (0 where a cell has fewer than two values)."""
    return [0.0 if v is None else float(v) for v in series.get("ci", series["std"])]


def _bar(fig, spec):
    ax = fig.add_subplot(1, 1, 1)
    categories = spec["categories"]
    series = spec["series"]
    k = max(1, len(series))
    width = 0.8 / k
    xs = list(range(len(categories)))
    for i, s in enumerate(series):
        offs = [x - 0.4 + width * (i + 0.5) for x in xs]
        means = [_nan(m) for m in s["mean"]]
        errs = _errors(s)
        color = _COLORS[i % len(_COLORS)]
        ax.bar(offs, [0 if m != m else m for m in means], width=width * 0.95, yerr=errs, capsize=3,
               color=color, label=s["label"], edgecolor="black", linewidth=0.4)
        for x, m, d, n in zip(offs, means, s["diverged"], s["n"]):
            if d:
                top = 0 if m != m else m
                ax.annotate("%d\u2020" % d, (x, top), ha="center", va="bottom", fontsize=7, color="#C44E52")
            elif n == 0:
                ax.annotate("n/a", (x, 0), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs)
    ax.set_xticklabels(categories, fontsize=7 if len(categories) > 6 else 8)
    ax.set_ylabel(spec["metric"])
    finite = [_nan(m) for s in series for m in s["mean"] if m is not None]
    if finite and all(0 <= m <= 1 for m in finite):
        lo = min(finite)
        ax.set_ylim(max(0.0, lo - 0.15 * (1 - lo) - 0.05), min(1.0, max(finite) + 0.1))
    if len(series) > 1 or spec.get("legend_title"):
        ax.legend(fontsize=7, title=spec.get("legend_title"), title_fontsize=7)
    ax.grid(axis="y", alpha=0.3)


def _legend(ax, lines):
    """Inside the axes for a few lines; beside them (outside the data) for many."""
    if lines <= 6:
        ax.legend(fontsize=6, loc="best")
    elif lines <= 24:
        ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5), borderaxespad=0)


_DASHES = ["--", "-", ":", "-."]


def _curve(fig, spec):
    ax = fig.add_subplot(1, 1, 1)
    for i, line in enumerate(spec["lines"]):
        mean = [_nan(v) for v in line["mean"]]
        std = _errors(line)
        xs = line.get("x") or list(range(1, len(mean) + 1))
        # several curves per cell: a color per cell, a dash per curve (e.g. percentiles)
        color = _COLORS[line.get("color", i) % len(_COLORS)]
        if "dash" in line:
            style = _DASHES[line["dash"] % len(_DASHES)]
        else:
            style = "-" if i < len(_COLORS) else "--"
        ax.plot(xs, mean, style, color=color, label=line["label"], linewidth=1.2, marker="o", markersize=2.5)
        lo = [m - s for m, s in zip(mean, std)]
        hi = [m + s for m, s in zip(mean, std)]
        ax.fill_between(xs, lo, hi, color=color, alpha=0.07 if "dash" in line else 0.15, linewidth=0)
    ax.set_xlabel(spec.get("xlabel", "epoch"))
    if spec.get("log_x"):
        ax.set_xscale("log")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(spec["metric"])
    ax.grid(alpha=0.3)
    _legend(ax, len(spec["lines"]))


def _line(fig, spec):
    """Final metric against a numeric grid axis: one line per combination of the other axes."""
    ax = fig.add_subplot(1, 1, 1)
    for i, line in enumerate(spec["lines"]):
        xs = [float(v) for v in line["x"]]
        mean = [_nan(m) for m in line["mean"]]
        std = _errors(line)
        color = _COLORS[i % len(_COLORS)]
        style = "-" if i < len(_COLORS) else "--"
        ax.errorbar(xs, mean, yerr=std, fmt=style, color=color, label=line["label"], linewidth=1.2,
                    marker="o", markersize=3, capsize=2)
        for x, m, d in zip(xs, mean, line["diverged"]):
            if d:
                ax.annotate("%d\u2020" % d, (x, 0 if m != m else m), ha="center", va="bottom", fontsize=7, color="#C44E52")
    if spec.get("log_x"):
        ax.set_xscale("log", base=2)
    ax.set_xticks([float(v) for v in spec["xticks"]])
    ax.set_xticklabels(spec["xticklabels"], fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel(spec.get("xlabel", ""))
    ax.set_ylabel(spec["metric"])
    ax.grid(alpha=0.3)
    _legend(ax, len(spec["lines"]))


_VERDICT_COLORS = {"supported": "#55A868", "contradicted": "#C44E52", "inconclusive": "#8C8C8C"}


def _claims(fig, spec):
    """Forest plot: each claim's effect with its 95 % CI, a line at 0, colored by verdict."""
    ax = fig.add_subplot(1, 1, 1)
    claims = spec["claims"]
    ys = list(range(len(claims)))
    for y, c in zip(ys, claims):
        color = _VERDICT_COLORS.get(c["verdict"], "black")
        eff = _nan(c["effect"])
        if eff == eff:
            lo, hi = c["ci_low"], c["ci_high"]
            if lo is not None and hi is not None:
                ax.errorbar([eff], [y], xerr=[[eff - lo], [hi - eff]], fmt="o", color=color, capsize=4, markersize=5)
            else:
                ax.plot([eff], [y], "o", color=color, markersize=5)
        ax.annotate(c["verdict"], (1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=7, color=color)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels(["%s\n(%s)" % (c["label"], c["definition"]) for c in claims], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("effect (paired over seeds), 95 % CI")
    ax.grid(axis="x", alpha=0.3)


def render_figures(payload_json, out_dir):
    """Draws every figure of ``{"figures": [...]}`` into ``out_dir``; returns the files written."""
    payload = json.loads(payload_json)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for spec in payload["figures"]:
        width = 7.0
        if spec["kind"] == "bar":
            width = max(7.0, min(16.0, 1.2 * len(spec["categories"]) * max(1, len(spec["series"])) ** 0.5))
        elif len(spec.get("lines", [])) > 6:
            width = 9.5  # room for the legend beside the axes
        height = 4.4
        if spec["kind"] == "claims":
            width, height = 9.0, max(2.2, 0.7 * len(spec["claims"]) + 1.4)
        fig = Figure(figsize=(spec.get("width", width), spec.get("height", height)), dpi=110)
        FigureCanvasAgg(fig)
        if spec["kind"] == "bar":
            _bar(fig, spec)
        elif spec["kind"] == "curve":
            _curve(fig, spec)
        elif spec["kind"] == "line":
            _line(fig, spec)
        elif spec["kind"] == "claims":
            _claims(fig, spec)
        else:
            raise ValueError("unknown figure kind %r" % spec["kind"])
        fig.suptitle(spec["title"], fontsize=10)
        if spec["kind"] in ("bar", "line", "curve"):
            what = "bands" if spec["kind"] == "curve" else "error bars"
            fig.text(0.995, 0.005, "%s: 95 %% t-interval over seeds" % what, ha="right", va="bottom", fontsize=6, color="#555555")
        fig.tight_layout()
        base = os.path.join(out_dir, spec["name"])
        fig.savefig(base + ".png", format="png", metadata={"Software": None}, bbox_inches="tight")
        fig.savefig(base + ".svg", format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
        written += [base + ".png", base + ".svg"]
    return written


_RELOAD = '''import csv
from pathlib import Path

# The aggregated table (one row per cell and metric) and every run, exported next to this notebook.
table = list(csv.DictReader(open(Path({csv!r}))))
runs = list(csv.DictReader(open(Path({runs_csv!r}))))
axes = {axes!r}
metrics = sorted({{row["metric"] for row in table}})
print(len(table), "table rows,", len(runs), "runs; axes:", axes, "; metrics:", metrics)'''

_REDRAW = '''import matplotlib.pyplot as plt

def num(s):
    return float(s) if s not in ("", "nan") else float("nan")

metric = {metric!r}
rows = [r for r in table if r["metric"] == metric]
labels = [", ".join("%s=%s" % (a, r[a]) for a in axes) or "all" for r in rows]
means = [num(r["mean"]) for r in rows]
# error bars: the 95 % t-interval over seeds (ci_low, ci_high); none for a single seed
lo = [m - num(r["ci_low"]) if r.get("ci_low") not in (None, "", "nan") else 0.0 for m, r in zip(means, rows)]
hi = [num(r["ci_high"]) - m if r.get("ci_high") not in (None, "", "nan") else 0.0 for m, r in zip(means, rows)]
fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.5))
ax.barh(range(len(rows)), means, xerr=[lo, hi], capsize=3)
ax.set_yticks(range(len(rows)))
ax.set_yticklabels(labels, fontsize=7)
ax.invert_yaxis()
ax.set_xlabel(metric + " (mean, 95 % CI over seeds)")
plt.tight_layout()
plt.show()'''

_PER_SEED = '''# Per-seed values of one cell, straight from the runs table.
first = runs[0]["cell_hash"] if runs else None
[(r["seed"], r["diverged"], r.get({metric!r})) for r in runs if r["cell_hash"] == first]'''


def write_notebook(payload_json, path):
    """Writes the study notebook to ``path`` after ``nbformat.validate``; returns ``path``."""
    import nbformat
    from nbformat import v4

    p = json.loads(payload_json)
    cells = []
    intro = "# Ablation study: %s\n\n" % p["study"]
    if p.get("description"):
        intro += p["description"].strip() + "\n\n"
    intro += ("Exported by normlab %s on %s from the result store `%s` (spec hash `%s`). "
              "The tables and figures below are the stored results; the code cells reload the exported CSV files "
              "(`%s`, `%s`) so the analysis can go on from here."
              % (p["normlab_version"], p["exported_at"], p["store"], p["spec_hash"][:12], p["csv"], p["runs_csv"]))
    cells.append(v4.new_markdown_cell(intro))
    cells.append(v4.new_markdown_cell("## Spec\n\n```yaml\n%s\n```" % p["spec_yaml"].rstrip()))
    cells.append(v4.new_markdown_cell("## Provenance\n\n" + p["provenance_md"]))
    cells.append(v4.new_markdown_cell("## Results\n\n" + p["table_md"] + "\n" + p["legend"]))
    if p.get("claims_md"):
        cells.append(v4.new_markdown_cell("## Claims\n\n" + p["claims_md"]))
    if p.get("differences_md"):
        cells.append(v4.new_markdown_cell("## Paired differences against the baseline\n\n" + p["differences_md"]))
    for fig in p["figures"]:
        name = os.path.basename(fig["png"])
        with open(fig["png"], "rb") as f:
            data = base64.b64encode(f.read()).decode("ascii")
        cell = v4.new_markdown_cell("### %s\n\n![%s](attachment:%s)" % (fig["title"], fig["name"], name))
        cell["attachments"] = {name: {"image/png": data}}
        cells.append(cell)
    cells.append(v4.new_markdown_cell("## Reload the data"))
    cells.append(v4.new_code_cell(_RELOAD.format(csv=p["csv"], runs_csv=p["runs_csv"], axes=p["axis_columns"])))
    if p["metrics"]:
        cells.append(v4.new_code_cell(_REDRAW.format(metric=p["metrics"][0])))
        cells.append(v4.new_code_cell(_PER_SEED.format(metric=p["metrics"][0])))
    nb = v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "normlab": {"study": p["study"], "spec_hash": p["spec_hash"], "store": p["store"],
                    "normlab_version": p["normlab_version"]},
    })
    nbformat.validate(nb)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        nbformat.write(nb, f)
    os.replace(tmp, path)
    return path


def validate_notebook(path):
    """Reads ``path`` as nbformat 4 and validates it (raises ``nbformat.ValidationError``)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb.nbformat, nb.nbformat_minor, len(nb.cells)
