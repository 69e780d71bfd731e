"""DistillationTrainer: teachers stay out of the student, each teacher sees only its rows,
selection reaches the teacher with the right rows, epoch scope plans the real step count."""
import json
import os
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from conftest import FIXTURES, make_tiny_bert
from dynamic_kd.arguments import DataArguments, DistillationArguments, ModelArguments, parse_args
from dynamic_kd.models import build_student, load_tokenizer
from dynamic_kd.recipe import attach_projections, load_data, load_teachers
from dynamic_kd.strategies import build_strategies
from dynamic_kd.metrics import metrics_fn
from dynamic_kd.trainer import DistillationTrainer

import train_teacher
import dynamic_data
import dynamic_teacher
import dynamic_objective

SST2 = os.path.join(FIXTURES, "glue", "sst2")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    base = make_tiny_bert(root / "base", num_layers=4, hidden=32)
    wide = make_tiny_bert(root / "wide", num_layers=4, hidden=48, heads=4)
    common = ["--task_name", "sst2", "--data_dir", SST2, "--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--report_to", "none", "--learning_rate", "1e-3"]
    small, large = str(root / "small"), str(root / "large")
    train_teacher.main(common + ["--model_name_or_path", base, "--student_num_layers", "2", "--output_dir", small])
    train_teacher.main(common + ["--model_name_or_path", wide, "--output_dir", large])
    return {"base": base, "small": small, "large": large}


def student_argv(models, out, *extra):
    return [
        "--model_name_or_path", models["base"], "--student_num_layers", "2", "--task_name", "sst2", "--data_dir", SST2,
        "--output_dir", str(out), "--num_train_epochs", "2", "--per_device_train_batch_size", "8",
        "--report_to", "none", "--learning_rate", "1e-3", "--logging_steps", "1", "--save_strategy", "no", *extra,
    ]


def build_trainer(argv):
    data_args, model_args, kd_args, training_args = parse_args(argv, DataArguments, ModelArguments, DistillationArguments)
    tokenizer = load_tokenizer(model_args.model_name_or_path)
    data = load_data(data_args, tokenizer)
    student = build_student(model_args.model_name_or_path, data_args.task, model_args.student_num_layers)
    teachers = load_teachers(kd_args, data_args, tokenizer, data.train, student.config.num_hidden_layers, training_args=training_args)
    return DistillationTrainer(
        model=attach_projections(student, teachers, kd_args), args=training_args, train_dataset=data.train,
        eval_dataset=data.evals, data_collator=data.collator, processing_class=tokenizer, compute_metrics=metrics_fn(data_args.task),
        teachers=teachers, strategies=build_strategies(kd_args, kd_args.selection_scope == "batch"), kd_args=kd_args, task=data_args.task,
    )


def count_rows(teacher):
    seen = []
    teacher.model.register_forward_hook(lambda module, args, kwargs, out: seen.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    return seen


def first_batch(trainer):
    batch = next(iter(trainer.get_train_dataloader()))
    return {k: v.to(trainer.args.device) for k, v in batch.items()}


def test_hard_mode_queries_each_teacher_on_its_half_only(models, tmp_path):
    trainer = build_trainer(student_argv(models, tmp_path, "--small_teacher", models["small"], "--large_teacher", models["large"], "--uncertainty_mode", "hard", "--teacher_cache", "none"))
    small_rows, large_rows = count_rows(trainer.teachers["small"]), count_rows(trainer.teachers["large"])
    trainer.model.train()
    batch = first_batch(trainer)
    loss = trainer.compute_loss(trainer.model, dict(batch))
    assert small_rows == [4] and large_rows == [4]
    loss.backward()
    assert all(p.grad is None for t in trainer.teachers.values() for p in t.model.parameters())
    assert not any(t.model.training for t in trainer.teachers.values())


def test_selection_sends_only_selected_rows_to_the_teacher(models, tmp_path):
    trainer = build_trainer(student_argv(models, tmp_path, "--teacher", models["small"], "--selection_strategy", "entropy", "--selection_ratio", "0.25", "--teacher_cache", "none"))
    rows = count_rows(trainer.teachers["teacher"])
    trainer.model.train()
    trainer.compute_loss(trainer.model, first_batch(trainer))
    assert rows == [2]  # floor(0.25 * 8)


def test_training_logs_dynamic_quantities_and_keeps_teachers_out(models, tmp_path):
    trainer = build_trainer(student_argv(models, tmp_path, "--small_teacher", models["small"], "--large_teacher", models["large"], "--uncertainty_mode", "soft-instance"))
    before = {n: p.clone() for n, p in trainer.teachers["large"].model.named_parameters()}
    trainer.train()
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert {"dkd/uncertainty", "dkd/small_teacher_weight", "dkd/large_teacher_weight", "dkd/loss_kd", "dkd/loss_ce"} <= logged
    assert not trainer.teachers["large"].model.training
    assert all(torch.equal(before[n], p) for n, p in trainer.teachers["large"].model.named_parameters())
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not optimised & {id(p) for t in trainer.teachers.values() for p in t.model.parameters()}
    # memory cache: every training example reaches each teacher exactly once over 2 epochs
    assert trainer.teacher_forward_examples() == 2 * 32


def test_epoch_scope_trains_on_the_kept_rows_only(models, tmp_path):
    trainer = build_trainer(student_argv(models, tmp_path, "--teacher", models["small"], "--selection_strategy", "entropy", "--selection_ratio", "0.25", "--selection_scope", "epoch", "--per_device_train_batch_size", "4"))
    seen = []
    original = trainer.compute_loss

    def spy(model, inputs, *args, **kwargs):
        if model.training:
            seen.append(inputs["idx"].tolist())
        return original(model, inputs, *args, **kwargs)

    trainer.compute_loss = spy
    trainer.train()
    assert trainer.state.max_steps == 2 * 2  # 8 kept rows / batch 4, 2 epochs
    assert trainer.state.global_step == 4
    per_epoch = [sorted(seen[0] + seen[1]), sorted(seen[2] + seen[3])]
    assert all(len(set(rows)) == 8 for rows in per_epoch)
    assert trainer.teacher_forward_examples() <= 16


def test_end_to_end_each_script_saves_a_plain_student(models, tmp_path):
    runs = {
        "data": (dynamic_data, ["--teacher", models["small"], "--selection_strategy", "margin", "--selection_ratio", "0.5"]),
        "teacher": (dynamic_teacher, ["--small_teacher", models["small"], "--large_teacher", models["large"]]),
        "objective": (dynamic_objective, ["--teacher", models["large"], "--strategy", "uncertainty", "--rep_layers", "all"]),
        "combined": (dynamic_teacher, ["--small_teacher", models["small"], "--large_teacher", models["large"], "--selection_strategy", "entropy", "--selection_ratio", "0.3", "--strategy", "uncertainty", "--kd_rep_alpha", "1"]),
    }
    fresh_keys = set(build_student(models["base"], __import__("dynamic_kd.data", fromlist=["get_task"]).get_task("sst2"), 2).state_dict())
    for name, (script, extra) in runs.items():
        out = tmp_path / name
        script.main(student_argv(models, out, *extra))
        results = json.loads((out / "results.json").read_text())
        assert results["script"] == f"{script.__name__}.py" and 0.0 <= results["metrics"]["accuracy"] <= 1.0
        assert results["teacher_forward_examples"] > 0 and results["train_examples"] == 32
        saved = set(load_file(out / "model.safetensors"))
        assert saved == fresh_keys, name  # no teacher, no projection weights
        reloaded = AutoModelForSequenceClassification.from_pretrained(out)
        assert reloaded.config.num_hidden_layers == 2


def test_selection_ratio_limits_teacher_queries(models, tmp_path):
    out = tmp_path / "r01"
    dynamic_data.main(student_argv(models, out, "--teacher", models["small"], "--selection_strategy", "entropy", "--selection_ratio", "0.125", "--teacher_cache", "none"))
    results = json.loads((out / "results.json").read_text())
    assert results["teacher_forward_examples"] == 2 * 4 * 1  # 2 epochs x 4 batches x floor(0.125 * 8)


def test_mixed_precision_student_and_bf16_teacher(models, tmp_path):
    trainer = build_trainer(student_argv(models, tmp_path, "--teacher", models["small"], "--bf16", "--use_cpu", "--teacher_dtype", "bfloat16", "--selection_strategy", "lc", "--selection_ratio", "0.5"))
    teacher = trainer.teachers["teacher"]
    with torch.no_grad(), teacher.autocast():
        assert teacher.model.bert.embeddings.word_embeddings.weight.dtype == torch.float32
        logits = teacher.model(**{k: v for k, v in first_batch(trainer).items() if k not in ("idx", "labels")}).logits
    assert logits.dtype == torch.bfloat16  # the pass ran in bf16
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    # the store holds fp32 logits whatever the teacher's dtype
    assert trainer.teachers["teacher"].store.rows["logits"].array.dtype == np.float32


def test_cpu_training_prints_no_pin_memory_warning(models, tmp_path):
    trainer = build_trainer(student_argv(models, tmp_path, "--teacher", models["small"], "--num_train_epochs", "1"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
        trainer.evaluate()
    assert not [w for w in caught if "pin_memory" in str(w.message)]
