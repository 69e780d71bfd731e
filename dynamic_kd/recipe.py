"""The recipe the entry points share. A run is finished once its `results.json` exists (written last, atomically);
a folder without one resumes from its latest complete checkpoint; `--overwrite_output_dir` replaces a finished one."""

import gc
import json
import logging
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field

import torch
import torch.distributed as dist
import transformers
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import sort_checkpoints

from dynamic_kd.arguments import DataArguments, DistillationArguments, ModelArguments, parse_args
from dynamic_kd.cache import read_json
from dynamic_kd.data import data_source, load_splits
from dynamic_kd.errors import ConfigError
from dynamic_kd.files import write_atomic
from dynamic_kd.metrics import metric_names, metrics_fn
from dynamic_kd.models import (
    align_pad_token,
    attach_projections,
    build_student,
    check_hidden_sizes,
    load_tokenizer,
    refuse_decoder_student,
    takes_token_type_ids,
    unwrap_student,
    usable_positions,
)
from dynamic_kd.runs import RESULTS_FILE, method_label
from dynamic_kd.strategies import build_strategies
from dynamic_kd.teachers import (
    TeacherInputs,
    check_teachers,
    foreign_teachers,
    load_teacher_models,
    load_teachers,
    stored_teacher_scores,
)
from dynamic_kd.tokenization import make_collator, tokenize_splits, tokenized_cache_dir, tokenizer_fingerprint
from dynamic_kd.trainer import DistillationTrainer, TrainingDiverged

logger = logging.getLogger("dynamic_kd")


def cli(main) -> int:
    """Run `main()`; a user mistake (exit 2) or a diverged run (exit 3) is one line on stderr."""
    code = 1
    try:
        main()
        code = 0
    except (ConfigError, TrainingDiverged) as error:
        print(f"error: {error}", file=sys.stderr)
        code = 2 if isinstance(error, ConfigError) else 3
    finally:
        close_distributed(clean=code == 0)
    return code


def close_distributed(clean: bool = True):
    """Leave the process group (a bare gloo teardown aborts ~1 run in 5), at a barrier only after a clean run: a
    failing rank's peers may wait in a collective it never joins (torchrun stops them)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if clean:
            dist.barrier()
    finally:
        gc.collect()  # the trainer and its callbacks form reference cycles around the DDP model
        dist.destroy_process_group()


@dataclass
class Run:
    script: str
    output_dir: str
    resume_from: str | None
    stale_checkpoints: tuple = ()  # a finished run's, removed once training starts


def start_run(script: str, training_args) -> Run:
    """Set up logging, refuse a finished --output_dir, find the checkpoint to resume from."""
    main_process = training_args.process_index == 0
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.INFO if main_process else logging.WARNING,
        force=True,
    )
    transformers.logging.set_verbosity_warning()
    output_dir = training_args.output_dir
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ConfigError(f"--output_dir {output_dir} is a file; pass a folder (it is created if missing)")
    finished = os.path.join(output_dir, RESULTS_FILE)
    if os.path.exists(finished):
        if not training_args.overwrite_output_dir:
            raise ConfigError(
                f"--output_dir {output_dir} already holds a finished {RESULTS_FILE}; "
                "choose another --output_dir or pass --overwrite_output_dir"
            )
        if main_process:
            logger.warning("--overwrite_output_dir: training anew; %s is replaced when this run finishes", finished)
        stale = tuple(sort_checkpoints(output_dir))
        return Run(os.path.basename(script), output_dir, None, stale)
    resume_from = last_complete_checkpoint(output_dir)
    if resume_from is not None:
        logger.warning("Resuming from checkpoint %s", resume_from)
    return Run(os.path.basename(script), output_dir, resume_from)


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest checkpoint whose trainer_state.json (the Trainer's last file) reads (not killed while saving)."""
    for checkpoint in reversed(sort_checkpoints(output_dir)):
        if read_json(os.path.join(checkpoint, TRAINER_STATE_NAME)) is not None:
            return checkpoint
        logger.warning("ignoring %s: it has no %s (killed while saving)", checkpoint, TRAINER_STATE_NAME)
    return None


def load_student(model_args: ModelArguments, task, seed: int):
    """The tokenizer and a K-layer model with a new head (seeded)."""
    name = model_args.model_name_or_path
    tokenizer = load_tokenizer(name)
    transformers.set_seed(seed)
    model = build_student(name, task, model_args.student_num_layers, model_args.student_layer_init)
    align_pad_token(tokenizer, model.config, "--model_name_or_path")
    return tokenizer, model


@dataclass
class Data:
    train: object
    evals: dict
    collator: object
    teacher_inputs: dict = field(default_factory=dict)  # {name: TeacherInputs} of foreign teachers


def load_data(data_args: DataArguments, tokenizer, models=(), foreign: dict | None = None) -> Data:
    """Tokenised splits and the collator; rows carry token_type_ids iff one of `models` uses them. `foreign`:
    {teacher: (tokenizer, model)}, tokenising the train and first eval split once per distinct tokenizer."""
    task = data_args.task
    splits = load_splits(task, data_args.data_dir, data_args.train_file, data_args.validation_file)
    check_split, cache_dir = task.eval_splits[0], tokenized_cache_dir()
    limits = (data_args.pad_to_max_length, data_args.max_train_samples, data_args.max_eval_samples)

    def tokenize(splits, tokenizer, max_seq_length, token_type_ids):
        return tokenize_splits(splits, task, tokenizer, max_seq_length, *limits, token_type_ids, cache_dir=cache_dir)

    token_type_ids = any(takes_token_type_ids(model) for model in models) if models else None
    tokenized = tokenize(splits, tokenizer, data_args.max_seq_length, token_type_ids)
    evals = {name: tokenized[name].remove_columns("idx") for name in task.eval_splits}
    data = Data(tokenized["train"], evals, make_collator(tokenizer, data_args.pad_to_max_length))
    done = {}
    for name, (teacher_tokenizer, model) in (foreign or {}).items():
        limit = usable_positions(model, teacher_tokenizer)
        length = data_args.max_seq_length if limit is None else min(data_args.max_seq_length, limit)
        segments = takes_token_type_ids(model)
        key = (tokenizer_fingerprint(teacher_tokenizer), length, segments)
        if key not in done:
            own = tokenize(
                {"train": splits["train"], check_split: splits[check_split]}, teacher_tokenizer, length, segments
            )
            collator = make_collator(teacher_tokenizer, data_args.pad_to_max_length)
            done[key] = TeacherInputs(own["train"], collator, own[check_split].remove_columns("idx"), length)
        data.teacher_inputs[name] = done[key]
    return data


def train_and_save(run: Run, model, tokenizer, data: Data, task, args: list, teacher_metrics=None, **distillation):
    """Train (or resume), evaluate, save the plain student, then results.json; `args`: `parse_args`' groups."""
    data_args, training_args = args[0], args[-1]
    trainer = DistillationTrainer(
        model=model,
        args=training_args,
        train_dataset=data.train,
        eval_dataset=data.evals,
        data_collator=data.collator,
        processing_class=tokenizer,
        compute_metrics=metrics_fn(task),
        task=task,
        **distillation,
    )
    if trainer.is_world_process_zero():
        # only now: a run stopped by a bad flag leaves the finished folder as it was
        for path in run.stale_checkpoints:
            shutil.rmtree(path, ignore_errors=True)
    train_output = trainer.train(resume_from_checkpoint=run.resume_from)
    metrics = {}
    for position, split in enumerate(task.eval_splits):
        suffix = "" if position == 0 else ("_mm" if split == "validation_mismatched" else f"_{split}")
        scores = trainer.evaluate(eval_dataset=data.evals[split], metric_key_prefix="eval")
        metrics.update({name + suffix: float(scores[f"eval_{name}"]) for name in metric_names(task)})
    forwards = trainer.teacher_forward_examples()
    if not trainer.is_world_process_zero():
        return
    student = unwrap_student(trainer.accelerator.unwrap_model(trainer.model))
    student.save_pretrained(run.output_dir)
    tokenizer.save_pretrained(run.output_dir)
    flat_args = {}
    for group in args:
        flat_args.update(group.to_dict() if hasattr(group, "to_dict") else asdict(group))
    results = {
        "script": run.script,
        "task": task.name,
        "seed": training_args.seed,
        "method": method_label(flat_args),
        "metrics": metrics,
        "train_runtime_s": float(train_output.metrics["train_runtime"]),
        "train_examples": len(data.train),
        "teacher_forward_examples": forwards,
        "peak_gpu_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "args": flat_args,
        "data": data_source(task, data_args.data_dir, data_args.train_file, data_args.validation_file),
        "log_history": trainer.state.log_history,
    }
    if teacher_metrics is not None:
        results["teacher_metrics"] = teacher_metrics
    if training_args.load_best_model_at_end:  # `metrics` score this checkpoint's student
        results["best_model_checkpoint"] = trainer.state.best_model_checkpoint
    write_atomic(os.path.join(run.output_dir, RESULTS_FILE), json.dumps(results, indent=2, sort_keys=True, default=str))
    summary = f"{run.script} {task.name}: {metrics} (teacher forwards: {forwards})"
    logger.info("%s -> %s", summary, run.output_dir)


def distill(argv, script: str, defaults: dict | None = None):
    """The distillation recipe; the `dynamic_*.py` scripts are presets of it."""
    args = parse_args(argv, DataArguments, ModelArguments, DistillationArguments, defaults=defaults)
    data_args, model_args, kd_args, training_args = args
    run = start_run(script, training_args)
    task = data_args.task
    tokenizer, student = load_student(model_args, task, training_args.seed)
    refuse_decoder_student(student, model_args.model_name_or_path)
    # Models and flags are checked before the data is tokenised (minutes on MNLI/QQP).
    models = load_teacher_models(kd_args, task)
    foreign = foreign_teachers(kd_args, tokenizer, models)
    check_hidden_sizes(student, {name: m.config.hidden_size for name, m in models.items()}, kd_args)
    shared = [m for name, m in models.items() if name not in foreign]
    own_tokenizers = {name: (own, models[name]) for name, own in foreign.items()}
    data = load_data(data_args, tokenizer, [student, *shared], own_tokenizers)
    teacher_metrics = stored_teacher_scores(models, data, task, training_args, kd_args, data_args)
    check_teachers(teacher_metrics, kd_args, task)
    layers, inputs = student.config.num_hidden_layers, data.teacher_inputs
    teachers = load_teachers(
        kd_args, data_args, data.train, layers, models, training_args=training_args, teacher_inputs=inputs
    )
    strategies = build_strategies(kd_args, kd_args.selection_scope == "batch")
    model = attach_projections(student, teachers, kd_args)
    distillation = {"teachers": teachers, "strategies": strategies, "kd_args": kd_args}
    train_and_save(run, model, tokenizer, data, task, args, teacher_metrics, **distillation)
    del model, teachers, models
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
