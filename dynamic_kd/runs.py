"""A run's results file and method name (`recipe.py` writes them); the runs below folders as a DataFrame."""

import json
import logging
import math
import os
import re
from pathlib import Path

import pandas as pd

from dynamic_kd.errors import ConfigError
from dynamic_kd.metrics import primary_of

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.json"  # written last, atomically: the run is finished

# A reader's words for the parts of a `method_label` (figures; tables keep the label).
TEACHER_TITLES = {
    "hard": "hard adoption",
    "soft": "soft adoption",
    "soft-instance": "soft adoption per instance",
    "single-small": "KD from the small teacher",
    "single-large": "KD from the large teacher",
    "average": "both teachers averaged",
}
OBJECTIVE_TITLES = {
    "none": "REP (static)",
    "uncertainty": "uncertainty-weighted REP",
    "uncertainty-r": "reverse uncertainty-weighted REP",
}
# results.json written before the flags took the released spellings
RENAMED_ARGS = {"kd_alpha": "kd_kl_alpha", "rep_alpha": "kd_rep_alpha"}


def method_label(args: dict) -> str:
    """E.g. ``finetune/2L`` or ``teacher/hard+data/entropy/r0.1/epoch+objective/uncertainty+mse``."""
    if "selection_strategy" not in args:
        return f"finetune/{args['student_num_layers']}L" if args.get("student_num_layers") else "finetune"
    parts = ["kd" if args.get("uncertainty_mode") is None else f"teacher/{args['uncertainty_mode']}"]
    if args["selection_strategy"] != "none":
        scope = "/epoch" if args.get("selection_scope") == "epoch" else ""
        parts.append(f"data/{args['selection_strategy']}/r{args['selection_ratio']:g}{scope}")
    if (args.get("kd_rep_alpha") or 0) > 0:
        parts.append(f"objective/{args.get('strategy')}")
    if args.get("kd_loss") == "mse":
        parts.append("mse")
    return "+".join(parts)


def _title(part: str) -> str:
    kind, _, rest = part.partition("/")
    if kind == "finetune":
        return f"student alone ({rest[:-1]} layer{'' if rest == '1L' else 's'})" if rest else "trained alone"
    if kind == "data":
        strategy, ratio, *scope = rest.split("/")
        return f"{strategy} selection {float(ratio[1:]):.0%}" + (" per epoch" if scope else "")
    if kind in ("teacher", "objective"):
        return (TEACHER_TITLES if kind == "teacher" else OBJECTIVE_TITLES)[rest]
    return {"kd": "KD", "mse": "MSE logits"}.get(kind, part)


def method_title(label: str) -> str:
    """``teacher/hard+data/entropy/r0.5`` -> ``hard adoption + entropy selection 50%``."""
    return " + ".join(_title(part) for part in label.split("+"))


# The GLUE tasks in display order: (column header, metrics in cell order). Other tasks: alphabetical.
GLUE = {
    "cola": ("CoLA", ("matthews_correlation",)),
    "sst2": ("SST-2", ("accuracy",)),
    "mrpc": ("MRPC (F1/acc)", ("f1", "accuracy")),
    "qqp": ("QQP (F1/acc)", ("f1", "accuracy")),
    "stsb": ("STS-B (P/S)", ("pearson", "spearmanr")),
    "mnli": ("MNLI (m/mm)", ("accuracy", "accuracy_mm")),
    "qnli": ("QNLI", ("accuracy",)),
    "rte": ("RTE", ("accuracy",)),
    "wnli": ("WNLI", ("accuracy",)),
}
# Arguments that never make two runs different methods: the task (a column), seeds, paths (the data enters
# by its fingerprint), bookkeeping.
NOT_SETTINGS = frozenset(
    """
    task_name seed data_seed output_dir run_name overwrite_output_dir resume_from_checkpoint data_dir train_file
    validation_file teacher_cache teacher_cache_dir teacher_batch_size logging_strategy logging_steps
    logging_first_step log_on_each_node logging_nan_inf_filter log_level log_level_replica disable_tqdm report_to
    project trackio_space_id trackio_bucket_id trackio_static_space_id include_num_input_tokens_seen eval_strategy
    eval_steps eval_delay eval_on_start per_device_eval_batch_size eval_accumulation_steps save_strategy save_steps
    save_total_limit save_on_each_node save_only_model enable_jit_checkpoint push_to_hub hub_token hub_private_repo
    hub_model_id hub_strategy hub_always_push hub_revision dataloader_num_workers dataloader_pin_memory
    dataloader_persistent_workers dataloader_prefetch_factor skip_memory_metrics local_rank debug do_train do_eval
    do_predict
""".split()
)
COPIED = ("train_runtime_s", "train_examples", "teacher_forward_examples")  # from results.json as they are
RUN_COLUMNS = ("run_dir", "task", "data", "data_label", "seed", "method", "metrics", "primary_metric", *COPIED)


def _setting(value, task: str) -> str:
    """An argument as comparable text, the task's name as {task}."""
    if isinstance(value, str):
        return re.sub(rf"(?<![a-z0-9]){re.escape(task)}(?![a-z0-9])", "{task}", value, flags=re.IGNORECASE)
    return json.dumps(value, sort_keys=True)


def _data(record: dict, args: dict, task: str) -> tuple[str, str]:
    """(key, short label) of a run's data; from the flags in files older than the `data` record."""
    data = record.get("data")
    if isinstance(data, dict) and {"source", "location", "fingerprint"} <= set(data):
        label = "hub" if data["source"] == "hub" else os.path.basename(os.path.normpath(data["location"]))
        return f"{data['source']}:{data['fingerprint']}", label
    location = args.get("train_file") or args.get("data_dir")
    if location:
        return f"path:{os.path.abspath(location)}", os.path.basename(os.path.normpath(location))
    return f"hub:{task}", "hub"


def read_run(path: str):
    """One results.json as RUN_COLUMNS plus `settings`, or why it is unusable."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:  # UnicodeDecodeError included
        return f"invalid JSON: {exc}"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    if not isinstance(record, dict):
        return "top level is not a JSON object"
    args = record.get("args")
    if not isinstance(args, dict):
        return "missing key 'args'"
    args = {RENAMED_ARGS.get(name, name): value for name, value in args.items()}
    task = record.get("task") or args.get("task_name")
    if not isinstance(task, str) or not task:
        return "missing key 'task'"
    raw = record.get("metrics")
    if not isinstance(raw, dict) or not raw:
        return "missing key 'metrics'" if raw is None else "'metrics' is not a non-empty object"
    metrics = {}
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"metric '{name}' is not a finite number ({value!r})"
        metrics[str(name).removeprefix("eval_")] = float(value)
    wanted = GLUE[task][1] if task in GLUE else tuple(sorted(metrics))
    if missing := [m for m in wanted if m not in metrics]:
        return f"missing metric(s) {', '.join(missing)} for task {task}"
    if (primary := primary_of(task, metrics)) not in metrics:
        return f"no primary metric for task {task} (metrics: {', '.join(sorted(metrics))})"
    data, data_label = _data(record, args, task)
    return {
        "run_dir": os.path.dirname(path),
        "task": task,
        "data": data,
        "data_label": data_label,
        "seed": record.get("seed", args.get("seed")),
        "method": method_label(args),
        "metrics": {m: metrics[m] for m in wanted},
        "primary_metric": primary,
        **{k: record.get(k) for k in COPIED},
        "settings": {k: _setting(v, task) for k, v in args.items() if k not in NOT_SETTINGS},
    }


def load_runs(dirs) -> tuple[pd.DataFrame, list]:
    """Each usable results.json below `dirs` as a row (settings as columns); the skipped (path, reason)."""
    rows, skipped, seen = [], [], set()
    for root in dirs:
        if not os.path.isdir(root):
            raise ConfigError(f"runs dir {root} does not exist; pass the folder holding the runs' {RESULTS_FILE} files")
        for folder, subdirs, files in os.walk(root):
            subdirs.sort()
            path = os.path.join(folder, RESULTS_FILE)
            if RESULTS_FILE in files and os.path.realpath(path) not in seen:
                seen.add(os.path.realpath(path))
                run = read_run(path)
                if isinstance(run, dict):
                    rows.append(run)
                else:
                    skipped.append((path, run))
    runs = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    settings = pd.DataFrame([r["settings"] for r in rows], index=runs.index).fillna("–")
    logger.info("read %d runs (%d skipped)", len(runs), len(skipped))
    return runs.join(settings), skipped


def setting_columns(runs: pd.DataFrame) -> list:
    return [c for c in runs.columns if c not in RUN_COLUMNS and runs[c].nunique() > 1]
