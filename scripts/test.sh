#!/usr/bin/env bash
# Create/reuse .venv in the repository, install requirements.txt, run the test suite offline.
# Extra arguments go to pytest (e.g. bash scripts/test.sh tests/test_losses.py -x).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest -q "$@"
