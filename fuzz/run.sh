#!/usr/bin/env bash
# Coverage-guided fuzzing of the .npy reader with libFuzzer (issue 17, item 9).
#
#   bash fuzz/run.sh [SECONDS]      (default 60; `make fuzz` runs this, `make test` does not)
#
# Builds Sources/NormKernels, then fuzz/NPYFuzzTarget.swift together with Sources/NormCore, into
# one executable with `swiftc -sanitize=fuzzer,address` (rebuilt when a source is newer), starts from the seed
# corpus fuzz/corpus (numpy-written files of every supported layout plus a few invalid ones),
# and keeps what it learns in .build/fuzz/work. An input that crashes, hangs (> 10 s) or
# trips AddressSanitizer is written to fuzz/regressions/ — commit it: the NormCore test
# `NPYFuzzCorpusTests` replays every file there and in fuzz/corpus on each `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-${FUZZ_SECONDS:-60}}"
build=.build/fuzz
binary="$build/npy-fuzzer"
mkdir -p "$build/work" "$build/scratch" fuzz/regressions

if [ ! -x "$binary" ] || [ -n "$(find Sources/NormKernels Sources/NormCore fuzz/NPYFuzzTarget.swift -name '*.swift' -newer "$binary" | head -n 1)" ]; then
    echo "fuzz: building $binary (swiftc -sanitize=fuzzer,address: NormKernels, then NormCore with the target)"
    flags=(-sanitize=fuzzer,address -O -parse-as-library)
    mkdir -p "$build/modules"
    mapfile -t kernels < <(find Sources/NormKernels -name '*.swift' | sort)
    mapfile -t core < <(find Sources/NormCore -name '*.swift' | sort)
    { swiftc "${flags[@]}" -module-name NormKernels -wmo -c "${kernels[@]}" -I Sources/CBLAS \
          -emit-module -emit-module-path "$build/modules/NormKernels.swiftmodule" -o "$build/NormKernels.o" \
      && swiftc "${flags[@]}" -module-name NormCore -I "$build/modules" -I Sources/CBLAS \
          "${core[@]}" fuzz/NPYFuzzTarget.swift "$build/NormKernels.o" -o "$binary"; } 2> "$build/build.log" \
        || { cat "$build/build.log" >&2; exit 1; }
fi

echo "fuzz: running for ${seconds}s (findings go to fuzz/regressions/)"
status=0
NORMLAB_FUZZ_SCRATCH="$build/scratch" "$binary" "$build/work" fuzz/corpus fuzz/regressions \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=fuzz/regressions/ -print_final_stats=1 2> "$build/last.log" || status=$?
grep -E "^(stat::number_of_executed_units|stat::new_units_added|Done [0-9]+ runs)" "$build/last.log" || true
if [ "$status" -ne 0 ]; then
    tail -n 30 "$build/last.log" >&2
    echo "fuzz: FAILED: a finding was written to fuzz/regressions/ (add it to git; NPYFuzzCorpusTests replays it)" >&2
    exit "$status"
fi
echo "fuzz: no crash, hang or sanitizer report"
