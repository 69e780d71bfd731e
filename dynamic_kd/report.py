"""Collect the runs' `results.json` files into paper-style tables and figures.

Usage::

    python -m dynamic_kd.report RUNS_DIR [RUNS_DIR ...] [--format md|csv|latex] [--out FILE] [--plot DIR]
    python -m dynamic_kd.report [RUNS_DIR ...] --curves RUN_DIR [RUN_DIR ...] --plot DIR

Reading
    Every `results.json` below each RUNS_DIR (recursively) becomes one row of a pandas DataFrame.
    A file that cannot be used (malformed or partial JSON, missing keys, non-numeric metrics, a
    GLUE task without its metrics) is listed as ``skipped: path (reason)``; it never stops the report.

Grouping
    Runs are aggregated (mean ± sample std over seeds, with n) only when they agree on the task,
    the data (source and content fingerprint, see `dynamic_kd.data.data_source`) and every
    resolved argument in `args` except the seed, output/data paths and bookkeeping flags
    (`NOT_SETTINGS`: logging, checkpointing, evaluation schedule, teacher cache). A string value
    is compared with the run's own task name replaced by ``{task}``, so the teachers
    ``outputs/teachers/rte-base`` and ``outputs/teachers/mrpc-base`` are one setting on two tasks.

Table
    Rows are methods (`method_label`; baselines ``finetune`` and ``kd`` first), with a column
    for each setting that differs between rows of the same method. Columns are tasks in GLUE
    order (cola sst2 mrpc qqp stsb mnli qnli rte wnli, then the rest alphabetically), one per
    data source of a task; data not from the hub is named, e.g. ``SST-2 [tweets]``. A cell is the
    mean ± sample std (ddof=1) over seeds ×100 with the seed count, ``91.2 ± 0.4 (n=3)``; MRPC
    and QQP show F1/acc, STS-B Pearson/Spearman, MNLI matched/mismatched. Each run's *primary
    score* is the mean of its task metrics; ``Avg`` is the mean over a row's columns of their
    primary-score means, marked ``*`` when the row has fewer columns than the table.

Formats
    ``md`` (tabulate's pipe table), ``latex`` (pandas' booktabs ``tabular``; skipped files as
    ``%`` comments) and ``csv`` (one row per group and metric in raw units, plus one
    ``task=avg, metric=primary`` row per table row; skipped files as ``#`` comments).

Figures (``--plot DIR``)
    ``methods.png`` (primary score per row, one panel per column), ``ratio.png`` (when a
    selection strategy ran at several ratios: score vs ratio) and, with ``--curves``,
    ``curves.png``: every ``dkd/*`` value of the runs' training history over steps (from
    `results.json`'s ``log_history``, or the newest checkpoint of an unfinished run).
"""
import argparse
import json
import logging
import math
import os
import re
import sys

import pandas as pd

from dynamic_kd.errors import ConfigError
from dynamic_kd.files import atomic_path, write_atomic

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
# Metrics of the GLUE tasks in display order (other tasks show theirs alphabetically).
TASK_METRICS = {
    "cola": ("matthews_correlation",), "sst2": ("accuracy",), "mrpc": ("f1", "accuracy"), "qqp": ("f1", "accuracy"),
    "stsb": ("pearson", "spearmanr"), "mnli": ("accuracy", "accuracy_mm"), "qnli": ("accuracy",),
    "rte": ("accuracy",), "wnli": ("accuracy",),
}
TASK_HEADERS = {
    "cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC (F1/acc)", "qqp": "QQP (F1/acc)", "stsb": "STS-B (P/S)",
    "mnli": "MNLI (m/mm)", "qnli": "QNLI", "rte": "RTE", "wnli": "WNLI",
}
# Arguments that never make two runs different methods: the task (it is the column), seeds, where
# things are written or read (the data enters through its fingerprint), and bookkeeping that
# leaves the model unchanged.
NOT_SETTINGS = frozenset("""
    task_name seed data_seed output_dir run_name overwrite_output_dir resume_from_checkpoint data_dir train_file validation_file
    teacher_cache teacher_cache_dir teacher_batch_size logging_strategy logging_steps logging_first_step log_on_each_node
    logging_nan_inf_filter log_level log_level_replica disable_tqdm report_to project trackio_space_id trackio_bucket_id
    trackio_static_space_id include_num_input_tokens_seen eval_strategy eval_steps eval_delay eval_on_start
    per_device_eval_batch_size eval_accumulation_steps save_strategy save_steps save_total_limit save_on_each_node
    save_only_model enable_jit_checkpoint push_to_hub hub_token hub_private_repo hub_model_id hub_strategy
    hub_always_push hub_revision dataloader_num_workers dataloader_pin_memory dataloader_persistent_workers
    dataloader_prefetch_factor skip_memory_metrics local_rank debug do_train do_eval do_predict
""".split())
BASELINES = ("finetune", "kd")
RUN_COLUMNS = ("path", "run_dir", "task", "data", "data_label", "seed", "method", "metrics",
               "train_runtime_s", "train_examples", "teacher_forward_examples")


def method_label(args: dict) -> str:
    """The one name of a run's method, from its resolved arguments (results.json's `args`).

    ``finetune`` for a model trained without a teacher (``finetune/KL`` for a K-layer cut: the
    no-KD student baseline); otherwise ``kd`` or ``teacher/<mode>``, then ``+data/<strategy>/r<ratio>``
    (``/epoch`` for epoch scope), ``+objective/<strategy>`` when hidden-state alignment is on and
    ``+mse`` for the MSE logit loss, e.g. ``teacher/hard+data/entropy/r0.1+objective/uncertainty``.
    """
    if "selection_strategy" not in args:
        return f"finetune/{args['student_num_layers']}L" if args.get("student_num_layers") else "finetune"
    parts = ["kd" if args.get("uncertainty_mode") is None else f"teacher/{args['uncertainty_mode']}"]
    if args["selection_strategy"] != "none":
        scope = "/epoch" if args.get("selection_scope") == "epoch" else ""
        parts.append(f"data/{args['selection_strategy']}/r{args['selection_ratio']:g}{scope}")
    if (args.get("rep_alpha") or 0) > 0:
        parts.append(f"objective/{args.get('strategy')}")
    if args.get("kd_loss") == "mse":
        parts.append("mse")
    return "+".join(parts)


# ---------------------------------------------------------------- reading


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _setting(value, task: str) -> str:
    """A comparable text of one argument value, with the run's task name written as {task}."""
    if isinstance(value, str):
        return re.sub(rf"(?<![a-z0-9]){re.escape(task)}(?![a-z0-9])", "{task}", value, flags=re.IGNORECASE)
    return json.dumps(value, sort_keys=True)


def _data(record: dict, args: dict, task: str) -> tuple[str, str]:
    """(key, short label) of a run's data; files written before the data source was recorded fall back to the flags."""
    data = record.get("data")
    if isinstance(data, dict) and {"source", "location", "fingerprint"} <= set(data):
        label = "hub" if data["source"] == "hub" else os.path.basename(os.path.normpath(data["location"]))
        return f"{data['source']}:{data['fingerprint']}", label
    location = args.get("train_file") or args.get("data_dir")
    if location:
        return f"path:{os.path.abspath(location)}", os.path.basename(os.path.normpath(location))
    return f"hub:{task}", "hub"


def read_run(path: str):
    """One results.json as a dict of RUN_COLUMNS plus `settings`, or the reason it cannot be used."""
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"invalid JSON: {exc}"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    if not isinstance(record, dict):
        return "top level is not a JSON object"
    args = record.get("args")
    if not isinstance(args, dict):
        return "missing key 'args'"
    task = record.get("task") or args.get("task_name")
    if not isinstance(task, str) or not task:
        return "missing key 'task'"
    raw = record.get("metrics")
    if not isinstance(raw, dict) or not raw:
        return "missing key 'metrics'" if raw is None else "'metrics' is not a non-empty object"
    metrics = {}
    for name, value in raw.items():
        if not _is_number(value):
            return f"metric '{name}' is not a finite number ({value!r})"
        metrics[str(name).removeprefix("eval_")] = float(value)
    wanted = TASK_METRICS.get(task, tuple(sorted(metrics)))
    missing = [m for m in wanted if m not in metrics]
    if missing:
        return f"missing metric(s) {', '.join(missing)} for task {task}"
    data, data_label = _data(record, args, task)
    return {
        "path": path, "run_dir": os.path.dirname(path), "task": task, "data": data, "data_label": data_label,
        "seed": record.get("seed", args.get("seed")), "method": method_label(args),
        "metrics": {m: metrics[m] for m in wanted},
        **{k: record.get(k) for k in ("train_runtime_s", "train_examples", "teacher_forward_examples")},
        "settings": {k: _setting(v, task) for k, v in args.items() if k not in NOT_SETTINGS},
    }


def load_runs(dirs) -> tuple[pd.DataFrame, list]:
    """Every usable results.json below `dirs` as one DataFrame row (settings as columns), and the skipped (path, reason)."""
    rows, skipped, seen = [], [], set()
    for root in dirs:
        if not os.path.isdir(root):
            raise ConfigError(f"runs dir {root} does not exist; pass the folder holding the runs' results.json files")
        for folder, subdirs, files in os.walk(root):
            subdirs.sort()
            path = os.path.join(folder, RESULTS_FILE)
            if RESULTS_FILE not in files or os.path.realpath(path) in seen:
                continue
            seen.add(os.path.realpath(path))
            run = read_run(path)
            (rows.append(run) if isinstance(run, dict) else skipped.append((path, run)))
    runs = pd.DataFrame([{k: r[k] for k in RUN_COLUMNS} for r in rows], columns=list(RUN_COLUMNS))
    settings = pd.DataFrame([r["settings"] for r in rows], index=runs.index).fillna("–")
    logger.info("read %d runs (%d skipped)", len(runs), len(skipped))
    return runs.join(settings), skipped


def setting_columns(runs: pd.DataFrame) -> list:
    """The settings that differ between runs (the grouping key besides method, task and data)."""
    return [c for c in runs.columns if c not in RUN_COLUMNS and runs[c].nunique() > 1]


# ---------------------------------------------------------------- paired claims (the miniature)


def run_score(metrics: dict) -> float:
    """A run's score for paired comparisons: accuracy where the task has it, else the mean of its metrics."""
    return metrics["accuracy"] if "accuracy" in metrics else sum(metrics.values()) / len(metrics)


def seeded_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run of a sweep laid out as <root>/<row>/seed<seed> (the miniature): row, seed, score x100, time, forwards."""
    return pd.DataFrame({
        "row": runs.run_dir.map(lambda path: os.path.basename(os.path.dirname(path))),
        "seed": runs.seed.astype(str), "score": runs.metrics.map(run_score) * 100,
        "seconds": runs.train_runtime_s, "forwards": runs.teacher_forward_examples,
    })


def rows_table(rows: pd.DataFrame, order) -> pd.DataFrame:
    """Per row of `order` (that ran): score mean ± sample std (n; one seed has no std), mean training time, mean teacher forwards."""
    stats = rows.groupby("row").agg(mean=("score", "mean"), std=("score", "std"), n=("score", "size"),
                                     seconds=("seconds", "mean"), forwards=("forwards", "mean"))
    stats = stats.loc[[name for name in order if name in stats.index]]
    return pd.DataFrame({
        "run": stats.index, "dev accuracy": [f"{m:.1f} ± {s:.1f} (n={n})" if n > 1 else f"{m:.1f} (n=1)" for m, s, n in zip(stats["mean"], stats["std"], stats.n)],
        "train s": stats.seconds.map("{:.0f}".format), "teacher forwards": stats.forwards.map("{:.0f}".format),
    })


def claims_table(rows: pd.DataFrame, claims) -> pd.DataFrame:
    """Each claim (section, text, row, baseline[, margin]) as the paired difference row - baseline
    over the seeds both ran: mean, 95% t-interval, and the verdict against -margin (points; 0 when
    absent): holds (interval above it), contradicted (below it) or within noise (it contains it).
    A margin turns "row beats baseline" into "row is at most `margin` points worse than baseline"."""
    from scipy import stats

    scores = rows.pivot_table(index="seed", columns="row", values="score")
    out = []
    for section, text, row, baseline, *margin in claims:
        bound = -margin[0] if margin else 0.0
        if row not in scores or baseline not in scores:
            continue
        diff = (scores[row] - scores[baseline]).dropna()
        n, mean = len(diff), diff.mean()
        half = stats.t.ppf(0.975, n - 1) * diff.std() / math.sqrt(n) if n > 1 else math.inf
        low, high = mean - half, mean + half
        verdict = "holds" if low > bound else "contradicted" if high < bound else "within noise"
        out.append({"§": section, "claim": text, "difference (points)": f"{mean:+.1f}", "95% interval": f"[{low:+.1f}, {high:+.1f}]",
                    "seeds": n, "verdict": verdict})
    return pd.DataFrame(out)


# ---------------------------------------------------------------- aggregation


def _natural(text) -> tuple:
    """Sort key that orders numbers and embedded numbers by value: 2e-05 < 0.0001, r0.05 < r0.1 < r0.5."""
    try:
        return ((0, float(text), ""),)
    except ValueError:
        pass
    return tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(re.split(r"(\d+(?:\.\d+)?)", str(text))) if p)


def _row_order(row) -> tuple:
    head = row["method"].split("/")[0]
    return (BASELINES.index(head) if head in BASELINES else len(BASELINES),) + tuple(_natural(v) for v in row.values)


def _column_order(task: str, data: str, data_label: str) -> tuple:
    """GLUE order, then other tasks alphabetically; a task's data sources by name."""
    glue = list(TASK_HEADERS)
    return ((0, glue.index(task), "") if task in glue else (1, 0, task)) + (data_label, data)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per group and metric (task metrics, then ``primary``): mean, std, n, seeds, runs.

    Groups are (method, varying settings, task, data), ordered as the table shows them.
    """
    rows = setting_columns(runs)
    long = pd.DataFrame([
        {**{k: run[k] for k in ["method", *rows, "task", "data", "data_label", "seed", "run_dir"]},
         "metric": name, "value": value}
        for run in runs.to_dict("records")
        for name, value in [*run["metrics"].items(), ("primary", sum(run["metrics"].values()) / len(run["metrics"]))]
    ])
    keys = ["method", *rows, "task", "data", "data_label", "metric"]
    summary = long.groupby(keys, sort=False).agg(
        mean=("value", "mean"), std=("value", "std"), n=("value", "size"),
        seeds=("seed", lambda s: ";".join(map(str, s))), runs=("run_dir", ";".join),
    ).reset_index()
    for group in summary.itertuples():
        if group.metric == "primary" and len(set(group.seeds.split(";"))) < group.n:
            logger.warning("%s on %s has repeated seeds (%s); all its runs are averaged", group.method, group.task, group.seeds)
    row_rank = summary[["method", *rows]].apply(_row_order, axis=1)
    col_rank = summary.apply(lambda g: _column_order(g.task, g.data, g.data_label), axis=1)
    return summary.assign(_row=row_rank, _col=col_rank).sort_values(["_row", "_col"], kind="stable").drop(columns=["_row", "_col"])


def _layout(summary: pd.DataFrame) -> tuple[list, list, dict]:
    """(settings that vary, those shown as columns, {(task, data): column header}) of a summary."""
    varying = list(summary.columns[1:summary.columns.get_loc("task")])
    shown = [c for c in varying if summary.groupby("method")[c].nunique().gt(1).any()]
    columns = summary[["task", "data", "data_label"]].drop_duplicates()
    columns = columns.iloc[sorted(range(len(columns)), key=lambda i: _column_order(*columns.iloc[i]))]
    sources = columns.groupby("task")["data"].transform("size")
    homonyms = columns.groupby(["task", "data_label"])["data"].transform("size")
    headers = {}
    for (task, data, label), n_sources, n_homonyms in zip(columns.itertuples(index=False), sources, homonyms):
        names = summary.loc[(summary.task == task) & (summary.metric != "primary"), "metric"].unique()
        name = TASK_HEADERS.get(task) or (f"{task} ({'/'.join(names)})" if len(names) > 1 else task)
        if n_sources > 1 or not data.startswith("hub:"):  # e.g. the demo's tweets under task sst2 are not SST-2
            name += f" [{label}" + (f"@{data.split(':', 1)[1][:6]}" if n_homonyms > 1 else "") + "]"
        headers[(task, data)] = name
    return varying, shown, headers


def _cell(stats: pd.DataFrame) -> str:
    """``88.0 ± 2.8/82.0 ± 2.8 (n=2)`` from one group's task-metric rows."""
    parts = [f"{100 * m:.1f}" + ("" if pd.isna(s) else f" ± {100 * s:.1f}") for m, s in zip(stats["mean"], stats["std"])]
    return f"{'/'.join(parts)} (n={stats['n'].iloc[0]})"


def table(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The display table (strings: Method, shown settings, one column per task/data, Avg) and the csv's avg rows."""
    varying, shown, headers = _layout(summary)
    display, avgs = [], []
    for key, group in summary.groupby(["method", *varying], sort=False):
        row = {"Method": key[0], **{c: v for c, v in zip(varying, key[1:]) if c in shown}}
        primaries = []
        for (task, data), cell in group.groupby(["task", "data"], sort=False):
            row[headers[(task, data)]] = _cell(cell[cell.metric != "primary"])
            primaries.append(cell.loc[cell.metric == "primary", "mean"].iloc[0])
        avg = sum(primaries) / len(primaries)
        row["Avg"] = f"{100 * avg:.1f}" + ("*" if len(primaries) < len(headers) else "")
        display.append(row)
        avgs.append({**dict(zip(["method", *varying], key)), "task": "avg", "metric": "primary", "mean": avg, "n": len(primaries)})
    frame = pd.DataFrame(display, columns=["Method", *shown, *headers.values(), "Avg"]).fillna("–")
    return frame, pd.DataFrame(avgs)


def render(frame: pd.DataFrame, fmt: str) -> str:
    """A display table as md or latex, with pandas' own writers (benchmarks/ use it too)."""
    if fmt == "md":
        return frame.to_markdown(index=False, disable_numparse=True) + "\n"
    text = frame.to_latex(index=False, escape=True, column_format="l" + "c" * (len(frame.columns) - 1))
    return re.sub(r"(\d)\*", r"\1$^*$", text.replace("±", r"$\pm$"))


def format_report(runs: pd.DataFrame, skipped=(), fmt: str = "md") -> str:
    """The report text: the table (md, latex) or the groups (csv), a note on partial averages, the skipped files."""
    if fmt not in ("md", "csv", "latex"):
        raise ConfigError(f"unknown table format {fmt!r}; use md, csv or latex")
    partial = False
    if runs.empty:
        text = "method,task,metric,mean,std,n,seeds,runs\n" if fmt == "csv" else "No usable runs.\n"
    else:
        summary = summarize(runs)
        frame, avgs = table(summary)
        partial = fmt != "csv" and frame["Avg"].str.endswith("*").any()
        text = render(frame, fmt) if fmt != "csv" else pd.concat([summary.drop(columns="data_label"), avgs]).to_csv(index=False)
    comment = {"md": "", "csv": "# ", "latex": "% "}[fmt]
    notes = [f"{comment}* Avg over fewer columns than the table shows."] if partial else []
    notes += [f"{comment}skipped: {path} ({reason})" for path, reason in skipped]
    return text + ("\n" if notes and fmt == "md" else "") + "".join(f"{line}\n" for line in notes)


# ---------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> str:
    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        _pyplot().close(fig)
    logger.info("wrote %s", path)
    return path


def _panels(n: int, width: float, height: float):
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = _pyplot().subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _primary(runs: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Primary-score groups with a `row` label (method and shown settings), and the column headers."""
    summary = summarize(runs)
    _, shown, headers = _layout(summary)
    primary = summary[summary.metric == "primary"]
    rows = [r["method"] + "".join(f" {c}={r[c]}" for c in shown) for r in primary.to_dict("records")]
    return primary.assign(row=rows), headers


def plot_methods(runs: pd.DataFrame, path: str) -> str:
    """Primary score ×100 (± sample std over seeds) of every table row, one panel per table column."""
    primary, headers = _primary(runs)
    rows = list(dict.fromkeys(primary.row))
    fig, axes = _panels(len(headers), 5.5, max(2.5, 0.35 * len(rows) + 1.2))
    for ax, ((task, data), header) in zip(axes, headers.items()):
        cell = primary[(primary.task == task) & (primary.data == data)]
        means, errors = 100 * cell["mean"], 100 * cell["std"].fillna(0.0)
        ax.barh([rows.index(r) for r in cell.row], means, xerr=errors, height=0.7, capsize=3, color="tab:blue", alpha=0.8)
        low = (means - errors).min()  # zoomed in, so differences of a point stay visible
        ax.set_xlim(low - 5.0 if low <= 0 else max(0.0, low - 5.0), (means + errors).max() + 2.0)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_title(header, fontsize=10)
        ax.set_xlabel("primary score ×100")
        ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_ratios(runs: pd.DataFrame, path: str):
    """Primary score vs selection ratio, a line per strategy (and other setting) run at several ratios; None if there is none."""
    selected = runs[runs.method.str.contains("/r")]
    if selected.empty or "selection_ratio" not in setting_columns(selected):
        logger.info("no selection strategy was run at several ratios; no ratio plot")
        return None
    primary, headers = _primary(selected)
    primary = primary.assign(ratio=primary.selection_ratio.astype(float), line=primary.row.str.replace(r"/r[\d.e+-]+", "", regex=True))
    lines = primary.groupby(["task", "data", "line"]).filter(lambda g: g.ratio.nunique() > 1)
    if lines.empty:
        return None
    panels = list(dict.fromkeys(zip(lines.task, lines.data)))
    fig, axes = _panels(len(panels), 5.0, 3.5)
    for ax, (task, data) in zip(axes, panels):
        for line, points in lines[(lines.task == task) & (lines.data == data)].groupby("line", sort=False):
            points = points.sort_values("ratio")
            ax.errorbar(points.ratio, 100 * points["mean"], yerr=100 * points["std"].fillna(0.0), marker="o", capsize=3, label=line)
        ax.set_title(headers[(task, data)], fontsize=10)
        ax.set_xlabel("selection ratio")
        ax.set_ylabel("primary score ×100")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def read_history(run_dir: str) -> list:
    """A run's training history: results.json's `log_history`, or the newest complete checkpoint's while it trains."""
    path = os.path.join(run_dir, RESULTS_FILE)
    if not os.path.exists(path):
        from dynamic_kd.recipe import last_complete_checkpoint  # recipe imports this module: import it late

        checkpoint = last_complete_checkpoint(run_dir) if os.path.isdir(run_dir) else None
        if checkpoint is None:
            raise ConfigError(f"{run_dir} holds neither {RESULTS_FILE} nor a checkpoint; pass a training output dir")
        path = os.path.join(checkpoint, "trainer_state.json")
    try:
        with open(path, encoding="utf-8") as handle:
            history = json.load(handle).get("log_history")
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"cannot read the training history in {path} ({exc}); pass a finished or checkpointed run") from None
    if not isinstance(history, list):
        raise ConfigError(f"{path} has no log_history (written before it was recorded); rerun to get curves")
    return history


def plot_curves(run_dirs, path: str) -> str:
    """Every ``dkd/*`` value of the runs' training histories over steps: a panel per value, a line per run."""
    if not run_dirs:
        raise ConfigError("no run dirs given for --curves; pass one or more training output dirs")
    names = [os.path.basename(os.path.normpath(d)) for d in run_dirs]
    names = names if len(set(names)) == len(names) else [os.path.normpath(d) for d in run_dirs]
    points = pd.DataFrame([
        {"run": name, "step": entry.get("step"), "key": key, "value": value}
        for name, run_dir in zip(names, run_dirs) for entry in read_history(run_dir)
        for key, value in entry.items() if key.startswith("dkd/") and _is_number(value)
    ], columns=["run", "step", "key", "value"])
    if points.empty:
        raise ConfigError(f"no dkd/* values in the training history of {', '.join(run_dirs)}; "
                          "they are logged every --logging_steps by distillation runs (not by train_teacher.py)")
    keys = sorted(points.key.unique())
    fig, axes = _panels(len(keys), 5.0, 3.2)
    colours = {name: f"C{i % 10}" for i, name in enumerate(names)}  # a run keeps its colour in every panel
    for ax, key in zip(axes, keys):
        for name, curve in points[points.key == key].groupby("run", sort=False):
            ax.plot(curve.step, curve.value, color=colours[name], linewidth=1.2)
        ax.set_title(key.removeprefix("dkd/"), fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    plt = _pyplot()
    axes[0].legend(handles=[plt.Line2D([], [], color=c, label=n) for n, c in colours.items()], fontsize=8)
    return _save(fig, path)


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dynamic_kd.report", description="Summarise results.json files (mean ± std over seeds) and plot them.")
    parser.add_argument("runs_dirs", nargs="*", metavar="RUNS_DIR", help="folders searched recursively for results.json")
    parser.add_argument("--format", choices=("md", "csv", "latex"), default="md", help="table format (default md)")
    parser.add_argument("--out", metavar="FILE", help="write the table to FILE (atomically) instead of stdout")
    parser.add_argument("--plot", metavar="DIR", help="write methods.png / ratio.png (and curves.png) to DIR")
    parser.add_argument("--curves", nargs="+", metavar="RUN_DIR", help="plot the dkd/* training history of these runs (needs --plot)")
    parser.add_argument("--claims", metavar="SWEEP", help=(
        "runs laid out as RUNS_DIR/<row>/seed<n> by SWEEP (miniature): per-row table and each paper claim's paired "
        "verdict instead of the method table; several RUNS_DIRs (draws of the data) side by side"))
    return parser


def _draw_label(folder: str) -> str:
    """A RUNS_DIR's name in the claims report: its last folder, or the one above a trailing `runs`."""
    parts = os.path.normpath(folder).split(os.sep)
    return parts[-2] if parts[-1] == "runs" and len(parts) > 1 else parts[-1]


def claims_report(draws: dict, skipped, sweep: str, fmt: str) -> str:
    """The per-row table and the claims table of a seeded sweep (`sweeps.<SWEEP>_ROWS` / `_CLAIMS`).

    draws: {label: runs} with one entry per RUNS_DIR, e.g. one per draw of the data; with several,
    each draw's columns stand side by side (suffixed with its label), so a reader sees which
    verdicts survive a new draw."""
    from dynamic_kd import sweeps

    order, claims = getattr(sweeps, f"{sweep.upper()}_ROWS", None), getattr(sweeps, f"{sweep.upper()}_CLAIMS", None)
    if order is None or claims is None or fmt == "csv":
        raise ConfigError(f"--claims takes a sweep with rows and claims (miniature) and --format md or latex, got {sweep} / {fmt}")
    names = [name for name, _, _ in order]
    row_tables, claim_tables = [], []
    for label, runs in draws.items():
        rows = seeded_rows(runs)
        suffix = f" ({label})" if len(draws) > 1 else ""
        row_tables.append(rows_table(rows, names).set_index("run").add_suffix(suffix))
        claim_tables.append(claims_table(rows, claims).set_index(["§", "claim"]).add_suffix(suffix))
    ran = [name for name in names if any(name in table.index for table in row_tables)]
    rows_out = pd.concat(row_tables, axis=1).reindex(ran)
    claims_out = pd.concat(claim_tables, axis=1)
    claim_order = [(section, text) for section, text, *_ in claims if (section, text) in claims_out.index]
    text = render(rows_out.reset_index(), fmt) + "\n" + render(claims_out.loc[claim_order].reset_index(), fmt)
    return text + "".join(f"\nskipped: {path} ({reason})" for path, reason in skipped)


def run_report(args):
    """Carry out the parsed command line; raises ConfigError for user mistakes."""
    if not args.runs_dirs and not args.curves:
        raise ConfigError("nothing to do; pass RUNS_DIR (table) and/or --curves RUN_DIR ... --plot DIR")
    if args.curves and not args.plot:
        raise ConfigError("--curves needs --plot DIR to know where to write curves.png")
    if args.out and not args.runs_dirs:
        raise ConfigError("--out writes the table, which needs RUNS_DIR; pass the runs folder")
    if args.runs_dirs:
        runs, skipped = load_runs(args.runs_dirs)
        if runs.empty and not skipped:
            raise ConfigError(f"no {RESULTS_FILE} below {' '.join(args.runs_dirs)}; point RUNS_DIR at the training output root")
        if args.claims:  # each RUNS_DIR on its own: a draw of the data
            draws = {_draw_label(folder): load_runs([folder])[0] for folder in args.runs_dirs}
            if len(draws) < len(args.runs_dirs):
                raise ConfigError(f"--claims names each RUNS_DIR by its folder, and two share one: "
                                  f"{' '.join(args.runs_dirs)}")
            text = claims_report(draws, skipped, args.claims, args.format)
        else:
            text = format_report(runs, skipped, args.format)
        if args.out:
            write_atomic(args.out, text)
            logger.info("wrote %s", args.out)
        else:
            sys.stdout.write(text)
        if args.plot and not runs.empty:
            plot_methods(runs, os.path.join(args.plot, "methods.png"))
            plot_ratios(runs, os.path.join(args.plot, "ratio.png"))
        elif args.plot:
            logger.warning("no usable runs below %s; no methods plot", " ".join(args.runs_dirs))
    if args.curves:
        plot_curves(args.curves, os.path.join(args.plot, "curves.png"))


def main(argv=None) -> int:
    """Entry point; returns the exit code (0 ok, 2 user error with a one-line message on stderr)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        run_report(args)
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
