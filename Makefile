# A thin layer over meson/ninja. Every target installs what is missing first
# (scripts/install-deps), so a fresh Debian 12 machine needs nothing else.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz

.PHONY: all build test unit demo bench fuzz format clean install

all: build

$(BUILD)/build.ninja:
	scripts/install-deps build
	meson setup $(BUILD)

build: $(BUILD)/build.ninja
	scripts/install-deps build
	ninja -C $(BUILD)

# An operator's install (docs/operating.md, "Install"): the binaries under
# PREFIX, PREFIX/lib/systemd/system/dynod.service, /etc/dyno/dynod.json (kept
# when present) and the dyno group (not with DESTDIR).
PREFIX ?= /usr/local
DESTDIR ?=
install: build
	PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) BUILD=$(BUILD) scripts/install

# Everything: unit tests and fuzz-corpus replays (normal and sanitizer
# builds) and the integration tests. Ends with "N passed, N failed".
test:
	scripts/run-tests

unit: build
	meson test -C $(BUILD) --print-errorlogs

# The platform in the foreground (dynod and its router, state in build/demo/)
# with examples/getting-started at web=2: docs/getting-started.md. Ctrl-C
# stops it all; run again, it picks up its state.
demo:
	scripts/demo

# Every benchmark, then docs/performance.md with its plots (run it alone on
# the machine; under 15 minutes here): docs/benchmarks.md
bench: build
	scripts/install-deps bench
	tests/bench/run-all

# libFuzzer build: make fuzz, then e.g. build-fuzz/tests/fuzz/fuzz-procfile
fuzz:
	scripts/install-deps test
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C $(FUZZ_BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
