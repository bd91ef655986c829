#!/usr/bin/env bash
# run 84: floor probe; HIP decode with the combine as its own stage
set -u
out=$1; r=$out/r; mkdir -p $r
export PATH=/usr/local/cuda/bin:$PATH LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib
export CONCORD_CACHE_DIR=/tmp/cc CONCORD_HIP_COMPAT_DIR=$PWD/backends/hip_compat CONCORD_HIP_PLATFORM=nvidia
fin() { cd $out && tar czf all.tgz r && rm -rf r; }
trap fin EXIT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $r/device.txt
DEC="decode_dense H=8/8|decode_dense H=32/8|decode_sparse"
(CONCORD_FUSED_COMBINE=0 timeout 90 gpu-carry/bench_hip --backend hip --compile-only --queued --decode-lens 2048,16384,32768 --only "$DEC" > $r/warm_fc0.log 2>&1) &
timeout 60 gpu-carry/floor > $r/floor.txt 2>&1; cat $r/floor.txt
wait
CONCORD_FUSED_COMBINE=0 timeout 40 gpu-carry/bench_hip --backend hip --queued --decode-lens 2048,16384,32768 --only "$DEC" --out $r/dec_fc0.json > $r/dec_fc0.log 2>&1
python3 -c "
import json
for r in json.load(open('$r/dec_fc0.json')):
  if 'decode' in r['bench']: print(r['bench'], r['shape'][:28], r['median_ms'], r['note'].split('stages (ms):')[-1])
"
