#!/usr/bin/env bash
# run 90: decode evicted, HIP queued: defaults at 16K/32K/128K; CONCORD_SPLIT_STRIDE=1 (MHA), CONCORD_FENCE_ONCE=1/2;
# defaults again; SDPA decode; Vulkan decode defaults (with 64/8 32K) and split-major 64/8; the HIP [decode]
# suite by tags (five processes). One archive.
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p "$out"; o=/tmp/o90; mkdir -p $o
trap 'tar czf "$out/all.tgz" -C $o .' EXIT
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib:${LD_LIBRARY_PATH:-}
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
export CONCORD_CACHE_DIR=/tmp/concord-cache CONCORD_HIP_COMPAT_DIR=$PWD/backends/hip_compat CONCORD_HIP_PLATFORM=nvidia
export PATH=/usr/local/cuda/bin:$PATH
step() { echo "$(date -u +%H:%M:%S) $*" >> "$o/steps.log"; }
{ date -u +%Y-%m-%dT%H:%MZ; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader; nvcc --version | tail -2 | head -1; } > "$o/device.txt" 2>&1
B=gpu-carry/bench_hip; V=gpu-carry/bench; L=16384,32768,131072; L2=16384,32768
MHA='decode_dense H=8/8|decode_sparse H=8/8'; MG='decode_dense H=8/8|decode_sparse H=8/8|decode_dense H=32/8|decode_sparse H=32/8'
step compile
(timeout 200 $B --backend hip --queued --compile-only --decode-lens $L --only decode > "$o/compile_def.log" 2>&1; echo "exit $?" >> "$o/compile_def.log") &
(CONCORD_SPLIT_STRIDE=1 timeout 200 $B --backend hip --queued --compile-only --decode-lens $L2 --only "$MHA" > "$o/compile_st.log" 2>&1; echo "exit $?" >> "$o/compile_st.log") &
(CONCORD_FENCE_ONCE=1 timeout 200 $B --backend hip --queued --compile-only --decode-lens $L2 --only "$MG" > "$o/compile_f1.log" 2>&1; echo "exit $?" >> "$o/compile_f1.log") &
(CONCORD_FENCE_ONCE=2 timeout 200 $B --backend hip --queued --compile-only --decode-lens $L2 --only "$MG" > "$o/compile_f2.log" 2>&1; echo "exit $?" >> "$o/compile_f2.log") &
if [ "${SUITE:-1}" = 1 ]; then
  i=0
  for t in "[decode]~[fused]~[live]~[stream]~[mma]" "[fused]" "[live]~[steps]" "[steps]" "[stream]" "[mma]"; do
    i=$((i+1))
    (timeout ${ST:-230} gpu-carry/test_hip -r compact "$t" > "$o/suite_hip_decode_$i.log" 2>&1; echo "exit $?" >> "$o/suite_hip_decode_$i.log") &
  done
fi
wait
run() { local name=$1 lim=$2; shift 2; step "$name"; (timeout $lim env "$@" > "$o/$name.log" 2>&1; echo "exit $?" >> "$o/$name.log"); }
run def 100 $B --backend hip --queued --decode-lens $L --only decode --out "$o/def.json"
run st 30 CONCORD_SPLIT_STRIDE=1 $B --backend hip --queued --decode-lens $L2 --only "$MHA" --out "$o/st.json"
run f1 40 CONCORD_FENCE_ONCE=1 $B --backend hip --queued --decode-lens $L2 --only "$MG" --out "$o/f1.json"
run f2 40 CONCORD_FENCE_ONCE=2 $B --backend hip --queued --decode-lens $L2 --only "$MG" --out "$o/f2.json"
run st2 30 CONCORD_SPLIT_STRIDE=1 $B --backend hip --queued --decode-lens $L2 --only "$MHA" --out "$o/st2.json"
run def2 40 $B --backend hip --queued --decode-lens $L2 --only "$MG" --out "$o/def2.json"
step sdpa
timeout 40 python3 gpu-carry/wg/sdpa_decode.py $L > "$o/sdpa_decode.txt" 2>&1
run vk 70 $V --backend vulkan --decode-lens $L2 --only decode --out "$o/vk.json"
run vk81m 20 CONCORD_SPLIT_MAJOR=1 $V --backend vulkan --decode-lens 32768 --only "decode_dense H=64/8" --out "$o/vk81m.json"
step end
for f in $o/*.log; do echo "== $f"; tail -n 2 "$f"; done
