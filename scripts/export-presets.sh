#!/usr/bin/env bash
# Runs the full form of every preset (or of those named) and exports each report into
# notebooks-export/: <preset>/ (table.md|csv|json, runs.csv, figures/) and <preset>.ipynb
# with <preset>.csv and <preset>-runs.csv beside it. Resumable: the stores are
# results/<preset>.sqlite, so rerunning after an interruption runs only what is missing; a
# missing store is first rebuilt from the committed notebooks-export/<preset>/runs.csv.
#
#   scripts/export-presets.sh                      # all presets (hours: see each preset's cost in the README)
#   scripts/export-presets.sh batch-size frn-eps   # some
# and regenerates the README's claim and result tables (scripts/readme-claims.py) from the exports.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${NORMLAB_BIN:-$(swift build -c release --show-bin-path)/normlab}"
JOBS="${JOBS:-2}"
presets=("$@")
if [ ${#presets[@]} -eq 0 ]; then
    mapfile -t presets < <("$BIN" ablate presets | awk 'NF { print $1 }')
fi
mkdir -p results notebooks-export
# every study first, then the exports: the runs' provenance (git commit, clean or dirty) must
# not see this script's own changes to notebooks-export/
for p in "${presets[@]}"; do
    echo "== $p"
    # a new machine has no store: rebuild it from the committed runs (a preset changed since
    # its export is refused by import, and then runs from scratch)
    if [ ! -e "results/$p.sqlite" ] && [ -s "notebooks-export/$p/runs.csv" ]; then
        "$BIN" ablate import "notebooks-export/$p/runs.csv" --preset "$p" --store "results/$p.sqlite" \
            || echo "export-presets: $p: the committed runs are not this preset's; running it from scratch" >&2
    fi
    "$BIN" ablate --preset "$p" --jobs "$JOBS" --store "results/$p.sqlite"
done
for p in "${presets[@]}"; do
    rm -rf "notebooks-export/$p"
    "$BIN" ablate report --preset "$p" --store "results/$p.sqlite" --out "notebooks-export/$p" \
        --notebook "notebooks-export/$p.ipynb" > /dev/null
done
# the README's claim-verdict and result tables come from the exported results, never typed
/usr/bin/python3 scripts/readme-claims.py
