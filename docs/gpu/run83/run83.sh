#!/usr/bin/env bash
# run 83: eviction check; HIP decode 16K/32K under prefetch / split_blocks 2,4 / stream for GQA; SDPA cold; suite under pf+sb2
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
LENS="--decode-lens 16384,32768"
V=("base:" "pf:CONCORD_DECODE_PREFETCH=1" "sb2:CONCORD_SPLIT_BLOCKS=2" "sb2pf:CONCORD_SPLIT_BLOCKS=2,CONCORD_DECODE_PREFETCH=1" "sb4pf:CONCORD_SPLIT_BLOCKS=4,CONCORD_DECODE_PREFETCH=1" "mma0pf:CONCORD_DECODE_MMA=0,CONCORD_DECODE_PREFETCH=1" "sb1:CONCORD_SPLIT_BLOCKS=1")
step suite
(CONCORD_DECODE_PREFETCH=1 CONCORD_SPLIT_BLOCKS=2 timeout 150 gpu-carry/test_hip -r compact "[fused],[live],[stream]" > $r/suite_sb2pf.log 2>&1; echo "exit $?" >> $r/suite_sb2pf.log) &
for v in "${V[@]}"; do
  IFS=: read tag envs <<< "$v"
  (env $(echo $envs | tr , ' ') timeout 90 gpu-carry/bench_hip --backend hip --compile-only --queued $LENS --only "$DEC" > $r/warm_$tag.log 2>&1) &
done
wait
step suite-done
echo "== suite pf+sb2"; grep -E "FAILED|failed|passed|exit" $r/suite_sb2pf.log | head -8
for v in "${V[@]}"; do
  IFS=: read tag envs <<< "$v"
  step "bench dec $tag"
  env $(echo $envs | tr , ' ') timeout 40 gpu-carry/bench_hip --backend hip --queued $LENS --only "$DEC" --out $r/dec_$tag.json > $r/dec_$tag.log 2>&1; echo "exit $?" >> $r/dec_$tag.log
  echo "dec $tag:"; grep -h "eviction\| ms " $r/dec_$tag.log | grep -v copy | sed 's/^.*hip *//' | cut -c1-100 | sed 's/D=128 Nq=1 //'
done
step sdpa-decode
timeout 40 python3 - > $r/sdpa_decode.txt 2>&1 <<'PY'
import torch, torch.nn.functional as F
junk = torch.empty(1 << 26, dtype=torch.float32, device="cuda")
for Nk in (16384, 32768):
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
