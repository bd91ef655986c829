#!/usr/bin/env bash
# Builds what scripts/gpu-check.sh carries to the GPU machine: the Vulkan test and benchmark
# (glslang linked statically, the Vulkan loader opened at run time) and the HIP test and
# benchmark (built by nvcc against the shared CUDA runtime), into gpu-carry/.
set -euo pipefail
build=${1:-build}
cmake --build "$build" -j "$(nproc)" --target test_vulkan test_hip test_hip_runtime bench bench_hip
mkdir -p gpu-carry
cp "$build/tests/test_vulkan" "$build/tests/test_hip" "$build/tests/test_hip_runtime" "$build/bench/bench" "$build/bench/bench_hip" gpu-carry/
ls -la gpu-carry
