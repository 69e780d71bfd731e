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
# Own variables: SELECTIONS (random entropy margin lc), RATIOS (0.1 0.3 0.5 0.7),
# SELECTION_SCOPE (batch = the paper, or epoch), KD_BASELINE (1), KD_LOSS (auto = kl, mse for
# stsb). Shared ones: README "Sweeps".
exec bash "$(dirname "${BASH_SOURCE[0]}")/sweep.sh" data "$@"
