"""Tests for dynamic_kd.report: reading results.json, aggregation over seeds, tables, figures."""
import csv
import io
import json
import os

import pytest

from dynamic_kd import report
from dynamic_kd.errors import ConfigError


def write_run(root, name, task, seed, metrics, method=None, script="dynamic_data.py", **args):
    """Write `root/name/results.json` like the training scripts do; return the run dir."""
    run_dir = os.path.join(str(root), name)
    os.makedirs(run_dir, exist_ok=True)
    record = {
        "script": script, "task": task, "seed": seed, "metrics": metrics,
        "train_runtime_s": 1.0, "train_examples": 10, "teacher_forward_examples": 5,
        "args": {"task_name": task, "seed": seed, "output_dir": run_dir, **args},
    }
    if method is not None:
        record["method"] = method
    with open(os.path.join(run_dir, "results.json"), "w") as f:
        json.dump(record, f)
    return run_dir


@pytest.fixture
def runs_dir(tmp_path):
    """kd on sst2 (3 seeds), mrpc (2 seeds), mnli (1 seed); a data method (1 seed) on sst2; two bad files."""
    root = tmp_path / "runs"
    for seed, acc in zip((1, 2, 3), (0.80, 0.90, 0.85)):
        write_run(root, f"kd_sst2_s{seed}", "sst2", seed, {"accuracy": acc}, method="kd")
    write_run(root, "kd_mrpc_s1", "mrpc", 1, {"f1": 0.90, "accuracy": 0.80}, method="kd")
    write_run(root, "kd_mrpc_s2", "mrpc", 2, {"f1": 0.86, "accuracy": 0.84}, method="kd")
    write_run(root, "kd_mnli_s1", "mnli", 1, {"accuracy": 0.70, "accuracy_mm": 0.72}, method="kd")
    write_run(root, "data_sst2", "sst2", 1, {"accuracy": 0.875}, method="data/entropy/r0.1",
              selection_strategy="entropy", selection_ratio=0.1)
    bad = root / "broken"
    bad.mkdir(parents=True)
    (bad / "results.json").write_text('{"task": "sst2", "metrics": {"accuracy": 0.')
    partial = root / "partial"
    partial.mkdir()
    (partial / "results.json").write_text(json.dumps({"method": "kd", "task": "sst2", "seed": 4}))
    return root


def test_collect_lists_bad_files_as_skipped(runs_dir, tmp_path):
    runs, skipped = report.collect_runs(str(runs_dir))
    assert len(runs) == 7
    reasons = {os.path.basename(os.path.dirname(p)): r for p, r in skipped}
    assert set(reasons) == {"broken", "partial"}
    assert reasons["broken"].startswith("invalid JSON")
    assert "metrics" in reasons["partial"]


@pytest.mark.parametrize("record, reason", [
    ({"method": "kd", "task": "sst2", "metrics": {"accuracy": "high"}}, "not a finite number"),
    ({"method": "kd", "task": "mrpc", "metrics": {"accuracy": 0.8}}, "missing metric(s) f1"),
    ({"method": "kd", "metrics": {"accuracy": 0.8}}, "missing key 'task'"),
    ({"task": "sst2", "metrics": {"accuracy": 0.8}}, "missing key 'method'"),
    ([1, 2], "not a JSON object"),
])
def test_parse_record_reasons(record, reason):
    result = report.parse_record(record, "x/results.json")
    assert isinstance(result, str) and reason in result


def test_derive_method_from_script_and_args():
    record = {"script": "dynamic_data.py", "task": "sst2", "metrics": {"eval_accuracy": 0.9},
              "args": {"selection_strategy": "entropy", "selection_ratio": 0.1, "seed": 3}}
    run = report.parse_record(record, "x/results.json")
    assert run.method == "data/entropy/r0.1"
    assert run.seed == 3 and run.metrics == {"accuracy": 0.9}


def test_aggregate_means_and_sample_stds(runs_dir):
    groups = report.aggregate(report.collect_runs(str(runs_dir))[0])
    sst2 = groups[("kd", "sst2")]
    assert sst2.stats["accuracy"].mean == pytest.approx(0.85)
    assert sst2.stats["accuracy"].std == pytest.approx(0.05)
    assert sst2.stats["accuracy"].n == 3
    assert report.format_cell(sst2) == "85.0 ± 5.0 (n=3)"

    single = groups[("data/entropy/r0.1", "sst2")]
    assert single.stats["accuracy"].std is None
    assert report.format_cell(single) == "87.5 (n=1)"

    mrpc = groups[("kd", "mrpc")]  # f1 0.90, 0.86 -> 88.0 ± 2.8; acc 0.80, 0.84 -> 82.0 ± 2.8
    assert report.format_cell(mrpc) == "88.0 ± 2.8/82.0 ± 2.8 (n=2)"
    assert mrpc.primary.mean == pytest.approx(0.85)
    assert report.format_cell(groups[("kd", "mnli")]) == "70.0/72.0 (n=1)"

    # Avg = mean over tasks of the primary means: sst2 0.85, mrpc 0.85, mnli 0.71 -> 80.333
    avg, covered = report.method_average(groups, "kd")
    assert avg == pytest.approx((0.85 + 0.85 + 0.71) / 3) and covered == 3


def test_markdown_table(runs_dir):
    runs, skipped = report.collect_runs(str(runs_dir))
    text = report.format_table(report.aggregate(runs), "md", skipped)
    lines = text.splitlines()
    assert lines[0] == "| Method | SST-2 | MRPC (F1/acc) | MNLI (m/mm) | Avg |"
    assert lines[2] == "| kd | 85.0 ± 5.0 (n=3) | 88.0 ± 2.8/82.0 ± 2.8 (n=2) | 70.0/72.0 (n=1) | 80.3 |"
    assert lines[3] == "| data/entropy/r0.1 | 87.5 (n=1) | – | – | 87.5* |"
    assert any(line.startswith("skipped: ") and "broken" in line and "invalid JSON" in line for line in lines)
    assert any(line.startswith("skipped: ") and "partial" in line for line in lines)


def test_csv_and_latex(runs_dir):
    runs, skipped = report.collect_runs(str(runs_dir))
    groups = report.aggregate(runs)
    text = report.format_table(groups, "csv", skipped)
    rows = list(csv.DictReader(io.StringIO("".join(l for l in text.splitlines(True) if not l.startswith("#")))))
    by_key = {(r["method"], r["task"], r["metric"]): r for r in rows}
    row = by_key[("kd", "sst2", "accuracy")]
    assert float(row["mean"]) == pytest.approx(0.85) and float(row["std"]) == pytest.approx(0.05)
    assert row["n"] == "3" and row["seeds"] == "1;2;3" and len(row["runs"].split(";")) == 3
    assert by_key[("kd", "mnli", "accuracy_mm")]["std"] == ""
    assert float(by_key[("kd", "avg", "primary")]["mean"]) == pytest.approx((0.85 + 0.85 + 0.71) / 3)
    assert "# skipped:" in text

    latex = report.format_table(groups, "latex", skipped)
    assert latex.startswith(r"\begin{tabular}{lcccc}")
    assert r"kd & 85.0 $\pm$ 5.0 (n=3) & 88.0 $\pm$ 2.8/82.0 $\pm$ 2.8 (n=2) & 70.0/72.0 (n=1) & 80.3 \\" in latex
    assert r"data/entropy/r0.1 & 87.5 (n=1) & -- & -- & 87.5$^*$ \\" in latex
    assert "% skipped:" in latex and r"\end{tabular}" in latex
    with pytest.raises(ConfigError):
        report.format_table(groups, "html")


def test_row_and_column_order():
    runs = [report.Run(f"{m}/{t}/results.json", m, t, 1, {n: 0.5 for n in report.TASK_METRICS.get(t, ("score",))})
            for m in ("objective/uncertainty", "data/entropy/r0.5", "kd", "data/entropy/r0.05", "finetune/12L-768H")
            for t in ("rte", "cola", "zzz", "sst2")]
    groups = report.aggregate(runs)
    assert report.methods_of(groups) == ["finetune/12L-768H", "kd", "data/entropy/r0.05", "data/entropy/r0.5",
                                         "objective/uncertainty"]
    assert report.tasks_of(groups) == ["cola", "sst2", "rte", "zzz"]


def test_main_writes_out_file_and_returns_codes(runs_dir, tmp_path, capsys):
    out = tmp_path / "nested" / "table.md"
    assert report.main([str(runs_dir), "--out", str(out)]) == 0
    assert "85.0 ± 5.0 (n=3)" in out.read_text()
    assert capsys.readouterr().out == ""
    assert [p.name for p in out.parent.iterdir()] == ["table.md"]  # no temp file left behind

    assert report.main([str(runs_dir), "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("method,task,metric,mean,std,n,seeds,runs")

    assert report.main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "missing" in err

    assert report.main([str(runs_dir), "--curves", str(runs_dir)]) == 2  # --curves without --plot
    assert "--plot" in capsys.readouterr().err


def assert_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data.startswith(report.PNG_SIGNATURE) and len(data) > 1024


def test_plot_methods_and_ratio(runs_dir, tmp_path):
    for seed in (1, 2):
        for ratio, acc in ((0.1, 0.84), (0.3, 0.86), (0.5, 0.88)):
            write_run(runs_dir, f"entropy_r{ratio}_s{seed}", "sst2", seed, {"accuracy": acc + 0.01 * seed},
                      method=f"data/entropy/r{ratio}", selection_strategy="entropy", selection_ratio=ratio)
        write_run(runs_dir, f"random_r0.3_s{seed}", "sst2", seed, {"accuracy": 0.8},
                  method="data/random/r0.3", selection_strategy="random", selection_ratio=0.3)
    plots = tmp_path / "plots" / "deep"
    assert report.main([str(runs_dir), "--plot", str(plots)]) == 0
    assert_png(plots / "methods.png")
    assert_png(plots / "ratio.png")


def test_no_ratio_plot_when_ratios_do_not_vary(runs_dir, tmp_path):
    runs, _ = report.collect_runs(str(runs_dir))
    assert report.plot_ratios(runs, str(tmp_path / "ratio.png")) is None
    assert not (tmp_path / "ratio.png").exists()


def write_events(log_dir, tags, steps=5):
    """A real TensorBoard event file with the given scalar tags."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(log_dir))
    for step in range(steps):
        for i, tag in enumerate(tags):
            writer.add_scalar(tag, 0.1 * i + 0.05 * step, step)
    writer.close()


def test_curves(tmp_path, capsys):
    run_a, run_b = tmp_path / "run_a", tmp_path / "run_b"
    write_events(run_a / "runs" / "Jan01_host", ["train/dkd/small_teacher_weight", "train/dkd/uncertainty", "train/loss"])
    write_events(run_b / "runs" / "Jan02_host", ["train/dkd/small_teacher_weight", "train/loss"])
    curves = report.read_dkd_scalars(str(run_a))
    assert sorted(curves) == ["train/dkd/small_teacher_weight", "train/dkd/uncertainty"]
    assert [s for s, _ in curves["train/dkd/uncertainty"]] == [0, 1, 2, 3, 4]

    plots = tmp_path / "plots"
    assert report.main(["--curves", str(run_a), str(run_b), "--plot", str(plots)]) == 0
    assert_png(plots / "curves.png")

    plain = tmp_path / "plain"
    write_events(plain / "runs", ["train/loss"])
    with pytest.raises(ConfigError, match="plain.*--report_to tensorboard"):
        report.plot_curves([str(plain)], str(tmp_path / "x.png"))
    assert report.main(["--curves", str(plain), "--plot", str(plots)]) == 2
    assert "--report_to tensorboard" in capsys.readouterr().err
