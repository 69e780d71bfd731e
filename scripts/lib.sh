# shellcheck shell=bash
# scripts/lib.sh: what every sweep script shares (sourced, never run on its own).
#
# A sweep script sources this file, calls `dkd_run OUT_DIR SCRIPT ARG...` once per run, and ends
# with `dkd_finish REPORT_DIR`. Everything is driven by environment variables; each default below
# applies only when the variable is unset or empty, e.g.
#
#     TASKS="rte mrpc" SEEDS=1 GPUS="0 1" bash scripts/data.sh
#
# Experiment defaults (the paper's setting)
#   TASKS            tasks to sweep                            rte mrpc cola sst2 qnli
#   SEEDS            student seeds                             1 2 3
#   BASE_MODEL       small-teacher checkpoint                  bert-base-uncased
#   LARGE_MODEL      large-teacher checkpoint                  bert-large-uncased
#   STUDENT_MODEL    student initialisation                    bert-base-uncased
#   STUDENT_LAYERS   student depth (first K layers)            6
#   STUDENT_LAYER_INIT  first | skip                           first
#   BASE_TEACHER     fine-tuned small teacher, {task} = task   $OUT_ROOT/teachers/{task}-base
#   LARGE_TEACHER    fine-tuned large teacher                  $OUT_ROOT/teachers/{task}-large
#   TEACHER          teacher of single-teacher runs            $BASE_TEACHER
#   LR / EPOCHS      learning rate / epochs                    2e-5 / 3
#   TEACHER_LR / TEACHER_EPOCHS  for train_teacher.sh          $LR / $EPOCHS
#   TEACHER_SEED     seed of the teacher fine-tuning           42 (the HF default)
#   MAX_LEN          --max_seq_length                          128
#   BATCH            global train batch size                   32
#   EVAL_BATCH       per-device eval batch size                128
#   REPORT_TO        --report_to (curves need tensorboard)     tensorboard
#   SAVE_ARGS        checkpointing flags (resume granularity)  --save_strategy epoch --save_total_limit 1
#   DATA_ROOT        folder with one GLUE-format subfolder per task (DATA_ROOT/<task>); unset = hub
#   DATA_DIR_<TASK>  data folder of one task, e.g. DATA_DIR_RTE=/data/RTE (wins over DATA_ROOT)
#   EXTRA_ARGS       extra flags appended to every command (last, so they override), e.g. "--bf16"
#
# Execution
#   OUT_ROOT         where runs go (relative paths are relative to the repo root)  outputs
#   PYTHON           interpreter                               .venv/bin/python if present, else python3
#   GPUS             e.g. "0 1 2 3": one run per GPU in parallel, each with CUDA_VISIBLE_DEVICES set;
#                    a new run starts as soon as a GPU is free. Unset: runs one after another on
#                    whatever device there is.
#   NPROC_PER_RUN    N: launch each run with `torchrun --standalone --nproc_per_node N` (DDP).
#                    Without GPUS the runs go one after another, each seeing all devices; with GPUS
#                    the list is cut into groups of N (GPUS="0 1 2 3" NPROC_PER_RUN=2 -> two runs
#                    in parallel on "0,1" and "2,3"). The per-device batch becomes BATCH/N, so the
#                    global batch stays BATCH.
#   TORCHRUN         launcher for NPROC_PER_RUN   torchrun next to $PYTHON, else `$PYTHON -m torch.distributed.run`
#   DRY_RUN=1        print the commands (one per line, copy-pasteable) and run nothing; every
#                    other line starts with '#', so the output is itself a runnable script
#   SHOW_OUTPUT=1    also stream each run's output to the terminal (sequential runs only)
#
# Run folders: a folder holding results.json is finished and skipped ("skip DIR (finished)"); any
# other folder is (re)run with the same command, and the entry point resumes from its latest
# checkpoint. Nothing is ever deleted and --overwrite_output_dir is never passed. Each run's
# stdout+stderr is appended to DIR.log, next to DIR. Finished runs keep their last checkpoint-*
# folder (SAVE_ARGS); delete those by hand to reclaim disk once a sweep is done.

if [[ -n "${DKD_LIB_LOADED:-}" ]]; then
  return 0
fi
DKD_LIB_LOADED=1

if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
  echo "error: these scripts need bash >= 4.4 (this is $BASH_VERSION)" >&2
  exit 2
fi

DKD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$DKD_ROOT" || exit 2

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
: "${OUT_ROOT:=outputs}"
: "${TASKS:=rte mrpc cola sst2 qnli}"
: "${SEEDS:=1 2 3}"
: "${BASE_MODEL:=bert-base-uncased}"
: "${LARGE_MODEL:=bert-large-uncased}"
: "${STUDENT_MODEL:=bert-base-uncased}"
: "${STUDENT_LAYERS:=6}"
: "${STUDENT_LAYER_INIT:=first}"
# `{task}` is replaced by the task name (assigned with `if`: a `}` would end a ${...:=...}).
if [[ -z "${BASE_TEACHER:-}" ]]; then BASE_TEACHER="$OUT_ROOT/teachers/{task}-base"; fi
if [[ -z "${LARGE_TEACHER:-}" ]]; then LARGE_TEACHER="$OUT_ROOT/teachers/{task}-large"; fi
: "${TEACHER:=$BASE_TEACHER}"
: "${LR:=2e-5}"
: "${EPOCHS:=3}"
: "${TEACHER_LR:=$LR}"
: "${TEACHER_EPOCHS:=$EPOCHS}"
: "${TEACHER_SEED:=42}"
: "${MAX_LEN:=128}"
: "${BATCH:=32}"
: "${EVAL_BATCH:=128}"
: "${REPORT_TO:=tensorboard}"
: "${SAVE_ARGS:=--save_strategy epoch --save_total_limit 1}"
: "${DATA_ROOT:=}"
: "${EXTRA_ARGS:=}"
: "${GPUS:=}"
: "${NPROC_PER_RUN:=}"
: "${DRY_RUN:=0}"
: "${SHOW_OUTPUT:=0}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"

# Defaults of the entry points (HF TrainingArguments / dynamic_kd.arguments): equal values are not passed.
DKD_DEFAULT_LR=5e-5
DKD_DEFAULT_EPOCHS=3
DKD_DEFAULT_MAX_LEN=128
DKD_DEFAULT_BATCH=8
DKD_DEFAULT_SEED=42

# --- bookkeeping -------------------------------------------------------------------------

DKD_START=${DKD_START:-$SECONDS}   # a caller may start the clock earlier
DKD_COUNT=0        # runs handed to dkd_run
DKD_SKIPPED=0
DKD_STATE="$(mktemp -d "${TMPDIR:-/tmp}/dkd-sweep.XXXXXX")"   # one file per started run: ok|failed DIR
declare -a DKD_SLOTS=() DKD_SLOT_PIDS=()
DKD_NEXT_SLOT=0

_dkd_cleanup() { rm -rf "$DKD_STATE"; }
trap _dkd_cleanup EXIT

_dkd_interrupt() {
  echo "# interrupted: stopping the runs in progress" >&2
  local pid
  for pid in "${DKD_SLOT_PIDS[@]}"; do
    [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null
  done
  wait
  exit 130
}
trap _dkd_interrupt INT TERM

dkd_true() { [[ "$1" == 1 || "$1" == true || "$1" == yes ]]; }

# Print "# ..." in a dry run (keeps the output a runnable script), the plain message otherwise.
dkd_note() {
  if dkd_true "$DRY_RUN"; then echo "# $*"; else echo "$*"; fi
}

_dkd_clock() {  # seconds -> 1h02m03s / 2m03s / 3s
  local s=$1
  if ((s >= 3600)); then printf '%dh%02dm%02ds' $((s / 3600)) $((s % 3600 / 60)) $((s % 60))
  elif ((s >= 60)); then printf '%dm%02ds' $((s / 60)) $((s % 60))
  else printf '%ds' "$s"; fi
}

_dkd_stamp() { printf '[%s +%s]' "$(date +%H:%M:%S)" "$(_dkd_clock $((SECONDS - DKD_START)))"; }

dkd_same_number() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 == b + 0) }'; }

_dkd_die() { echo "error: $*" >&2; exit 2; }

# --- argument builders (each fills the array DKD_ARGS) -----------------------------------

# dkd_path TEMPLATE TASK: the template with {task} replaced.
dkd_path() { local template=$1; printf '%s' "${template//\{task\}/$2}"; }

# Per-device train batch: BATCH split over the NPROC_PER_RUN processes of one run.
_dkd_device_batch() {
  local nproc=${NPROC_PER_RUN:-1}
  if ((BATCH % nproc != 0)); then
    _dkd_die "BATCH=$BATCH is not divisible by NPROC_PER_RUN=$nproc"
  fi
  echo $((BATCH / nproc))
}

# dkd_task_args TASK SEED LR EPOCHS: task, data, training hyper-parameters (defaults left out).
dkd_task_args() {
  local task=$1 seed=$2 lr=$3 epochs=$4 upper data_var data_dir=""
  DKD_ARGS=(--task_name "$task")
  upper=$(printf '%s' "$task" | tr '[:lower:]-' '[:upper:]_')
  data_var="DATA_DIR_${upper}"
  if [[ -n "${!data_var:-}" ]]; then
    data_dir=${!data_var}
  elif [[ -n "$DATA_ROOT" ]]; then
    data_dir="$DATA_ROOT/$task"
  fi
  [[ -n "$data_dir" ]] && DKD_ARGS+=(--data_dir "$data_dir")
  dkd_same_number "$MAX_LEN" "$DKD_DEFAULT_MAX_LEN" || DKD_ARGS+=(--max_seq_length "$MAX_LEN")
  dkd_same_number "$epochs" "$DKD_DEFAULT_EPOCHS" || DKD_ARGS+=(--num_train_epochs "$epochs")
  dkd_same_number "$lr" "$DKD_DEFAULT_LR" || DKD_ARGS+=(--learning_rate "$lr")
  local batch
  batch=$(_dkd_device_batch) || exit 2
  dkd_same_number "$batch" "$DKD_DEFAULT_BATCH" || DKD_ARGS+=(--per_device_train_batch_size "$batch")
  dkd_same_number "$EVAL_BATCH" "$DKD_DEFAULT_BATCH" || DKD_ARGS+=(--per_device_eval_batch_size "$EVAL_BATCH")
  dkd_same_number "$seed" "$DKD_DEFAULT_SEED" || DKD_ARGS+=(--seed "$seed")
  [[ -n "$REPORT_TO" && "$REPORT_TO" != none ]] && DKD_ARGS+=(--report_to "$REPORT_TO")
  local -a save
  read -r -a save <<<"$SAVE_ARGS"
  DKD_ARGS+=("${save[@]}")
  return 0
}

# dkd_student_args TASK SEED: student model + task/training flags of a distillation run.
dkd_student_args() {
  dkd_task_args "$1" "$2" "$LR" "$EPOCHS"
  local -a task_args=("${DKD_ARGS[@]}")
  DKD_ARGS=(--model_name_or_path "$STUDENT_MODEL" --student_num_layers "$STUDENT_LAYERS")
  [[ "$STUDENT_LAYER_INIT" != first ]] && DKD_ARGS+=(--student_layer_init "$STUDENT_LAYER_INIT")
  DKD_ARGS+=("${task_args[@]}")
  return 0
}

# Tasks with a float label: strategies that need the student's class distribution do not apply.
: "${REGRESSION_TASKS:=stsb}"

# dkd_needs_probabilities TASK STRATEGY OUT_DIR: false (with a note) when STRATEGY needs class
# probabilities and TASK is a regression task; the entry points would refuse such a run.
dkd_needs_probabilities() {
  case " $REGRESSION_TASKS " in *" $1 "*) ;; *) return 0 ;; esac
  case "$2" in
    entropy | margin | lc | hard | soft | soft-instance | uncertainty | uncertainty-r)
      dkd_note "skip $3 (not applicable: $1 is a regression task and '$2' needs class probabilities)"
      return 1 ;;
  esac
  return 0
}

# --- the job queue -----------------------------------------------------------------------

_dkd_launcher() {  # fills DKD_LAUNCH: how a run's script is started
  if [[ -n "$NPROC_PER_RUN" ]]; then
    local -a torchrun
    if [[ -n "${TORCHRUN:-}" ]]; then
      read -r -a torchrun <<<"$TORCHRUN"
    elif [[ "$PYTHON" == */* && -x "$(dirname "$PYTHON")/torchrun" ]]; then
      torchrun=("$(dirname "$PYTHON")/torchrun")
    else
      torchrun=("$PYTHON" -m torch.distributed.run)
    fi
    DKD_LAUNCH=("${torchrun[@]}" --standalone --nproc_per_node "$NPROC_PER_RUN")
  else
    DKD_LAUNCH=("$PYTHON")
  fi
}

_dkd_init_slots() {  # GPU groups, one per parallel run; one empty slot = sequential
  ((${#DKD_SLOTS[@]})) && return 0
  local -a gpus
  read -r -a gpus <<<"${GPUS//,/ }"
  if ((${#gpus[@]} == 0)); then
    DKD_SLOTS=("")
  else
    local per=${NPROC_PER_RUN:-1} i
    ((${#gpus[@]} >= per)) || _dkd_die "NPROC_PER_RUN=$per needs at least $per GPUs, GPUS has ${#gpus[@]}"
    ((${#gpus[@]} % per == 0)) || echo "# warning: GPUS has ${#gpus[@]} GPUs, not a multiple of NPROC_PER_RUN=$per; the rest stay idle" >&2
    for ((i = 0; i + per <= ${#gpus[@]}; i += per)); do
      local group="${gpus[*]:i:per}"
      DKD_SLOTS+=("${group// /,}")
    done
  fi
  for i in "${!DKD_SLOTS[@]}"; do DKD_SLOT_PIDS[i]=""; done
}

_dkd_parallel() { [[ -n "${DKD_SLOTS[0]}" ]]; }

# Index of a free slot in DKD_FREE, waiting for a run to end when all are busy.
_dkd_wait_for_slot() {
  local i pid
  while :; do
    for i in "${!DKD_SLOTS[@]}"; do
      pid=${DKD_SLOT_PIDS[i]}
      if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
        [[ -n "$pid" ]] && wait "$pid" 2>/dev/null
        DKD_SLOT_PIDS[i]=""
        DKD_FREE=$i
        return 0
      fi
    done
    wait -n 2>/dev/null || sleep 1
  done
}

# _dkd_execute OUT_DIR GPU CMD...: run one command, log it, record ok/failed, print a summary line.
_dkd_execute() {
  local out=$1 gpu=$2
  shift 2
  local log="$out.log" start=$SECONDS rc child
  mkdir -p "$(dirname "$out")"
  printf '=== %s %s%s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "${gpu:+CUDA_VISIBLE_DEVICES=$gpu }" "$(_dkd_quote "$@")" >>"$log"
  local -a env_prefix=()
  [[ -n "$gpu" ]] && env_prefix=(env "CUDA_VISIBLE_DEVICES=$gpu")
  if dkd_true "$SHOW_OUTPUT" && ! _dkd_parallel; then
    "${env_prefix[@]}" "$@" 2>&1 | tee -a "$log"
    rc=${PIPESTATUS[0]}
  elif _dkd_parallel; then
    # Background runs ignore SIGINT; the sweep's trap sends TERM, which is passed on here.
    trap 'kill -TERM "$child" 2>/dev/null' TERM
    "${env_prefix[@]}" "$@" >>"$log" 2>&1 &
    child=$!
    wait "$child"
    rc=$?
    if ((rc > 128)) && kill -0 "$child" 2>/dev/null; then wait "$child"; rc=$?; fi
  else
    "$@" >>"$log" 2>&1
    rc=$?
  fi
  local took
  took=$(_dkd_clock $((SECONDS - start)))
  if ((rc == 0)); then
    echo "ok $out" >"$DKD_STATE/$DKD_COUNT"
    echo "$(_dkd_stamp) ok     $out ($took)"
  else
    echo "failed $out" >"$DKD_STATE/$DKD_COUNT"
    echo "$(_dkd_stamp) FAILED $out (exit $rc after $took; log: $log)"
    local last
    last=$(tr '\r' '\n' <"$log" | grep -v '^[[:space:]]*$' | tail -n 1)
    [[ -n "$last" ]] && echo "         ${last:0:300}"
  fi
  return 0
}

_dkd_quote() {  # shell-quote the words of a command, space-separated
  local out="" word
  for word in "$@"; do out+="$(printf '%q' "$word") "; done
  printf '%s' "${out% }"
}

# dkd_run OUT_DIR SCRIPT ARG...: queue one run (or print it with DRY_RUN=1).
dkd_run() {
  local out=$1 script=$2
  shift 2
  DKD_COUNT=$((DKD_COUNT + 1))
  if [[ -f "$out/results.json" ]]; then
    DKD_SKIPPED=$((DKD_SKIPPED + 1))
    dkd_note "skip $out (finished)"
    return 0
  fi
  _dkd_init_slots
  _dkd_launcher
  local -a extra cmd
  read -r -a extra <<<"$EXTRA_ARGS"
  cmd=("${DKD_LAUNCH[@]}" "$script" "$@" --output_dir "$out" "${extra[@]}")
  if dkd_true "$DRY_RUN"; then
    local gpu=${DKD_SLOTS[DKD_NEXT_SLOT]}
    DKD_NEXT_SLOT=$(((DKD_NEXT_SLOT + 1) % ${#DKD_SLOTS[@]}))
    if [[ -n "$gpu" ]]; then echo "CUDA_VISIBLE_DEVICES=$gpu $(_dkd_quote "${cmd[@]}")"; else _dkd_quote "${cmd[@]}"; echo; fi
    return 0
  fi
  local resume=""
  [[ -d "$out" ]] && resume=" (resuming)"
  if _dkd_parallel; then
    _dkd_wait_for_slot
    local gpu=${DKD_SLOTS[DKD_FREE]}
    echo "$(_dkd_stamp) start  $out on GPU $gpu$resume (log: $out.log)"
    _dkd_execute "$out" "$gpu" "${cmd[@]}" &
    DKD_SLOT_PIDS[DKD_FREE]=$!
  else
    echo "$(_dkd_stamp) start  $out$resume (log: $out.log)"
    _dkd_execute "$out" "" "${cmd[@]}"
  fi
}

# dkd_wait: block until every queued run has ended (a barrier between dependent stages).
dkd_wait() {
  local pid
  for pid in "${DKD_SLOT_PIDS[@]}"; do
    [[ -n "$pid" ]] && wait "$pid" 2>/dev/null
  done
  local i
  for i in "${!DKD_SLOT_PIDS[@]}"; do DKD_SLOT_PIDS[i]=""; done
  return 0
}

# dkd_report_command RUNS_DIR: the command that turns a sweep into tables and figures.
dkd_report_command() {
  local dir=$1
  _dkd_quote "$PYTHON" -m dynamic_kd.report "$dir" --out "$dir/results.md" --plot "$dir/plots"
}

# dkd_finish REPORT_DIR...: wait, summarise, print the report command(s); exit 1 if any run failed.
dkd_finish() {
  local -a report_dirs=("$@")
  ((${#report_dirs[@]})) || report_dirs=("$OUT_ROOT")
  local report_dir
  dkd_wait
  if dkd_true "$DRY_RUN"; then
    echo "# $DKD_COUNT runs ($DKD_SKIPPED finished already). Turn the results into tables with:"
    for report_dir in "${report_dirs[@]}"; do echo "# $(dkd_report_command "$report_dir")"; done
    return 0
  fi
  local ok=0 failed=0 file status dir
  local -a failures=()
  for file in "$DKD_STATE"/*; do
    [[ -f "$file" ]] || continue
    read -r status dir <"$file"
    if [[ "$status" == ok ]]; then ok=$((ok + 1)); else failed=$((failed + 1)); failures+=("$dir"); fi
  done
  echo "$(_dkd_stamp) done: $ok ok, $failed failed, $DKD_SKIPPED skipped (of $DKD_COUNT runs)"
  for dir in "${failures[@]}"; do echo "  failed: $dir (log: $dir.log)"; done
  echo "Tables and figures:"
  for report_dir in "${report_dirs[@]}"; do echo "  $(dkd_report_command "$report_dir")"; done
  ((failed == 0)) || exit 1
  return 0
}

# Settings that would otherwise fail in the middle of bash arithmetic.
[[ -z "$NPROC_PER_RUN" || "$NPROC_PER_RUN" =~ ^[1-9][0-9]*$ ]] || _dkd_die "NPROC_PER_RUN must be a positive integer, got '$NPROC_PER_RUN'"
[[ "$BATCH" =~ ^[1-9][0-9]*$ ]] || _dkd_die "BATCH must be a positive integer, got '$BATCH'"
[[ "$GPUS" =~ ^[0-9,\ ]*$ ]] || _dkd_die "GPUS is a list of GPU indices like \"0 1 2 3\", got '$GPUS'"
