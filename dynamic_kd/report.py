"""The runs' `results.json` files as tables, figures and paired claims (README: "The report")."""

import argparse
import logging
import math
import os
import re
import sys

import pandas as pd

from dynamic_kd import claims, figures
from dynamic_kd.errors import ConfigError
from dynamic_kd.files import write_atomic
from dynamic_kd.runs import GLUE, RESULTS_FILE, load_runs, method_title, setting_columns

logger = logging.getLogger(__name__)

BASELINES = ("finetune", "kd")  # the rows first in a table


def _natural(text) -> tuple:
    """Numbers, also inside text, by value: 2e-05 < 0.0001, r0.05 < r0.1."""
    try:
        return ((0, float(text), ""),)
    except ValueError:
        parts = re.split(r"(\d+(?:\.\d+)?)", str(text))
        return tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts) if p)


def _row_order(row) -> tuple:
    head = row["method"].split("/")[0]
    return (BASELINES.index(head) if head in BASELINES else len(BASELINES),) + tuple(_natural(v) for v in row.values)


def _column_order(task: str, data: str, data_label: str) -> tuple:
    return ((0, list(GLUE).index(task), "") if task in GLUE else (1, 0, task)) + (data_label, data)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """mean, std, n, seeds, runs per metric of each (method, settings, task, data), in table order."""
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
    """(varying settings, those shown as columns, {(task, data): column header})."""
    varying = list(summary.columns[1 : summary.columns.get_loc("task")])
    shown = [c for c in varying if summary.groupby("method")[c].nunique().gt(1).any()]
    columns = summary[["task", "data", "data_label"]].drop_duplicates()
    columns = columns.iloc[sorted(range(len(columns)), key=lambda i: _column_order(*columns.iloc[i]))]
    sources = columns.groupby("task")["data"].transform("size")
    homonyms = columns.groupby(["task", "data_label"])["data"].transform("size")
    headers = {}
    for (task, data, label), n_sources, n_homonyms in zip(columns.itertuples(index=False), sources, homonyms):
        names = summary.loc[(summary.task == task) & (summary.metric != "primary"), "metric"].unique()
        name = GLUE[task][0] if task in GLUE else (f"{task} ({'/'.join(names)})" if len(names) > 1 else task)
        if n_sources > 1 or not data.startswith("hub:"):  # e.g. the demo's tweets under task sst2 are not SST-2
            name += f" [{label}" + (f"@{data.split(':', 1)[1][:6]}" if n_homonyms > 1 else "") + "]"
        headers[(task, data)] = name
    return varying, shown, headers


def _cell(stats: pd.DataFrame) -> str:
    """``88.0 ± 2.8/82.0 ± 2.8 (n=2)``."""
    parts = [
        f"{100 * m:.1f}" + ("" if pd.isna(s) else f" ± {100 * s:.1f}") for m, s in zip(stats["mean"], stats["std"])
    ]
    return f"{'/'.join(parts)} (n={stats['n'].iloc[0]})"


def _task_score(cells: pd.DataFrame) -> float:
    """A task's one primary mean in Avg: its hub data's, else its only source's (NaN if several)."""
    hub = cells[cells.data.str.startswith("hub:")]
    cells = hub if len(hub) else cells
    return cells["mean"].iloc[0] if len(cells) == 1 else math.nan


def table(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The display table (Method, shown settings, a column per task and data, Avg) and the csv's avg rows."""
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
        avg_row = {"task": "avg", "metric": "primary", "mean": avg, "n": len(tasks)}
        avgs.append({**dict(zip(["method", *varying], key)), **avg_row})
    frame = pd.DataFrame(display, columns=["Method", *shown, *headers.values(), "Avg"]).fillna("–")
    return frame, pd.DataFrame(avgs)


def render(frame: pd.DataFrame, fmt: str) -> str:
    if fmt == "md":
        return frame.to_markdown(index=False, disable_numparse=True) + "\n"
    text = frame.to_latex(index=False, escape=True, column_format="l" + "c" * (len(frame.columns) - 1))
    return re.sub(r"(\d)\*", r"\1$^*$", text.replace("±", r"$\pm$"))


def format_report(runs: pd.DataFrame, skipped=(), fmt: str = "md") -> str:
    """The table (md, latex) or the groups (csv), then notes: partial averages, skipped files."""
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
    """Primary-score groups with a reader's `row` name and `metric_name`; the column headers."""
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
        logger.info("no selection strategy ran at several ratios; no ratio plot")
        return None
    primary, headers = primary_rows(selected)
    primary = primary.assign(
        ratio=primary.selection_ratio.astype(float),
        line=primary.row.str.replace(r" selection \d+%", " selection", regex=True),
    )
    lines = primary.groupby(["task", "data", "line"]).filter(lambda g: g.ratio.nunique() > 1)
    return None if lines.empty else figures.save(figures.ratio_figure(lines, headers), path)


def claims_report(runs_dirs, skipped, sweep: str, fmt: str) -> str:
    """A seeded sweep's rows and claims per draw (a RUNS_DIR each), then the skipped files."""
    draws = {claims.draw_label(folder): load_runs([folder])[0] for folder in runs_dirs}
    if len(draws) < len(runs_dirs):
        raise ConfigError(f"--claims names each RUNS_DIR by its folder, and two share one: {' '.join(runs_dirs)}")
    rows, verdicts = claims.side_by_side(draws, sweep, fmt)
    text = render(rows.reset_index(), fmt) + "\n" + render(verdicts.reset_index(), fmt)
    return text + "".join(f"\nskipped: {path} ({reason})" for path, reason in skipped)


def run_report(args):
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
        if args.claims:
            text = claims_report(args.runs_dirs, skipped, args.claims, args.format)
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
    """0, or 2 for a user error (one line on stderr)."""
    parser = argparse.ArgumentParser(prog="python -m dynamic_kd.report", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("runs_dirs", nargs="*", metavar="RUNS_DIR", help=f"folders searched for {RESULTS_FILE}")
    add("--format", choices=("md", "csv", "latex"), default="md", help="table format (default md)")
    add("--out", metavar="FILE", help="write the table to FILE (atomically) instead of stdout")
    add("--plot", metavar="DIR", help="write methods.png / ratio.png (and curves.png) to DIR")
    add("--curves", nargs="+", metavar="RUN_DIR", help="plot these runs' dkd/* values over training (needs --plot)")
    add("--claims", metavar="SWEEP", help="rows and paired claims of SWEEP (miniature), a column per RUNS_DIR")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        run_report(args)
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
