#!/usr/bin/env bash
# The paper in miniature, offline: its three experiments on three-class tweets, with seeds.
#
#     bash scripts/miniature.sh               # draw 0 of the tweets, in outputs/miniature/draw0
#     DATA_SEED=1 bash scripts/miniature.sh   # a second draw (replication), in outputs/miniature/draw1
#     python -m dynamic_kd.report outputs/miniature/draw0/runs outputs/miniature/draw1/runs --claims miniature
#                                             # both draws' verdicts side by side
#
# The quickstart's setup (venv, demo assets, data) with the `miniature` grid of scripts/grids.py
# (MINIATURE_ROWS x SEEDS, teachers once), then `python -m dynamic_kd.report OUT/runs --claims
# miniature`: every row's mean ± std over seeds and each paper claim's paired difference to its
# baseline with a 95% interval and a verdict, in OUT/results.md. The sweep's variables
# (scripts/grids.py MINIATURE: SEEDS, STUDENT_LAYERS, EPOCHS, PRECISION, ...) apply.
: "${TRAIN_ROWS:=3000}" "${DEV_ROWS:=1500}"
SWEEP=miniature TRAIN_ROWS=$TRAIN_ROWS DEV_ROWS=$DEV_ROWS exec bash "$(dirname "${BASH_SOURCE[0]}")/quickstart.sh" "$@"
