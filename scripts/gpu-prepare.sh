#!/usr/bin/env bash
# Builds what scripts/gpu-check.sh carries to the GPU machine: the Vulkan test and benchmark
# (glslang linked statically, the Vulkan loader opened at run time) and the HIP test and
# benchmark (built by nvcc against the shared CUDA runtime), into gpu-carry/.
set -euo pipefail
build=${1:-build}
cmake --build "$build" -j "$(nproc)" --target test_vulkan test_hip test_hip_runtime bench bench_hip vk_probe
mkdir -p gpu-carry
cp "$build/tests/test_vulkan" "$build/tests/test_hip" "$build/tests/test_hip_runtime" "$build/bench/bench" "$build/bench/bench_hip" "$build/bench/vk_probe" gpu-carry/
strip gpu-carry/test_vulkan gpu-carry/test_hip gpu-carry/test_hip_runtime gpu-carry/bench gpu-carry/bench_hip gpu-carry/vk_probe
ls -la gpu-carry
