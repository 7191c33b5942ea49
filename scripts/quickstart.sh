#!/usr/bin/env bash
# The main job, from a fresh machine: installs dependencies, builds, and runs
# the embedded default (configs/quickstart.yaml) end to end with `fapo
# launch`: the SFT warm start of the tiny arith policy, then asynchronous
# GRPO with the FAPO reward against the exact `rule` GenRM, every service a
# local process. Ends with a held-out evaluation of the warm start and of
# the trained policy, and where the results are.
#
#   scripts/quickstart.sh [JOB.yaml] [--set KEY=VALUE]...
#
# Running it again resumes the run (or, once finished, only evaluates).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '\n==> %s\n' "$*"; }

bash scripts/install-deps.sh

build_dir="${FAPO_BUILD_DIR:-$root/build}"
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
torch_prefix="$("$root/.venv/bin/python" -c \
  'import torch.utils; print(torch.utils.cmake_prefix_path)')"
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_PREFIX_PATH="$torch_prefix" >/dev/null
cmake --build "$build_dir" --parallel "${FAPO_JOBS:-2}" --target fapo \
  fapo-scheduler fapo-rollout-worker fapo-genrm-server fapo-trainer
bin="$build_dir/bin"

config="$root/configs/quickstart.yaml"
if [[ $# -gt 0 && "$1" != --* ]]; then
  config="$1"
  shift
fi

# Tiny models run fastest on one thread per process (docs/arith-testbed.md), and
# the services share two cores.
export OMP_NUM_THREADS=1

say "The job spec ($config $*)"
effective="$("$bin/fapo" validate "$config" "$@")"
run_dir="$(sed -n 's/^  output_dir: "\(.*\)"$/\1/p' <<<"$effective" | head -1)"
echo "  valid; run directory: $run_dir (\`fapo validate\` prints every key)"

say "Training: fapo launch (warm start, then GRPO with the FAPO reward)"
started=$SECONDS
"$bin/fapo" launch "$config" "$@"
echo "  fapo launch took $((SECONDS - started)) s"

say "Held-out evaluation (sampled at temperature 1: flawed positives only show when sampling)"
newest="$(ls -d "$run_dir"/checkpoints/step-* 2>/dev/null | sort -t- -k2 -n | tail -1)"
for model in "$run_dir/warm-start" "$newest/policy"; do
  [[ -f "$model/config.json" ]] || continue
  echo "  $model"
  # The figures also go to eval.json beside the model; the table is enough
  # here.
  "$bin/fapo" eval --model "$model" --config "$config" \
    --json "$model/eval.json" | grep -v '^{' | sed 's/^/    /'
done
# report.md again, now with the evaluations in it.
"$bin/fapo" report "$run_dir" --quiet >/dev/null

say "Results: $run_dir"
cat <<TEXT
  report.md       the run as one page (fapo report $run_dir writes it again)
  metrics.jsonl   one line per step: reward, accuracy, alpha/beta/gamma, the
                  flawed-positive ratio, staleness, where the step's time went
  samples.jsonl   one line per trajectory: response, verdict, reward, advantage
  checkpoints/    Hugging Face layout (policy/), optimizer and job state
  logs/           one log per service; launch.json names every process
  warm-start/     the SFT policy the run started from
TEXT
