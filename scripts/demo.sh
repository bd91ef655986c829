#!/usr/bin/env bash
# The main job: the examples on every backend present, each compared with the reference.
set -euo pipefail
build=${1:-build}
export CONCORD_CACHE_DIR=${CONCORD_CACHE_DIR:-$PWD/$build/kernel-cache}
for ex in 01_keep_mask 02_fused_elementwise 03_vulkan_mask 04_sparse_attention 05_decode_loop; do
  echo "== examples/$ex"
  "$build/examples/$ex"
done
