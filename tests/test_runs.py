"""Tests for dynamic_kd.runs: a run's method label and its reader's name."""

import ast
import glob
import json
import os

from dynamic_kd import runs
from dynamic_kd.strategies import OBJECTIVE_STRATEGIES, TEACHER_MODES


def test_method_label():
    assert runs.method_label({"task_name": "rte", "student_num_layers": None}) == "finetune"
    assert runs.method_label({"student_num_layers": 2}) == "finetune/2L"
    kd = {"uncertainty_mode": None, "selection_strategy": "none", "kd_rep_alpha": 0.0, "kd_loss": "auto"}
    assert runs.method_label(kd) == "kd"
    combined = {
        **kd,
        "uncertainty_mode": "hard",
        "selection_strategy": "entropy",
        "selection_ratio": 0.1,
        "selection_scope": "epoch",
        "kd_rep_alpha": 1.0,
        "strategy": "uncertainty",
        "kd_loss": "mse",
    }
    assert runs.method_label(combined) == "teacher/hard+data/entropy/r0.1/epoch+objective/uncertainty+mse"


def test_method_title_says_what_a_row_is():
    assert runs.method_title("finetune/2L") == "student alone (2 layers)"
    assert runs.method_title("finetune/1L") == "student alone (1 layer)"
    assert runs.method_title("finetune") == "trained alone"
    assert runs.method_title("kd") == "KD"
    assert runs.method_title("kd+objective/none") == "KD + REP (static)"
    assert runs.method_title("teacher/hard+data/entropy/r0.1/epoch+objective/uncertainty+mse") == (
        "hard adoption + entropy selection 10% per epoch + uncertainty-weighted REP + MSE logits"
    )


def test_every_teacher_mode_and_objective_has_a_title():
    assert set(runs.TEACHER_TITLES) == set(TEACHER_MODES)
    assert set(runs.OBJECTIVE_TITLES) == set(OBJECTIVE_STRATEGIES)


def test_nothing_in_the_package_imports_the_report():
    """The report sits on top: the package below it (recipe included) never imports it."""
    package = os.path.dirname(runs.__file__)
    for path in glob.glob(os.path.join(package, "*.py")):
        if os.path.basename(path) == "report.py":
            continue
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            names = [a.name for a in node.names] if isinstance(node, (ast.Import, ast.ImportFrom)) else []
            module = getattr(node, "module", None) or ""
            assert module != "dynamic_kd.report" and "dynamic_kd.report" not in names, path
            assert not (module == "dynamic_kd" and "report" in names), path


def test_results_written_before_the_rename_read_with_the_flags_names(tmp_path):
    args = {"task_name": "sst2", "selection_strategy": "none", "kd_alpha": 2.0, "rep_alpha": 1.0, "strategy": "none"}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"task": "sst2", "seed": 1, "args": args, "metrics": {"eval_accuracy": 0.5}}))
    run = runs.read_run(str(path))
    assert run["method"] == "kd+objective/none"
    assert run["settings"]["kd_kl_alpha"] == "2.0" and "kd_alpha" not in run["settings"]
