#!/usr/bin/env bash
# run 91: Vulkan MHA decode 16K/32K, evicted: defaults against CONCORD_COMBINE_HOIST=1, A B A B A B; the
# Vulkan [fused] suite with it. One archive.
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p "$out"; o=/tmp/o91; mkdir -p $o
trap 'tar czf "$out/all.tgz" -C $o .' EXIT
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib:${LD_LIBRARY_PATH:-}
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
step() { echo "$(date -u +%H:%M:%S) $*" >> "$o/steps.log"; }
{ date -u +%Y-%m-%dT%H:%MZ; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; } > "$o/device.txt" 2>&1
V=gpu-carry/bench; L2=16384,32768; MHA='decode_dense H=8/8|decode_sparse H=8/8'
run() { local name=$1 lim=$2; shift 2; step "$name"; (timeout $lim env "$@" > "$o/$name.log" 2>&1; echo "exit $?" >> "$o/$name.log"); }
for r in 1 2 3; do
  run v_def$r 40 $V --backend vulkan --decode-lens $L2 --only "$MHA" --out "$o/v_def$r.json"
  run v_h1$r 40 CONCORD_COMBINE_HOIST=1 $V --backend vulkan --decode-lens $L2 --only "$MHA" --out "$o/v_h1$r.json"
done
run suite_fused 60 gpu-carry/test_vulkan -r compact "[fused]"
step end
for f in $o/*.log; do echo "== $f"; tail -n 2 "$f"; done
