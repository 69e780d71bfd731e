"""DistillationTrainer: teachers stay out of the student, each teacher sees only its rows,
selection reaches the teacher with the right rows, epoch scope plans the real step count, the
strategies plan over the global batch (processes x accumulation), NaN/Inf is read at logging steps."""

import glob
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from conftest import FIXTURES, make_tiny_bert
from safetensors.torch import load_file, save_file
from test_reliability import free_port, torchrun
from transformers import AutoModelForSequenceClassification

import dynamic_data
import dynamic_objective
import dynamic_teacher
import train_teacher
from dynamic_kd.arguments import DataArguments, DistillationArguments, ModelArguments, parse_args
from dynamic_kd.metrics import metrics_fn
from dynamic_kd.models import build_student, load_tokenizer, unwrap_student
from dynamic_kd.recipe import attach_projections, close_distributed, load_data, load_teachers
from dynamic_kd.strategies import build_strategies
from dynamic_kd.trainer import DistillationTrainer, TrainingDiverged

SST2 = os.path.join(FIXTURES, "glue", "sst2")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    base = make_tiny_bert(root / "base", num_layers=4, hidden=32)
    wide = make_tiny_bert(root / "wide", num_layers=4, hidden=48, heads=4)
    common = [
        "--task_name",
        "sst2",
        "--data_dir",
        SST2,
        "--num_train_epochs",
        "1",
        "--per_device_train_batch_size",
        "8",
        "--report_to",
        "none",
        "--learning_rate",
        "1e-3",
    ]
    small, large = str(root / "small"), str(root / "large")
    train_teacher.main(common + ["--model_name_or_path", base, "--student_num_layers", "2", "--output_dir", small])
    train_teacher.main(common + ["--model_name_or_path", wide, "--output_dir", large])
    return {"base": base, "small": small, "large": large}


def student_argv(models, out, *extra):
    # One epoch on 32 rows leaves these tiny teachers at chance on the dev fixture, which the
    # teacher check (tested in test_reliability.py) would rightly refuse.
    return [
        "--model_name_or_path",
        models["base"],
        "--student_num_layers",
        "2",
        "--task_name",
        "sst2",
        "--data_dir",
        SST2,
        "--output_dir",
        str(out),
        "--num_train_epochs",
        "2",
        "--per_device_train_batch_size",
        "8",
        "--report_to",
        "none",
        "--learning_rate",
        "1e-3",
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--skip_teacher_check",
        *extra,
    ]


def build_trainer(argv):
    data_args, model_args, kd_args, training_args = parse_args(
        argv, DataArguments, ModelArguments, DistillationArguments
    )
    tokenizer = load_tokenizer(model_args.model_name_or_path)
    data = load_data(data_args, tokenizer)
    student = build_student(model_args.model_name_or_path, data_args.task, model_args.student_num_layers)
    teachers = load_teachers(
        kd_args, data_args, data.train, student.config.num_hidden_layers, training_args=training_args
    )
    return DistillationTrainer(
        model=attach_projections(student, teachers, kd_args),
        args=training_args,
        train_dataset=data.train,
        eval_dataset=data.evals,
        data_collator=data.collator,
        processing_class=tokenizer,
        compute_metrics=metrics_fn(data_args.task),
        teachers=teachers,
        strategies=build_strategies(kd_args, kd_args.selection_scope == "batch"),
        kd_args=kd_args,
        task=data_args.task,
    )


def count_rows(teacher):
    seen = []
    teacher.model.register_forward_hook(
        lambda module, args, kwargs, out: seen.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    return seen


def first_batch(trainer):
    batch = next(iter(trainer.get_train_dataloader()))
    return {k: v.to(trainer.args.device) for k, v in batch.items()}


def test_hard_mode_queries_each_teacher_on_its_half_only(models, tmp_path):
    trainer = build_trainer(
        student_argv(
            models,
            tmp_path,
            "--small_teacher",
            models["small"],
            "--large_teacher",
            models["large"],
            "--uncertainty_mode",
            "hard",
            "--teacher_cache",
            "none",
        )
    )
    small_rows, large_rows = count_rows(trainer.teachers["small"]), count_rows(trainer.teachers["large"])
    trainer.model.train()
    batch = first_batch(trainer)
    loss = trainer.compute_loss(trainer.model, dict(batch))
    assert small_rows == [4] and large_rows == [4]
    loss.backward()
    assert all(p.grad is None for t in trainer.teachers.values() for p in t.model.parameters())
    assert not any(t.model.training for t in trainer.teachers.values())


def test_selection_sends_only_selected_rows_to_the_teacher(models, tmp_path):
    trainer = build_trainer(
        student_argv(
            models,
            tmp_path,
            "--teacher",
            models["small"],
            "--selection_strategy",
            "entropy",
            "--selection_ratio",
            "0.25",
            "--teacher_cache",
            "none",
        )
    )
    rows = count_rows(trainer.teachers["teacher"])
    trainer.model.train()
    trainer.compute_loss(trainer.model, first_batch(trainer))
    assert rows == [2]  # floor(0.25 * 8)


def test_training_logs_dynamic_quantities_and_keeps_teachers_out(models, tmp_path):
    trainer = build_trainer(
        student_argv(
            models,
            tmp_path,
            "--small_teacher",
            models["small"],
            "--large_teacher",
            models["large"],
            "--uncertainty_mode",
            "soft-instance",
        )
    )
    before = {n: p.clone() for n, p in trainer.teachers["large"].model.named_parameters()}
    trainer.train()
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert {
        "dkd/uncertainty",
        "dkd/small_teacher_weight",
        "dkd/large_teacher_weight",
        "dkd/loss_kd",
        "dkd/loss_ce",
    } <= logged
    assert not trainer.teachers["large"].model.training
    assert all(torch.equal(before[n], p) for n, p in trainer.teachers["large"].model.named_parameters())
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not optimised & {id(p) for t in trainer.teachers.values() for p in t.model.parameters()}
    # memory cache: every training example reaches each teacher exactly once over 2 epochs
    assert trainer.teacher_forward_examples() == 2 * 32


def test_epoch_scope_trains_on_the_kept_rows_only(models, tmp_path):
    trainer = build_trainer(
        student_argv(
            models,
            tmp_path,
            "--teacher",
            models["small"],
            "--selection_strategy",
            "entropy",
            "--selection_ratio",
            "0.25",
            "--selection_scope",
            "epoch",
            "--per_device_train_batch_size",
            "4",
        )
    )
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
        "data": (
            dynamic_data,
            ["--teacher", models["small"], "--selection_strategy", "margin", "--selection_ratio", "0.5"],
        ),
        "teacher": (dynamic_teacher, ["--small_teacher", models["small"], "--large_teacher", models["large"]]),
        "objective": (
            dynamic_objective,
            ["--teacher", models["large"], "--strategy", "uncertainty", "--rep_layers", "all"],
        ),
        "combined": (
            dynamic_teacher,
            [
                "--small_teacher",
                models["small"],
                "--large_teacher",
                models["large"],
                "--selection_strategy",
                "entropy",
                "--selection_ratio",
                "0.3",
                "--strategy",
                "uncertainty",
                "--kd_rep_alpha",
                "1",
            ],
        ),
    }
    fresh_keys = set(
        build_student(
            models["base"], __import__("dynamic_kd.data", fromlist=["get_task"]).get_task("sst2"), 2
        ).state_dict()
    )
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
    dynamic_data.main(
        student_argv(
            models,
            out,
            "--teacher",
            models["small"],
            "--selection_strategy",
            "entropy",
            "--selection_ratio",
            "0.125",
            "--teacher_cache",
            "none",
        )
    )
    results = json.loads((out / "results.json").read_text())
    assert results["teacher_forward_examples"] == 2 * 4 * 1  # 2 epochs x 4 batches x floor(0.125 * 8)


def test_mixed_precision_student_and_bf16_teacher(models, tmp_path):
    trainer = build_trainer(
        student_argv(
            models,
            tmp_path,
            "--teacher",
            models["small"],
            "--bf16",
            "--use_cpu",
            "--teacher_dtype",
            "bfloat16",
            "--selection_strategy",
            "lc",
            "--selection_ratio",
            "0.5",
        )
    )
    teacher = trainer.teachers["teacher"]
    with torch.no_grad(), teacher.autocast():
        assert teacher.model.bert.embeddings.word_embeddings.weight.dtype == torch.float32
        logits = teacher.model(**{k: v for k, v in first_batch(trainer).items() if k not in ("idx", "labels")}).logits
    assert logits.dtype == torch.bfloat16  # the pass ran in bf16
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    # the store holds fp32 logits whatever the teacher's dtype
    assert trainer.teachers["teacher"].store.rows["logits"].dtype == np.float32


def test_cpu_training_prints_no_pin_memory_warning(models, tmp_path):
    trainer = build_trainer(student_argv(models, tmp_path, "--teacher", models["small"], "--num_train_epochs", "1"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
        trainer.evaluate()
    assert not [w for w in caught if "pin_memory" in str(w.message)]


# --- the global batch ----------------------------------------------------------------------------
# Strategies plan over per_device_train_batch_size x world size x gradient_accumulation_steps rows.
# With dropout off and plain SGD, every layout of the same global batches must train the same
# student: same rows to the teacher, same loss, same weights (up to float rounding).


def without_dropout(folder, target):
    shutil.copytree(folder, target)
    config = json.loads((target / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (target / "config.json").write_text(json.dumps(config))
    return str(target)


@pytest.fixture(scope="module")
def exact(models, tmp_path_factory):
    """The models, with a dropout-free student base: layouts then differ only by float rounding."""
    return {**models, "base": without_dropout(Path(models["base"]), tmp_path_factory.mktemp("exact") / "base")}


SGD = ["--optim", "sgd", "--max_grad_norm", "0"]  # the update is lr x gradient: weights compare gradients


def step_logs(output_dir, key):
    """`key` of every training logging step, from the last checkpoint's trainer_state.json."""
    last = max(glob.glob(os.path.join(output_dir, "checkpoint-*")), key=lambda path: int(path.rsplit("-", 1)[1]))
    with open(os.path.join(last, "trainer_state.json")) as handle:
        return [entry[key] for entry in json.load(handle)["log_history"] if key in entry]


def assert_close_weights(a, b, atol=1e-6):
    wa, wb = load_file(os.path.join(a, "model.safetensors")), load_file(os.path.join(b, "model.safetensors"))
    assert wa.keys() == wb.keys()
    worst = max((wa[name] - wb[name]).abs().max().item() for name in wa)
    assert worst <= atol, f"weights differ by up to {worst}"


GLOBAL_BATCH_32 = {  # layout: (flags, launched with torchrun)
    "1 process x 32": (["--per_device_train_batch_size", "32"], False),
    # as users launch it (the README's command): no --use_cpu, no --ddp_backend
    "2 processes x 16": (["--per_device_train_batch_size", "16"], True),
    "1 process x 16, accumulation 2": (
        ["--per_device_train_batch_size", "16", "--gradient_accumulation_steps", "2"],
        False,
    ),
}


def run_layouts(exact, tmp_path, flags, layouts) -> dict:
    """{layout: output folder}: dynamic_data.py with `flags` on each layout (flags, launched with torchrun)."""
    runs = {}
    for position, (layout, (extra, ddp)) in enumerate(layouts.items()):
        out = str(tmp_path / f"layout{position}")
        argv = student_argv(exact, out, *flags, *extra)
        if ddp:
            result = torchrun("dynamic_data.py", argv, tmp_path / "torchrun")
            assert result.rc == 0, result.stderr[-4000:]
        else:
            dynamic_data.main(argv)
        runs[layout] = out
    return runs


def test_selection_sees_the_global_batch_on_any_layout(exact, tmp_path):
    """Issue acceptance: entropy r = 0.1 sends k = floor(0.1 x 32) = 3 rows per global batch to the
    teacher on 1 process x 32, 2 processes x 16 and 1 process x 16 with accumulation 2 (before:
    3, 2 and 2 rows per step)."""
    flags = [
        "--teacher",
        exact["small"],
        "--selection_strategy",
        "entropy",
        "--selection_ratio",
        "0.1",
        "--teacher_cache",
        "none",
        "--save_strategy",
        "epoch",
        *SGD,
    ]
    runs = run_layouts(exact, tmp_path, flags, GLOBAL_BATCH_32)
    for layout, out in runs.items():
        results = json.loads(open(os.path.join(out, "results.json")).read())
        assert results["teacher_forward_examples"] == 2 * 3, layout  # 2 epochs x 1 step x k = 3 (no cache)
        assert step_logs(out, "dkd/selected_fraction") == [3 / 32, 3 / 32], layout  # k per global batch
    reference, *others = runs.values()
    for out in others:
        assert step_logs(out, "loss") == pytest.approx(step_logs(reference, "loss"), abs=1e-5)
        assert_close_weights(reference, out)


PARTIAL_LAST_STEP = {  # 20 rows, global batch 16: steps of 16 and 4 rows; layout: (flags, launched with torchrun)
    "1 process x 16": (["--per_device_train_batch_size", "16"], False),
    "2 processes x 8": (["--per_device_train_batch_size", "8"], True),
    "2 processes x 4, accumulation 2": (
        ["--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2"],
        True,
    ),
}


def test_the_last_step_holds_the_rows_that_are_left_on_any_layout(exact, tmp_path):
    """Under DDP accelerate fills an epoch's last global batch with rows from its start (before: 16
    rows planned, 12 of them repeats, against 4); they get no plan slot and no loss."""
    flags = [
        "--teacher",
        exact["small"],
        "--selection_strategy",
        "entropy",
        "--selection_ratio",
        "0.5",
        "--max_train_samples",
        "20",
        "--teacher_cache",
        "none",
        "--save_strategy",
        "epoch",
        *SGD,
    ]
    runs = run_layouts(exact, tmp_path, flags, PARTIAL_LAST_STEP)
    for layout, out in runs.items():
        results = json.loads(open(os.path.join(out, "results.json")).read())
        assert results["teacher_forward_examples"] == 2 * (8 + 2), layout  # per epoch: k = 8 of 16 rows, then 2 of 4
        assert len(step_logs(out, "loss")) == 4, layout
    reference, *others = runs.values()
    for out in others:
        assert step_logs(out, "loss") == pytest.approx(step_logs(reference, "loss"), abs=1e-5)
        assert_close_weights(reference, out)


def spy_queries(trainer):
    """{(optimizer step, teacher): sorted example ids sent to it} over a training run."""
    seen = {}
    for name, teacher in trainer.teachers.items():

        def query(inputs, rows, idx, hidden="none", name=name, original=teacher.query):
            seen.setdefault((trainer.state.global_step, name), []).extend(idx[rows].tolist())
            return original(inputs, rows, idx, hidden)

        teacher.query = query
    return seen


ACCUMULATION_CASES = {
    "selection + hard + objective": [
        "--small_teacher",
        "small",
        "--large_teacher",
        "large",
        "--uncertainty_mode",
        "hard",
        "--selection_strategy",
        "entropy",
        "--selection_ratio",
        "0.3",
        "--strategy",
        "uncertainty",
        "--kd_rep_alpha",
        "1",
    ],
    "soft adoption": ["--small_teacher", "small", "--large_teacher", "large", "--uncertainty_mode", "soft"],
    "plain KD (no pre-pass)": ["--teacher", "small"],
    "random selection (no pre-pass)": [
        "--teacher",
        "small",
        "--selection_strategy",
        "random",
        "--selection_ratio",
        "0.2",
    ],
}


@pytest.mark.parametrize("case", list(ACCUMULATION_CASES))
def test_accumulation_trains_the_student_one_big_batch_trains(case, exact, tmp_path):
    # 32 rows: batches of 20 make steps of 20 and 12 rows; micro-batches of 10 x 2 make the same
    # steps from [10, 10] and [10, 2] rows (unequal shares of the second step's 12 rows).
    flags = [exact.get(value, value) for value in ACCUMULATION_CASES[case]] + ["--teacher_cache", "none", *SGD]
    trainers, queries = {}, {}
    for layout, extra in {
        "big": ["--per_device_train_batch_size", "20"],
        "accumulated": ["--per_device_train_batch_size", "10", "--gradient_accumulation_steps", "2"],
    }.items():
        transformers.set_seed(5)  # the same student head (and projections) for both layouts
        trainers[layout] = build_trainer(student_argv(exact, tmp_path / layout, *flags, *extra))
        queries[layout] = spy_queries(trainers[layout])
        trainers[layout].train()
    big, accumulated = trainers["big"], trainers["accumulated"]
    assert big.state.global_step == accumulated.state.global_step == 4
    assert {key: sorted(ids) for key, ids in queries["big"].items()} == {
        key: sorted(ids) for key, ids in queries["accumulated"].items()
    }
    losses = [[entry["loss"] for entry in t.state.log_history if "loss" in entry] for t in (big, accumulated)]
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    for (name, a), b in zip(big.model.named_parameters(), accumulated.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_accumulation_prepass_sees_the_logits_the_loss_uses(models, tmp_path):
    """With dropout on, the pre-pass replays each micro-batch's RNG state: its logits are bitwise
    those of the training forward, and a second training forward of the same batch differs."""
    trainer = build_trainer(
        student_argv(
            models,
            tmp_path,
            "--teacher",
            models["small"],
            "--selection_strategy",
            "entropy",
            "--selection_ratio",
            "0.25",
            "--gradient_accumulation_steps",
            "2",
            "--max_steps",
            "2",
        )
    )
    forwards = []
    unwrap_student(trainer.model).register_forward_hook(
        lambda module, args, out: forwards.append((torch.is_grad_enabled(), out.logits.detach().clone()))
    )
    trainer.train()
    # per step: two no-grad pre-pass forwards, then the two training forwards
    assert [grad for grad, _ in forwards] == [False, False, True, True] * 2
    for start in (0, 4):
        for micro in range(2):
            assert torch.equal(forwards[start + micro][1], forwards[start + 2 + micro][1])
    trainer.model.train()
    batch = {k: v for k, v in first_batch(trainer).items() if k not in ("idx", "labels")}
    with torch.no_grad():
        assert not torch.equal(trainer.model(**batch).logits, trainer.model(**batch).logits)  # dropout is on


def test_one_row_last_batch_in_hard_mode_keeps_the_full_kd_weight(models, tmp_path):
    # 33 rows in batches of 8: the last batch holds one row; it goes to the small teacher with
    # weight alpha_small + alpha_large = 0.5 + 0.5 (before: 0.5, half the KD weight of every other step).
    data = tmp_path / "data"
    shutil.copytree(SST2, data)
    with open(data / "train.tsv", "a") as handle:
        handle.write("a good film\t1\n")
    argv = student_argv(
        models,
        tmp_path / "out",
        "--small_teacher",
        models["small"],
        "--large_teacher",
        models["large"],
        "--uncertainty_mode",
        "hard",
        "--num_train_epochs",
        "1",
    )
    trainer = build_trainer([*argv, "--data_dir", str(data)])
    trainer.train()
    steps = [entry for entry in trainer.state.log_history if "dkd/small_teacher_weight" in entry]
    assert len(steps) == 5
    assert steps[-1]["dkd/small_teacher_weight"] == pytest.approx(1.0) and steps[-1]["dkd/large_teacher_weight"] == 0.0
    assert all(s["dkd/small_teacher_weight"] + s["dkd/large_teacher_weight"] == pytest.approx(1.0) for s in steps)


# --- epoch scope under DDP ---------------------------------------------------------------------


def _epoch_selection_rank(rank, world, port, argv, result_dir):
    """One rank of a gloo job: select at epoch start with scores that differ between ranks."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
    )
    torch.set_num_threads(1)
    transformers.set_seed(5)
    trainer = build_trainer(argv)
    gathered = trainer.score_training_set("entropy", 0)
    # Ranks may rank rows differently (another device, other kernels); here rank 1's order is reversed.
    trainer.score_training_set = lambda strategy, epoch: gathered * (1 - 2 * rank)
    trainer.epoch_selection.on_epoch_begin(trainer.args, trainer.state, trainer.control)
    trained = [row for batch in trainer.get_train_dataloader() for row in batch["idx"].tolist()]
    torch.save(
        {"scores": gathered, "positions": trainer.epoch_selection.positions, "trained": trained},
        os.path.join(result_dir, f"rank{rank}.pt"),
    )
    close_distributed()


def test_epoch_scope_under_ddp_trains_every_rank_on_rank_zeros_selection(models, tmp_path):
    argv = student_argv(
        models,
        tmp_path / "out",
        "--teacher",
        models["small"],
        "--selection_strategy",
        "entropy",
        "--selection_ratio",
        "0.25",
        "--selection_scope",
        "epoch",
        "--per_device_train_batch_size",
        "4",
        "--ddp_backend",
        "gloo",
        "--use_cpu",
    )
    context = torch.multiprocessing.start_processes(
        _epoch_selection_rank, args=(2, free_port(), argv, str(tmp_path)), nprocs=2, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + 900  # only stops a deadlock; two spawned ranks take a minute or two on a busy machine
    while not context.join(timeout=2):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the two ranks did not finish")
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    # sharded scoring: both ranks hold the same [N] scores, those one process computes alone
    transformers.set_seed(5)
    alone = build_trainer(student_argv(models, tmp_path / "alone", "--teacher", models["small"]))
    assert torch.equal(ranks[0]["scores"], ranks[1]["scores"])
    assert torch.allclose(ranks[0]["scores"], alone.score_training_set("entropy", 0), atol=1e-5)
    # every rank keeps rank 0's choice (the 8 highest scores), and between them they train on it once
    chosen = torch.sort(ranks[0]["scores"], descending=True, stable=True).indices[:8]
    assert torch.equal(ranks[0]["positions"], chosen) and torch.equal(ranks[1]["positions"], chosen)
    trained = ranks[0]["trained"] + ranks[1]["trained"]
    assert sorted(trained) == sorted(alone.train_dataset.select(chosen.tolist())["idx"])


# --- divergence --------------------------------------------------------------------------------


def nan_teacher(source, target):
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoint-*", "results.json"))
    state = load_file(os.path.join(target, "model.safetensors"))
    state["classifier.weight"] = torch.full_like(state["classifier.weight"], float("nan"))
    save_file(state, os.path.join(target, "model.safetensors"), metadata={"format": "pt"})
    return str(target)


@pytest.mark.parametrize("logging_steps, stopped_at", [(3, 3), (100, 8)])
def test_nan_loss_is_read_at_logging_steps_and_names_the_first_step(logging_steps, stopped_at, models, tmp_path):
    """The NaN/Inf record stays on the device: the run stops at the next logging step (or the end
    of training), and the message names the first step whose loss was not finite."""
    teacher = nan_teacher(models["small"], tmp_path / "nan")
    trainer = build_trainer(
        student_argv(models, tmp_path / "out", "--teacher", teacher, "--logging_steps", str(logging_steps))
    )
    with pytest.raises(
        TrainingDiverged, match=r"^loss is nan at step 1 \(ce [0-9.]+, kd nan, rep 0, .*; lower --learning_rate"
    ):
        trainer.train()
    assert trainer.state.global_step == stopped_at  # 4 steps per epoch, 2 epochs


def _unit(x, dim=-1):
    return x / x.norm(dim=dim, keepdim=True)


@pytest.mark.parametrize(
    "rep_layers, teacher, normalization, padding",
    [
        ("cls", "small", "hidden", False),
        ("all", "large", "hidden", False),
        ("all", "large", "sequence", False),
        ("all", "large", "hidden", True),
        ("all", "small", "sequence", True),
    ],
)
def test_rep_term_per_row_by_hand(models, tmp_path, rep_layers, teacher, normalization, padding):
    """`_rep` gives, per selected row, sum over layer pairs of the mean over real tokens and hidden
    units of the squared difference of unit-normalised states (the large teacher is wider: the
    student's states go through the learned projection first); --rep_normalization sequence
    normalises each hidden unit over the row's real tokens instead; --rep_include_padding counts
    the batch's padding positions as tokens (the released code)."""
    trainer = build_trainer(
        student_argv(
            models,
            tmp_path,
            "--teacher",
            models[teacher],
            "--kd_rep_alpha",
            "1",
            "--rep_layers",
            rep_layers,
            "--rep_normalization",
            normalization,
            *(["--rep_include_padding"] if padding else []),
        )
    )
    batch = first_batch(trainer)
    if padding:  # the rows below must hold padding, or including it changes nothing
        assert not batch["attention_mask"][[0, 3, 5]].bool().all()
    idx, inputs = batch.pop("idx"), {k: v for k, v in batch.items() if k != "labels"}
    model = trainer.model.eval()
    rows = torch.tensor([0, 3, 5])
    with torch.no_grad():
        student_states = model(**inputs, output_hidden_states=True).hidden_states
        _, teacher_states = trainer.teachers["teacher"].query(inputs, rows, idx, rep_layers)
        rep = trainer._rep(model, student_states, teacher_states, inputs["attention_mask"], rows, "teacher")
        full_teacher = (
            trainer.teachers["teacher"]
            .model(**{k: v[rows] for k, v in inputs.items()}, output_hidden_states=True)
            .hidden_states
        )
    projection = model.projections["teacher"] if hasattr(model, "projections") else torch.nn.Identity()
    pairs = trainer.layer_pairs["teacher"]
    assert pairs == [(0, 0), (1, 1), (2, 2)] if teacher == "small" else [(0, 0), (1, 2), (2, 4)]
    expected = []
    for position, row in enumerate(rows.tolist()):
        real = inputs["attention_mask"][row].bool() if rep_layers == "all" else torch.tensor([True])
        if padding:
            real = torch.ones_like(real)
        total = 0.0
        for s, t in pairs:
            student = projection(student_states[s][row])[: len(real)][real]
            teacher_h = full_teacher[t][position][: len(real)][real]
            dim = 0 if normalization == "sequence" else -1  # [tokens, H]: along the tokens, or the hidden units
            # mean over tokens x hidden units
            total += (_unit(student, dim) - _unit(teacher_h, dim)).pow(2).mean().item()
        expected.append(total)
    assert rep.shape == (3,)
    assert rep.tolist() == pytest.approx(expected, rel=1e-5, abs=1e-7)


def _no_dropout(model):
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


@pytest.mark.parametrize(
    "flags",
    [
        ("--teacher", "large", "--strategy", "uncertainty", "--kd_rep_alpha", "1"),
        ("--small_teacher", "small", "--large_teacher", "large", "--uncertainty_mode", "soft"),
    ],
)
def test_uncertainty_grad_back_propagates_through_the_weights(models, tmp_path, flags):
    """--uncertainty_grad: the student's gradient is that of the loss written with u = H(p_s)/log C
    a function of the student's logits (the released code); without it, u is a constant."""
    from dynamic_kd.losses import kd_kl, supervised_loss
    from dynamic_kd.uncertainty import normalized_entropy

    flags = [models.get(flag, flag) for flag in flags]
    grads = {}
    for differentiable in (True, False):
        torch.manual_seed(0)  # the same student head in both runs
        trainer = build_trainer(
            student_argv(
                models, tmp_path, *flags, "--teacher_cache", "none", *(["--uncertainty_grad"] if differentiable else [])
            )
        )
        model = _no_dropout(trainer.model.train())
        with torch.no_grad():  # a student away from the uniform prediction, where du/dlogits ~ 0
            for name, parameter in model.named_parameters():
                if "classifier" in name:
                    parameter.mul_(30)
        batch = first_batch(trainer)
        trainer.compute_loss(model, dict(batch)).backward()
        grads[differentiable] = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    idx, labels = batch.pop("idx"), batch.pop("labels")
    rows = torch.arange(len(labels))
    outputs = model(**batch, output_hidden_states=True)
    logits = outputs.logits
    u = normalized_entropy(logits, differentiable=True)
    loss = supervised_loss(logits, labels, regression=False)
    for name, teacher in trainer.teachers.items():
        teacher_logits, states = teacher.query(batch, rows, idx, trainer.rep_mode)
        kd = kd_kl(logits, teacher_logits, reduction="none")
        if name == "teacher":  # the uncertainty objective: (1 - u) KD + u REP
            rep = trainer._rep(model, outputs.hidden_states, states, batch["attention_mask"], rows, name)
            loss = loss + ((1 - u) * kd + u * rep).mean()
        else:  # soft adoption: mean u on the small teacher, 1 - mean u on the large
            share = u.mean() if name == "small" else 1 - u.mean()
            loss = loss + share * kd.mean()
    loss.backward()
    by_hand = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(by_hand) == len(grads[True])
    for hand, flagged in zip(by_hand, grads[True]):
        torch.testing.assert_close(flagged, hand, rtol=1e-4, atol=1e-6)
    assert any(not torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(grads[True], grads[False]))


def test_teacher_dropout_runs_teachers_in_train_mode(models, tmp_path):
    """--teacher_dropout: every forward draws new dropout (the released teachers); default: eval mode."""
    for dropout in (True, False):
        trainer = build_trainer(
            student_argv(
                models,
                tmp_path,
                "--teacher",
                models["large"],
                "--teacher_cache",
                "none",
                *(["--teacher_dropout"] if dropout else []),
            )
        )
        teacher = trainer.teachers["teacher"]
        assert teacher.model.config.hidden_dropout_prob > 0
        batch = first_batch(trainer)
        idx, rows = batch.pop("idx"), torch.arange(4)
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        first, _ = teacher.query(inputs, rows, idx)
        second, _ = teacher.query(inputs, rows, idx)
        assert teacher.model.training == dropout
        assert torch.equal(first, second) != dropout


def test_label_smoothing_reaches_the_gold_label_term(models, tmp_path):
    """--label_smoothing_factor smooths the CE of students and of teachers (train_teacher.py's trainer)."""
    from dynamic_kd.losses import supervised_loss

    for argv in (
        student_argv(
            models, tmp_path, "--teacher", models["small"], "--kd_kl_alpha", "0", "--label_smoothing_factor", "0.2"
        ),
        [
            "--model_name_or_path",
            models["base"],
            "--task_name",
            "sst2",
            "--data_dir",
            SST2,
            "--output_dir",
            str(tmp_path / "t"),
            "--report_to",
            "none",
            "--label_smoothing_factor",
            "0.2",
        ],
    ):
        if "--teacher" in argv:
            trainer = build_trainer(argv)
        else:
            data_args, model_args, training_args = parse_args(argv, DataArguments, ModelArguments)
            tokenizer = load_tokenizer(model_args.model_name_or_path)
            data = load_data(data_args, tokenizer)
            trainer = DistillationTrainer(
                model=build_student(model_args.model_name_or_path, data_args.task),
                args=training_args,
                train_dataset=data.train,
                data_collator=data.collator,
                processing_class=tokenizer,
                task=data_args.task,
            )
        batch = first_batch(trainer)
        trainer.model.eval()  # no dropout: the same logits twice
        with torch.no_grad():
            loss = trainer.compute_loss(trainer.model, dict(batch))
            logits = trainer.model(**{k: v for k, v in batch.items() if k not in ("idx", "labels")}).logits
        labels = batch["labels"]
        p = torch.softmax(logits.float(), dim=-1)
        # ε = 0.2, C = 2: -(1 - ε) log p_y - (ε / C) Σ_c log p_c
        by_hand = -(0.8 * p.gather(1, labels[:, None]).squeeze(1).log() + 0.1 * p.log().sum(dim=-1)).mean()
        assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
        assert loss.item() != pytest.approx(supervised_loss(logits, labels, False).item(), rel=1e-4)


def test_epoch_scope_shuffles_with_data_seed(models, tmp_path):
    argv = student_argv(
        models,
        tmp_path,
        "--teacher",
        models["small"],
        "--selection_strategy",
        "entropy",
        "--selection_ratio",
        "0.5",
        "--selection_scope",
        "epoch",
    )
    assert build_trainer(argv).epoch_selection.seed == 42  # --seed's default
    assert build_trainer(argv + ["--data_seed", "7"]).epoch_selection.seed == 7
