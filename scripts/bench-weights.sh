#!/usr/bin/env bash
# Weight-transfer figures for issue #6 (engine/weights/weights_benchmark.cc)
# on a ~100 MB float32 model (Qwen3-shaped, 109 MB):
#   snapshot                   trainer side, once per version
#   assemble + apply           receiver side, from messages in memory
#   loopback pull, raw         what the trainer and rollout worker do
#                              (NOTE [zero-copy weights]): GetWeights
#                              stream -> per-chunk CRC -> assembled ->
#                              whole-tensor CRCs -> applied to the model
#   loopback pull, protobuf    the same through protobuf messages (before)
# Each is run several times; the median and the best run are printed with
# the load average, since wall-clock rates on a shared machine move with
# load. cpu_ms is the process's CPU time per pull (both ends, all
# threads), which moves much less.
#
#   scripts/bench-weights.sh                # uses ./build
#   FAPO_BUILD_DIR=build-rel REPETITIONS=10 scripts/bench-weights.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${FAPO_BUILD_DIR:-$root/build}"
repetitions="${REPETITIONS:-5}"
cmake --build "$build_dir" --target weights_benchmark >/dev/null 2>&1 ||
  { echo "building weights_benchmark in $build_dir failed" >&2; exit 1; }
bench="$build_dir/bench/weights_benchmark"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "machine: $(nproc) cores; load average before: $(load)"
OMP_NUM_THREADS=1 "$bench" --benchmark_repetitions="$repetitions" \
  --benchmark_format=json >"$out" 2>/dev/null
echo "load average after: $(load)"

python3 - "$out" <<'EOF'
import json, statistics, sys
runs = {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if b.get("run_type") != "iteration":
        continue
    runs.setdefault(b["run_name"], []).append(b)
labels = [
    ("BM_Snapshot", "snapshot"),
    ("BM_AssembleAndApply", "assemble + apply (fresh buffer)"),
]
for chunk in (1, 4, 16):
    labels.append((f"BM_LoopbackRawPullAndApply/{chunk}/process_time/real_time",
                   f"loopback pull, raw, {chunk:2d} MiB chunks"))
for chunk in (1, 4, 16):
    labels.append((f"BM_LoopbackPullAndApply/{chunk}/process_time/real_time",
                   f"loopback pull, protobuf, {chunk:2d} MiB chunks"))
print(f"{'':42s} {'median':>10s} {'best':>10s} {'cpu_ms':>8s}")
for name, label in labels:
    if name not in runs:
        continue
    rates = [b["bytes_per_second"] / 1e9 for b in runs[name]]
    cpu = [b["cpu_time"] for b in runs[name]]
    print(f"{label:42s} {statistics.median(rates):7.2f} GB/s {max(rates):6.2f} GB/s"
          f" {statistics.median(cpu):8.0f}")
mb = runs["BM_Snapshot"][0]["MB"]
print(f"model: {mb:.0f} MB; target: loopback pull >= 1 GB/s")
EOF
