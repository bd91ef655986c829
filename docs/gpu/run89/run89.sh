#!/usr/bin/env bash
# run 89: the committed HIP defaults (one-round-trip combine, selection batches of 128 up to 4096) against
# the old (CONCORD_COMBINE_HOIST=0 CONCORD_HIP_REDUCTION_BATCH=64), decode evicted, queued, new/old/new;
# 128K; SDPA decode; Vulkan defaults and CONCORD_COMBINE_HOIST=1; Vulkan GQA 8:1 split-major; the HIP
# [decode] suite (six processes) and Vulkan [decode] with the hoisted combine. One archive.
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p "$out"; o=/tmp/o89; mkdir -p $o
trap 'tar czf "$out/all.tgz" -C $o .' EXIT
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib:${LD_LIBRARY_PATH:-}
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
export CONCORD_CACHE_DIR=/tmp/concord-cache CONCORD_HIP_COMPAT_DIR=$PWD/backends/hip_compat CONCORD_HIP_PLATFORM=nvidia
export PATH=/usr/local/cuda/bin:$PATH
step() { echo "$(date -u +%H:%M:%S) $*" >> "$o/steps.log"; }
{ date -u +%Y-%m-%dT%H:%MZ; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader; nvcc --version | tail -2 | head -1; } > "$o/device.txt" 2>&1
B=gpu-carry/bench_hip; V=gpu-carry/bench; L=16384,32768,131072; L2=16384,32768
OLD="CONCORD_COMBINE_HOIST=0 CONCORD_HIP_REDUCTION_BATCH=64"
MHA='decode_dense H=8/8|decode_sparse H=8/8'
step compile
(timeout ${CT:-200} $B --backend hip --queued --compile-only --decode-lens $L --only decode > "$o/compile_new.log" 2>&1; echo "exit $?" >> "$o/compile_new.log") &
(env $OLD timeout ${CT:-200} $B --backend hip --queued --compile-only --decode-lens $L2 --only decode > "$o/compile_old.log" 2>&1; echo "exit $?" >> "$o/compile_old.log") &
if [ "${SUITE:-1}" = 1 ]; then
  i=0
  for t in "attention: decode with split-KV, per group and per head" "attention: decode splits combined by the last workgroup of a row, or by a separate stage" "attention: a row's short list in few splits, the other splits idle (split_blocks)" "attention: decode_stream splits a row's list by steps, within blocks (stream_steps)" "attention: streaming decode (subgroup shuffles) and the workgroup decode agree with the reference" "attention: f16 GQA decode shapes of the tensor-core decode route (every backend runs them)"; do
    i=$((i+1))
    (timeout ${ST:-240} gpu-carry/test_hip -r compact "$t" > "$o/suite_hip_decode_$i.log" 2>&1; echo "exit $?" >> "$o/suite_hip_decode_$i.log") &
  done
  (CONCORD_COMBINE_HOIST=1 timeout ${ST:-240} gpu-carry/test_vulkan -r compact "[decode]" > "$o/suite_vk_decode_h1.log" 2>&1; echo "exit $?" >> "$o/suite_vk_decode_h1.log") &
fi
wait
run() { local name=$1 lim=$2; shift 2; step "$name"; (timeout $lim env "$@" > "$o/$name.log" 2>&1; echo "exit $?" >> "$o/$name.log"); }
run new 45 $B --backend hip --queued --decode-lens $L --only decode --out "$o/new.json"
run old 30 $OLD $B --backend hip --queued --decode-lens $L2 --only decode --out "$o/old.json"
run new2 30 $B --backend hip --queued --decode-lens $L2 --only decode --out "$o/new2.json"
step sdpa
timeout 40 python3 gpu-carry/wg/sdpa_decode.py $L > "$o/sdpa_decode.txt" 2>&1
run vk 45 $V --backend vulkan --decode-lens $L2 --only decode --out "$o/vk.json"
run vkh1 25 CONCORD_COMBINE_HOIST=1 $V --backend vulkan --decode-lens $L2 --only "$MHA" --out "$o/vkh1.json"
run vk81m 20 CONCORD_SPLIT_MAJOR=1 $V --backend vulkan --decode-lens 32768 --only "decode_dense H=64/8" --out "$o/vk81m.json"
step end
for f in $o/*.log; do echo "== $f"; tail -n 2 "$f"; done
