#!/usr/bin/env bash
# The whole reproduction: the teachers (train_teacher.sh), then the three distillation sweeps
# (teacher.sh, data.sh, objective.sh) and the no-KD student as one stage, so with GPUS set no
# GPU idles between sweeps, and under LAUNCHER=slurm the students' job array waits for the
# teachers' (--dependency=afterany; a student whose teacher failed fails at once).
#
#     GPUS="0 1 2 3" bash scripts/all.sh
#     LAUNCHER=slurm SLURM_PARTITION=gpu SLURM_TIME=08:00:00 bash scripts/all.sh
#     STAGES="data objective" TASKS=rte bash scripts/all.sh
#     DRY_RUN=1 bash scripts/all.sh > plan.sh             # the whole plan as a script
#
# Own variables: STAGES (teachers teacher data objective), and every variable of the four
# scripts. Exits 1 if a run failed (locally).
# Defaults: scripts/grids.py PAPER, under PROFILES (PROFILE=released: the released scripts' settings,
# docs/released.md; library: ours, in outputs/library).
exec bash "$(dirname "${BASH_SOURCE[0]}")/sweep.sh" all "$@"
