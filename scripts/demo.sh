#!/usr/bin/env bash
# The main job until the ablation driver lands: show the registry and run every method
# once through `normlab apply` on a seeded batch, comparing with the float64 reference.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${NORMLAB_BIN:-$(swift build -c release --show-bin-path)/normlab}"
OUT="${DEMO_OUT:-out/demo}"
rm -rf "$OUT"; mkdir -p "$OUT"

"$BIN" list
echo
"$BIN" describe bn
echo

/usr/bin/python3 - "$OUT" <<'PY'
import sys, numpy as np
out = sys.argv[1]
rng = np.random.default_rng(0)
np.save(f"{out}/x.npy", (rng.standard_normal((8, 16, 12, 12)) * 3 + 5).astype(np.float32))
np.save(f"{out}/gy.npy", rng.standard_normal((8, 16, 12, 12)).astype(np.float32))
PY

for spec in "bn" "brn --set r_max=1.5 --set d_max=0.5" "gn --set num_groups=4" "ln" "in --set affine=true" "frn --set learnable_eps=true"; do
  set -- $spec
  m=$1; shift
  "$BIN" apply "$m" --input "$OUT/x.npy" --grad-output "$OUT/gy.npy" --out "$OUT/$m" "$@"
done

/usr/bin/python3 - "$OUT" <<'PY'
import os, sys, numpy as np
sys.path.insert(0, "python")
import normref
out = sys.argv[1]
x, gy = np.load(f"{out}/x.npy"), np.load(f"{out}/gy.npy")
opts = {"bn": {}, "brn": {"r_max": 1.5, "d_max": 0.5}, "gn": {"num_groups": 4}, "ln": {},
        "in": {"affine": True}, "frn": {"learnable_eps": True}}
print(f"{'method':<22}{'files':<70}{'max |err| vs float64 reference'}")
for m, o in opts.items():
    ref = normref.run(m, x, grad_output=gy, options=o)
    files = sorted(os.listdir(f"{out}/{m}"))
    err = max(float(np.max(np.abs(np.load(f"{out}/{m}/{f}") - ref[f[:-4]]))) for f in files)
    print(f"{normref.canonical_name(m):<22}{' '.join(f[:-4] for f in files):<70}{err:.2e}")
PY
