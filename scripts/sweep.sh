#!/usr/bin/env bash
# scripts/sweep.sh SWEEP [NAME=VALUE ...]: run one sweep of scripts/grids.py through the launcher
# dynamic_kd/sweeps.py (local or Slurm) with the repository's interpreter: PYTHON, else .venv/bin/python,
# else python3. Settings are environment variables (or NAME=VALUE); see README "Sweeps" and
# `python -m dynamic_kd.sweeps --help`.
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHON TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
exec "$PYTHON" -m dynamic_kd.sweeps "$@"
