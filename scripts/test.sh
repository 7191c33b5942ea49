#!/usr/bin/env bash
# The test command: installs dependencies, configures, builds and runs the
# whole suite with CTest. Exits non-zero on any failure.
#
#   scripts/test.sh                 # everything
#   FAPO_BUILD_DIR=build-asan FAPO_SANITIZE=address,undefined scripts/test.sh
#   FAPO_CTEST_ARGS="-R config" scripts/test.sh   # a subset
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/install-deps.sh

build_dir="${FAPO_BUILD_DIR:-$root/build}"
jobs="${FAPO_JOBS:-2}"
# ccache hits across clones in different folders (CI builds a fresh clone).
export CCACHE_BASEDIR="$root"
export CCACHE_NOHASHDIR=1

torch_prefix="$("$root/.venv/bin/python" -c \
  'import torch.utils; print(torch.utils.cmake_prefix_path)')"

cmake -S "$root" -B "$build_dir" -G Ninja \
  -DCMAKE_BUILD_TYPE="${FAPO_BUILD_TYPE:-RelWithDebInfo}" \
  -DCMAKE_PREFIX_PATH="$torch_prefix" \
  -DFAPO_SANITIZE="${FAPO_SANITIZE:-}"
cmake --build "$build_dir" --parallel "$jobs"

# shellcheck disable=SC2086
ctest --test-dir "$build_dir" --output-on-failure \
  --parallel "${FAPO_TEST_JOBS:-2}" ${FAPO_CTEST_ARGS:-}
