"""Collect the runs' `results.json` files into paper-style tables and figures.

Usage::

    python -m dynamic_kd.report RUNS_DIR [--format md|csv|latex] [--out FILE] [--plot DIR]
    python -m dynamic_kd.report [RUNS_DIR] --curves RUN_DIR [RUN_DIR ...] --plot DIR

Inputs
    Every `results.json` below RUNS_DIR (searched recursively). A file that cannot be used
    (malformed or partial JSON, missing keys, non-numeric metrics, a known task without its
    metrics) is listed as ``skipped: path (reason)`` after the table; it never stops the report.

Grouping
    Runs that differ only in their seed form one group, keyed by ``(method, task)``. The
    ``method`` label is taken from the file. When it is absent it is derived from the script
    and its arguments: the script's file name without ``.py`` and without a ``dynamic_``
    prefix, then the value of every ``*_strategy`` argument (sorted by argument name), then
    ``r<selection_ratio>`` when that argument is set; the parts are joined by ``/``.
    So ``dynamic_data.py`` with ``selection_strategy=entropy, selection_ratio=0.1`` becomes
    ``data/entropy/r0.1``.

Table
    Rows are methods (baselines first: fine-tuned models ``finetune/<L>L-<H>H``, then plain
    ``kd``; the rest in natural order), columns are tasks in GLUE order (cola sst2 mrpc
    qqp stsb mnli qnli rte wnli, then any other task alphabetically). A cell is the mean over
    seeds ± the sample standard deviation (ddof=1), scaled by 100 with one decimal, plus the
    seed count: ``91.2 ± 0.4 (n=3)``; a single seed shows no ± part. Tasks with two metrics
    show both, each with its own mean ± std: mrpc and qqp ``F1/acc``, stsb ``P/S``
    (Pearson/Spearman), mnli ``m/mm`` (matched/mismatched accuracy). Tasks this module does not
    know show every metric they report, in alphabetical order.

    Each task has one *primary score*: the mean of its metrics (mrpc/qqp: mean of F1 and
    accuracy; stsb: mean of Pearson and Spearman; mnli: mean of m and mm; cola: Matthews
    correlation; the other GLUE tasks: accuracy; unknown tasks: the mean of their metrics).
    The ``Avg`` column is, for each method, the mean over the tasks it has of each task's
    primary-score mean (over seeds). An ``Avg`` marked ``*`` covers fewer tasks than the table.

Formats
    ``md`` is a GitHub markdown table; ``latex`` a ``tabular`` (skipped files become ``%``
    comments); ``csv`` has one row per (method, task, metric) with columns
    ``method,task,metric,mean,std,n,seeds,runs`` in the metrics' own units (not ×100; ``std``
    empty for one seed), plus one ``task=avg, metric=primary`` row per method; skipped files
    follow as ``# skipped: ...`` comment lines.

Figures (``--plot DIR``)
    ``methods.png``: per task, a bar per method of the primary score with error bars (sample
    std over seeds of the per-run primary score). ``ratio.png`` (only when some selection
    strategy was run at several ``selection_ratio`` values, read from each run's ``args``):
    primary score against selection ratio, one line per strategy, one panel per task.
    ``curves.png`` (with ``--curves``): every ``train/dkd/*`` TensorBoard scalar over training
    steps, one panel per tag, one line per run.
"""
import argparse
import json
import logging
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field

from dynamic_kd.errors import ConfigError

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.json"

# Metrics each known task reports, in display order.
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
GLUE_ORDER = tuple(TASK_METRICS)

# Column headers for the known tasks.
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

# Other spellings accepted for task names and metric names.
TASK_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli"}
METRIC_ALIASES = {"acc": "accuracy", "mcc": "matthews_correlation", "spearman": "spearmanr"}

# Baseline methods shown first, in this order.
BASELINE_ORDER = ("finetune", "kd")

CURVE_TAG_PREFIX = "train/dkd/"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Run:
    """One usable `results.json`: its labels and the task metrics (raw, not ×100)."""

    path: str
    method: str
    task: str
    seed: object
    metrics: dict
    args: dict = field(default_factory=dict)

    @property
    def run_dir(self):
        """The folder holding the results file."""
        return os.path.dirname(self.path)

    @property
    def primary(self):
        """The run's primary score: the mean of its task metrics."""
        return _mean(list(self.metrics.values()))


@dataclass
class Stats:
    """Mean and sample standard deviation (None for fewer than two values) of some values."""

    mean: float
    std: object
    n: int

    @classmethod
    def of(cls, values):
        """Summarise a non-empty list of floats."""
        return cls(mean=_mean(values), std=_sample_std(values), n=len(values))


@dataclass
class Group:
    """All seeds of one (method, task): per-metric statistics and the primary score's."""

    method: str
    task: str
    metric_names: tuple
    runs: list
    stats: dict
    primary: Stats

    @property
    def seeds(self):
        """The groups' seeds, in run order."""
        return [run.seed for run in self.runs]


# ---------------------------------------------------------------- numbers and ordering


def _mean(values):
    """Arithmetic mean of a non-empty list."""
    return math.fsum(values) / len(values)


def _sample_std(values):
    """Sample standard deviation (ddof=1), or None when there is only one value."""
    if len(values) < 2:
        return None
    mean = _mean(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _natural_key(text):
    """Sort key that orders embedded numbers by value: r0.05 < r0.1 < r0.5 < r1.0."""
    parts = re.split(r"(\d+(?:\.\d+)?)", text)
    return [(0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts) if p]


def method_sort_key(method):
    """Baselines first (in BASELINE_ORDER, by the label's first part), then the rest in natural order."""
    head = method.split("/")[0]
    rank = BASELINE_ORDER.index(head) if head in BASELINE_ORDER else len(BASELINE_ORDER)
    return (rank, _natural_key(method))


def task_sort_key(task):
    """GLUE order for the known tasks, then the others alphabetically."""
    if task in GLUE_ORDER:
        return (0, GLUE_ORDER.index(task), "")
    return (1, 0, task)


# ---------------------------------------------------------------- reading results.json


def derive_method(record):
    """Build a method label from `script` and `args` (see the module docstring); None if no script."""
    script = record.get("script")
    if not isinstance(script, str) or not script:
        return None
    base = os.path.basename(script)
    base = base[:-3] if base.endswith(".py") else base
    base = base[len("dynamic_"):] if base.startswith("dynamic_") and len(base) > 8 else base
    args = record.get("args") if isinstance(record.get("args"), dict) else {}
    parts = [base]
    parts += [str(args[k]) for k in sorted(args) if k.endswith("_strategy") and args[k] is not None]
    if args.get("selection_ratio") is not None:
        parts.append(f"r{args['selection_ratio']}")
    return "/".join(parts)


def _normalise_metric_name(name):
    """Drop an `eval_` prefix and map aliases (acc, mcc, spearman) to the canonical names."""
    name = name[len("eval_"):] if name.startswith("eval_") else name
    return METRIC_ALIASES.get(name, name)


def _is_number(value):
    """True for finite ints/floats (bools are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_metrics(raw, task):
    """Return (task metrics dict, None) or (None, reason) for a record's `metrics` value."""
    if not isinstance(raw, dict):
        return None, "'metrics' is not an object"
    if not raw:
        return None, "'metrics' is empty"
    metrics = {}
    for name, value in raw.items():
        if not _is_number(value):
            return None, f"metric '{name}' is not a finite number ({value!r})"
        metrics[_normalise_metric_name(str(name))] = float(value)
    wanted = TASK_METRICS.get(task)
    if wanted is None:
        return dict(sorted(metrics.items())), None
    missing = [m for m in wanted if m not in metrics]
    if missing:
        return None, f"missing metric(s) {', '.join(missing)} for task {task}"
    return {m: metrics[m] for m in wanted}, None


def parse_record(record, path):
    """Turn one decoded results.json into a Run, or return a reason string why it is unusable."""
    if not isinstance(record, dict):
        return "top level is not a JSON object"
    task = record.get("task")
    if task is None and isinstance(record.get("args"), dict):
        task = record["args"].get("task_name")
    if not isinstance(task, str) or not task:
        return "missing key 'task'"
    task = TASK_ALIASES.get(task.lower(), task.lower())
    if "metrics" not in record:
        return "missing key 'metrics'"
    metrics, reason = _check_metrics(record["metrics"], task)
    if reason:
        return reason
    method = record.get("method")
    if method is None:
        method = derive_method(record)
        if method is None:
            return "missing key 'method' (and no 'script' to derive it from)"
    if not isinstance(method, str) or not method:
        return "'method' is not a non-empty string"
    args = record.get("args") if isinstance(record.get("args"), dict) else {}
    seed = record.get("seed", args.get("seed"))
    return Run(path=path, method=method, task=task, seed=seed, metrics=metrics, args=args)


def read_run(path):
    """Read one results.json; return a Run or a reason string."""
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"invalid JSON: {exc}"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    return parse_record(record, path)


def find_results(root):
    """Every results.json below `root`, in sorted (deterministic) order."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        if RESULTS_FILE in files:
            found.append(os.path.join(folder, RESULTS_FILE))
    return found


def collect_runs(root):
    """Read every results.json below `root`.

    Returns ``(runs, skipped)``: the usable Runs and a list of ``(path, reason)`` pairs.
    Raises ConfigError when `root` is not a folder.
    """
    if not os.path.isdir(root):
        raise ConfigError(f"runs dir {root} does not exist; pass the folder holding the runs' results.json files")
    runs, skipped = [], []
    for path in find_results(root):
        result = read_run(path)
        if isinstance(result, Run):
            runs.append(result)
        else:
            logger.info("skipping %s: %s", path, result)
            skipped.append((path, result))
    logger.info("read %d runs below %s (%d skipped)", len(runs), root, len(skipped))
    return runs, skipped


# ---------------------------------------------------------------- aggregation


def aggregate(runs):
    """Group runs by (method, task) and summarise each metric over seeds.

    Returns a dict ``{(method, task): Group}`` ordered by method (baselines first), then task
    (GLUE order).
    """
    buckets = {}
    for run in runs:
        buckets.setdefault((run.method, run.task), []).append(run)
    groups = {}
    for key in sorted(buckets, key=lambda k: (method_sort_key(k[0]), task_sort_key(k[1]))):
        members = buckets[key]
        seeds = [r.seed for r in members if r.seed is not None]
        if len(set(map(str, seeds))) < len(seeds):
            logger.warning("group %s/%s has repeated seeds %s; all runs are averaged", key[0], key[1], seeds)
        names = TASK_METRICS.get(key[1]) or tuple(sorted({m for r in members for m in r.metrics}))
        stats = {
            name: Stats.of([r.metrics[name] for r in members if name in r.metrics])
            for name in names
        }
        primary = Stats.of([r.primary for r in members])
        groups[key] = Group(key[0], key[1], names, members, stats, primary)
    return groups


def methods_of(groups):
    """The methods present, in row order."""
    return sorted({m for m, _ in groups}, key=method_sort_key)


def tasks_of(groups):
    """The tasks present, in column order."""
    return sorted({t for _, t in groups}, key=task_sort_key)


def method_average(groups, method):
    """Mean over tasks of the method's primary-score means, and how many tasks it covers."""
    scores = [g.primary.mean for (m, _), g in groups.items() if m == method]
    return (_mean(scores) if scores else None), len(scores)


# ---------------------------------------------------------------- tables


def task_header(task, groups=None):
    """Column header for a task; unknown tasks list their metric names."""
    if task in TASK_HEADERS:
        return TASK_HEADERS[task]
    names = []
    for (_, t), group in (groups or {}).items():
        if t == task:
            names += [n for n in group.metric_names if n not in names]
    return f"{task} ({'/'.join(names)})" if len(names) > 1 else task


def format_cell(group, pm="±"):
    """``91.2 ± 0.4 (n=3)``; several metrics are joined with ``/``, each with its own ± part."""
    parts = []
    for name in group.metric_names:
        stats = group.stats[name]
        text = f"{100 * stats.mean:.1f}"
        if stats.std is not None:
            text += f" {pm} {100 * stats.std:.1f}"
        parts.append(text)
    return f"{'/'.join(parts)} (n={len(group.runs)})"


def _table_rows(groups, pm, empty):
    """Header and body rows (lists of strings) shared by the md and latex formats."""
    tasks = tasks_of(groups)
    header = ["Method"] + [task_header(t, groups) for t in tasks] + ["Avg"]
    rows = []
    for method in methods_of(groups):
        row = [method]
        for task in tasks:
            group = groups.get((method, task))
            row.append(format_cell(group, pm) if group else empty)
        avg, covered = method_average(groups, method)
        row.append(f"{100 * avg:.1f}" + ("*" if covered < len(tasks) else ""))
        rows.append(row)
    partial = any(r[-1].endswith("*") for r in rows)
    return header, rows, partial


def format_markdown(groups, skipped=()):
    """GitHub markdown table, then notes and skipped files."""
    header, rows, partial = _table_rows(groups, "±", "–")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    if partial:
        lines += ["", "\\* Avg over fewer tasks than the table shows."]
    if skipped:
        lines.append("")
        lines += [f"skipped: {path} ({reason})" for path, reason in skipped]
    return "\n".join(lines) + "\n"


_LATEX_SPECIALS = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                   "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex_escape(text):
    """Escape LaTeX special characters in plain text."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def format_latex(groups, skipped=()):
    """A ``tabular`` environment; notes and skipped files as ``%`` comments."""
    header, rows, partial = _table_rows(groups, "$\\pm$", "--")
    lines = [r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}", r"\hline"]
    lines.append(" & ".join(latex_escape(h) for h in header) + r" \\")
    lines.append(r"\hline")
    for row in rows:
        cells = [latex_escape(row[0])] + [c.replace("*", "$^*$") for c in row[1:]]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    if partial:
        lines.append("% * Avg over fewer tasks than the table shows.")
    lines += [f"% skipped: {path} ({reason})" for path, reason in skipped]
    return "\n".join(lines) + "\n"


def _csv_line(values):
    """One CSV line (quoting as the csv module's default dialect does)."""
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _csv_number(value):
    """Full-precision number, or empty for None."""
    return "" if value is None else repr(float(value))


def format_csv(groups, skipped=()):
    """One row per (method, task, metric) in raw units, one avg row per method, then skipped comments."""
    out = [_csv_line(["method", "task", "metric", "mean", "std", "n", "seeds", "runs"])]
    for method in methods_of(groups):
        for task in tasks_of(groups):
            group = groups.get((method, task))
            if group is None:
                continue
            seeds = ";".join("" if s is None else str(s) for s in group.seeds)
            run_dirs = ";".join(r.run_dir for r in group.runs)
            for name in group.metric_names:
                s = group.stats[name]
                out.append(_csv_line([method, task, name, _csv_number(s.mean), _csv_number(s.std), s.n, seeds, run_dirs]))
        avg, covered = method_average(groups, method)
        out.append(_csv_line([method, "avg", "primary", _csv_number(avg), "", covered, "", ""]))
    out += [f"# skipped: {path} ({reason})\n" for path, reason in skipped]
    return "".join(out)


FORMATTERS = {"md": format_markdown, "csv": format_csv, "latex": format_latex}


def format_table(groups, fmt="md", skipped=()):
    """Render aggregated groups (from `aggregate`) as md, csv or latex; `skipped` = (path, reason) pairs."""
    if fmt not in FORMATTERS:
        raise ConfigError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATTERS)}")
    return FORMATTERS[fmt](groups, list(skipped))


# ---------------------------------------------------------------- files


def _current_umask():
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path, data):
    """Write `data` (str or bytes) to `path` via a temp file in the same folder and os.replace."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


# ---------------------------------------------------------------- figures


def _pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, out_png):
    """Save a figure as PNG atomically, close it, return the path."""
    import io

    plt = _pyplot()
    buffer = io.BytesIO()
    try:
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=100)
    finally:
        plt.close(fig)
    write_atomic(out_png, buffer.getvalue())
    logger.info("wrote %s", out_png)
    return out_png


def _grid(plt, n_panels, width=5.0, height=3.5):
    """A figure with `n_panels` axes in up to three columns; unused axes are hidden."""
    ncols = min(3, n_panels)
    nrows = math.ceil(n_panels / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels]


def plot_methods(groups, out_png):
    """Bar chart of each method's primary score (×100, ± sample std) with one panel per task.

    Every panel lists all methods in table order, so rows line up across panels; a method
    without runs on a task is marked "n/a".
    """
    if not groups:
        raise ConfigError("no usable runs to plot; check the skipped list and the runs' results.json files")
    plt = _pyplot()
    tasks = tasks_of(groups)
    methods = methods_of(groups)
    fig, axes = _grid(plt, len(tasks), width=5.5, height=max(2.5, 0.35 * len(methods) + 1.2))
    for ax, task in zip(axes, tasks):
        present = [i for i, m in enumerate(methods) if (m, task) in groups]
        means = [100 * groups[(methods[i], task)].primary.mean for i in present]
        errs = [100 * (groups[(methods[i], task)].primary.std or 0.0) for i in present]
        ax.barh(present, means, xerr=errs, height=0.7, capsize=3, color="tab:blue", alpha=0.8)
        low = min(m - e for m, e in zip(means, errs))
        high = max(m + e for m, e in zip(means, errs))
        left = max(0.0, low - 5.0) if low > 0 else low - 5.0
        ax.set_xlim(left, high + 2.0)
        for i in sorted(set(range(len(methods))) - set(present)):
            ax.text(left, i, " n/a", va="center", fontsize=7, color="gray")
        ax.set_yticks(range(len(methods)))
        ax.set_yticklabels(methods, fontsize=8)
        ax.set_ylim(len(methods) - 0.5, -0.5)
        ax.set_title(task_header(task, groups), fontsize=10)
        ax.set_xlabel("primary score ×100")
        ax.grid(axis="x", alpha=0.3)
    return _save_figure(fig, out_png)


def _ratio_points(runs):
    """{task: {strategy: {ratio: [primary, ...]}}} for runs whose args name a strategy and a numeric ratio."""
    points = {}
    for run in runs:
        strategy, ratio = run.args.get("selection_strategy"), run.args.get("selection_ratio")
        if strategy is None or not _is_number(ratio):
            continue
        by_ratio = points.setdefault(run.task, {}).setdefault(str(strategy), {})
        by_ratio.setdefault(float(ratio), []).append(run.primary)
    return points


def plot_ratios(runs, out_png):
    """Primary score vs selection ratio, one line per strategy, one panel per task.

    Only strategies run at two or more ratios are drawn; returns None (no file) when there is
    no such strategy.
    """
    points = _ratio_points(runs)
    varying = {
        task: {s: r for s, r in by_strategy.items() if len(r) > 1}
        for task, by_strategy in points.items()
    }
    varying = {task: v for task, v in varying.items() if v}
    if not varying:
        logger.info("no selection strategy was run at several ratios; no ratio plot")
        return None
    plt = _pyplot()
    tasks = sorted(varying, key=task_sort_key)
    fig, axes = _grid(plt, len(tasks))
    for ax, task in zip(axes, tasks):
        for strategy in sorted(varying[task], key=_natural_key):
            by_ratio = varying[task][strategy]
            ratios = sorted(by_ratio)
            means = [100 * _mean(by_ratio[r]) for r in ratios]
            errs = [100 * (_sample_std(by_ratio[r]) or 0.0) for r in ratios]
            ax.errorbar(ratios, means, yerr=errs, marker="o", capsize=3, label=strategy)
        ax.set_title(task_header(task), fontsize=10)
        ax.set_xlabel("selection ratio")
        ax.set_ylabel("primary score ×100")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save_figure(fig, out_png)


def _event_dirs(run_dir):
    """Folders below `run_dir` that hold TensorBoard event files, sorted."""
    found = []
    for folder, dirs, files in os.walk(run_dir):
        dirs.sort()
        if any("tfevents" in name for name in files):
            found.append(folder)
    return found


def read_dkd_scalars(run_dir):
    """All ``train/dkd/*`` scalars under `run_dir` as ``{tag: [(step, value), ...]}`` sorted by step.

    Event files from several folders (e.g. resumed runs) are merged; for a repeated step the
    latest-written value wins. Raises ConfigError when the folder or the tags are missing.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not os.path.isdir(run_dir):
        raise ConfigError(f"curves dir {run_dir} does not exist; pass a training output (or logging) dir")
    merged = {}
    for folder in _event_dirs(run_dir):
        accumulator = EventAccumulator(folder, size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags().get("scalars", []):
            if tag.startswith(CURVE_TAG_PREFIX):
                merged.setdefault(tag, []).extend((e.step, e.wall_time, e.value) for e in accumulator.Scalars(tag))
    if not merged:
        raise ConfigError(
            f"no {CURVE_TAG_PREFIX}* scalars in TensorBoard event files under {run_dir}; "
            "train the run with --report_to tensorboard (and a dynamic method) to log them"
        )
    curves = {}
    for tag, events in merged.items():
        by_step = {}
        for step, _, value in sorted(events, key=lambda e: (e[0], e[1])):
            by_step[step] = value
        curves[tag] = sorted(by_step.items())
    return curves


def _run_labels(run_dirs):
    """Short legend labels: folder names, or the full paths when names repeat."""
    names = [os.path.basename(os.path.normpath(d)) or d for d in run_dirs]
    if len(set(names)) < len(names):
        return [os.path.normpath(d) for d in run_dirs]
    return names


def plot_curves(run_dirs, out_png):
    """Plot every ``train/dkd/*`` scalar over steps: one panel per tag, one line per run."""
    if not run_dirs:
        raise ConfigError("no run dirs given for --curves; pass one or more training output dirs")
    per_run = [read_dkd_scalars(d) for d in run_dirs]
    tags = sorted({tag for curves in per_run for tag in curves})
    plt = _pyplot()
    fig, axes = _grid(plt, len(tags), width=5.0, height=3.2)
    labels = _run_labels(run_dirs)
    for ax, tag in zip(axes, tags):
        for index, curves in enumerate(per_run):
            if tag in curves:
                steps, values = zip(*curves[tag])
                ax.plot(steps, values, color=f"C{index % 10}", linewidth=1.2)
        ax.set_title(tag[len(CURVE_TAG_PREFIX):], fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    # One legend for the figure: a run keeps its colour in every panel, even where it lacks the tag.
    handles = [plt.Line2D([], [], color=f"C{i % 10}", label=label) for i, label in enumerate(labels)]
    axes[0].legend(handles=handles, fontsize=8)
    return _save_figure(fig, out_png)


def write_plots(groups, runs, out_dir):
    """methods.png and (when ratios vary) ratio.png in `out_dir`; returns the written paths."""
    os.makedirs(out_dir, exist_ok=True)
    written = [plot_methods(groups, os.path.join(out_dir, "methods.png"))]
    ratio_png = plot_ratios(runs, os.path.join(out_dir, "ratio.png"))
    if ratio_png:
        written.append(ratio_png)
    return written


# ---------------------------------------------------------------- command line


def build_parser():
    """The report's argparse parser."""
    parser = argparse.ArgumentParser(
        prog="python -m dynamic_kd.report",
        description="Summarise results.json files (mean ± std over seeds) and plot them.",
    )
    parser.add_argument("runs_dir", nargs="?", metavar="RUNS_DIR", help="folder searched recursively for results.json")
    parser.add_argument("--format", choices=sorted(FORMATTERS), default="md", help="table format (default md)")
    parser.add_argument("--out", metavar="FILE", help="write the table to FILE (atomically) instead of stdout")
    parser.add_argument("--plot", metavar="DIR", help="write methods.png / ratio.png (and curves.png) to DIR")
    parser.add_argument("--curves", nargs="+", metavar="RUN_DIR", help="plot train/dkd/* TensorBoard scalars of these runs (needs --plot)")
    return parser


def run_report(args):
    """Carry out the parsed command line; raises ConfigError for user mistakes."""
    if args.runs_dir is None and not args.curves:
        raise ConfigError("nothing to do; pass RUNS_DIR (table) and/or --curves RUN_DIR ... --plot DIR")
    if args.curves and not args.plot:
        raise ConfigError("--curves needs --plot DIR to know where to write curves.png")
    if args.out and args.runs_dir is None:
        raise ConfigError("--out writes the table, which needs RUNS_DIR; pass the runs folder")
    if args.runs_dir is not None:
        runs, skipped = collect_runs(args.runs_dir)
        if not runs and not skipped:
            raise ConfigError(f"no {RESULTS_FILE} below {args.runs_dir}; point RUNS_DIR at the training output root")
        groups = aggregate(runs)
        table = format_table(groups, args.format, skipped)
        if args.out:
            write_atomic(args.out, table)
            logger.info("wrote %s", args.out)
        else:
            sys.stdout.write(table)
        if args.plot and groups:
            write_plots(groups, runs, args.plot)
        elif args.plot:
            logger.warning("no usable runs below %s; no methods plot", args.runs_dir)
    if args.curves:
        os.makedirs(args.plot, exist_ok=True)
        plot_curves(args.curves, os.path.join(args.plot, "curves.png"))


def main(argv=None):
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
