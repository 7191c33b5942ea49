#!/usr/bin/env bash
# The SFT warm start's figures: `fapo sft` with its defaults (the embedded
# default's recipe, the first stage of the quickstart), then `fapo eval` of
# the result on held-out problems, sampled at temperature 1 (where flawed
# positives show) and greedily. Prints the wall time, the machine's load,
# the held-out accuracy, alpha / beta / gamma and the flawed-positive ratio.
#
#   scripts/bench-sft.sh                      # uses ./build
#   FAPO_BUILD_DIR=build-rel scripts/bench-sft.sh --steps 500   # sft flags
#
# Arguments are passed to `fapo sft` after the defaults. One thread per
# process (the tiny policy trains fastest on one); the figures are wall
# time, so run it on a quiet machine, or read them next to the load shown.
# docs/arith-testbed.md's prototype: ~4 min, sampled accuracy ~0.87,
# flawed-positive ratio ~0.25.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${FAPO_BUILD_DIR:-$root/build}"
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
cmake --build "$build_dir" --target fapo >/dev/null
fapo="$build_dir/bin/fapo"
config="$root/configs/quickstart.yaml"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1

load() { cut -d' ' -f1-3 /proc/loadavg; }

echo "load before sft: $(load)  ($(nproc) cores)"
start=$(date +%s.%N)
"$fapo" sft --out "$work/warm" --seed 1 "$@"
end=$(date +%s.%N)
sft_seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
echo "load after sft: $(load)"

"$fapo" eval --model "$work/warm" --config "$config" \
  --json "$work/sampled.json" | head -n -1
"$fapo" eval --model "$work/warm" --config "$config" --temperature 0 \
  --json "$work/greedy.json" | head -n -1

"$root/.venv/bin/python" - "$work" "$sft_seconds" <<'PY'
import json, sys
work, seconds = sys.argv[1], float(sys.argv[2])
s = json.load(open(f"{work}/sampled.json"))
g = json.load(open(f"{work}/greedy.json"))
print()
print(f"sft wall time        {seconds:7.1f} s (with corpus generation and save)")
print(f"held-out, T=1        accuracy {s['accuracy']:.3f} +- {s['accuracy_stderr']:.3f}"
      f"   flawed-positive ratio {s['flawed_positive_ratio']:.3f}"
      f" +- {s['flawed_positive_ratio_stderr']:.3f}")
print(f"                     alpha/beta/gamma {s['alpha']:.3f}/{s['beta']:.3f}/"
      f"{s['gamma']:.3f}   ({s['samples']} problems)")
print(f"held-out, greedy     accuracy {g['accuracy']:.3f}"
      f"   flawed-positive ratio {g['flawed_positive_ratio']:.3f}")
print("testbed (docs/arith-testbed.md): ~4 min, T=1 accuracy ~0.87, ratio ~0.25")
PY
