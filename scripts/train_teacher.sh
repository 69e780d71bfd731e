#!/usr/bin/env bash
# Fine-tune the teachers of every task: BASE_MODEL (bert-base-uncased) and LARGE_MODEL
# (bert-large-uncased), written to BASE_TEACHER / LARGE_TEACHER ($OUT_ROOT/teachers/<task>-base|large),
# where teacher.sh, data.sh and objective.sh look for them.
#
#     bash scripts/train_teacher.sh                       # every task, both sizes
#     TASKS="rte mrpc" GPUS="0 1" bash scripts/train_teacher.sh
#     DRY_RUN=1 bash scripts/train_teacher.sh             # print the commands only
#
# Variables (besides the shared ones documented in scripts/lib.sh: TASKS, OUT_ROOT, GPUS, ...):
#   TEACHER_SIZES    which teachers to train: base, large or both       base large
#   TEACHER_LR       learning rate                                      $LR (2e-5)
#   TEACHER_EPOCHS   epochs                                             $EPOCHS (3)
#   TEACHER_SEED     seed                                               42
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${TEACHER_SIZES:=base large}"

for task in $TASKS; do
  dkd_task_args "$task" "$TEACHER_SEED" "$TEACHER_LR" "$TEACHER_EPOCHS"
  for size in $TEACHER_SIZES; do
    case "$size" in
      base) dkd_run "$(dkd_path "$BASE_TEACHER" "$task")" train_teacher.py --model_name_or_path "$BASE_MODEL" "${DKD_ARGS[@]}" ;;
      large) dkd_run "$(dkd_path "$LARGE_TEACHER" "$task")" train_teacher.py --model_name_or_path "$LARGE_MODEL" "${DKD_ARGS[@]}" ;;
      *) echo "error: TEACHER_SIZES takes base and/or large, got '$size'" >&2; exit 2 ;;
    esac
  done
done

[[ "${BASH_SOURCE[0]}" != "$0" ]] || dkd_finish "$OUT_ROOT/teachers"
