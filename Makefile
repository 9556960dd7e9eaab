# normlab — the two entry points a newcomer needs: `make demo` and `make test`.
# Both install what is missing first (scripts/setup.sh: apt packages, Python packages).
SHELL := /bin/bash
PY := /usr/bin/python3

.PHONY: setup build demo test test-swift test-python fuzz clean

setup:
	@bash scripts/setup.sh

build: setup
	swift build

demo: setup
	swift build -c release
	bash scripts/demo.sh

test: setup
	swift build
	swift test
	NORMLAB_BIN="$$(swift build --show-bin-path)/normlab" $(PY) -m pytest python/tests -q
	"$$(swift build --show-bin-path)/normlab" bench --quick --quiet > /dev/null
	NORMLAB="$$(swift build --show-bin-path)/normlab" bash scripts/test-slurm.sh

# libFuzzer on the .npy reader for FUZZ_SECONDS (default 60); not part of `make test`.
fuzz:
	bash fuzz/run.sh $${FUZZ_SECONDS:-60}

clean:
	rm -rf .build out
