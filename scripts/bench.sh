#!/usr/bin/env bash
# make bench / make bench-quick: every attention benchmark on every backend this build has (CPU,
# Vulkan; HIP where bench_hip was built and a GPU answers), one JSON file each under
# BUILD/bench-results/, then the markdown tables and the kept-fraction plot (bench/report.py; the
# plot needs matplotlib). Usage: scripts/bench.sh BUILD [--quick] [more bench flags]
set -euo pipefail
build=${1:?usage: scripts/bench.sh BUILD [--quick] [bench flags]}
shift
out="$build/bench-results"
mkdir -p "$out"
jsons=()
run() {  # run NAME BINARY: keeps the JSON when the backend was present
  [ -x "$2" ] || return 0
  "$2" "${flags[@]}" --backend "$1" --out "$out/$1.json"
  if grep -q "\"backend\":\"$1\"" "$out/$1.json"; then jsons+=("$out/$1.json"); fi
}
flags=("$@")
run cpu "$build/bench/bench"
run vulkan "$build/bench/bench"
run hip "$build/bench/bench_hip"
python3 bench/report.py "$out/prefill_vs_kept.png" "${jsons[@]}" > "$out/tables.md"
echo "results: ${jsons[*]}; tables: $out/tables.md; plot: $out/prefill_vs_kept.png (if matplotlib is installed)"
