#!/usr/bin/env bash
# CPU time per training step of the two convolution engines, Winograd F(2x2,3x3) (default)
# against im2col (NORMLAB_CONV=im2col), 1 thread: `perf stat -e task-clock` of an N2-step and
# an N1-step `normlab bench train --steps` run, (t2 - t1) / (N2 - N1), so start-up, the
# bit-identity check and time the process spends descheduled on a shared machine do not count.
#
#   scripts/bench-conv-engines.sh > docs/bench-conv-engines-DATE.txt
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${NORMLAB_BIN:-$(swift build -c release --show-bin-path)/normlab}"
cpu_ms() {   # engine model batch steps -> task-clock ms
    NORMLAB_CONV=$1 perf stat -e task-clock -x, "$BIN" bench train --models "$2" --batch-sizes "$3" --threads 1 \
        --steps "$4" --no-frameworks --quiet --no-breakdown 2>&1 >/dev/null | awk -F, '/task-clock/ { print $1 }'
}
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(git rev-parse --short HEAD): CPU ms per step, 1 thread"
echo "model     B    im2col  winograd  winograd/im2col"
for cfg in "resnet20 2 20 220" "resnet20 32 5 35" "resnet20 128 2 10" "plain-2d 2 100 2100" "plain-2d 32 50 350" "plain-2d 128 10 80"; do
    set -- $cfg
    row=()
    for engine in im2col winograd; do
        t1=$(cpu_ms $engine "$1" "$2" "$3"); t2=$(cpu_ms $engine "$1" "$2" "$4")
        row+=("$(awk -v a="$t1" -v b="$t2" -v n="$(( $4 - $3 ))" 'BEGIN { printf "%.3f", (b - a) / n }')")
    done
    awk -v m="$1" -v b="$2" -v i="${row[0]}" -v w="${row[1]}" 'BEGIN { printf "%-9s %-4s %7s %9s  %.2f\n", m, b, i, w, w / i }'
done
