#!/usr/bin/env bash
# Fine-tune the teachers of every task: BASE_MODEL (bert-base-uncased) and LARGE_MODEL
# (bert-large-uncased) into BASE_TEACHER / LARGE_TEACHER ($OUT_ROOT/teachers/<task>-base|large),
# where teacher.sh, data.sh and objective.sh look for them.
#
#     bash scripts/train_teacher.sh                          # every task, both sizes
#     TASKS="rte mrpc" GPUS="0 1" bash scripts/train_teacher.sh
#     LAUNCHER=slurm SLURM_PARTITION=gpu bash scripts/train_teacher.sh
#     DRY_RUN=1 bash scripts/train_teacher.sh                # print the commands only
#
# Own variables: TEACHER_SIZES, TEACHER_LR, TEACHER_EPOCHS, TEACHER_SEED; the shared ones (TASKS,
# OUT_ROOT, GPUS, LAUNCHER, ...) are in README "Sweeps".
# Defaults: scripts/grids.py PAPER, under PROFILES (PROFILE=released: the released scripts' settings,
# docs/released.md; library: ours, in outputs/library).
exec bash "$(dirname "${BASH_SOURCE[0]}")/sweep.sh" teachers "$@"
