#!/usr/bin/env bash
# run 85: the fused combine's batched partial loads: suites (HIP, Vulkan), decode new vs old in one call, SDPA cold
set -u
out=$1; r=$out/r; mkdir -p $r
export PATH=/usr/local/cuda/bin:$PATH LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib
export CONCORD_CACHE_DIR=/tmp/cc CONCORD_HIP_COMPAT_DIR=$PWD/backends/hip_compat CONCORD_HIP_PLATFORM=nvidia
step() { echo "$(date -u +%H:%M:%S) $*" >> $r/steps.log; }
fin() { step done; cd $out && tar czf all.tgz r && rm -rf r; }
trap fin EXIT
{ echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; } > $r/device.txt 2>&1
cat $r/device.txt
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
DEC="decode_dense H=8/8|decode_dense H=32/8|decode_sparse"
step suites
(timeout 200 gpu-carry/test_hip -r compact "[fused],[live],[stream],[steps]" > $r/suite_hip.log 2>&1; echo "exit $?" >> $r/suite_hip.log) &
(timeout 200 gpu-carry/test_vulkan -r compact "[fused],[live],[stream],[steps]" > $r/suite_vk.log 2>&1; echo "exit $?" >> $r/suite_vk.log) &
for b in bench_hip alt/bench_hip_old; do
  (timeout 120 gpu-carry/$b --backend hip --compile-only --queued --decode-lens 2048,16384,32768 --only "$DEC" > $r/warm_$(basename $b).log 2>&1) &
done
wait
step suites-done
echo "== suites"; grep -hE "FAILED|failed|passed|exit" $r/suite_hip.log $r/suite_vk.log | head -12
for t in new old new2; do
  b=gpu-carry/bench_hip; [ $t = old ] && b=gpu-carry/alt/bench_hip_old
  step "hip $t"
  timeout 45 $b --backend hip --queued --decode-lens 2048,16384,32768 --only "$DEC" --out $r/hip_$t.json > $r/hip_$t.log 2>&1; echo "exit $?" >> $r/hip_$t.log
  echo "hip $t:"; grep -h " ms " $r/hip_$t.log | grep -v "copy\|fused_el" | sed 's/^.*hip *//' | cut -c1-90 | sed 's/D=128 Nq=1 //'
done
step sdpa
timeout 40 python3 - > $r/sdpa_decode.txt 2>&1 <<'PY'
import torch, torch.nn.functional as F
junk = torch.empty(1 << 26, dtype=torch.float32, device="cuda")
for Nk in (2048, 16384, 32768):
    for Hq, Hk in ((8, 8), (32, 8)):
        q = torch.randn(1, Hq, 1, 128, device="cuda", dtype=torch.float16)
        k = torch.randn(1, Hk, Nk, 128, device="cuda", dtype=torch.float16); v = torch.randn_like(k)
        f = lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=Hq != Hk)
        for _ in range(5): f()
        ts = []
        for _ in range(31):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            junk.zero_()
            torch.cuda._sleep(400_000); a.record(); f(); b.record(); torch.cuda.synchronize(); ts.append(a.elapsed_time(b))
        ts.sort(); print(f"sdpa decode queued cold H={Hq}/{Hk} Nk={Nk} median ms {ts[len(ts)//2]:.4f}")
PY
cat $r/sdpa_decode.txt
for t in new old; do
  b=gpu-carry/bench; [ $t = old ] && b=gpu-carry/alt/bench_old
  if [ $SECONDS -gt ${VKGATE:-400} ]; then step "skip vk $t"; continue; fi
  step "vk $t"
  timeout 50 $b --backend vulkan --decode-lens 16384,32768 --only "$DEC" --out $r/vk_$t.json > $r/vk_$t.log 2>&1; echo "exit $?" >> $r/vk_$t.log
  echo "vk $t:"; grep -h "eviction\| ms " $r/vk_$t.log | grep -v "copy\|fused_el" | sed 's/^.*vulkan *//' | cut -c1-90 | sed 's/D=128 Nq=1 //'
done
