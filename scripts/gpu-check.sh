#!/usr/bin/env bash
# The GPU run, in one call of the device tool on the H100 (see docs/gpu-results.md):
#   phase "test":  Vulkan (NVIDIA driver) and HIP (nvcc) conformance, random graphs, attention
#   phase "bench": concord benchmarks on Vulkan and HIP, and the PyTorch peers
#   phase "decode": attention + conformance on both, the decode benchmarks, and the PyTorch peers
#   phase "perf":   the Vulkan memory probe, attention on both, every attention benchmark, the peers
#   phase "ab":     attention + conformance, then the benches of several builds (BINS) alternately,
#                   each also with the bench flags ABFLAGS when set
#   phase "probe":  the Vulkan memory probe with and without 16-bit storage, Vulkan decode both ways
#   phase "variants": attention + conformance on both (each HIP variant's kernels compiled meanwhile),
#                   then the benches of each VARIANTS entry (an environment for the run: decode
#                   kernel knobs), the peers
#   phase "mma":    attention + conformance on both, the HIP prefill benches with tensor cores and with
#                   ALTENV (default: without them), the peers when PEERS=1
#   phase "full":   attention + conformance on both, every benchmark on both, the peers, then (AB set)
#                   the decode benches again with the bench flags AB, and (ALT set) the HIP decode
#                   benches of the build in folder ALT; step times in steps.log
# Binaries are built on the CI-like machine (scripts/gpu-prepare.sh) and carried in gpu-carry/;
# the HIP kernels are compiled on the GPU machine by nvcc at run time. Results go to $OUT.
set -uo pipefail
phase=${1:-test}
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
# The device tool returns at most 8 files: everything travels as one archive, all.tgz. A run stopped
# by an outer `timeout` leaves its files unpacked: `gpu-check.sh pack` then packs them.
pack() {
  [ "$(ls -A "$out")" = all.tgz ] && return
  (cd "$out" && tar czf /tmp/gpu-out.tgz . && find . -mindepth 1 -delete && mv /tmp/gpu-out.tgz all.tgz)
}
trap pack EXIT
step() { echo "$(date -u +%H:%M:%S) $*" >> "$out/steps.log"; }
verify() {  # the attention and conformance suites on both backends, side by side; HIP's in two
  # processes (the decode cases, the rest), since nvcc's compiles alone took more than 290 s (run 50);
  # the decode process alone took 247 s in run 61 and more than 290 s in runs 62-63, so 420 s
  (timeout 150 gpu-carry/test_vulkan -r compact "[attention],[conformance]" > "$out/vulkan_verify.log" 2>&1; echo "exit $?" >> "$out/vulkan_verify.log") &
  (timeout ${VT:-420} gpu-carry/test_hip -r compact "[attention]~[decode],[conformance]" > "$out/hip_verify_b.log" 2>&1; echo "exit $?" >> "$out/hip_verify_b.log") &
  (timeout ${VT:-420} gpu-carry/test_hip -r compact "[decode]" > "$out/hip_verify.log" 2>&1; echo "exit $?" >> "$out/hip_verify.log")
  wait
}
if [ "$phase" != pack ]; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib:${LD_LIBRARY_PATH:-}
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
export CONCORD_CACHE_DIR=/tmp/concord-cache CONCORD_HIP_COMPAT_DIR=$PWD/backends/hip_compat CONCORD_HIP_PLATFORM=nvidia
export PATH=/usr/local/cuda/bin:$PATH
[ "$phase" = pack ] || {
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  nvcc --version | tail -2 | head -1
} > "$out/device.txt" 2>&1
if [ "$phase" = pack ]; then
  :
elif [ "$phase" = verify ]; then
  (timeout 150 gpu-carry/test_vulkan -r compact "[attention]" > "$out/vulkan_verify.log" 2>&1; echo "exit $?" >> "$out/vulkan_verify.log") &
  (timeout 200 gpu-carry/test_hip -r compact "[attention]" > "$out/hip_verify.log" 2>&1; echo "exit $?" >> "$out/hip_verify.log")
  wait
  for f in "$out"/*.log; do echo "== $f"; tail -n 3 "$f"; done
elif [ "$phase" = decode ]; then
  verify
  (timeout 110 gpu-carry/bench --backend vulkan --only decode --out "$out/bench_vulkan.json" > "$out/bench_vulkan.log" 2>&1; echo "exit $?" >> "$out/bench_vulkan.log")
  (timeout 110 gpu-carry/bench_hip --backend hip --only decode --out "$out/bench_hip.json" > "$out/bench_hip.log" 2>&1; echo "exit $?" >> "$out/bench_hip.log")
  if [ -n "${AB:-}" ]; then  # the same cases with one-element K/V loads, for an A/B in the same call
    (timeout 110 gpu-carry/bench --backend vulkan --only decode $AB --out "$out/bench_vulkan_b.json" > "$out/bench_vulkan_b.log" 2>&1; echo "exit $?" >> "$out/bench_vulkan_b.log")
    (timeout 110 gpu-carry/bench_hip --backend hip --only decode $AB --out "$out/bench_hip_b.json" > "$out/bench_hip_b.log" 2>&1; echo "exit $?" >> "$out/bench_hip_b.log")
  fi
  (timeout 150 python3 bench/peers_torch.py > "$out/peers.json" 2> "$out/peers.log"; echo "exit $?" >> "$out/peers.log")
  for f in "$out"/*.log; do echo "== $f"; tail -n 3 "$f"; done
elif [ "$phase" = ab ]; then
  # Same-call A/B of bench builds: BINS lists folders holding bench and bench_hip (the candidate's
  # suites run first); each bench runs the cases matching ONLY, twice in alternating order.
  verify
  for round in $(seq "${ROUNDS:-2}"); do
    for b in ${BINS:-gpu-carry}; do
      for v in a ${ABFLAGS:+b}; do  # ABFLAGS: bench flags of a second variant of every build (tag _b)
        flags=; [ "$v" = b ] && flags=$ABFLAGS
        tag=$(basename "$b")${flags:+_b}_r$round
        (timeout ${BT:-100} "$b/bench_hip" --backend hip --only "${ONLY:-decode}" $flags --out "$out/hip_$tag.json" > "$out/hip_$tag.log" 2>&1; echo "exit $?" >> "$out/hip_$tag.log")
        (timeout ${BT:-100} "$b/bench" --backend vulkan --only "${ONLY:-decode}" $flags --out "$out/vulkan_$tag.json" > "$out/vulkan_$tag.log" 2>&1; echo "exit $?" >> "$out/vulkan_$tag.log")
      done
    done
    BINS=$(echo ${BINS:-gpu-carry} | tr ' ' '\n' | tac | tr '\n' ' ')
  done
  [ "${PEERS:-1}" != 0 ] && (timeout 150 python3 bench/peers_torch.py > "$out/peers.json" 2> "$out/peers.log"; echo "exit $?" >> "$out/peers.log")
  for f in "$out"/*verify.log "$out"/peers.log; do echo "== $f"; tail -n 3 "$f"; done
elif [ "$phase" = variants ]; then
  # Decode kernel variants by environment, in one call: both suites, then for each VARIANTS entry
  # "tag:VAR=value,VAR=value[:cases[:bench flags]]" (tag alone: the defaults) the HIP benches matching
  # ONLY (for the tags in HIPTAGS, default all), the Vulkan ones for the tags in VKTAGS, and the peers
  # (PEERS=0: none; PEERQ=1: the decode peers also timed queued; VERIFY=0: no suites; VERIFY=vulkan: the
  # Vulkan suite only; VERIFY=nodecode: both suites less HIP's decode cases). Step times in steps.log.
  parse() {  # tag:VAR=value,VAR=value[:cases, '+' for spaces, '|' between alternatives[:bench flags, '+' for spaces]]
    tag=${1%%:*}; rest=${1#*:}; [ "$rest" = "$1" ] && rest=
    envs=$(echo "${rest%%:*}" | tr , ' '); only=${ONLY:-decode}; flags=
    if [ "$rest" != "${rest#*:}" ]; then
      rest=${rest#*:}; cases=${rest%%:*}; [ -n "$cases" ] && only=$(echo "$cases" | tr + ' ')
      [ "$rest" != "${rest#*:}" ] && flags=$(echo "${rest#*:}" | tr + ' ')
    fi
  }
  # Each HIP variant's kernels are compiled into the JIT cache beside the suites (every bench case
  # otherwise waits on nvcc for its plans), so the benches below mostly time.
  step warm
  for v in ${VARIANTS:-base:}; do
    parse "$v"
    case " ${HIPTAGS:-$tag} " in *" $tag "*)
      (env $envs timeout 400 gpu-carry/bench_hip --backend hip --compile-only --only "$only" $flags > "$out/warm_$tag.log" 2>&1; echo "exit $?" >> "$out/warm_$tag.log") &;;
    esac
  done
  if [ "${VERIFY:-1}" = vulkan ]; then
    step verify-vulkan
    (timeout 150 gpu-carry/test_vulkan -r compact "[attention],[conformance]" > "$out/vulkan_verify.log" 2>&1; echo "exit $?" >> "$out/vulkan_verify.log")
  elif [ "${VERIFY:-1}" = nodecode ]; then  # both suites without HIP's decode process (prefill-only changes)
    step verify-nodecode
    (timeout 150 gpu-carry/test_vulkan -r compact "[attention],[conformance]" > "$out/vulkan_verify.log" 2>&1; echo "exit $?" >> "$out/vulkan_verify.log") &
    (timeout ${VT:-420} gpu-carry/test_hip -r compact "[attention]~[decode],[conformance]" > "$out/hip_verify_b.log" 2>&1; echo "exit $?" >> "$out/hip_verify_b.log")
    wait
  elif [ "${VERIFY:-1}" != 0 ]; then step verify; verify; fi
  wait
  for v in ${VARIANTS:-base:}; do
    parse "$v"
    case " ${HIPTAGS:-$tag} " in *" $tag "*)
      step "hip $tag"
      (env $envs timeout ${BT:-100} gpu-carry/bench_hip --backend hip --only "$only" $flags --out "$out/hip_$tag.json" > "$out/hip_$tag.log" 2>&1; echo "exit $?" >> "$out/hip_$tag.log");;
    esac
    case " ${VKTAGS:-base} " in *" $tag "*)
      step "vulkan $tag"
      (env $envs timeout ${BT:-100} gpu-carry/bench --backend vulkan --only "$only" $flags --out "$out/vulkan_$tag.json" > "$out/vulkan_$tag.log" 2>&1; echo "exit $?" >> "$out/vulkan_$tag.log");;
    esac
  done
  # PEERQ=1: each decode peer also timed queued behind a GPU spin (bench --queued), in the same process
  if [ "${PEERS:-1}" != 0 ]; then
    q=; [ "${PEERQ:-0}" != 0 ] && q=--queued
    step peers; (timeout 180 python3 bench/peers_torch.py $q > "$out/peers.json" 2> "$out/peers.log"; echo "exit $?" >> "$out/peers.log")
  fi
  step done
  for f in "$out"/*.log; do echo "== $f"; tail -n 3 "$f"; done
elif [ "$phase" = perf ]; then
  (timeout 60 gpu-carry/vk_probe > "$out/vk_probe.log" 2>&1; echo "exit $?" >> "$out/vk_probe.log")
  (timeout 120 gpu-carry/test_vulkan -r compact "[attention]" > "$out/vulkan_verify.log" 2>&1; echo "exit $?" >> "$out/vulkan_verify.log") &
  (timeout 120 gpu-carry/test_hip -r compact "[attention]" > "$out/hip_verify.log" 2>&1; echo "exit $?" >> "$out/hip_verify.log")
  wait
  (timeout 240 gpu-carry/bench_hip --backend hip --only "${ONLY:-}" --out "$out/bench_hip.json" > "$out/bench_hip.log" 2>&1; echo "exit $?" >> "$out/bench_hip.log")
  (timeout 240 gpu-carry/bench --backend vulkan --only "${ONLY:-}" --out "$out/bench_vulkan.json" > "$out/bench_vulkan.log" 2>&1; echo "exit $?" >> "$out/bench_vulkan.log")
  [ -n "${PEERS:-1}" ] && [ "${PEERS:-1}" != 0 ] && (timeout 150 python3 bench/peers_torch.py > "$out/peers.json" 2> "$out/peers.log"; echo "exit $?" >> "$out/peers.log")
  for f in "$out"/*.log; do echo "== $f"; tail -n 3 "$f"; done
elif [ "$phase" = probe ]; then
  (timeout 60 gpu-carry/vk_probe > "$out/vk_probe.log" 2>&1; echo "exit $?" >> "$out/vk_probe.log")
  (CONCORD_VK_NO_STORAGE16=1 timeout 60 gpu-carry/vk_probe > "$out/vk_probe_no16.log" 2>&1; echo "exit $?" >> "$out/vk_probe_no16.log")
  (timeout 60 gpu-carry/bench --backend vulkan --only "decode_dense H=8/8 N=32768" --out "$out/bench_vulkan.json" > "$out/bench_vulkan.log" 2>&1; echo "exit $?" >> "$out/bench_vulkan.log")
  (CONCORD_VK_NO_STORAGE16=1 timeout 60 gpu-carry/bench --backend vulkan --only "decode_dense H=8/8 N=32768" --out "$out/bench_vulkan_no16.json" > "$out/bench_vulkan_no16.log" 2>&1; echo "exit $?" >> "$out/bench_vulkan_no16.log")
elif [ "$phase" = full ]; then
  step verify
  verify
  step bench_hip
  (timeout 240 gpu-carry/bench_hip --backend hip --only "${ONLY:-}" --out "$out/bench_hip.json" > "$out/bench_hip.log" 2>&1; echo "exit $?" >> "$out/bench_hip.log")
  step bench_vulkan
  (timeout 240 gpu-carry/bench --backend vulkan --only "${ONLY:-}" --out "$out/bench_vulkan.json" > "$out/bench_vulkan.log" 2>&1; echo "exit $?" >> "$out/bench_vulkan.log")
  step peers
  (timeout 180 python3 bench/peers_torch.py > "$out/peers.json" 2> "$out/peers.log"; echo "exit $?" >> "$out/peers.log")
  if [ -n "${AB:-}" ]; then
    step ab
    (timeout 100 gpu-carry/bench_hip --backend hip --only decode $AB --out "$out/bench_hip_b.json" > "$out/bench_hip_b.log" 2>&1; echo "exit $?" >> "$out/bench_hip_b.log")
    (timeout 100 gpu-carry/bench --backend vulkan --only decode $AB --out "$out/bench_vulkan_b.json" > "$out/bench_vulkan_b.log" 2>&1; echo "exit $?" >> "$out/bench_vulkan_b.log")
  fi
  if [ -n "${ALT:-}" ]; then  # a second build's HIP decode benches (ALT: a folder holding bench_hip)
    step alt
    (timeout 100 "$ALT/bench_hip" --backend hip --only decode --out "$out/bench_hip_alt.json" > "$out/bench_hip_alt.log" 2>&1; echo "exit $?" >> "$out/bench_hip_alt.log")
  fi
  step done
  for f in "$out"/*.log; do echo "== $f"; tail -n 3 "$f"; done
elif [ "$phase" = mma ]; then
  # The tensor-core prefill: both suites (VERIFY=0: HIP's non-decode attention cases only), then the
  # HIP prefill benches with it and with ALTENV (default CONCORD_HIP_MMA=0: prefill_coop) or another
  # build (ALT) in the same call; PEERS=1 adds the PyTorch peers.
  step verify
  if [ "${VERIFY:-1}" = 0 ]; then
    (timeout ${VT:-420} gpu-carry/test_hip -r compact "[attention]~[decode]" > "$out/hip_verify_b.log" 2>&1; echo "exit $?" >> "$out/hip_verify_b.log")
  else
    verify
  fi
  step bench_mma
  (timeout 120 gpu-carry/bench_hip --backend hip --only "${ONLY:-prefill}" --out "$out/bench_hip_mma.json" > "$out/bench_hip_mma.log" 2>&1; echo "exit $?" >> "$out/bench_hip_mma.log")
  if [ -n "${ALT:-}" ]; then  # another build's benches (ALT: a folder holding bench_hip) instead of prefill_coop
    step bench_alt
    (timeout 120 "$ALT/bench_hip" --backend hip --only "${ONLY:-prefill}" --out "$out/bench_hip_alt.json" > "$out/bench_hip_alt.log" 2>&1; echo "exit $?" >> "$out/bench_hip_alt.log")
  else
    step bench_coop
    (env ${ALTENV:-CONCORD_HIP_MMA=0} timeout 120 gpu-carry/bench_hip --backend hip --only "${ONLY:-prefill}" --out "$out/bench_hip_coop.json" > "$out/bench_hip_coop.log" 2>&1; echo "exit $?" >> "$out/bench_hip_coop.log")
  fi
  if [ "${PEERS:-0}" != 0 ]; then step peers; (timeout 150 python3 bench/peers_torch.py > "$out/peers.json" 2> "$out/peers.log"; echo "exit $?" >> "$out/peers.log"); fi
  step done
  for f in "$out"/*.log; do echo "== $f"; tail -n 3 "$f"; done
elif [ "$phase" = all ]; then
  (CONCORD_RANDOM_GRAPHS=${VK_GRAPHS:-100} timeout 150 gpu-carry/test_vulkan -r compact > "$out/vulkan.log" 2>&1; echo "exit $?" >> "$out/vulkan.log") &
  (CONCORD_RANDOM_GRAPHS=${HIP_GRAPHS:-15} timeout 220 gpu-carry/test_hip -r compact > "$out/hip.log" 2>&1; echo "exit $?" >> "$out/hip.log")
  wait
  (timeout 120 gpu-carry/bench --backend vulkan --out "$out/bench_vulkan.json" > "$out/bench_vulkan.log" 2>&1; echo "exit $?" >> "$out/bench_vulkan.log")
  (timeout 150 gpu-carry/bench_hip --backend hip --out "$out/bench_hip.json" > "$out/bench_hip.log" 2>&1; echo "exit $?" >> "$out/bench_hip.log")
  for f in "$out"/*.log; do echo "== $f"; tail -n 3 "$f"; done
elif [ "$phase" = test ]; then
  (CONCORD_RANDOM_GRAPHS=${VK_GRAPHS:-200} timeout 200 gpu-carry/test_vulkan -r compact > "$out/vulkan.log" 2>&1; echo "exit $?" >> "$out/vulkan.log") &
  (CONCORD_RANDOM_GRAPHS=${HIP_GRAPHS:-25} timeout 420 gpu-carry/test_hip -r compact > "$out/hip.log" 2>&1; echo "exit $?" >> "$out/hip.log")
  wait
  (timeout 60 gpu-carry/test_hip_runtime gpu > "$out/hip_runtime.log" 2>&1; echo "exit $?" >> "$out/hip_runtime.log")
  for f in "$out"/*.log; do echo "== $f"; tail -n 3 "$f"; done
else
  (CONCORD_RANDOM_GRAPHS=${VK_GRAPHS:-200} timeout 60 gpu-carry/test_vulkan -r compact "[conformance],[random]" > "$out/vulkan_retest.log" 2>&1; echo "exit $?" >> "$out/vulkan_retest.log")
  (timeout 150 gpu-carry/bench --backend vulkan --out "$out/bench_vulkan.json" > "$out/bench_vulkan.log" 2>&1; echo "exit $?" >> "$out/bench_vulkan.log")
  (timeout 170 gpu-carry/bench_hip --backend hip --out "$out/bench_hip.json" > "$out/bench_hip.log" 2>&1; echo "exit $?" >> "$out/bench_hip.log")
  (timeout 180 python3 bench/peers_torch.py > "$out/peers.json" 2> "$out/peers.log"; echo "exit $?" >> "$out/peers.log")
fi
