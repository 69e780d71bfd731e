#!/usr/bin/env bash
# Dynamic data selection (paper Sec. 3.2): only the most uncertain fraction r of each batch is
# distilled from TEACHER; every selection strategy x ratio x task x seed, plus the plain KD
# baseline (all instances, no selection) per task x seed.
#
#     bash scripts/data.sh
#     SELECTIONS=entropy RATIOS="0.1 0.5" TASKS=rte SEEDS="1 2" bash scripts/data.sh
#
# Runs go to $OUT_ROOT/data/<task>/kd-seed<seed> (baseline) and
# $OUT_ROOT/data/<task>/<strategy>-r<ratio>[-epoch]-seed<seed>.
# Variables (besides the shared ones in scripts/lib.sh: TASKS, SEEDS, TEACHER, STUDENT_*, LR, ...):
#   SELECTIONS       --selection_strategy values            random entropy margin lc
#   RATIOS           --selection_ratio values               0.1 0.3 0.5 0.7
#   SELECTION_SCOPE  batch (the paper) or epoch             batch
#   KD_BASELINE      1: also run plain KD, 0: don't         1
#   KD_LOSS          --kd_loss (auto = kl, mse for stsb)    auto
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${SELECTIONS:=random entropy margin lc}"
: "${RATIOS:=0.1 0.3 0.5 0.7}"
: "${SELECTION_SCOPE:=batch}"
: "${KD_BASELINE:=1}"
: "${KD_LOSS:=auto}"

scope_args=() scope_name=""
if [[ "$SELECTION_SCOPE" != batch ]]; then scope_args=(--selection_scope "$SELECTION_SCOPE") scope_name="-$SELECTION_SCOPE"; fi
loss_args=()
if [[ "$KD_LOSS" != auto ]]; then loss_args=(--kd_loss "$KD_LOSS"); fi

for task in $TASKS; do
  teacher=$(dkd_path "$TEACHER" "$task")
  for seed in $SEEDS; do
    dkd_student_args "$task" "$seed"
    if dkd_true "$KD_BASELINE"; then
      dkd_run "$OUT_ROOT/data/$task/kd-seed$seed" dynamic_data.py "${DKD_ARGS[@]}" --teacher "$teacher" "${loss_args[@]}"
    fi
    for strategy in $SELECTIONS; do
      for ratio in $RATIOS; do
        out="$OUT_ROOT/data/$task/$strategy-r$ratio$scope_name-seed$seed"
        dkd_needs_probabilities "$task" "$strategy" "$out" || continue
        dkd_run "$out" dynamic_data.py "${DKD_ARGS[@]}" --teacher "$teacher" \
          --selection_strategy "$strategy" --selection_ratio "$ratio" "${scope_args[@]}" "${loss_args[@]}"
      done
    done
  done
done

[[ "${BASH_SOURCE[0]}" != "$0" ]] || dkd_finish "$OUT_ROOT/data"
