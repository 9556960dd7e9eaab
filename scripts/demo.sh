#!/usr/bin/env bash
# The main job: the BN-freeze ablation (MMDetection Table 6 at small scale) in its quick form,
# trained for real, stored, aggregated and exported (table, figures, notebook) — after a
# look at the registry and a short parity check of every method against numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${NORMLAB_BIN:-$(swift build -c release --show-bin-path)/normlab}"
OUT="${DEMO_OUT:-out/demo}"
rm -rf "$OUT"; mkdir -p "$OUT"

"$BIN" list
echo
"$BIN" parity --cases 20
echo
"$BIN" ablate --preset freeze --quick --jobs 2 --store "$OUT/freeze-quick.sqlite"
echo
echo "demo: the full study is 'normlab ablate --preset freeze' (about 30 s here); its notebook is notebooks-export/freeze.ipynb"
