"""The runs' `results.json` files as tables (pandas groupby and writers), figures and paired claims.

``python -m dynamic_kd.report RUNS_DIR... [--format md|csv|latex] [--out FILE] [--plot DIR]
[--claims miniature] [--curves RUN_DIR...]``; the README's "The report" says how to read the output.
A table row groups the runs that agree on the method, task, data and every argument but
`NOT_SETTINGS`; a run's primary score is `metrics.primary_metric`; Avg averages tasks.
"""

import argparse
import json
import logging
import math
import os
import re
import sys
from functools import cache

import numpy as np
import pandas as pd

from dynamic_kd import claims, figures
from dynamic_kd.errors import ConfigError
from dynamic_kd.files import write_atomic
from dynamic_kd.metrics import METRICS, PRIMARY, primary_metric
from dynamic_kd.runs import RESULTS_FILE, method_label, method_title

logger = logging.getLogger(__name__)

# Metrics of the GLUE tasks in display order (other tasks show theirs alphabetically).
TASK_METRICS = {
    "cola": ("matthews_correlation",),
    "sst2": ("accuracy",),
    "mrpc": ("f1", "accuracy"),
    "qqp": ("f1", "accuracy"),
    "stsb": ("pearson", "spearmanr"),
    "mnli": ("accuracy", "accuracy_mm"),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
    "wnli": ("accuracy",),
}
TASK_HEADERS = {
    "cola": "CoLA",
    "sst2": "SST-2",
    "mrpc": "MRPC (F1/acc)",
    "qqp": "QQP (F1/acc)",
    "stsb": "STS-B (P/S)",
    "mnli": "MNLI (m/mm)",
    "qnli": "QNLI",
    "rte": "RTE",
    "wnli": "WNLI",
}
# Arguments that never make two runs different methods: the task (a column), seeds, where things are
# written or read (the data enters by its fingerprint), bookkeeping that leaves the model unchanged.
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
BASELINES = ("finetune", "kd")
RUN_COLUMNS = (
    "path",
    "run_dir",
    "task",
    "data",
    "data_label",
    "seed",
    "method",
    "metrics",
    "primary_metric",
    "train_runtime_s",
    "train_examples",
    "teacher_forward_examples",
)


@cache
def _family_primaries() -> dict:
    """{names a metric family reports: its primary metric}, for tasks outside the registry."""
    ids = np.array([0, 1, 1])
    return {frozenset(score(ids.astype(float), ids)): PRIMARY[family] for family, score in METRICS.items()}


def primary_name(task: str, metrics) -> str | None:
    """`metrics.primary_metric` of the task, or (own files) of the metric family it reported."""
    try:
        return primary_metric(task)
    except ConfigError:
        return _family_primaries().get(frozenset(metrics))


def _setting(value, task: str) -> str:
    """An argument's comparable text, the run's task name written as {task}."""
    if isinstance(value, str):
        return re.sub(rf"(?<![a-z0-9]){re.escape(task)}(?![a-z0-9])", "{task}", value, flags=re.IGNORECASE)
    return json.dumps(value, sort_keys=True)


def _data(record: dict, args: dict, task: str) -> tuple[str, str]:
    """(key, short label) of a run's data; files older than the `data` record fall back to the flags."""
    data = record.get("data")
    if isinstance(data, dict) and {"source", "location", "fingerprint"} <= set(data):
        label = "hub" if data["source"] == "hub" else os.path.basename(os.path.normpath(data["location"]))
        return f"{data['source']}:{data['fingerprint']}", label
    location = args.get("train_file") or args.get("data_dir")
    if location:
        return f"path:{os.path.abspath(location)}", os.path.basename(os.path.normpath(location))
    return f"hub:{task}", "hub"


def read_run(path: str):
    """One results.json as RUN_COLUMNS plus `settings`, or why it cannot be used."""
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
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"metric '{name}' is not a finite number ({value!r})"
        metrics[str(name).removeprefix("eval_")] = float(value)
    wanted = TASK_METRICS.get(task, tuple(sorted(metrics)))
    if any(m not in metrics for m in wanted):
        return f"missing metric(s) {', '.join(m for m in wanted if m not in metrics)} for task {task}"
    if (primary := primary_name(task, metrics)) not in metrics:
        return f"no primary metric for task {task} (metrics: {', '.join(sorted(metrics))})"
    data, data_label = _data(record, args, task)
    return {
        "path": path,
        "run_dir": os.path.dirname(path),
        "task": task,
        "data": data,
        "data_label": data_label,
        "seed": record.get("seed", args.get("seed")),
        "method": method_label(args),
        "metrics": {m: metrics[m] for m in wanted},
        "primary_metric": primary,
        **{k: record.get(k) for k in RUN_COLUMNS[-3:]},
        "settings": {k: _setting(v, task) for k, v in args.items() if k not in NOT_SETTINGS},
    }


def load_runs(dirs) -> tuple[pd.DataFrame, list]:
    """Each usable results.json below `dirs` as a row (settings as columns), and the skipped (path, reason)."""
    rows, skipped, seen = [], [], set()
    for root in dirs:
        if not os.path.isdir(root):
            raise ConfigError(f"runs dir {root} does not exist; pass the folder holding the runs' {RESULTS_FILE} files")
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
    """The settings that differ between runs (grouped by, with method, task and data)."""
    return [c for c in runs.columns if c not in RUN_COLUMNS and runs[c].nunique() > 1]


def _natural(text) -> tuple:
    """Sort key with numbers, also embedded ones, by value: 2e-05 < 0.0001, r0.05 < r0.1 < r0.5."""
    try:
        return ((0, float(text), ""),)
    except ValueError:
        parts = re.split(r"(\d+(?:\.\d+)?)", str(text))
        return tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts) if p)


def _row_order(row) -> tuple:
    head = row["method"].split("/")[0]
    return (BASELINES.index(head) if head in BASELINES else len(BASELINES),) + tuple(_natural(v) for v in row.values)


def _column_order(task: str, data: str, data_label: str) -> tuple:
    """GLUE order, then other tasks alphabetically; a task's data sources by name."""
    glue = list(TASK_HEADERS)
    return ((0, glue.index(task), "") if task in glue else (1, 0, task)) + (data_label, data)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per group (method, varying settings, task, data; in table order) and metric (then ``primary``):
    mean, std, n, seeds, runs."""
    rows = setting_columns(runs)
    keys = ["method", *rows, "task", "data", "data_label"]
    long = pd.DataFrame(
        [
            {**{k: run[k] for k in [*keys, "seed", "run_dir"]}, "metric": name, "value": value}
            for run in runs.to_dict("records")
            for name, value in [*run["metrics"].items(), ("primary", run["metrics"][run["primary_metric"]])]
        ]
    )
    summary = (
        long.groupby([*keys, "metric"], sort=False)
        .agg(
            mean=("value", "mean"),
            std=("value", "std"),
            n=("value", "size"),
            seeds=("seed", lambda s: ";".join(map(str, s))),
            runs=("run_dir", ";".join),
        )
        .reset_index()
    )
    for group in summary[summary.metric == "primary"].itertuples():
        if len(set(group.seeds.split(";"))) < group.n:
            logger.warning("%s on %s has repeated seeds (%s); all are averaged", group.method, group.task, group.seeds)
    ranks = summary.assign(
        _row=summary[["method", *rows]].apply(_row_order, axis=1),
        _col=[_column_order(*c) for c in zip(summary.task, summary.data, summary.data_label)],
    )
    return ranks.sort_values(["_row", "_col"], kind="stable").drop(columns=["_row", "_col"])


def _layout(summary: pd.DataFrame) -> tuple[list, list, dict]:
    """(settings that vary, those shown as columns, {(task, data): column header}) of a summary."""
    varying = list(summary.columns[1 : summary.columns.get_loc("task")])
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


def _cell(stats_: pd.DataFrame) -> str:
    """``88.0 ± 2.8/82.0 ± 2.8 (n=2)`` from one group's task-metric rows."""
    parts = [
        f"{100 * m:.1f}" + ("" if pd.isna(s) else f" ± {100 * s:.1f}") for m, s in zip(stats_["mean"], stats_["std"])
    ]
    return f"{'/'.join(parts)} (n={stats_['n'].iloc[0]})"


def table(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The display table (Method, shown settings, a column per task/data, Avg) and the csv's avg rows."""
    varying, shown, headers = _layout(summary)
    display, avgs = [], []
    for key, group in summary.groupby(["method", *varying], sort=False):
        row = {"Method": key[0], **{c: v for c, v in zip(varying, key[1:]) if c in shown}}
        for (task, data), cell in group[group.metric != "primary"].groupby(["task", "data"], sort=False):
            row[headers[(task, data)]] = _cell(cell)
        primary = group[group.metric == "primary"]
        tasks = primary.groupby("task", sort=False)[["data", "mean"]].apply(_task_score)
        avg = tasks.mean(skipna=False)
        row["Avg"] = f"{100 * avg:.1f}" + ("*" if len(primary) < len(headers) else "") if pd.notna(avg) else None
        display.append(row)
        avgs.append(
            {**dict(zip(["method", *varying], key)), "task": "avg", "metric": "primary", "mean": avg, "n": len(tasks)}
        )
    frame = pd.DataFrame(display, columns=["Method", *shown, *headers.values(), "Avg"]).fillna("–")
    return frame, pd.DataFrame(avgs)


def _task_score(cells: pd.DataFrame) -> float:
    """A task's one primary mean in Avg: its hub data's, else its only source's (NaN if several)."""
    hub = cells[cells.data.str.startswith("hub:")]
    cells = hub if len(hub) else cells
    return cells["mean"].iloc[0] if len(cells) == 1 else math.nan


def render(frame: pd.DataFrame, fmt: str) -> str:
    """A display table as md or latex, with pandas' own writers."""
    if fmt == "md":
        return frame.to_markdown(index=False, disable_numparse=True) + "\n"
    text = frame.to_latex(index=False, escape=True, column_format="l" + "c" * (len(frame.columns) - 1))
    return re.sub(r"(\d)\*", r"\1$^*$", text.replace("±", r"$\pm$"))


def format_report(runs: pd.DataFrame, skipped=(), fmt: str = "md") -> str:
    """The table (md, latex) or the groups (csv), a note on partial averages, the skipped files."""
    if fmt not in ("md", "csv", "latex"):
        raise ConfigError(f"unknown table format {fmt!r}; use md, csv or latex")
    partial = False
    if runs.empty:
        text = "method,task,metric,mean,std,n,seeds,runs\n" if fmt == "csv" else "No usable runs.\n"
    elif fmt == "csv":
        summary = summarize(runs)
        text = pd.concat([summary.drop(columns="data_label"), table(summary)[1]]).to_csv(index=False)
    else:
        frame = table(summarize(runs))[0]
        partial, text = frame["Avg"].str.endswith("*").any(), render(frame, fmt)
    comment = {"md": "", "csv": "# ", "latex": "% "}[fmt]
    notes = [f"{comment}* Avg over fewer columns than the table shows."] if partial else []
    notes += [f"{comment}skipped: {path} ({reason})" for path, reason in skipped]
    return text + ("\n" if notes and fmt == "md" else "") + "".join(f"{line}\n" for line in notes)


def primary_rows(runs: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Primary-score groups with a reader's `row` name and `metric_name`, and the column headers."""
    summary = summarize(runs)
    _, shown, headers = _layout(summary)
    primary = summary[summary.metric == "primary"]
    rows = [method_title(r["method"]) + "".join(f", {c}={r[c]}" for c in shown) for r in primary.to_dict("records")]
    names = primary.task.map(runs.groupby("task").primary_metric.first())
    return primary.assign(row=rows, metric_name=names), headers


def plot_ratios(runs: pd.DataFrame, path: str):
    """Score vs selection ratio of what ran at several ratios; None if nothing did."""
    selected = runs[runs.method.str.contains("/r")]
    if selected.empty or "selection_ratio" not in setting_columns(selected):
        logger.info("no selection strategy was run at several ratios; no ratio plot")
        return None
    primary, headers = primary_rows(selected)
    primary = primary.assign(
        ratio=primary.selection_ratio.astype(float),
        line=primary.row.str.replace(r" selection \d+%", " selection", regex=True),
    )
    lines = primary.groupby(["task", "data", "line"]).filter(lambda g: g.ratio.nunique() > 1)
    return None if lines.empty else figures.save(figures.ratio_figure(lines, headers), path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dynamic_kd.report", description=__doc__.splitlines()[0])
    parser.add_argument("runs_dirs", nargs="*", metavar="RUNS_DIR", help=f"folders searched for {RESULTS_FILE}")
    parser.add_argument("--format", choices=("md", "csv", "latex"), default="md", help="table format (default md)")
    parser.add_argument("--out", metavar="FILE", help="write the table to FILE (atomically) instead of stdout")
    parser.add_argument("--plot", metavar="DIR", help="write methods.png / ratio.png (and curves.png) to DIR")
    parser.add_argument(
        "--curves",
        nargs="+",
        metavar="RUN_DIR",
        help="plot these runs' uncertainty, weights and selected fraction (needs --plot)",
    )
    parser.add_argument(
        "--claims",
        metavar="SWEEP",
        help=(
            "RUNS_DIR/<row>/seed<n> of SWEEP (miniature): its rows and paired claims, not the method table; "
            "several RUNS_DIRs (draws of the data) side by side"
        ),
    )
    return parser


def claims_report(draws: dict, skipped, sweep: str, fmt: str) -> str:
    """A seeded sweep's rows and claims (grids `<SWEEP>_ROWS`/`_CLAIMS`) per draw."""
    from dynamic_kd.sweeps import grids

    grid, name = grids(), sweep.upper()
    order, stated = getattr(grid, f"{name}_ROWS", None), getattr(grid, f"{name}_CLAIMS", None)
    if order is None or stated is None or fmt == "csv":
        raise ConfigError(
            f"--claims takes a sweep with rows and claims (miniature) and --format md or latex, got {sweep} / {fmt}"
        )
    rows, verdicts = claims.side_by_side(draws, [name for name, _, _ in order], stated)
    text = render(rows.reset_index(), fmt) + "\n" + render(verdicts.reset_index(), fmt)
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
            raise ConfigError(
                f"no {RESULTS_FILE} below {' '.join(args.runs_dirs)}; point RUNS_DIR at the training output root"
            )
        if args.claims:  # each RUNS_DIR on its own: a draw of the data
            draws = {claims.draw_label(folder): load_runs([folder])[0] for folder in args.runs_dirs}
            if len(draws) < len(args.runs_dirs):
                raise ConfigError(
                    f"--claims names each RUNS_DIR by its folder, and two share one: {' '.join(args.runs_dirs)}"
                )
            text = claims_report(draws, skipped, args.claims, args.format)
        else:
            text = format_report(runs, skipped, args.format)
        if args.out:
            write_atomic(args.out, text)
            logger.info("wrote %s", args.out)
        else:
            sys.stdout.write(text)
        if args.plot and not runs.empty:
            figures.save(figures.methods_figure(*primary_rows(runs)), os.path.join(args.plot, "methods.png"))
            plot_ratios(runs, os.path.join(args.plot, "ratio.png"))
        elif args.plot:
            logger.warning("no usable runs below %s; no methods plot", " ".join(args.runs_dirs))
    if args.curves:
        figures.save(figures.curves_figure(figures.curve_points(args.curves)), os.path.join(args.plot, "curves.png"))


def main(argv=None) -> int:
    """The exit code: 0, or 2 for a user error (one line on stderr)."""
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
