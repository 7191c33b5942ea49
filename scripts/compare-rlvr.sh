#!/usr/bin/env bash
# FAPO against plain RLVR on the embedded default: the comparison the arith
# testbed (docs/arith-testbed.md) is built to show. One SFT warm start,
# then the same GRPO job twice from it, with algorithm.reward rlvr (reward
# for the final answer only) and with fapo (flawed positives penalized), and
# a held-out evaluation of the three policies, sampled at temperature 1.
#
#   scripts/compare-rlvr.sh [JOB.yaml] [--seeds 1,2,3] [--set KEY=VALUE]...
#
# --set applies to both arms; --seeds runs the whole comparison once per
# job.seed (each with its own warm start) and ends with a table of all.
#
# Needs the binaries (scripts/quickstart.sh builds them). On a 2-core
# machine: about a minute of warm start, 3-4 minutes per arm. The arms go to
# runs/<job.name>-seed<job.seed>-rlvr and ...-fapo (their own run
# directories, so running again resumes them, or only evaluates once they
# are done), the shared warm start to ...-warm-start, and both arms
# overlaid on one page (fapo report) to ...-compare.html.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '\n==> %s\n' "$*"; }

bin="${FAPO_BUILD_DIR:-$root/build}/bin"
for binary in fapo fapo-scheduler fapo-rollout-worker fapo-genrm-server \
              fapo-trainer; do
  if [[ ! -x "$bin/$binary" ]]; then
    echo "error: $bin/$binary is missing: build first (scripts/quickstart.sh)" >&2
    exit 1
  fi
done

config="$root/configs/quickstart.yaml"
if [[ $# -gt 0 && "$1" != --* ]]; then
  config="$1"
  shift
fi
seeds=""
if [[ $# -gt 1 && "$1" == --seeds ]]; then
  seeds="$2"
  shift 2
  if [[ ! "$seeds" =~ ^[0-9]+(,[0-9]+)*$ ]]; then
    echo "error: --seeds wants numbers separated by commas, got '$seeds'" >&2
    exit 2
  fi
fi
# One thread per process: the tiny model runs fastest so (docs/arith-testbed.md).
export OMP_NUM_THREADS=1

# Reads KEY (an indented "key: value" line) from the effective spec.
spec_value() {
  sed -n "s/^  $1: \"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" <<<"$2" | head -1
}
# One comparison: warm start, both arms, the evaluation table; appends a
# line to `summary`.
summary=()
compare() {
  effective="$("$bin/fapo" validate "$config" "$@")"
  name="$(spec_value name "$effective")"
  seed="$(spec_value seed "$effective")"
  if [[ -n "$(spec_value model_dir "$effective")" ]]; then
    echo "error: policy.model_dir is set: the comparison makes its own warm" \
         "start (the embedded arith policy)" >&2
    exit 2
  fi

  prefix="runs/$name-seed$seed"
  warm="$prefix-warm-start"
  say "Warm start: fapo sft --out $warm --seed $seed"
  if [[ -f "$warm/config.json" ]]; then
    echo "  already there"
  else
    "$bin/fapo" sft --out "$warm" --seed "$seed" | tail -3
  fi

  declare -A run_dirs ratios accuracies
  for arm in rlvr fapo; do
    arm_args=(--set "job.name=$name-seed$seed-$arm"
              --set "algorithm.reward=$arm" --set "policy.model_dir=$warm" "$@")
    run_dirs[$arm]="$(spec_value output_dir \
      "$("$bin/fapo" validate "$config" "${arm_args[@]}")")"
    say "The $arm arm: fapo launch into ${run_dirs[$arm]}"
    "$bin/fapo" launch "$config" "${arm_args[@]}" --progress line \
      --progress-every-s 30
  done

  # A field of eval.json (one line of flat JSON).
  field() { sed -E "s/.*\"$1\":([-0-9.eE+]+).*/\1/" "$2"; }

  say "Held-out evaluation (the same problems for all three; T=1)"
  printf '  %-11s %-17s %-7s %-7s %-7s %-19s\n' policy accuracy alpha beta \
    gamma flawed-positive-ratio
  for row in "warm-start:$warm" "rlvr:${run_dirs[rlvr]}" "fapo:${run_dirs[fapo]}"; do
    label="${row%%:*}"
    dir="${row#*:}"
    model="$dir"
    if [[ "$label" != warm-start ]]; then
      model="$(ls -d "$dir"/checkpoints/step-* | sort -t- -k2 -n | tail -1)/policy"
    fi
    "$bin/fapo" eval --model "$model" --config "$config" \
      --json "$model/eval.json" >/dev/null
    json="$model/eval.json"
    printf '  %-11s %.3f +- %.3f    %.3f   %.3f   %.3f   %.3f +- %.3f\n' \
      "$label" "$(field accuracy "$json")" "$(field accuracy_stderr "$json")" \
      "$(field alpha "$json")" "$(field beta "$json")" "$(field gamma "$json")" \
      "$(field flawed_positive_ratio "$json")" \
      "$(field flawed_positive_ratio_stderr "$json")"
    ratios[$label]="$(printf '%.3f' "$(field flawed_positive_ratio "$json")")"
    accuracies[$label]="$(printf '%.3f' "$(field accuracy "$json")")"
    # The arm's report.md again, with the evaluation in it.
    [[ "$label" == warm-start ]] || "$bin/fapo" report "$dir" --quiet >/dev/null
  done
  # The two arms on the same charts.
  "$bin/fapo" report "${run_dirs[rlvr]}" "${run_dirs[fapo]}" \
    --html "$prefix-compare.html" --quiet >/dev/null
  say "The two arms overlaid: $prefix-compare.html"
  summary+=("$(printf '  %-5s %-19s %-19s %s' "$seed" \
    "${ratios[warm-start]} (${accuracies[warm-start]})" \
    "${ratios[rlvr]} (${accuracies[rlvr]})" \
    "${ratios[fapo]} (${accuracies[fapo]})")")
}

if [[ -z "$seeds" ]]; then
  compare "$@"
else
  for one in ${seeds//,/ }; do
    compare "$@" --set "job.seed=$one"
  done
  say "All seeds: flawed-positive ratio (accuracy), held out, T=1"
  printf '  %-5s %-19s %-19s %s\n' seed warm-start rlvr fapo
  printf '%s\n' "${summary[@]}"
fi
cat <<TEXT

  alpha: sound (answer right, every step right); beta: wrong answer;
  gamma: flawed positive (answer right, some step wrong). The ratio is
  gamma / (alpha + gamma). docs/arith-testbed.md expects RLVR to keep it
  high and FAPO to bring it down at equal accuracy. Each run directory's
  report.md and report.html have the training curve and the mean advantage
  flawed positives trained with (about that of sound answers under RLVR,
  strongly negative under FAPO); the compare page overlays the two arms.
TEXT
