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

# Each benchmark alone, so one's threads do not disturb another. The
# in-process rate swings by a factor of up to 2 between runs on a shared
# machine (neighbours' load, not ours), so it is repeated and its median
# is the figure.
repetitions="${FAPO_BENCH_REPETITIONS:-10}"
"$bench" --benchmark_filter='^BM_InProcess/' \
  --benchmark_repetitions="$repetitions" 2>/dev/null | grep "^BM_" | tee -a "$out"
for name in BM_InProcessWithSamples BM_InProcessProducers BM_GrpcLoopback \
            BM_GrpcLoopbackGenrm BM_RedisStreams BM_DispatchLatency; do
  "$bench" --benchmark_filter="^${name}/" 2>/dev/null | grep "^BM_" | tee -a "$out"
done

# items_per_second=123.4k/s -> 123400
to_number() {
  sed -E 's/.*items_per_second=([0-9.]+)([kM]?)\/s.*/\1 \2/' |
    awk '{m = ($2 == "k") ? 1e3 : (($2 == "M") ? 1e6 : 1); printf "%.0f\n", $1 * m}'
}
rate() { grep -E "^$1[/ ]" "$out" | head -1 | to_number; }
# The repetitions' own lines (not the _mean/_median/... aggregates).
runs() { grep -E "^BM_InProcess/[^ ]*real_time +" "$out" | to_number | sort -n; }
in_process="$(grep -E '^BM_InProcess/.*_median ' "$out" | to_number)"
in_process_low="$(runs | head -1)"
in_process_high="$(runs | tail -1)"
producers_1="$(rate 'BM_InProcessProducers/min_time:2.000/real_time/threads:1')"
producers_2="$(rate 'BM_InProcessProducers/min_time:2.000/real_time/threads:2')"
in_process_samples="$(rate BM_InProcessWithSamples)"
grpc="$(rate BM_GrpcLoopback)"
grpc_genrm="$(rate BM_GrpcLoopbackGenrm)"
redis="$(rate BM_RedisStreams)"
echo
echo "trajectories/s (1 KB, no-op GenRM), this machine:"
printf '  in-process scheduler          %9d   (target >= 500000; median of %d, range %d-%d)\n' \
  "$in_process" "$repetitions" "$in_process_low" "$in_process_high"
printf '  ... 1 / 2 producer threads    %9d / %d\n' "$producers_1" "$producers_2"
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
