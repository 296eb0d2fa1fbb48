# Thin wrapper over CMake. The two commands a new machine needs:
#   make demo   install missing build dependencies, build, run the reference service
#   make test   install missing build dependencies, build, run the whole suite
# Also: make test-asan, make test-tsan, make fuzz, make demo-cluster, make bench, make install, make clean.

BUILD      ?= build
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
PREFIX     ?= /usr/local
DEMO_ARGS  ?=
CTEST_ARGS ?=
# Warnings are errors in every target here and in CI (.ci/run); a plain
# `cmake` configure leaves them warnings (SLUICE_WERROR defaults to OFF).
WERROR     ?= ON

.PHONY: all deps build test test-asan test-tsan fuzz demo demo-cluster bench install clean format

all: build

deps:
	@sh scripts/install-deps.sh

# $(1) build dir, $(2) extra cmake args
define configure
	@cmake -S . -B $(1) -DCMAKE_INSTALL_PREFIX=$(PREFIX) -DSLUICE_WERROR=$(WERROR) $(CMAKE_ARGS) $(2) >/dev/null
	@cmake --build $(1) -j $(JOBS)
endef

build: deps
	$(call configure,$(BUILD),)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

test-asan: deps
	$(call configure,build-asan,-DSLUICE_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug -DSLUICE_BUILD_BENCH=OFF)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/.ci/lsan.supp \
	  ctest --output-on-failure -j $(JOBS) -LE no-asan $(CTEST_ARGS)

test-tsan: deps
	$(call configure,build-tsan,-DSLUICE_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug -DSLUICE_BUILD_BENCH=OFF)
	cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/.ci/tsan.supp" \
	  ctest --output-on-failure -j $(JOBS) -LE no-tsan $(CTEST_ARGS)

# libFuzzer (clang), the libraries instrumented too: every fuzz/ target runs
# FUZZ_RUNS new inputs on top of its corpus (scripts/fuzz.sh).
FUZZ_RUNS ?= 10000
fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DSLUICE_FUZZ=ON -DSLUICE_SANITIZE=address -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DSLUICE_BUILD_TESTS=OFF -DSLUICE_BUILD_BENCH=OFF -DSLUICE_WERROR=OFF >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_all
	sh scripts/fuzz.sh build-fuzz $(FUZZ_RUNS)

demo: build
	@if [ -x $(BUILD)/tools/sluice/sluice ]; then \
	  $(BUILD)/tools/sluice/sluice demo $(DEMO_ARGS); \
	else \
	  $(BUILD)/examples/quickstart $(DEMO_ARGS); \
	fi

# Three `sluice demo` replicas sharing one downstream budget on a private
# redis-server (examples/cluster-demo.py; README's tour, step 7).
demo-cluster: build
	python3 examples/cluster-demo.py --sluice $(BUILD)/tools/sluice/sluice $(DEMO_ARGS)

bench: build
	$(BUILD)/bench/sluice-bench $(BENCH_ARGS)

install: build
	cmake --install $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h' | grep -v '^tests/tools/fixtures/')

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
