#!/usr/bin/env bash
# Dynamic supervision adjustment (paper Sec. 3.3): the student weighs logit KD against
# hidden-state alignment with TEACHER by its own uncertainty; every strategy x task x seed, next
# to the student trained alone. `none` is the static baseline (both objectives at fixed weights,
# BERT-PKD-like).
#
#     bash scripts/objective.sh
#     STRATEGIES="none uncertainty" TASKS=mrpc bash scripts/objective.sh
#
# Runs go to $OUT_ROOT/objective/<task>/<strategy>[-cls]-seed<seed>.
# Own variables: STRATEGIES, STATIC_REP_NORMALIZATION (REP of `none`), REP_ALPHA (weight of hidden-state
# alignment), REP_LAYERS (all tokens of the mapped layers, or cls). Shared ones: README "Sweeps".
# Defaults: scripts/grids.py PAPER, under PROFILES (PROFILE=released: the released scripts' settings,
# docs/released.md; library: ours, in outputs/library).
exec bash "$(dirname "${BASH_SOURCE[0]}")/sweep.sh" objective "$@"
