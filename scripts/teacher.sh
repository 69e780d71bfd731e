#!/usr/bin/env bash
# Dynamic teacher adoption (paper Sec. 3.1): a STUDENT_LAYERS-layer student learns from the base
# and large teachers of train_teacher.sh, for every mode x task x seed, next to the student
# trained alone (no teacher).
#
#     bash scripts/teacher.sh
#     MODES="single-large hard" TASKS=rte SEEDS="1 2" bash scripts/teacher.sh
#
# Runs go to $OUT_ROOT/teacher/<task>/<mode>-seed<seed>, the no-KD student to
# $OUT_ROOT/student/<task>/seed<seed> (STUDENT_BASELINE=0 leaves it out).
# Own variables: TEACHER_ALPHAS (the two teachers' KD weights), MODES (single-small, single-large and
# average are the baselines; single-* runs get only the teacher they use). Shared ones: README "Sweeps".
# Defaults: scripts/grids.py PAPER, under PROFILES (PROFILE=released: the released scripts' settings,
# docs/released.md; library: ours, in outputs/library).
exec bash "$(dirname "${BASH_SOURCE[0]}")/sweep.sh" teacher "$@"
