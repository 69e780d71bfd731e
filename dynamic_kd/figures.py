"""The report's figures, in a reader's names, on axes from 0 so that noise does not look like an effect."""

import json
import logging
import math
import os
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from dynamic_kd.errors import ConfigError
from dynamic_kd.files import atomic_path
from dynamic_kd.runs import RESULTS_FILE

logger = logging.getLogger(__name__)

# The training curves' panels: (title, pattern of the dkd/* names drawn, y range; None: from 0).
CURVE_PANELS = (
    ("uncertainty", r"uncertainty$", (0.0, 1.05)),
    ("weights", r"_weight$", None),
    ("selected fraction", r"_fraction$", (0.0, 1.05)),
)
STYLES = ("-", "--", ":", "-.")


def pyplot():
    import matplotlib  # only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str) -> str:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        pyplot().close(fig)
    logger.info("wrote %s", path)
    return path


def _panels(n: int, width: float, height: float):
    """n panels, three to a row (constrained layout: no label cut off)."""
    ncols, nrows = min(3, n), math.ceil(n / min(3, n))
    size = (width * ncols, height * nrows)
    fig, axes = pyplot().subplots(nrows, ncols, figsize=size, squeeze=False, layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def methods_figure(primary: pd.DataFrame, headers: dict):
    """Did a method beat the student alone: `report.primary_rows` as bars, a panel per table column."""
    rows = list(dict.fromkeys(primary.row))
    labels = [textwrap.fill(row, 48) for row in rows]  # long settings (paths) wrap, not squeeze the bars
    fig, axes = _panels(len(headers), 6.0, 0.2 * sum(label.count("\n") + 2 for label in labels) + 1.6)
    fig.suptitle("Dev score by method\nmean over seeds; whiskers: ± sample std where ≥ 2 seeds", fontsize=11)
    level = None  # the student-alone line, for the one legend
    for ax, ((task, data), header) in zip(axes, headers.items()):
        cell = primary[(primary.task == task) & (primary.data == data)]
        y, means = np.array([rows.index(r) for r in cell.row]), 100 * cell["mean"].to_numpy()
        ax.barh(y, means, height=0.7, color="tab:blue", alpha=0.8)
        seeded = (cell.n > 1).to_numpy()
        if seeded.any():
            spread = 100 * cell["std"].to_numpy()[seeded]
            ax.errorbar(means[seeded], y[seeded], xerr=spread, fmt="none", ecolor="black", capsize=3)
        for position, mean in zip(y, means):
            xy = (max(mean, 0.0), position)
            ax.annotate(f"{mean:.1f}", xy, xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        alone = cell[cell.method.str.startswith("finetune/")]
        if len(alone):
            level = ax.axvline(100 * alone["mean"].iloc[0], color="tab:red", linestyle="--", label="student alone")
        ax.set_xlim(min(0.0, means.min() - 5.0), max(100.0, means.max() + 5.0))
        ax.set_yticks(range(len(rows)), labels, fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_title(textwrap.fill(header, 40), fontsize=10)  # a custom task's header is long
        ax.set_xlabel(f"{cell.metric_name.iloc[0]} ×100")
        ax.grid(axis="x", alpha=0.3)
    if level is not None:  # below the panels: clear of every bar and value
        fig.legend(handles=[level], loc="outside lower center", fontsize=8)
    return fig


def ratio_figure(lines: pd.DataFrame, headers: dict):
    """Score ×100 vs selection ratio, a line per `line`, a panel per (task, data)."""
    panels = list(dict.fromkeys(zip(lines.task, lines.data)))
    fig, axes = _panels(len(panels), 5.0, 3.5)
    for ax, (task, data) in zip(axes, panels):
        for line, points in lines[(lines.task == task) & (lines.data == data)].groupby("line", sort=False):
            points = points.sort_values("ratio")
            drawn = ax.plot(points.ratio, 100 * points["mean"], marker="o", label=line)
            seeded, colour = points[points.n > 1], drawn[0].get_color()
            ax.errorbar(
                seeded.ratio, 100 * seeded["mean"], yerr=100 * seeded["std"], fmt="none", capsize=3, ecolor=colour
            )
        ax.set_ylim(0.0, max(100.0, ax.get_ylim()[1]))
        ax.set(title=headers[(task, data)], xlabel="selection ratio", ylabel=f"{lines.metric_name.iloc[0]} ×100")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def curve_panels(keys) -> list:
    """The `CURVE_PANELS` with values in `keys`, with the names each draws."""
    panels = [
        (title, sorted(k for k in set(keys) if re.search(pattern, k)), limits)
        for title, pattern, limits in CURVE_PANELS
    ]
    return [panel for panel in panels if panel[1]]


def read_history(run_dir: str) -> list:
    """results.json's `log_history`, or while the run trains, its newest complete checkpoint's."""
    path = os.path.join(run_dir, RESULTS_FILE)
    if not os.path.exists(path):
        from transformers.trainer import TRAINER_STATE_NAME  # torch loads only for an unfinished run

        from dynamic_kd.recipe import last_complete_checkpoint

        checkpoint = last_complete_checkpoint(run_dir) if os.path.isdir(run_dir) else None
        if checkpoint is None:
            raise ConfigError(f"{run_dir} holds neither {RESULTS_FILE} nor a checkpoint; pass a training output dir")
        path = os.path.join(checkpoint, TRAINER_STATE_NAME)
    try:
        history = json.loads(Path(path).read_text(encoding="utf-8")).get("log_history")
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(
            f"cannot read the training history in {path} ({exc}); pass a finished or checkpointed run"
        ) from None
    if not isinstance(history, list):
        raise ConfigError(f"{path} has no log_history (an older run); rerun to get curves")
    return history


def curve_points(run_dirs) -> pd.DataFrame:
    """Every logged dkd/* value as (run: its folder's name, step, key without dkd/, value)."""
    names = [os.path.basename(os.path.normpath(d)) for d in run_dirs]
    names = names if len(set(names)) == len(names) else [os.path.normpath(d) for d in run_dirs]
    points = pd.DataFrame(
        [
            {"run": name, "step": entry.get("step"), "key": key.removeprefix("dkd/"), "value": value}
            for name, run_dir in zip(names, run_dirs)
            for entry in read_history(run_dir)
            for key, value in entry.items()
            if key.startswith("dkd/")
        ],
        columns=["run", "step", "key", "value"],
    )
    points = points[np.isfinite(pd.to_numeric(points.value, errors="coerce"))].astype({"value": float})
    if not curve_panels(points.key):
        raise ConfigError(
            f"no dkd/* values to plot in the training history of {', '.join(run_dirs)}; "
            "distillation runs log them every --logging_steps"
        )
    return points


def curves_figure(points: pd.DataFrame):
    """A colour per run, a line style per logged value."""
    plt = pyplot()
    panels = curve_panels(points.key)
    fig, axes = _panels(len(panels), 5.0, 3.4)
    colours = {name: f"C{i % 10}" for i, name in enumerate(dict.fromkeys(points.run))}  # one colour in every panel
    for ax, (title, keys, limits) in zip(axes, panels):
        for (name, key), curve in points[points.key.isin(keys)].groupby(["run", "key"], sort=False):
            ax.plot(curve.step, curve.value, color=colours[name], linestyle=STYLES[keys.index(key) % 4], linewidth=1.2)
        styles = [
            plt.Line2D([], [], color="grey", linestyle=STYLES[i % 4], label=k.replace("_", " "))
            for i, k in enumerate(keys)
        ]
        ax.legend(handles=styles, fontsize=8)
        ax.set_ylim(*(limits or (0.0, None)))
        ax.set(title=title, xlabel="step")
        ax.grid(alpha=0.3)
    runs = [plt.Line2D([], [], color=c, label=n) for n, c in colours.items()]
    fig.legend(handles=runs, loc="outside lower center", ncols=min(4, len(colours)), fontsize=8)
    return fig
