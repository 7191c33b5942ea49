#!/usr/bin/env bash
# The step time of one trainer process against two data-parallel ranks
# (Gloo over loopback) on the same GRPO batches: the median of six steps
# each, from rank 0's reported step time. The measurement lives with the
# process fixture it needs, as a disabled case of tests/loopback's
# trainer_ranks_test (disabled: a figure, not a check); this runs it.
#
#   scripts/bench-trainer-ranks.sh            # uses ./build
#   FAPO_BUILD_DIR=build-rel scripts/bench-trainer-ranks.sh
#
# On a machine with fewer free cores than ranks, two ranks only add
# communication; note the load.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${FAPO_BUILD_DIR:-$root/build}"
cmake --build "$build_dir" --target trainer_ranks_test fapo-trainer >/dev/null
echo "machine: $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
OMP_NUM_THREADS=1 FAPO_SOURCE_DIR="$root" FAPO_BINARY_DIR="$build_dir" \
  "$build_dir/tests/loopback/trainer_ranks_test" \
  --gtest_also_run_disabled_tests --gtest_filter='*StepTimeOfOneAndTwoRanks' |
  grep "^GRPO step"
