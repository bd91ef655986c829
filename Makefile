# Quick start: `make demo` (set-up, build, run the main example) and `make test` (set-up, build, all tests).
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONCORD_WERROR=ON

.PHONY: setup configure build demo test test-asan fuzz bench bench-quick gpu-check format clean

setup:
	@bash scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD)

test: build
	@ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory test-asan

# The core and CPU suites again under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: setup
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCONCORD_WERROR=ON -DCONCORD_SANITIZE=ON -DCONCORD_BUILD_EXAMPLES=OFF >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS) --target test_core test_cpu
	@CONCORD_RANDOM_GRAPHS=15 ASAN_OPTIONS=detect_leaks=1 ctest --test-dir $(ASAN_BUILD) --output-on-failure -R '^test_(core|cpu)$$'

# Long differential run: CONCORD_RANDOM_GRAPHS graphs per backend (default 2000).
fuzz: build
	@CONCORD_RANDOM_GRAPHS=$${CONCORD_RANDOM_GRAPHS:-2000} ctest --test-dir $(BUILD) --output-on-failure -L conformance

bench: build
	@bash scripts/bench.sh $(BUILD)

bench-quick: build
	@bash scripts/bench.sh $(BUILD) --quick

# On a machine with an NVIDIA GPU, nvcc and the NVIDIA Vulkan driver: the binaries of
# scripts/gpu-prepare.sh, then scripts/gpu-check.sh's phase PHASE (default test; results in $$OUT).
gpu-check: build
	@bash scripts/gpu-prepare.sh $(BUILD) >/dev/null && bash scripts/gpu-check.sh $${PHASE:-test}

format:
	@clang-format -i $$(git ls-files '*.hpp' '*.cpp' | grep -v tests/golden)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
