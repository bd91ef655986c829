#!/usr/bin/env bash
# run 86: why sparse decode and the selection are slower than in run 79: clocks sampled during run 79's own command
set -u
out=$1; r=$out/r; mkdir -p $r
export PATH=/usr/local/cuda/bin:$PATH LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib
export CONCORD_CACHE_DIR=/tmp/cc CONCORD_HIP_COMPAT_DIR=$PWD/backends/hip_compat CONCORD_HIP_PLATFORM=nvidia
fin() { cd $out && tar czf all.tgz r && rm -rf r; }
trap fin EXIT
nvidia-smi -q -d CLOCK,PERFORMANCE,POWER > $r/smi_before.txt 2>&1
DEC="decode_dense H=8/8|decode_dense H=32/8|decode_sparse"
timeout 100 gpu-carry/bench_hip --backend hip --compile-only --queued --only "$DEC" > /dev/null 2>&1
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,clocks.max.sm,power.draw,clocks_event_reasons.active,temperature.gpu --format=csv -lms 200 > $r/clocks.csv 2>&1 &
sp=$!
timeout 60 gpu-carry/bench_hip --backend hip --queued --warm-cache --only "$DEC" --out $r/dec_r79cmd.json > $r/dec_r79cmd.log 2>&1
timeout 40 gpu-carry/bench_hip --backend hip --queued --only "$DEC" --out $r/dec_evicted.json > $r/dec_evicted.log 2>&1
kill $sp
grep -h " ms " $r/dec_r79cmd.log $r/dec_evicted.log | grep -v "copy\|fused_el" | sed 's/^.*hip *//' | cut -c1-90 | sed 's/D=128 Nq=1 //'
grep -i "clocks\b\|SM  \|Graphics\|Max Clocks\|Applications\|Clocks Event\|Active\|Idle\|Power Limit\|Sw Power\|Hw Slowdown" $r/smi_before.txt | head -30
sort -t, -k2 $r/clocks.csv | awk -F, 'NR>1{print $2}' | sort | uniq -c | sort -rn | head -8
