#!/usr/bin/env bash
# Dynamic supervision adjustment (paper Sec. 3.3): the student weighs logit KD against
# hidden-state alignment with TEACHER by its own uncertainty; every strategy x task x seed.
# `none` is the static baseline (both objectives at fixed weights, BERT-PKD-like).
#
#     bash scripts/objective.sh
#     STRATEGIES="none uncertainty" TASKS=mrpc bash scripts/objective.sh
#
# Runs go to $OUT_ROOT/objective/<task>/<strategy>[-cls]-seed<seed>.
# Variables (besides the shared ones in scripts/lib.sh: TASKS, SEEDS, TEACHER, STUDENT_*, LR, ...):
#   STRATEGIES   --strategy values                                  none uncertainty uncertainty-r
#   REP_ALPHA    --kd_rep_alpha, weight of hidden-state alignment   1.0 (dynamic_objective.py's default)
#   REP_LAYERS   all (every token of the mapped layers) or cls      all
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${STRATEGIES:=none uncertainty uncertainty-r}"
: "${REP_ALPHA:=1.0}"
: "${REP_LAYERS:=all}"

objective_args=() layers_name=""
if ! dkd_same_number "$REP_ALPHA" 1.0; then objective_args+=(--kd_rep_alpha "$REP_ALPHA"); fi
if [[ "$REP_LAYERS" != all ]]; then objective_args+=(--rep_layers "$REP_LAYERS") layers_name="-$REP_LAYERS"; fi

for task in $TASKS; do
  teacher=$(dkd_path "$TEACHER" "$task")
  for seed in $SEEDS; do
    dkd_student_args "$task" "$seed"
    for strategy in $STRATEGIES; do
      out="$OUT_ROOT/objective/$task/$strategy$layers_name-seed$seed"
      dkd_needs_probabilities "$task" "$strategy" "$out" || continue
      strategy_args=()
      [[ "$strategy" != none ]] && strategy_args=(--strategy "$strategy")
      dkd_run "$out" dynamic_objective.py "${DKD_ARGS[@]}" --teacher "$teacher" "${strategy_args[@]}" "${objective_args[@]}"
    done
  done
done

[[ "${BASH_SOURCE[0]}" != "$0" ]] || dkd_finish "$OUT_ROOT/objective"
