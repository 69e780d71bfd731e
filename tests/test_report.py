"""Tests for dynamic_kd.report: grouping by settings and data, aggregation over seeds, tables, figures."""
import io
import json
import os

import pandas as pd
import pytest

from dynamic_kd import report
from dynamic_kd.errors import ConfigError

# The arguments of a dynamic_objective.py run as finish_run records them (the ones that matter here).
OBJECTIVE_ARGS = {
    "task_name": "sst2", "model_name_or_path": "bert-base-uncased", "student_num_layers": 6, "teacher": "/t/{task}-base",
    "uncertainty_mode": None, "selection_strategy": "none", "selection_ratio": 1.0, "selection_scope": "batch",
    "strategy": "uncertainty", "rep_alpha": 1.0, "rep_layers": "all", "kd_loss": "auto", "learning_rate": 2e-5,
    "logging_steps": 500, "per_device_eval_batch_size": 8, "report_to": [],
}
DROP = object()  # an argument the script does not have
HUB_SST2 = {"source": "hub", "location": "nyu-mll/glue/sst2", "fingerprint": "0123456789abcdef"}


def write_run(root, name, seed, metrics, task="sst2", data=HUB_SST2, history=None, **args):
    """Write `root/name/results.json` as finish_run does; `args` override OBJECTIVE_ARGS. Returns the run dir."""
    run_dir = os.path.join(str(root), name)
    os.makedirs(run_dir, exist_ok=True)
    resolved = {**OBJECTIVE_ARGS, "teacher": f"/t/{task}-base", "task_name": task, "seed": seed, "output_dir": run_dir, **args}
    resolved = {k: v for k, v in resolved.items() if v is not DROP}
    record = {
        "script": "dynamic_objective.py", "task": task, "seed": seed, "metrics": metrics, "train_runtime_s": 10.0 + seed,
        "train_examples": 100, "teacher_forward_examples": 50, "args": resolved, "method": "ignored",
        "data": data, "log_history": history or [],
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
    assert rows == [["kd+objective/uncertainty", "all", "65.0 ± 7.1 (n=2)", "65.0"],
                    ["kd+objective/uncertainty", "cls", "75.0 ± 7.1 (n=2)", "75.0"]]


def test_demo_tweets_are_not_averaged_with_real_sst2(tmp_path):
    tweets = {"source": "data_dir", "location": "/x/outputs/quickstart/data/tweets", "fingerprint": "feedfacefeedface"}
    write_run(tmp_path, "hub", 1, {"accuracy": 0.90})
    write_run(tmp_path, "tweets", 1, {"accuracy": 0.80}, data=tweets, data_dir="/x/outputs/quickstart/data/tweets")
    header, *rows = md_rows(table_of(tmp_path))
    assert header == ["Method", "SST-2 [hub]", "SST-2 [tweets]", "Avg"]
    assert rows == [["kd+objective/uncertainty", "90.0 (n=1)", "80.0 (n=1)", "85.0"]]
    # two folders of the same name but different content stay apart too, named by fingerprint
    write_run(tmp_path, "tweets2", 1, {"accuracy": 0.70}, data={**tweets, "fingerprint": "0badc0de0badc0de"})
    header, *_ = md_rows(table_of(tmp_path))
    assert header[1:4] == ["SST-2 [hub]", "SST-2 [tweets@0badc0]", "SST-2 [tweets@feedfa]"]


def test_teacher_paths_are_compared_per_task(tmp_path):
    for task, metrics in (("rte", {"accuracy": 0.6}), ("mrpc", {"f1": 0.8, "accuracy": 0.7})):
        data = {**HUB_SST2, "location": f"nyu-mll/glue/{task}", "fingerprint": task}
        for size, bonus in (("base", 0.0), ("large", 0.1)):
            scores = {k: v + bonus for k, v in metrics.items()}
            write_run(tmp_path, f"{task}-{size}", 1, scores, task=task, data=data, teacher=f"/t/{task}-{size}")
    header, *rows = md_rows(table_of(tmp_path))
    assert header == ["Method", "teacher", "MRPC (F1/acc)", "RTE", "Avg"]
    assert rows == [["kd+objective/uncertainty", "/t/{task}-base", "80.0/70.0 (n=1)", "60.0 (n=1)", "67.5"],
                    ["kd+objective/uncertainty", "/t/{task}-large", "90.0/80.0 (n=1)", "70.0 (n=1)", "77.5"]]


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

def test_method_label():
    assert report.method_label({"task_name": "rte", "student_num_layers": None}) == "finetune"
    assert report.method_label({"student_num_layers": 2}) == "finetune/2L"
    kd = {"uncertainty_mode": None, "selection_strategy": "none", "rep_alpha": 0.0, "kd_loss": "auto"}
    assert report.method_label(kd) == "kd"
    combined = {**kd, "uncertainty_mode": "hard", "selection_strategy": "entropy", "selection_ratio": 0.1,
                "selection_scope": "epoch", "rep_alpha": 1.0, "strategy": "uncertainty", "kd_loss": "mse"}
    assert report.method_label(combined) == "teacher/hard+data/entropy/r0.1/epoch+objective/uncertainty+mse"


@pytest.fixture
def glue_runs(tmp_path):
    """KD on sst2 (3 seeds), mrpc (2 seeds), mnli (1 seed); entropy selection on sst2 (1 seed); two bad files."""
    root = tmp_path / "runs"
    kd = dict(strategy="none", rep_alpha=0.0)
    for seed, acc in zip((1, 2, 3), (0.80, 0.90, 0.85)):
        write_run(root, f"kd_sst2_s{seed}", seed, {"accuracy": acc}, **kd)
    for seed, (f1, acc) in zip((1, 2), ((0.90, 0.80), (0.86, 0.84))):
        write_run(root, f"kd_mrpc_s{seed}", seed, {"f1": f1, "accuracy": acc}, task="mrpc", data={**HUB_SST2, "fingerprint": "m"}, **kd)
    write_run(root, "kd_mnli_s1", 1, {"accuracy": 0.70, "accuracy_mm": 0.72}, task="mnli", data={**HUB_SST2, "fingerprint": "n"}, **kd)
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
    # Avg = mean of the primary means: sst2 0.85, mrpc (0.88 + 0.82) / 2 = 0.85, mnli 0.71 -> 80.3
    assert rows[0] == ["kd", "85.0 ± 5.0 (n=3)", "88.0 ± 2.8/82.0 ± 2.8 (n=2)", "70.0/72.0 (n=1)", "80.3"]
    assert rows[1] == ["kd+data/entropy/r0.1", "87.5 (n=1)", "–", "–", "87.5*"]
    assert "* Avg over fewer columns than the table shows." in text
    skipped = [line for line in text.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 2
    assert any("broken" in line and "invalid JSON" in line for line in skipped)
    assert any("partial" in line and "missing key 'metrics'" in line for line in skipped)


@pytest.mark.parametrize("record, reason", [
    ({"task": "sst2", "args": {}, "metrics": {"accuracy": "high"}}, "not a finite number"),
    ({"task": "mrpc", "args": {}, "metrics": {"accuracy": 0.8}}, "missing metric(s) f1"),
    ({"args": {}, "metrics": {"accuracy": 0.8}}, "missing key 'task'"),
    ({"task": "sst2", "metrics": {"accuracy": 0.8}}, "missing key 'args'"),
    ([1, 2], "not a JSON object"),
])
def test_unusable_files_give_reasons(tmp_path, record, reason):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(record))
    result = report.read_run(str(path))
    assert isinstance(result, str) and reason in result


def test_csv_and_latex(glue_runs):
    text = table_of(glue_runs, "csv")
    frame = pd.read_csv(io.StringIO(text), comment="#")
    row = frame[(frame.method == "kd") & (frame.task == "sst2") & (frame.metric == "accuracy")].iloc[0]
    assert row["mean"] == pytest.approx(0.85) and row["std"] == pytest.approx(0.05) and row["n"] == 3
    assert row["seeds"] == "1;2;3" and len(row["runs"].split(";")) == 3
    assert pd.isna(frame[(frame.task == "mnli") & (frame.metric == "accuracy_mm")].iloc[0]["std"])
    avg = frame[(frame.method == "kd") & (frame.task == "avg")].iloc[0]
    assert avg["mean"] == pytest.approx((0.85 + 0.85 + 0.71) / 3) and avg["n"] == 3
    assert set(frame.columns) >= {"method", "selection_strategy", "selection_ratio", "task", "data", "metric", "mean", "std", "n"}
    assert text.count("# skipped:") == 2

    latex = table_of(glue_runs, "latex")
    assert latex.startswith(r"\begin{tabular}{lcccc}")
    assert r"kd & 85.0 $\pm$ 5.0 (n=3) & 88.0 $\pm$ 2.8/82.0 $\pm$ 2.8 (n=2) & 70.0/72.0 (n=1) & 80.3 \\" in latex
    assert r"kd+data/entropy/r0.1 & 87.5 (n=1) & – & – & 87.5$^*$ \\" in latex
    assert "% skipped:" in latex and r"\end{tabular}" in latex
    with pytest.raises(ConfigError):
        report.format_report(*report.load_runs([str(glue_runs)]), "html")


def test_row_and_column_order(tmp_path):
    tasks = {"rte": {"accuracy": 0.5}, "cola": {"matthews_correlation": 0.5}, "zzz": {"score": 0.5, "other": 0.5},
             "sst2": {"accuracy": 0.5}}
    methods = {"objective": dict(strategy="uncertainty"), "r0.5": dict(selection_strategy="entropy", selection_ratio=0.5),
               "kd": dict(rep_alpha=0.0, strategy="none"), "r0.05": dict(selection_strategy="entropy", selection_ratio=0.05),
               "finetune": dict(teacher=DROP, uncertainty_mode=DROP, selection_strategy=DROP, selection_ratio=DROP,
                                selection_scope=DROP, strategy=DROP, rep_alpha=DROP, rep_layers=DROP, kd_loss=DROP)}
    for name, args in methods.items():
        for task, metrics in tasks.items():
            write_run(tmp_path, f"{name}-{task}", 1, metrics, task=task, data={**HUB_SST2, "fingerprint": task}, **args)
    header, *rows = md_rows(table_of(tmp_path))
    assert [row[0] for row in rows] == ["finetune/6L", "kd", "kd+data/entropy/r0.05+objective/uncertainty",
                                        "kd+data/entropy/r0.5+objective/uncertainty", "kd+objective/uncertainty"]
    assert header[-5:] == ["CoLA", "SST-2", "RTE", "zzz (other/score)", "Avg"]


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
    kd = dict(strategy="none", rep_alpha=0.0)
    runs, _ = report.load_runs([str(glue_runs)])
    assert report.plot_ratios(runs, str(tmp_path / "none.png")) is None  # one ratio only
    assert not (tmp_path / "none.png").exists()
    for seed in (1, 2):
        for ratio, acc in ((0.3, 0.86), (0.5, 0.88)):
            write_run(glue_runs, f"entropy_r{ratio}_s{seed}", seed, {"accuracy": acc + 0.01 * seed},
                      selection_strategy="entropy", selection_ratio=ratio, **kd)
    plots = tmp_path / "plots" / "deep"
    assert report.main([str(glue_runs), "--plot", str(plots)]) == 0
    assert_png(plots / "methods.png")
    assert_png(plots / "ratio.png")


def dkd_history(steps=4):
    """A log_history as the Trainer keeps it: loss lines with dkd/* values, an eval line, the summary."""
    history = [{"step": s, "epoch": s / 2, "loss": 0.5, "dkd/uncertainty": 0.9 - 0.1 * s, "dkd/kd_weight": 0.5} for s in range(1, steps + 1)]
    return history + [{"step": steps, "eval_accuracy": 0.8}, {"step": steps, "train_runtime": 1.0}]


def test_curves_from_the_training_history(tmp_path, capsys):
    run_a = write_run(tmp_path, "a", 1, {"accuracy": 0.8}, history=dkd_history())
    # an unfinished run: the newest complete checkpoint's trainer_state.json (checkpoint-4 is half written)
    run_b = tmp_path / "b"
    for step, state in ((2, {"log_history": dkd_history(2)}), (4, None)):
        (run_b / f"checkpoint-{step}").mkdir(parents=True)
        if state:
            (run_b / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps(state))
    assert [e["step"] for e in report.read_history(str(run_b))][:2] == [1, 2]
    plots = tmp_path / "plots"
    assert report.main(["--curves", run_a, str(run_b), "--plot", str(plots)]) == 0
    assert_png(plots / "curves.png")

    plain = write_run(tmp_path, "plain", 1, {"accuracy": 0.8}, history=[{"step": 1, "loss": 0.3}])
    with pytest.raises(ConfigError, match="no dkd/\\* values"):
        report.plot_curves([plain], str(tmp_path / "x.png"))
    assert report.main(["--curves", str(tmp_path / "nowhere"), "--plot", str(plots)]) == 2
    assert "neither results.json nor a checkpoint" in capsys.readouterr().err


# --- seeded grids: rows and paired claims (the miniature) ---------------------------------------

def seeded(scores: dict) -> pd.DataFrame:
    """Rows as `report.seeded_rows` gives them: {row: [score of seed 1, 2, 3]} (points)."""
    return pd.DataFrame([{"row": row, "seed": str(seed), "score": score, "seconds": 10.0, "forwards": 100}
                         for row, values in scores.items() for seed, score in enumerate(values, 1)])


def test_claims_are_paired_by_seed_with_a_t_interval():
    rows = seeded({"kd": [80, 82, 84], "alone": [78, 79, 81], "worse": [70, 71, 72], "noisy": [90, 70, 83]})
    claims = [("KD", "kd beats alone", "kd", "alone"), ("KD", "worse beats alone", "worse", "alone"),
              ("KD", "noisy beats alone", "noisy", "alone"), ("KD", "missing row is left out", "absent", "alone")]
    table = report.claims_table(rows, claims).set_index("claim")
    # kd - alone = [2, 3, 3]: mean 2.667, sd 0.577, half width t(0.975, 2) = 4.303 x 0.577 / sqrt(3) = 1.434
    assert table.loc["kd beats alone", "difference (points)"] == "+2.7"
    assert table.loc["kd beats alone", "95% interval"] == "[+1.2, +4.1]"
    assert table.loc["kd beats alone", "verdict"] == "holds"
    assert table.loc["worse beats alone", "verdict"] == "contradicted"  # [-8, -8, -9]
    assert table.loc["noisy beats alone", "verdict"] == "within noise"  # [12, -9, 2]
    assert "missing row is left out" not in table.index and set(table.seeds) == {3}


def test_a_margin_makes_the_claim_non_inferiority():
    # r - base = [-0.5, -0.4, -0.6]: interval [-0.75, -0.25], below 0 but above -1
    rows = seeded({"r": [79.5, 80.6, 81.4], "base": [80, 81, 82], "far": [77, 78, 79]})
    claims = [("3.2", "r beats base", "r", "base"), ("3.2", "r within 1", "r", "base", 1.0), ("3.2", "far within 1", "far", "base", 1.0)]
    verdicts = report.claims_table(rows, claims).set_index("claim").verdict
    assert verdicts.to_dict() == {"r beats base": "contradicted", "r within 1": "holds", "far within 1": "contradicted"}


def test_claims_pair_only_the_seeds_both_rows_ran():
    rows = seeded({"kd": [80, 82, 84], "alone": [78, 79]})
    table = report.claims_table(rows, [("KD", "kd beats alone", "kd", "alone")])
    assert table.seeds.tolist() == [2] and table["difference (points)"].tolist() == ["+2.5"]


def test_rows_table_keeps_the_grid_order_and_the_spread():
    rows = seeded({"b": [80, 82, 84], "a": [70, 70, 70], "once": [75]})
    table = report.rows_table(rows, ["a", "b", "once", "not run"])
    assert table.run.tolist() == ["a", "b", "once"]
    assert table["dev accuracy"].tolist() == ["70.0 ± 0.0 (n=3)", "82.0 ± 2.0 (n=3)", "75.0 (n=1)"]  # one seed: no spread to show


def test_claims_cli_reads_a_miniature_layout(tmp_path, capsys):
    from dynamic_kd.sweeps import MINIATURE_CLAIMS

    for row, scores in (("kd-large", (0.80, 0.82, 0.84)), ("student-alone", (0.78, 0.79, 0.81))):
        for seed, accuracy in enumerate(scores, 1):
            folder = tmp_path / "runs" / row / f"seed{seed}"
            folder.mkdir(parents=True)
            (folder / "results.json").write_text(json.dumps({
                "task": "custom:tweets/train.tsv+dev.tsv", "seed": seed, "metrics": {"accuracy": accuracy, "macro_f1": accuracy - 0.1},
                "args": {"seed": seed, "learning_rate": 2e-4}, "train_runtime_s": 12.0, "teacher_forward_examples": 3000}))
    assert report.main([str(tmp_path / "runs"), "--claims", "miniature"]) == 0
    text = capsys.readouterr().out
    assert "| student-alone | 79.3 ± 1.5 (n=3) |" in text and "| kd-large      | 82.0 ± 2.0 (n=3) |" in text
    claim = next(text for _, text, row, base, *_ in MINIATURE_CLAIMS if (row, base) == ("kd-large", "student-alone"))
    assert claim in text and "holds" in text
    assert report.main([str(tmp_path / "runs"), "--claims", "quickstart"]) == 2  # no rows and claims there


def test_claims_of_two_data_draws_side_by_side(tmp_path, capsys):
    """One RUNS_DIR per draw of the data: per claim, each draw's estimate, interval and verdict."""
    from dynamic_kd.sweeps import MINIATURE_CLAIMS

    draws = {"draw0": ((0.80, 0.82, 0.84), (0.78, 0.79, 0.81)), "draw1": ((0.70, 0.71, 0.72), (0.78, 0.79, 0.80))}
    for draw, (kd, alone) in draws.items():
        for row, scores in (("kd-large", kd), ("student-alone", alone)):
            for seed, accuracy in enumerate(scores, 1):
                folder = tmp_path / draw / "runs" / row / f"seed{seed}"
                folder.mkdir(parents=True)
                (folder / "results.json").write_text(json.dumps({
                    "task": "custom:tweets/train.tsv+dev.tsv", "seed": seed, "metrics": {"accuracy": accuracy},
                    "args": {"seed": seed}, "train_runtime_s": 12.0, "teacher_forward_examples": 3000}))
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
