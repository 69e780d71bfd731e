#!/usr/bin/env bash
# Dynamic teacher adoption (paper Sec. 3.1): a STUDENT_LAYERS-layer student learns from the
# base and large teachers of train_teacher.sh, for every mode x task x seed.
#
#     bash scripts/teacher.sh
#     MODES="single-large hard" TASKS=rte SEEDS="1 2" bash scripts/teacher.sh
#
# Runs go to $OUT_ROOT/teacher/<task>/<mode>-seed<seed>.
# Variables (besides the shared ones in scripts/lib.sh: TASKS, SEEDS, STUDENT_*, BASE_TEACHER,
# LARGE_TEACHER, LR, EPOCHS, GPUS, DRY_RUN, ...):
#   MODES   --uncertainty_mode values; single-small, single-large and average are the baselines
#           (single-* runs get only the teacher they use)   single-small single-large average hard soft soft-instance
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${MODES:=single-small single-large average hard soft soft-instance}"

for task in $TASKS; do
  small=$(dkd_path "$BASE_TEACHER" "$task")
  large=$(dkd_path "$LARGE_TEACHER" "$task")
  for seed in $SEEDS; do
    dkd_student_args "$task" "$seed"
    for mode in $MODES; do
      out="$OUT_ROOT/teacher/$task/$mode-seed$seed"
      dkd_needs_probabilities "$task" "$mode" "$out" || continue
      case "$mode" in
        single-small) teachers=(--small_teacher "$small") ;;
        single-large) teachers=(--large_teacher "$large") ;;
        *) teachers=(--small_teacher "$small" --large_teacher "$large") ;;
      esac
      # hard is dynamic_teacher.py's default mode
      [[ "$mode" == hard ]] && mode_args=() || mode_args=(--uncertainty_mode "$mode")
      dkd_run "$out" dynamic_teacher.py "${DKD_ARGS[@]}" "${teachers[@]}" "${mode_args[@]}"
    done
  done
done

[[ "${BASH_SOURCE[0]}" != "$0" ]] || dkd_finish "$OUT_ROOT/teacher"
