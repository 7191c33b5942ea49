#!/usr/bin/env bash
# Stage 4's scheduler benchmarks in one run (scheduler/scheduler_benchmark.cc)
# and the figures the issue asks for: in-process and loopback-gRPC
# throughput with a no-op GenRM and 1 KB trajectories, arrival-to-dispatch
# latency, and Redis streams (XADD + XREADGROUP + XACK of the same payloads)
# on the same machine, with the ratios.
#
#   scripts/bench-scheduler.sh            # uses ./build
#   FAPO_BUILD_DIR=build-rel scripts/bench-scheduler.sh
#
# Run it on a quiet machine: the figures are wall-clock rates. The allocator
# matters (NOTE [allocator] in CMakeLists.txt); the
# benchmark's header names the one it was linked with.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${FAPO_BUILD_DIR:-$root/build}"
cmake --build "$build_dir" --target scheduler_benchmark >/dev/null
bench="$build_dir/bench/scheduler_benchmark"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

# Each benchmark alone, so one's threads do not disturb another.
for name in BM_InProcess BM_InProcessWithSamples BM_GrpcLoopback \
            BM_GrpcLoopbackGenrm BM_RedisStreams BM_DispatchLatency; do
  "$bench" --benchmark_filter="^${name}/" 2>/dev/null | grep "^BM_" | tee -a "$out"
done

# items_per_second=123.4k/s -> 123400
rate() {
  grep "^$1/" "$out" | head -1 |
    sed -E 's/.*items_per_second=([0-9.]+)([kM]?)\/s.*/\1 \2/' |
    awk '{m = ($2 == "k") ? 1e3 : (($2 == "M") ? 1e6 : 1); printf "%.0f", $1 * m}'
}
in_process="$(rate BM_InProcess)"
in_process_samples="$(rate BM_InProcessWithSamples)"
grpc="$(rate BM_GrpcLoopback)"
grpc_genrm="$(rate BM_GrpcLoopbackGenrm)"
redis="$(rate BM_RedisStreams)"
echo
echo "trajectories/s (1 KB, no-op GenRM), this machine:"
printf '  in-process scheduler          %9d   (target >= 500000)\n' "$in_process"
printf '  ... writing samples.jsonl     %9d\n' "$in_process_samples"
printf '  over loopback gRPC            %9d   (target >= 20000)\n' "$grpc"
printf '  ... GenRM over gRPC too       %9d\n' "$grpc_genrm"
printf '  Redis streams (XADD/XREADGROUP/XACK) %d\n' "$redis"
awk -v a="$in_process" -v b="$grpc" -v r="$redis" 'BEGIN {
  printf "  ratio in-process / Redis      %9.2f\n", a / r;
  printf "  ratio loopback gRPC / Redis   %9.2f\n", b / r;
}'
echo "arrival -> dispatch latency (p99 < 1 ms wanted at half the max rate):"
grep "^BM_DispatchLatency" "$out" |
  sed -E 's/^BM_DispatchLatency\/([0-9]+)\/.*p50_us=([0-9.]+[kM]?).*p99_us=([0-9.]+[kM]?).*/  \1\/s: p50 \2 us, p99 \3 us/'
