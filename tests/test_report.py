"""Tests for dynamic_kd.report: grouping by settings and data, aggregation over seeds, tables, figures."""

import io
import json
import os

import pandas as pd
import pytest

from dynamic_kd import figures, report
from dynamic_kd.errors import ConfigError
from dynamic_kd.runs import read_run

# The arguments of a dynamic_objective.py run as recipe.train_and_save records them (the ones that matter here).
OBJECTIVE_ARGS = {
    "task_name": "sst2",
    "model_name_or_path": "bert-base-uncased",
    "student_num_layers": 6,
    "teacher": "/t/{task}-base",
    "uncertainty_mode": None,
    "selection_strategy": "none",
    "selection_ratio": 1.0,
    "selection_scope": "batch",
    "strategy": "uncertainty",
    "kd_rep_alpha": 1.0,
    "rep_layers": "all",
    "kd_loss": "auto",
    "learning_rate": 2e-5,
    "logging_steps": 500,
    "per_device_eval_batch_size": 8,
    "report_to": [],
}
DROP = object()  # an argument the script does not have
HUB_SST2 = {"source": "hub", "location": "nyu-mll/glue/sst2", "fingerprint": "0123456789abcdef"}


def write_run(root, name, seed, metrics, task="sst2", data=HUB_SST2, history=None, **args):
    """Write `root/name/results.json` as train_and_save does; `args` override OBJECTIVE_ARGS. Returns the run dir."""
    run_dir = os.path.join(str(root), name)
    os.makedirs(run_dir, exist_ok=True)
    resolved = {
        **OBJECTIVE_ARGS,
        "teacher": f"/t/{task}-base",
        "task_name": task,
        "seed": seed,
        "output_dir": run_dir,
        **args,
    }
    resolved = {k: v for k, v in resolved.items() if v is not DROP}
    record = {
        "script": "dynamic_objective.py",
        "task": task,
        "seed": seed,
        "metrics": metrics,
        "train_runtime_s": 10.0 + seed,
        "train_examples": 100,
        "teacher_forward_examples": 50,
        "args": resolved,
        "method": "ignored",
        "data": data,
        "log_history": history or [],
    }
    with open(os.path.join(run_dir, "results.json"), "w") as handle:
        json.dump(record, handle)
    return run_dir


def md_rows(text):
    """The body rows of a markdown table as lists of stripped cells."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[:1] + lines[2:]]


def table_of(root, fmt="md"):
    runs, skipped = report.load_runs([str(root)])
    return report.format_report(runs, skipped, fmt)


# --- the merge defect ----------------------------------------------------------------------


def test_runs_differing_only_in_rep_layers_are_two_rows(tmp_path):
    for seed, (all_acc, cls_acc) in zip((1, 2), ((0.60, 0.70), (0.70, 0.80))):
        write_run(tmp_path, f"all-seed{seed}", seed, {"accuracy": all_acc}, rep_layers="all")
        write_run(tmp_path, f"cls-seed{seed}", seed, {"accuracy": cls_acc}, rep_layers="cls")
    header, *rows = md_rows(table_of(tmp_path))
    assert header == ["Method", "rep_layers", "SST-2", "Avg"]
    # mean of 0.60, 0.70 = 65.0, sample std = 0.0707 -> 7.1; the cls runs: 75.0 ± 7.1
    assert rows == [
        ["kd+objective/uncertainty", "all", "65.0 ± 7.1 (n=2)", "65.0"],
        ["kd+objective/uncertainty", "cls", "75.0 ± 7.1 (n=2)", "75.0"],
    ]


def test_demo_tweets_are_not_averaged_with_real_sst2(tmp_path):
    tweets = {"source": "data_dir", "location": "/x/outputs/quickstart/data/tweets", "fingerprint": "feedfacefeedface"}
    write_run(tmp_path, "hub", 1, {"accuracy": 0.90})
    write_run(tmp_path, "tweets", 1, {"accuracy": 0.80}, data=tweets, data_dir="/x/outputs/quickstart/data/tweets")
    header, *rows = md_rows(table_of(tmp_path))
    assert header == ["Method", "SST-2 [hub]", "SST-2 [tweets]", "Avg"]
    assert rows == [["kd+objective/uncertainty", "90.0 (n=1)", "80.0 (n=1)", "90.0"]]  # Avg: SST-2 is the hub's
    # two folders of the same name but different content stay apart too, named by fingerprint
    write_run(tmp_path, "tweets2", 1, {"accuracy": 0.70}, data={**tweets, "fingerprint": "0badc0de0badc0de"})
    header, *_ = md_rows(table_of(tmp_path))
    assert header[1:4] == ["SST-2 [hub]", "SST-2 [tweets@0badc0]", "SST-2 [tweets@feedfa]"]


def test_avg_counts_each_task_once_never_averaging_its_data_sources(tmp_path):
    tweets = {"source": "data_dir", "location": "/x/tweets", "fingerprint": "feedfacefeedface"}
    write_run(tmp_path, "hub", 1, {"accuracy": 0.90})
    write_run(tmp_path, "tweets", 1, {"accuracy": 0.80}, data=tweets, data_dir="/x/tweets")
    write_run(tmp_path, "rte", 1, {"accuracy": 0.60}, task="rte", data={**HUB_SST2, "fingerprint": "r"})
    header, *rows = md_rows(table_of(tmp_path))
    assert header == ["Method", "SST-2 [hub]", "SST-2 [tweets]", "RTE", "Avg"]
    # two tasks: SST-2 counts by its hub data, (90 + 60) / 2 (not (90 + 80 + 60) / 3 as if three tasks)
    assert rows == [["kd+objective/uncertainty", "90.0 (n=1)", "80.0 (n=1)", "60.0 (n=1)", "75.0"]]
    frame = pd.read_csv(io.StringIO(table_of(tmp_path, "csv")), comment="#")
    avg = frame[frame.task == "avg"].iloc[0]
    assert avg["mean"] == pytest.approx(0.75) and avg["n"] == 2
    # SST-2 on two local folders and no hub: no one SST-2 score, so no Avg
    os.remove(tmp_path / "hub" / "results.json")
    write_run(tmp_path, "tweets2", 1, {"accuracy": 0.70}, data={**tweets, "fingerprint": "0badc0de0badc0de"})
    assert md_rows(table_of(tmp_path))[1][-1] == "–"


def test_teacher_paths_are_compared_per_task(tmp_path):
    for task, metrics in (("rte", {"accuracy": 0.6}), ("mrpc", {"f1": 0.8, "accuracy": 0.7})):
        data = {**HUB_SST2, "location": f"nyu-mll/glue/{task}", "fingerprint": task}
        for size, bonus in (("base", 0.0), ("large", 0.1)):
            scores = {k: v + bonus for k, v in metrics.items()}
            write_run(tmp_path, f"{task}-{size}", 1, scores, task=task, data=data, teacher=f"/t/{task}-{size}")
    header, *rows = md_rows(table_of(tmp_path))
    assert header == ["Method", "teacher", "MRPC (F1/acc)", "RTE", "Avg"]
    # Avg: each task's primary metric (metrics.primary_metric: MRPC's F1), (80 + 60) / 2 and (90 + 70) / 2
    assert rows == [
        ["kd+objective/uncertainty", "/t/{task}-base", "80.0/70.0 (n=1)", "60.0 (n=1)", "70.0"],
        ["kd+objective/uncertainty", "/t/{task}-large", "90.0/80.0 (n=1)", "70.0 (n=1)", "80.0"],
    ]


def test_seed_paths_and_bookkeeping_do_not_split_a_row(tmp_path):
    write_run(tmp_path, "a", 1, {"accuracy": 0.80}, logging_steps=10, report_to=["tensorboard"], teacher_cache="disk")
    write_run(tmp_path, "b", 2, {"accuracy": 0.90}, per_device_eval_batch_size=128, save_strategy="no")
    write_run(tmp_path, "c", 3, {"accuracy": 0.85}, data_seed=7)
    runs, _ = report.load_runs([str(tmp_path)])
    assert report.setting_columns(runs) == []
    assert md_rows(table_of(tmp_path))[1] == ["kd+objective/uncertainty", "85.0 ± 5.0 (n=3)", "85.0"]


def test_every_other_setting_splits_a_row(tmp_path):
    write_run(tmp_path, "a", 1, {"accuracy": 0.80})
    write_run(tmp_path, "b", 1, {"accuracy": 0.90}, learning_rate=1e-4, temperature=2.0)
    runs, _ = report.load_runs([str(tmp_path)])
    assert report.setting_columns(runs) == ["learning_rate", "temperature"]  # temperature: absent in "a" = "–"
    header, *rows = md_rows(table_of(tmp_path))
    assert header == ["Method", "learning_rate", "temperature", "SST-2", "Avg"]
    assert [row[1:3] for row in rows] == [["2e-05", "–"], ["0.0001", "2.0"]]


# --- aggregation and tables ----------------------------------------------------------------


@pytest.fixture
def glue_runs(tmp_path):
    """KD on sst2 (3 seeds), mrpc (2 seeds), mnli (1 seed); entropy selection on sst2 (1 seed); two bad files."""
    root = tmp_path / "runs"
    kd = dict(strategy="none", kd_rep_alpha=0.0)
    for seed, acc in zip((1, 2, 3), (0.80, 0.90, 0.85)):
        write_run(root, f"kd_sst2_s{seed}", seed, {"accuracy": acc}, **kd)
    for seed, (f1, acc) in zip((1, 2), ((0.90, 0.80), (0.86, 0.84))):
        write_run(
            root,
            f"kd_mrpc_s{seed}",
            seed,
            {"f1": f1, "accuracy": acc},
            task="mrpc",
            data={**HUB_SST2, "fingerprint": "m"},
            **kd,
        )
    write_run(
        root,
        "kd_mnli_s1",
        1,
        {"accuracy": 0.70, "accuracy_mm": 0.72},
        task="mnli",
        data={**HUB_SST2, "fingerprint": "n"},
        **kd,
    )
    write_run(root, "entropy_sst2", 1, {"accuracy": 0.875}, selection_strategy="entropy", selection_ratio=0.1, **kd)
    (root / "broken").mkdir()
    (root / "broken" / "results.json").write_text('{"task": "sst2", "metrics": {"accuracy": 0.')
    (root / "partial").mkdir()
    (root / "partial" / "results.json").write_text(json.dumps({"task": "sst2", "args": {"seed": 4}}))
    return root


def test_markdown_table_cells_average_and_skipped(glue_runs):
    text = table_of(glue_runs)
    header, *rows = md_rows(text)
    assert header == ["Method", "SST-2", "MRPC (F1/acc)", "MNLI (m/mm)", "Avg"]
    # sst2 0.80/0.90/0.85 -> 85.0 ± 5.0; mrpc f1 0.90/0.86 -> 88.0 ± 2.8, acc 0.80/0.84 -> 82.0 ± 2.8;
    # Avg = mean of the primary (metrics.primary_metric) means: sst2 0.85, mrpc F1 0.88, mnli matched 0.70 -> 81.0
    assert rows[0] == ["kd", "85.0 ± 5.0 (n=3)", "88.0 ± 2.8/82.0 ± 2.8 (n=2)", "70.0/72.0 (n=1)", "81.0"]
    assert rows[1] == ["kd+data/entropy/r0.1", "87.5 (n=1)", "–", "–", "87.5*"]
    assert "* Avg over fewer columns than the table shows." in text
    skipped = [line for line in text.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 2
    assert any("broken" in line and "invalid JSON" in line for line in skipped)
    assert any("partial" in line and "missing key 'metrics'" in line for line in skipped)


@pytest.mark.parametrize(
    "record, reason",
    [
        ({"task": "sst2", "args": {}, "metrics": {"accuracy": "high"}}, "not a finite number"),
        ({"task": "mrpc", "args": {}, "metrics": {"accuracy": 0.8}}, "missing metric(s) f1"),
        ({"args": {}, "metrics": {"accuracy": 0.8}}, "missing key 'task'"),
        ({"task": "sst2", "metrics": {"accuracy": 0.8}}, "missing key 'args'"),
        ([1, 2], "not a JSON object"),
        ({"task": "zzz", "args": {}, "metrics": {"score": 0.8}}, "no primary metric"),
    ],
)
def test_unusable_files_give_reasons(tmp_path, record, reason):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(record))
    result = read_run(str(path))
    assert isinstance(result, str) and reason in result


def test_csv_and_latex(glue_runs):
    text = table_of(glue_runs, "csv")
    frame = pd.read_csv(io.StringIO(text), comment="#")
    row = frame[(frame.method == "kd") & (frame.task == "sst2") & (frame.metric == "accuracy")].iloc[0]
    assert row["mean"] == pytest.approx(0.85) and row["std"] == pytest.approx(0.05) and row["n"] == 3
    assert row["seeds"] == "1;2;3" and len(row["runs"].split(";")) == 3
    assert pd.isna(frame[(frame.task == "mnli") & (frame.metric == "accuracy_mm")].iloc[0]["std"])
    avg = frame[(frame.method == "kd") & (frame.task == "avg")].iloc[0]
    assert avg["mean"] == pytest.approx((0.85 + 0.88 + 0.70) / 3) and avg["n"] == 3
    assert set(frame.columns) >= {
        "method",
        "selection_strategy",
        "selection_ratio",
        "task",
        "data",
        "metric",
        "mean",
        "std",
        "n",
    }
    assert text.count("# skipped:") == 2

    latex = table_of(glue_runs, "latex")
    assert latex.startswith(r"\begin{tabular}{lcccc}")
    assert r"kd & 85.0 $\pm$ 5.0 (n=3) & 88.0 $\pm$ 2.8/82.0 $\pm$ 2.8 (n=2) & 70.0/72.0 (n=1) & 81.0 \\" in latex
    assert r"kd+data/entropy/r0.1 & 87.5 (n=1) & – & – & 87.5$^*$ \\" in latex
    assert "% skipped:" in latex and r"\end{tabular}" in latex


def test_row_and_column_order(tmp_path):
    tasks = {
        "rte": {"accuracy": 0.5},
        "cola": {"matthews_correlation": 0.5},
        "sst2": {"accuracy": 0.5},
        "custom:x/train.csv+dev.csv": {"macro_f1": 0.5, "accuracy": 0.5},
        "boolq": {"accuracy": 0.5},
    }
    methods = {
        "objective": dict(strategy="uncertainty"),
        "r0.5": dict(selection_strategy="entropy", selection_ratio=0.5),
        "kd": dict(kd_rep_alpha=0.0, strategy="none"),
        "r0.05": dict(selection_strategy="entropy", selection_ratio=0.05),
        "finetune": dict(
            teacher=DROP,
            uncertainty_mode=DROP,
            selection_strategy=DROP,
            selection_ratio=DROP,
            selection_scope=DROP,
            strategy=DROP,
            kd_rep_alpha=DROP,
            rep_layers=DROP,
            kd_loss=DROP,
        ),
    }
    for name, args in methods.items():
        for task, metrics in tasks.items():
            write_run(tmp_path, f"{name}-{task}", 1, metrics, task=task, data={**HUB_SST2, "fingerprint": task}, **args)
    header, *rows = md_rows(table_of(tmp_path))
    assert [row[0] for row in rows] == [
        "finetune/6L",
        "kd",
        "kd+data/entropy/r0.05+objective/uncertainty",
        "kd+data/entropy/r0.5+objective/uncertainty",
        "kd+objective/uncertainty",
    ]
    assert header[-6:] == ["CoLA", "SST-2", "RTE", "boolq", "custom:x/train.csv+dev.csv (accuracy/macro_f1)", "Avg"]


def test_main_writes_out_file_and_returns_codes(glue_runs, tmp_path, capsys):
    out = tmp_path / "nested" / "table.md"
    assert report.main([str(glue_runs), "--out", str(out)]) == 0
    assert "85.0 ± 5.0 (n=3)" in out.read_text()
    assert capsys.readouterr().out == ""
    assert [p.name for p in out.parent.iterdir()] == ["table.md"]  # no temp file left behind

    assert report.main([str(glue_runs), "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("method,")

    assert report.main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "missing" in err
    assert report.main([str(glue_runs), "--curves", str(glue_runs)]) == 2  # --curves without --plot
    assert "--plot" in capsys.readouterr().err


def test_several_runs_dirs_count_each_file_once(glue_runs, tmp_path):
    runs, _ = report.load_runs([str(glue_runs), str(glue_runs / "kd_sst2_s1"), str(glue_runs)])
    assert len(runs) == 7


# --- figures -------------------------------------------------------------------------------


def assert_png(path):
    data = open(path, "rb").read()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1024


def test_methods_and_ratio_plots(glue_runs, tmp_path):
    kd = dict(strategy="none", kd_rep_alpha=0.0)
    runs, _ = report.load_runs([str(glue_runs)])
    assert report.plot_ratios(runs, str(tmp_path / "none.png")) is None  # one ratio only
    assert not (tmp_path / "none.png").exists()
    for seed in (1, 2):
        for ratio, acc in ((0.3, 0.86), (0.5, 0.88)):
            write_run(
                glue_runs,
                f"entropy_r{ratio}_s{seed}",
                seed,
                {"accuracy": acc + 0.01 * seed},
                selection_strategy="entropy",
                selection_ratio=ratio,
                **kd,
            )
    plots = tmp_path / "plots" / "deep"
    assert report.main([str(glue_runs), "--plot", str(plots)]) == 0
    assert_png(plots / "methods.png")
    assert_png(plots / "ratio.png")


def inside_the_figure(fig, texts):
    """Every text's drawn box lies within the figure (nothing cut off)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for text in texts:
        box = text.get_window_extent(renderer)
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1, text.get_text()


def test_methods_figure_reads_at_a_glance(tmp_path):
    from matplotlib import pyplot as plt
    from matplotlib.container import ErrorbarContainer

    alone = dict(
        teacher=DROP,
        uncertainty_mode=DROP,
        selection_strategy=DROP,
        selection_ratio=DROP,
        selection_scope=DROP,
        strategy=DROP,
        kd_rep_alpha=DROP,
        rep_layers=DROP,
        kd_loss=DROP,
        student_num_layers=2,
    )
    for seed, (a, k) in enumerate(((0.80, 0.83), (0.82, 0.85), (0.81, 0.84)), 1):
        write_run(tmp_path, f"alone{seed}", seed, {"accuracy": a}, **alone)
        write_run(tmp_path, f"kd{seed}", seed, {"accuracy": k}, strategy="none", kd_rep_alpha=0.0)
    write_run(tmp_path, "hard", 1, {"accuracy": 0.86}, strategy="none", kd_rep_alpha=0.0, uncertainty_mode="hard")
    combined = dict(uncertainty_mode="hard", selection_strategy="entropy", selection_ratio=0.1, strategy="uncertainty")
    write_run(tmp_path, "combined", 1, {"accuracy": 0.87}, kd_rep_alpha=1.0, **combined)
    rows, headers = report.primary_rows(report.load_runs([str(tmp_path)])[0])
    # a custom task's column header is long: it wraps instead of running off the figure
    headers = dict.fromkeys(headers, "custom:tweets/train.tsv+dev.tsv (accuracy/macro_f1) [train.tsv]")
    fig = figures.methods_figure(rows, headers)
    try:
        ax = fig.axes[0]
        labels = [label.get_text() for label in ax.get_yticklabels()]
        combined = "hard adoption + entropy selection 10% +\nuncertainty-weighted REP"
        assert labels == ["student alone (2 layers)", "KD", "hard adoption", combined]
        assert ax.get_xlim()[0] == 0  # bars start at zero: a one-point gap looks like one point
        spread = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        # error bars on the two three-seed rows only, the one-seed row has no spread to show
        assert sum(len(c.lines[2][0].get_segments()) for c in spread) == 2
        level = [line for line in ax.lines if line.get_label() == "student alone"]
        assert len(level) == 1 and level[0].get_xdata()[0] == pytest.approx(81.0)
        legend, values = fig.legends[0], ax.texts  # the bars' value labels
        inside_the_figure(fig, [fig._suptitle, ax.title, ax.xaxis.label, *ax.get_yticklabels(), legend, *values])
        renderer = fig.canvas.get_renderer()
        assert not any(legend.get_window_extent(renderer).overlaps(v.get_window_extent(renderer)) for v in values)
    finally:
        plt.close(fig)


def test_curves_show_uncertainty_weights_and_selected_fraction(tmp_path):
    from matplotlib import pyplot as plt

    history = [
        {
            "step": s,
            "loss": 0.5,
            "dkd/loss_ce": 0.3,
            "dkd/loss_kd": 0.2,
            "dkd/uncertainty": 0.9 - 0.1 * s,
            "dkd/selected_uncertainty": 0.95 - 0.1 * s,
            "dkd/kd_weight": 0.5,
            "dkd/rep_weight": 0.5,
            "dkd/selected_fraction": 0.5 + 0.001 * s,
        }
        for s in range(1, 5)
    ]
    fig = figures.curves_figure(figures.curve_points([write_run(tmp_path, "a", 1, {"accuracy": 0.8}, history=history)]))
    try:
        panels = [ax for ax in fig.axes if ax.get_visible()]
        assert [ax.get_title() for ax in panels] == ["uncertainty", "weights", "selected fraction"]  # no loss panels
        assert panels[2].get_ylim()[0] == 0 and panels[2].get_ylim()[1] >= 1  # a 0.003 change stays small
        assert panels[0].get_ylim()[0] == 0 and panels[1].get_ylim()[0] == 0
        inside_the_figure(fig, [ax.title for ax in panels])
    finally:
        plt.close(fig)


def dkd_history(steps=4):
    """A log_history as the Trainer keeps it: loss lines with dkd/* values, an eval line, the summary."""
    history = [
        {"step": s, "epoch": s / 2, "loss": 0.5, "dkd/uncertainty": 0.9 - 0.1 * s, "dkd/kd_weight": 0.5}
        for s in range(1, steps + 1)
    ]
    return history + [{"step": steps, "eval_accuracy": 0.8}, {"step": steps, "train_runtime": 1.0}]


def test_curves_from_the_training_history(tmp_path, capsys):
    run_a = write_run(tmp_path, "a", 1, {"accuracy": 0.8}, history=dkd_history())
    # an unfinished run: the newest complete checkpoint's trainer_state.json (checkpoint-4 is half written)
    run_b = tmp_path / "b"
    for step, state in ((2, {"log_history": dkd_history(2)}), (4, None)):
        (run_b / f"checkpoint-{step}").mkdir(parents=True)
        if state:
            (run_b / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps(state))
    assert [e["step"] for e in figures.read_history(str(run_b))][:2] == [1, 2]
    plots = tmp_path / "plots"
    assert report.main(["--curves", run_a, str(run_b), "--plot", str(plots)]) == 0
    assert_png(plots / "curves.png")

    plain = write_run(tmp_path, "plain", 1, {"accuracy": 0.8}, history=[{"step": 1, "loss": 0.3}])
    with pytest.raises(ConfigError, match="no dkd/\\* values"):
        figures.curve_points([plain])
    assert report.main(["--curves", str(tmp_path / "nowhere"), "--plot", str(plots)]) == 2
    assert "neither results.json nor a checkpoint" in capsys.readouterr().err


# --- seeded grids: rows and paired claims (the miniature) ---------------------------------------


def test_claims_cli_reads_a_miniature_layout(tmp_path, capsys):
    from dynamic_kd.sweeps import grids

    MINIATURE_CLAIMS = grids().MINIATURE_CLAIMS

    for row, scores in (("kd-large", (0.80, 0.82, 0.84)), ("student-alone", (0.78, 0.79, 0.81))):
        for seed, accuracy in enumerate(scores, 1):
            folder = tmp_path / "runs" / row / f"seed{seed}"
            folder.mkdir(parents=True)
            (folder / "results.json").write_text(
                json.dumps(
                    {
                        "task": "custom:tweets/train.tsv+dev.tsv",
                        "seed": seed,
                        "metrics": {"accuracy": accuracy, "macro_f1": accuracy - 0.1},
                        "args": {"seed": seed, "learning_rate": 2e-4},
                        "train_runtime_s": 12.0,
                        "teacher_forward_examples": 3000,
                    }
                )
            )
    assert report.main([str(tmp_path / "runs"), "--claims", "miniature"]) == 0
    text = capsys.readouterr().out
    assert "| student-alone | 79.3 ± 1.5 (n=3) |" in text and "| kd-large      | 82.0 ± 2.0 (n=3) |" in text
    claim = next(text for _, text, row, base, *_ in MINIATURE_CLAIMS if (row, base) == ("kd-large", "student-alone"))
    assert claim in text and "holds" in text
    assert report.main([str(tmp_path / "runs"), "--claims", "quickstart"]) == 2  # no rows and claims there


def test_claims_of_two_data_draws_side_by_side(tmp_path, capsys):
    """One RUNS_DIR per draw of the data: per claim, each draw's estimate, interval and verdict."""
    from dynamic_kd.sweeps import grids

    MINIATURE_CLAIMS = grids().MINIATURE_CLAIMS

    draws = {"draw0": ((0.80, 0.82, 0.84), (0.78, 0.79, 0.81)), "draw1": ((0.70, 0.71, 0.72), (0.78, 0.79, 0.80))}
    for draw, (kd, alone) in draws.items():
        for row, scores in (("kd-large", kd), ("student-alone", alone)):
            for seed, accuracy in enumerate(scores, 1):
                folder = tmp_path / draw / "runs" / row / f"seed{seed}"
                folder.mkdir(parents=True)
                (folder / "results.json").write_text(
                    json.dumps(
                        {
                            "task": "custom:tweets/train.tsv+dev.tsv",
                            "seed": seed,
                            "metrics": {"accuracy": accuracy},
                            "args": {"seed": seed},
                            "train_runtime_s": 12.0,
                            "teacher_forward_examples": 3000,
                        }
                    )
                )
    runs_dirs = [str(tmp_path / draw / "runs") for draw in draws]
    assert report.main([*runs_dirs, "--claims", "miniature"]) == 0
    text = capsys.readouterr().out
    claim = next(text for _, text, row, base, *_ in MINIATURE_CLAIMS if (row, base) == ("kd-large", "student-alone"))
    line = next(line for line in text.splitlines() if claim in line)
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    # draw0: kd - alone = [2, 3, 3] holds; draw1: [-8, -8, -8] contradicted
    assert cells[2:] == ["+2.7", "[+1.2, +4.1]", "3", "holds", "-8.0", "[-8.0, -8.0]", "3", "contradicted"]
    header = next(line for line in text.splitlines() if "verdict" in line)
    assert "verdict (draw0)" in header and "verdict (draw1)" in header
    rows_line = next(line for line in text.splitlines() if line.startswith("| kd-large"))
    assert "82.0 ± 2.0 (n=3)" in rows_line and "71.0 ± 1.0 (n=3)" in rows_line
