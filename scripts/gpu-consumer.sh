#!/usr/bin/env bash
# On the GPU machine: builds each exported .hip (gpu-carry/export, from concord-gen) into a shared
# library with nvcc and the compat headers, and runs the no-concord HIP consumer against the
# fixtures concord wrote. Results go to $OUT/hip_consumer.log.
set -uo pipefail
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
export PATH=/usr/local/cuda/bin:$PATH
{
  for n in keep_mask sparse_prefill sparse_decode; do
    nvcc -x cu -std=c++17 -O3 -arch=sm_90 -ftz=true -prec-div=true -prec-sqrt=true -fmad=false -shared -Xcompiler -fPIC -cudart shared \
      -I backends/hip_compat "gpu-carry/export/$n.hip" -o "/tmp/$n.so" && gpu-carry/hip_consumer "/tmp/$n.so" gpu-carry/export gpu-carry/export "$n"
    echo "$n exit $?"
  done
} > "$out/hip_consumer.log" 2>&1
cat "$out/hip_consumer.log"
