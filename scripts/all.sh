#!/usr/bin/env bash
# The whole reproduction: fine-tune the teachers (train_teacher.sh), wait for them, then the three
# distillation sweeps (teacher.sh, data.sh, objective.sh) through one shared job queue, so with
# GPUS set no GPU idles between sweeps.
#
#     GPUS="0 1 2 3" bash scripts/all.sh
#     STAGES="data objective" TASKS=rte bash scripts/all.sh
#     DRY_RUN=1 bash scripts/all.sh > plan.sh            # the whole plan as a script
#
# Variables: STAGES (teachers teacher data objective), and everything that scripts/lib.sh and the
# four scripts document (TASKS, SEEDS, MODES, SELECTIONS, RATIOS, STRATEGIES, GPUS, ...).
# Exits non-zero if any run failed (a failed teacher makes its task's student runs fail too).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/lib.sh"

: "${STAGES:=teachers teacher data objective}"

for stage in $STAGES; do
  case "$stage" in
    teachers) source "$here/train_teacher.sh"; dkd_wait ;;  # students need finished teachers
    teacher | data | objective) source "$here/$stage.sh" ;;
    *) echo "error: unknown stage '$stage'; STAGES takes: teachers teacher data objective" >&2; exit 2 ;;
  esac
done

report_dirs=()
for stage in $STAGES; do
  [[ "$stage" == teachers ]] || report_dirs+=("$OUT_ROOT/$stage")
done
dkd_finish "${report_dirs[@]}"
