"""The teacher check (dynamic_kd.teachers.stored_teacher_scores) is paid once per teacher and dev data."""

import json
import os

import pytest
from conftest import FIXTURES, make_tiny_bert

import dynamic_data
from dynamic_kd import teachers

SST2 = os.path.join(FIXTURES, "glue", "sst2")


@pytest.fixture
def scored(monkeypatch):
    """The teachers `score_teachers` runs forward passes for, one list per call."""
    calls = []
    score = teachers.score_teachers

    def counting(models, *args, **kwargs):
        calls.append(sorted(models))
        return score(models, *args, **kwargs)

    monkeypatch.setattr(teachers, "score_teachers", counting)
    return calls


def distil(base, teacher, output_dir, *extra):
    dynamic_data.main(
        [
            "--model_name_or_path",
            base,
            "--student_num_layers",
            "1",
            "--task_name",
            "sst2",
            "--data_dir",
            SST2,
            "--teacher",
            teacher,
            "--output_dir",
            str(output_dir),
            "--max_steps",
            "1",
            "--per_device_train_batch_size",
            "8",
            "--per_device_eval_batch_size",
            "16",
            "--save_strategy",
            "no",
            "--report_to",
            "none",
            "--disable_tqdm",
            "true",
            "--skip_teacher_check",
            *extra,
        ]
    )
    with open(os.path.join(output_dir, "results.json")) as handle:
        return json.load(handle)["teacher_metrics"]


def test_a_shared_store_keeps_the_teacher_check_and_a_changed_teacher_is_checked_again(tmp_path, scored):
    base = make_tiny_bert(tmp_path / "base", num_layers=1)
    teacher = make_tiny_bert(tmp_path / "teacher", num_layers=1, seed=1)
    store = ["--teacher_cache", "disk", "--teacher_cache_dir", str(tmp_path / "store")]
    first = distil(base, teacher, tmp_path / "a", *store)
    assert scored == [["teacher"]]
    selection = ["--selection_strategy", "entropy", "--selection_ratio", "0.5"]
    assert distil(base, teacher, tmp_path / "b", *store, *selection) == first
    assert scored == [["teacher"]]  # the second run read the scores: no teacher forward for the check
    assert distil(base, teacher, tmp_path / "c", "--teacher_cache", "memory") == first
    assert scored == [["teacher"]] * 2  # a run without the shared store scores its teacher itself

    make_tiny_bert(tmp_path / "teacher", num_layers=1, seed=2)  # re-trained in place: other weights
    distil(base, teacher, tmp_path / "d", *store)
    assert scored == [["teacher"]] * 3
    distil(base, teacher, tmp_path / "e", *store, "--max_eval_samples", "8")  # other dev data: scored again
    assert scored == [["teacher"]] * 4


def test_a_check_that_cannot_be_kept_costs_the_next_run_not_this_one(tmp_path, scored, monkeypatch):
    base = make_tiny_bert(tmp_path / "base", num_layers=1)
    teacher = make_tiny_bert(tmp_path / "teacher", num_layers=1, seed=1)
    real_write = teachers.write_atomic

    def full_disk(path, text):
        if path.endswith("scores.json"):
            raise OSError(28, "No space left on device")
        return real_write(path, text)

    monkeypatch.setattr(teachers, "write_atomic", full_disk)
    metrics = distil(
        base, teacher, tmp_path / "a", "--teacher_cache", "disk", "--teacher_cache_dir", str(tmp_path / "s")
    )
    assert metrics["teacher"] and scored == [["teacher"]]  # scored once, and the run finished
