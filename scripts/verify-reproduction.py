#!/usr/bin/env python3
"""Re-runs committed preset studies from the current build and compares them with the export.

    scripts/verify-reproduction.py dropout lrn            # every run of each preset
    scripts/verify-reproduction.py batch-size --claims-only --jobs 2

Each preset runs into a scratch store (nothing under results/ or notebooks-export/ changes),
with the thread count its committed runs used, and is reported with `normlab ablate report`.
Then, per (cell, seed) present in both, every metric of the new run is compared with the
committed `notebooks-export/<preset>/runs.csv` exactly (the same decimal text). When every run
is identical the preset reproduces bit for bit. When the arithmetic changed since the commit
the runs were made at, the committed verdicts must still hold: each claim's new verdict must
equal the committed one and its new effect lie inside the committed 95 % CI.

Exit status 0 when every preset reproduces bit for bit or its verdicts hold, 1 otherwise.
`--claims-only` re-runs only the cells the claims compare (`normlab ablate --claims-only`).
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# runs.csv columns that describe where and when a run ran, not what it computed
PROVENANCE = {"study", "cell", "runner", "threads", "host", "started_at", "finished_at", "duration_s",
              "git_commit", "git_dirty", "normlab_version"}


def read_runs(path):
    with open(path, newline="") as f:
        return {(r["cell_hash"], r["seed"]): r for r in csv.DictReader(f)}


def committed_threads(runs, preset):
    threads = {r["threads"] for r in runs.values()}
    if len(threads) != 1:
        sys.exit(f"verify-reproduction: {preset}: the committed runs used different thread counts ({', '.join(sorted(threads))}); give --threads")
    return threads.pop()


def run_study(binary, preset, store, out, jobs, threads, claims_only):
    run = [binary, "ablate", "--preset", preset, "--store", store, "--jobs", str(jobs), "--threads", threads, "--no-report"]
    if claims_only:
        run.append("--claims-only")
    report = [binary, "ablate", "report", "--preset", preset, "--store", store, "--out", out, "--no-plots"]
    for name, command in (("run", run), ("report", report)):
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            sys.exit(f"verify-reproduction: {preset}: `normlab ablate {name}` failed: {last}")


def compare_runs(old, new):
    """(identical, differing, missing) over the new runs: differing lists (key, metric, old, new)."""
    identical, differing, missing = 0, [], 0
    for key, row in new.items():
        if key not in old:
            missing += 1
            continue
        diffs = [(key, c, old[key][c], v) for c, v in row.items() if c not in PROVENANCE and old[key].get(c) != v]
        if diffs:
            differing.append(diffs[0])
        else:
            identical += 1
    return identical, differing, missing


def claims_hold(old_table, new_table):
    """Lines describing each claim, and whether every committed verdict still holds."""
    new_claims = {c["name"]: c for c in new_table.get("claims", [])}
    lines, ok = [], True
    for c in old_table.get("claims", []):
        n = new_claims.get(c["name"])
        if n is None or n.get("effect") is None:
            lines.append(f"  claim '{c['name']}': not evaluated in the re-run")
            ok = False
            continue
        inside = c["ci_low"] is not None and c["ci_low"] <= n["effect"] <= c["ci_high"]
        holds = n["verdict"] == c["verdict"] and inside
        ok &= holds
        lines.append(f"  claim '{c['name']}': committed {c['verdict']} {c['effect']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] "
                     f"(n={c['n']}); re-run {n['verdict']} {n['effect']:+.4f} [{n['ci_low']:+.4f}, {n['ci_high']:+.4f}] (n={n['n']}): "
                     + ("holds" if holds else "DOES NOT HOLD" + ("" if inside else " (effect outside the committed CI)")))
    return lines, ok


def verify(preset, args, scratch):
    export = os.path.join(args.exports, preset)
    if not os.path.isfile(os.path.join(export, "runs.csv")) or not os.path.isfile(os.path.join(export, "table.json")):
        sys.exit(f"verify-reproduction: {preset}: no committed export (runs.csv and table.json) in {export}")
    old_runs = read_runs(os.path.join(export, "runs.csv"))
    with open(os.path.join(export, "table.json")) as f:
        old_table = json.load(f)
    threads = args.threads or committed_threads(old_runs, preset)
    store, out = os.path.join(scratch, preset + ".sqlite"), os.path.join(scratch, preset)
    run_study(args.bin, preset, store, out, args.jobs, threads, args.claims_only)
    new_runs = read_runs(os.path.join(out, "runs.csv"))
    with open(os.path.join(out, "table.json")) as f:
        new_table = json.load(f)
    identical, differing, missing = compare_runs(old_runs, new_runs)
    print(f"{preset}: {identical} of {len(new_runs)} re-run runs bit-identical to the committed ones"
          + (f", {len(differing)} differ" if differing else "") + (f", {missing} not in the export" if missing else "")
          + f" ({threads} thread{'s' if threads != '1' else ''} per run)")
    if not differing and not missing:
        return True
    if differing:
        (cell, seed), metric, a, b = differing[0]
        print(f"  first difference: cell {cell[:12]} seed {seed}: {metric} {a} (committed) vs {b} (now)")
    lines, ok = claims_hold(old_table, new_table)
    print("\n".join(lines) if lines else "  the preset declares no claims")
    return ok and bool(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("presets", nargs="+", help="preset names (their exports are in notebooks-export/)")
    p.add_argument("--claims-only", action="store_true", help="re-run only the cells the claims compare")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (default 1)")
    p.add_argument("--threads", help="threads per run (default: the committed runs' count)")
    p.add_argument("--bin", default=os.environ.get("NORMLAB_BIN"), help="the normlab binary (default: $NORMLAB_BIN, else the release build)")
    p.add_argument("--keep", help="keep the scratch stores and reports in this folder")
    p.add_argument("--exports", default=os.path.join(ROOT, "notebooks-export"), help="the committed exports (default: notebooks-export/)")
    args = p.parse_args()
    if args.bin is None:
        path = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
        args.bin = os.path.join(path, "normlab")
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"verify-reproduction: no normlab binary at {args.bin} (build it: swift build -c release)")
    if args.jobs < 1:
        sys.exit(f"verify-reproduction: --jobs must be at least 1, got {args.jobs}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = args.keep or tmp
        os.makedirs(scratch, exist_ok=True)
        for preset in args.presets:
            results.append(verify(preset, args, scratch))
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
