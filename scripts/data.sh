#!/usr/bin/env bash
# Dynamic data selection (paper Sec. 3.2): only the most uncertain fraction r of each batch is
# distilled from TEACHER; every selection strategy x ratio x task x seed, plus plain KD (every
# instance) and the student trained alone (no teacher).
#
#     bash scripts/data.sh
#     SELECTIONS=entropy RATIOS="0.1 0.5" TASKS=rte SEEDS="1 2" bash scripts/data.sh
#
# Runs go to $OUT_ROOT/data/<task>/kd-seed<seed> and .../<strategy>-r<ratio>[-epoch]-seed<seed>,
# the no-KD student to $OUT_ROOT/student/<task>/seed<seed>.
# Own variables: SELECTIONS, RATIOS, SELECTION_SCOPE (batch = the paper, or epoch), KD_BASELINE,
# KD_LOSS, TEACHER_CACHE (disk: the runs share the teacher's outputs). Shared ones: README "Sweeps".
# Defaults: scripts/grids.py PAPER, under PROFILES (PROFILE=released: the released scripts' settings,
# docs/released.md; library: ours, in outputs/library).
exec bash "$(dirname "${BASH_SOURCE[0]}")/sweep.sh" data "$@"
