#!/usr/bin/env bash
# run 82 (small): knobs suite; HIP decode base / stream steps + fence once / 64 live splits at 2K-32K; SDPA decode queued; Vulkan base / steps
set -u
out=$1; r=$out/r; mkdir -p $r
export PATH=/usr/local/cuda/bin:$PATH LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib
export CONCORD_CACHE_DIR=/tmp/cc CONCORD_HIP_COMPAT_DIR=$PWD/backends/hip_compat CONCORD_HIP_PLATFORM=nvidia
step() { echo "$(date -u +%H:%M:%S) $*" >> $r/steps.log; }
fin() { step done; cd $out && tar czf all.tgz r && rm -rf r; }
trap fin EXIT
{ echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; } > $r/device.txt 2>&1
cat $r/device.txt
DEC="decode_dense H=8/8|decode_dense H=32/8|decode_sparse"
LENS="--decode-lens 2048,16384,32768"
V=("base:::" "warm:::--warm-cache" "stf:CONCORD_STREAM_STEPS=1,CONCORD_FENCE_ONCE=2::" "s64:CONCORD_SPLIT_BLOCKS=0:--splits 64:")
step suite
(CONCORD_FENCE_ONCE=2 CONCORD_STREAM_STEPS=1 timeout 70 gpu-carry/test_hip -r compact "[fused],[live],[stream],[steps]" > $r/dec_fence.log 2>&1; echo "exit $?" >> $r/dec_fence.log) &
for v in "${V[@]}"; do
  IFS=: read tag envs fl x <<< "$v"
  (env $(echo $envs | tr , ' ') timeout 60 gpu-carry/bench_hip --backend hip --compile-only --queued $LENS $fl --only "$DEC" > $r/warm_$tag.log 2>&1) &
done
wait
step suite-done
echo "== suite under STREAM_STEPS=1 FENCE_ONCE=2"; grep -E "FAILED|failed|passed|exit" $r/dec_fence.log | head -8
for v in "${V[@]}"; do
  IFS=: read tag envs fl x <<< "$v"
  step "bench dec $tag"
  env $(echo $envs | tr , ' ') timeout 30 gpu-carry/bench_hip --backend hip --queued $LENS $fl --only "$DEC" --out $r/dec_$tag.json > $r/dec_$tag.log 2>&1; echo "exit $?" >> $r/dec_$tag.log
  echo "dec $tag:"; grep -h " ms " $r/dec_$tag.log | grep -v copy | sed 's/^.*hip *//' | cut -c1-110
done
step sdpa-decode
timeout 40 python3 - > $r/sdpa_decode.txt 2>&1 <<'PY'
import torch, torch.nn.functional as F
junk = torch.empty(1 << 26, dtype=torch.float32, device="cuda")
for Nk in (2048, 16384, 32768):
    for Hq, Hk in ((8, 8), (32, 8)):
        q = torch.randn(1, Hq, 1, 128, device="cuda", dtype=torch.float16)
        k = torch.randn(1, Hk, Nk, 128, device="cuda", dtype=torch.float16); v = torch.randn_like(k)
        f = lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=Hq != Hk)
        for _ in range(5): f()
        for cold in (True, False):
            ts = []
            for _ in range(31):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                if cold: junk.zero_()
                torch.cuda._sleep(400_000); a.record(); f(); b.record(); torch.cuda.synchronize(); ts.append(a.elapsed_time(b))
            ts.sort(); print(f"sdpa decode queued {'cold' if cold else 'warm'} H={Hq}/{Hk} Nk={Nk} median ms {ts[len(ts)//2]:.4f}")
PY
cat $r/sdpa_decode.txt
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
for v in "base:" "st:CONCORD_STREAM_STEPS=1"; do
  IFS=: read tag envs <<< "$v"
  if [ $SECONDS -gt ${VKGATE:-230} ]; then step "skip vk $tag"; continue; fi
  step "vk dec $tag"
  env $envs timeout 45 gpu-carry/bench --backend vulkan --decode-lens 16384,32768 --only "$DEC" --out $r/vk_$tag.json > $r/vk_$tag.log 2>&1; echo "exit $?" >> $r/vk_$tag.log
  echo "vk $tag:"; grep -h " ms " $r/vk_$tag.log | grep -v copy | sed 's/^.*vulkan *//' | cut -c1-110
done
