"""The steps every entry point shares: start a run, load data, train + evaluate, finish a run.

`distill` is the whole distillation recipe; `dynamic_teacher.py`, `dynamic_data.py` and
`dynamic_objective.py` are presets of it (they differ only in defaults), because the paper's three
methods are strategies of one engine and can be combined in one run.

Run-folder contract (the sweeps rely on it): a finished run is one whose `results.json` exists;
it is written last and atomically. A folder with checkpoints but no `results.json` is resumed
from its latest complete checkpoint by the same command, teacher-output caches included, and ends
with the same student as an uninterrupted run. A finished folder is never reused unless
`--overwrite_output_dir` is given, and even then the old `results.json` stays until the new run
replaces it (its checkpoints until the new run starts training).
"""

import gc
import glob
import json
import logging
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow.compute as pc
import torch
import torch.distributed as dist
import transformers
from torch.utils.data import DataLoader
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from dynamic_kd.arguments import DataArguments, DistillationArguments, ModelArguments, parse_args
from dynamic_kd.cache import entry_folder
from dynamic_kd.data import (
    MODEL_INPUT_COLUMNS,
    data_source,
    dataset_fingerprint,
    load_splits,
    make_collator,
    same_tokenization,
    tokenize_splits,
    tokenized_cache_dir,
    tokenizer_fingerprint,
)
from dynamic_kd.errors import ConfigError
from dynamic_kd.files import write_atomic
from dynamic_kd.losses import layer_map
from dynamic_kd.metrics import compute_task_metrics, metrics_fn
from dynamic_kd.models import (
    StudentWithProjections,
    align_pad_token,
    build_student,
    is_decoder,
    load_teacher,
    load_tokenizer,
    model_inputs,
    refuse_decoder_student,
    takes_token_type_ids,
    unwrap_student,
    usable_positions,
)
from dynamic_kd.runs import RESULTS_FILE as RESULTS
from dynamic_kd.runs import method_label
from dynamic_kd.strategies import build_strategies
from dynamic_kd.teachers import (
    STORE_FORMAT,
    Teacher,
    TeacherInputs,
    dtype_name,
    log_teacher_precision,
    store_location,
    teacher_compute_dtype,
    teacher_fingerprint,
)
from dynamic_kd.trainer import DistillationTrainer, TrainingDiverged

logger = logging.getLogger("dynamic_kd")

# Dev examples each teacher is scored on before training: enough to tell a working teacher from
# one at chance, cheap next to training (one forward pass each).
TEACHER_CHECK_EXAMPLES = 256


# --- run lifecycle -------------------------------------------------------------------------


def cli(main) -> int:
    """Run `main()`; a user mistake becomes one line on stderr and exit code 2, no traceback."""
    code = 1  # anything else propagates: Python prints its traceback after the teardown below
    try:
        main()
        code = 0
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        code = 2
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        code = 3
    finally:
        close_distributed(clean=code == 0)
    return code


def close_distributed(clean: bool = True):
    """Leave the process group: a bare gloo teardown aborts ~1 run in 5.

    After a successful run every rank meets at a barrier, drops the DDP model (it holds the
    group), then destroys the group. A failing rank must not wait at a barrier: the other ranks
    may be blocked in a training collective it will never join, which deadlocks until
    --ddp_timeout (30 min); it destroys its side at once and torchrun stops the others.
    """
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
    stale_checkpoints: tuple = ()  # a finished run's checkpoints, removed once training starts


def start_run(script: str, training_args) -> Run:
    """Set up logging, refuse a finished --output_dir, and find the checkpoint to resume from."""
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
    finished = os.path.join(output_dir, RESULTS)
    if os.path.exists(finished):
        if not training_args.overwrite_output_dir:
            raise ConfigError(
                f"--output_dir {output_dir} already holds a finished {RESULTS}; choose another --output_dir or pass --overwrite_output_dir"
            )
        if main_process:
            logger.warning(
                "--overwrite_output_dir: training from scratch; %s is replaced when this run finishes", finished
            )
        return Run(
            os.path.basename(script), output_dir, None, tuple(glob.glob(os.path.join(output_dir, "checkpoint-*")))
        )
    resume_from = last_complete_checkpoint(output_dir) if os.path.isdir(output_dir) else None
    if resume_from is not None:
        logger.warning("Resuming from checkpoint %s", resume_from)
    return Run(os.path.basename(script), output_dir, resume_from)


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest checkpoint-N folder the Trainer finished writing (trainer_state.json is its last file).

    A run killed while saving leaves a newer, half-written folder; resuming from it would fail or
    load a partial optimizer state, so it is skipped (and overwritten when training gets there).
    """
    checkpoints = {}
    for name in os.listdir(output_dir):
        match = re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)", name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            checkpoints[int(match.group(1))] = os.path.join(output_dir, name)
    for step in sorted(checkpoints, reverse=True):
        if _readable_json(os.path.join(checkpoints[step], TRAINER_STATE_NAME)):
            return checkpoints[step]
        logger.warning(
            "ignoring %s: it has no %s (the run was killed while saving it)", checkpoints[step], TRAINER_STATE_NAME
        )
    return None


def _readable_json(path: str) -> bool:
    try:
        with open(path) as handle:
            json.load(handle)
        return True
    except (OSError, ValueError):
        return False


def load_student(model_args: ModelArguments, task, seed: int):
    """The tokenizer and a K-layer model with a new head, seeded so the head's init is reproducible."""
    tokenizer = load_tokenizer(model_args.model_name_or_path)
    transformers.set_seed(seed)
    model = build_student(
        model_args.model_name_or_path, task, model_args.student_num_layers, model_args.student_layer_init
    )
    align_pad_token(tokenizer, model.config, "--model_name_or_path")
    return tokenizer, model


# --- data ----------------------------------------------------------------------------------


@dataclass
class Data:
    train: object
    evals: dict
    collator: object
    teacher_inputs: dict = field(default_factory=dict)  # {name: TeacherInputs} of teachers with their own tokenizer


def load_data(data_args: DataArguments, tokenizer, models=(), foreign: dict | None = None) -> Data:
    """Tokenised splits and the collator; rows carry token_type_ids iff one of `models` uses them.

    foreign: {teacher name: (its tokenizer, its model)} for teachers that read the text through their
    own tokenizer (`foreign_teachers`); each gets its own tokenisation of the training split and of
    the first evaluation split (for the teacher check), tokenised once per distinct tokenizer.
    """
    task = data_args.task
    splits = load_splits(task, data_args.data_dir, data_args.train_file, data_args.validation_file)
    token_type_ids = any(takes_token_type_ids(model) for model in models) if models else None
    cache_dir = tokenized_cache_dir()
    tokenized = tokenize_splits(
        splits,
        task,
        tokenizer,
        data_args.max_seq_length,
        data_args.pad_to_max_length,
        data_args.max_train_samples,
        data_args.max_eval_samples,
        token_type_ids,
        cache_dir=cache_dir,
    )
    # Evaluation needs no idx (only training keys teacher caches on it).
    evals = {name: tokenized[name].remove_columns("idx") for name in task.eval_splits}
    data = Data(tokenized["train"], evals, make_collator(tokenizer, data_args.pad_to_max_length))
    wanted = {"train": splits["train"], task.eval_splits[0]: splits[task.eval_splits[0]]}
    done = {}
    for name, (teacher_tokenizer, model) in (foreign or {}).items():
        limit = usable_positions(model, teacher_tokenizer)
        length = data_args.max_seq_length if limit is None else min(data_args.max_seq_length, limit)
        segments = takes_token_type_ids(model)
        key = (tokenizer_fingerprint(teacher_tokenizer), length, segments)
        if key not in done:
            own = tokenize_splits(
                wanted,
                task,
                teacher_tokenizer,
                length,
                data_args.pad_to_max_length,
                data_args.max_train_samples,
                data_args.max_eval_samples,
                segments,
                cache_dir=cache_dir,
            )
            done[key] = TeacherInputs(
                own["train"],
                make_collator(teacher_tokenizer, data_args.pad_to_max_length),
                own[task.eval_splits[0]].remove_columns("idx"),
                length,
            )
        data.teacher_inputs[name] = done[key]
    return data


# --- teachers ------------------------------------------------------------------------------


def _teacher_flag(name: str) -> str:
    return "--teacher" if name == "teacher" else f"--{name}_teacher"


def load_teacher_models(kd_args: DistillationArguments, task, tokenizer) -> dict:
    """{name: model} for every teacher the adoption mode needs, checked against the task."""
    return {name: load_teacher(path, task, _teacher_flag(name)) for name, path in kd_args.teachers.items()}


def foreign_teachers(kd_args: DistillationArguments, tokenizer, models: dict) -> dict:
    """{name: its tokenizer} for every teacher that reads the text through a tokenizer of its own.

    A teacher is foreign when its tokenizer would give other input_ids, padding or special tokens
    than the student's (`data.same_tokenization`), and always when it is a decoder (it pads on the
    right with its own pad id). Foreign teachers need no shared vocabulary: logits and sentence
    states are per example. Token-level alignment (`--rep_layers all`) is refused for them: their
    tokens align with no student token. A teacher folder without tokenizer files is taken to share
    the student's tokenizer if its embedding table has the student's vocabulary size, as before.
    """
    foreign = {}
    for name, path in kd_args.teachers.items():
        flag, config = _teacher_flag(name), models[name].config
        try:
            own = load_tokenizer(path)
        except ConfigError:
            if config.vocab_size == len(tokenizer) and not is_decoder(config):
                logger.info(
                    "%s '%s' has no tokenizer files; its vocabulary size is the student's, "
                    "so it reads the student's tokens",
                    flag,
                    path,
                )
                continue
            raise ConfigError(
                f"{flag} '{path}' has no tokenizer files and a vocabulary of {config.vocab_size} tokens, the student "
                f"{len(tokenizer)}; save the teacher's tokenizer next to it (tokenizer.save_pretrained('{path}'))"
            ) from None
        align_pad_token(own, config, flag)
        if is_decoder(config) or not same_tokenization(tokenizer, own):
            foreign[name] = own
    if foreign and kd_args.rep_alpha > 0 and kd_args.rep_layers == "all":
        name = next(iter(foreign))
        raise ConfigError(
            f"--rep_layers all aligns token positions, but {_teacher_flag(name)} '{kd_args.teachers[name]}' has "
            "its own tokenizer, whose tokens align with no student token; "
            "use --rep_layers cls (sentence states) or --kd_rep_alpha 0"
        )
    return foreign


def load_teachers(
    kd_args: DistillationArguments,
    data_args: DataArguments,
    tokenizer,
    train_dataset,
    student_layers: int,
    models: dict | None = None,
    *,
    training_args,
    teacher_inputs: dict | None = None,
) -> dict:
    """{name: Teacher} for every teacher the adoption mode needs (from `models` when already loaded).

    teacher_inputs: `Data.teacher_inputs`, the own tokenisation of every foreign teacher.
    A disk store is keyed on everything its values depend on: the teacher's files, the task, the
    tokenised training data the teacher reads (token ids and idx: tokenizer, --max_seq_length and
    padding included; a foreign teacher's own), the precision the teacher pass really runs in and
    on which device type, and the cached layers.
    """
    task = data_args.task
    teacher_inputs = teacher_inputs or {}
    if models is None:  # loaded here: check that no teacher needs a tokenisation of its own the caller lacks
        models = load_teacher_models(kd_args, task, tokenizer)
        missing = set(foreign_teachers(kd_args, tokenizer, models)) - set(teacher_inputs)
        if missing:
            raise ValueError(
                f"teachers {sorted(missing)} have their own tokenizer; pass their tokenisation (load_data's `foreign`)"
            )
    num_examples = int(pc.max(train_dataset.with_format("arrow")["idx"]).as_py()) + 1
    dtype, why = teacher_compute_dtype(kd_args.teacher_dtype, training_args)
    device_type = training_args.device.type
    if training_args.process_index == 0:
        log_teacher_precision(dtype, why, device_type)
    fingerprint = (
        dataset_fingerprint(train_dataset, ("idx",) + MODEL_INPUT_COLUMNS) if kd_args.teacher_cache == "disk" else None
    )
    teachers = {}
    for name, path in kd_args.teachers.items():
        model = models[name]
        pairs = layer_map(student_layers, model.config.num_hidden_layers)
        cls_layers = [t for _, t in pairs] if kd_args.rep_alpha > 0 and kd_args.rep_layers == "cls" else None
        own = teacher_inputs.get(name)
        key = {
            "format": STORE_FORMAT,
            "teacher": os.path.realpath(path),
            "files": teacher_fingerprint(path),
            "task": task.name,
            "max_seq_length": data_args.max_seq_length,
            "pad_to_max_length": data_args.pad_to_max_length,
            "data": fingerprint,
            "compute_dtype": dtype_name(dtype),
            "device_type": device_type,
            "cls_layers": cls_layers,
        }
        if own is not None and kd_args.teacher_cache == "disk":
            own_data = dataset_fingerprint(own.train, ("idx",) + MODEL_INPUT_COLUMNS)
            key.update(max_seq_length=own.max_seq_length, data=own_data)
        teachers[name] = Teacher(
            name,
            model,
            path,
            num_examples,
            kd_args.teacher_cache,
            cls_layers,
            kd_args.teacher_batch_size,
            dtype=dtype,
            store_folder=store_location(kd_args.teacher_cache_dir, key),
            store_key=key,
            inputs=own,
            dropout=kd_args.teacher_dropout,
        )
    return teachers


def score_teachers(models: dict, data: Data, task, training_args) -> dict:
    """{name: {metric: value, ..., "examples": n}}: each teacher on the first n <= TEACHER_CHECK_EXAMPLES
    examples of the task's first evaluation split (eval mode, no gradient, fp32, the run's collator;
    a teacher with its own tokenizer on its own tokenisation of those examples).

    Classification adds "accuracy" (whatever the task's metric) and "majority_class_rate", the
    accuracy of always predicting the sample's most frequent label. Rank 0 scores and broadcasts,
    so every process takes the same decision in `check_teachers`.
    """
    scores = None
    if training_args.process_index == 0:
        scores = {}
        for name, model in models.items():
            sample, collator = _check_sample(name, data, task)
            labels = np.asarray(sample["labels"])
            loader = DataLoader(sample, batch_size=training_args.per_device_eval_batch_size, collate_fn=collator)
            model.eval().to(training_args.device)
            outputs = []
            with torch.no_grad():
                for batch in loader:
                    inputs = {k: v.to(training_args.device) for k, v in batch.items() if k != "labels"}
                    outputs.append(model(**model_inputs(model, inputs)).logits.float().cpu())
            logits = torch.cat(outputs).numpy()
            metrics = compute_task_metrics(task, logits, labels)
            if not task.is_regression:
                metrics["accuracy"] = float((logits.argmax(axis=-1) == labels).mean())
                metrics["majority_class_rate"] = float(np.bincount(labels).max() / len(labels))
            nonfinite = int((~np.isfinite(logits)).any(axis=-1).sum())
            if nonfinite:
                metrics["nonfinite_rows"] = nonfinite
            scores[name] = {**metrics, "examples": len(labels)}
    return _from_rank_zero(scores)


def _check_sample(name: str, data: Data, task) -> tuple:
    """(the dev rows teacher `name` is checked on, their collator): its own tokenisation where it has one."""
    own = data.teacher_inputs.get(name)
    dataset = data.evals[task.eval_splits[0]] if own is None else own.check
    sample = dataset.select(range(min(TEACHER_CHECK_EXAMPLES, len(dataset))))
    return sample, data.collator if own is None else own.collator


def _from_rank_zero(value):
    """Rank 0's `value` on every rank (collective under DDP; `value` itself otherwise)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        shared = [value]
        dist.broadcast_object_list(shared, src=0)
        value = shared[0]
    return value


def teacher_check_key(name: str, path: str, data: Data, task, training_args, data_args: DataArguments) -> dict:
    """Everything `score_teachers`' result for one teacher depends on: its files, the task, the dev
    sample's token ids and labels (the teacher's own tokenisation where it has one; tokenizer,
    --max_seq_length and padding included), the batch size (padding of each batch), the precision
    (fp32) and the device type."""
    sample, _ = _check_sample(name, data, task)
    return {
        "format": STORE_FORMAT,
        "check": "teacher dev scores",
        "teacher": os.path.realpath(path),
        "files": teacher_fingerprint(path),
        "task": task.name,
        "split": task.eval_splits[0],
        "examples": len(sample),
        "data": dataset_fingerprint(sample, MODEL_INPUT_COLUMNS + ("labels",)),
        "max_seq_length": data_args.max_seq_length,
        "pad_to_max_length": data_args.pad_to_max_length,
        "batch_size": training_args.per_device_eval_batch_size,
        "compute_dtype": "float32",
        "device_type": training_args.device.type,
    }


def stored_teacher_scores(
    models: dict, data: Data, task, training_args, kd_args: DistillationArguments, data_args: DataArguments
) -> dict:
    """`score_teachers`, paid once per teacher and dev data: with `--teacher_cache disk` each teacher's
    scores are kept next to its output store (`check-<hash of teacher_check_key>.json`, key
    and scores in one file written atomically) and later runs with the same key read them instead of scoring again.

    Rank 0 looks up and stores; every rank gets the same scores.
    """
    if kd_args.teacher_cache != "disk":
        return score_teachers(models, data, task, training_args)
    paths, stored = {}, None
    if training_args.process_index == 0:
        stored = {}
        for name, path in kd_args.teachers.items():
            key = teacher_check_key(name, path, data, task, training_args, data_args)
            paths[name] = (entry_folder(kd_args.teacher_cache_dir, "check", key) + ".json", key)
            stored[name] = _read_teacher_check(*paths[name])
            if stored[name] is not None:
                logger.info(
                    "teacher %s: dev scores from %s (scored before on the same files and dev data)",
                    name,
                    paths[name][0],
                )
    stored = _from_rank_zero(stored)
    missing = {name: model for name, model in models.items() if stored[name] is None}
    scores = score_teachers(missing, data, task, training_args) if missing else {}
    for name in missing:
        if training_args.process_index == 0:
            path, key = paths[name]
            try:
                write_atomic(path, json.dumps({"key": key, "scores": scores[name]}, indent=1, sort_keys=True))
            except OSError as error:
                logger.warning(
                    "teacher %s: could not keep its dev scores in %s (%s); the next run scores it again",
                    name,
                    path,
                    error,
                )
    return {name: scores[name] if name in missing else stored[name] for name in models}


def _read_teacher_check(path: str, key: dict) -> dict | None:
    try:
        with open(path) as handle:
            entry = json.load(handle)
    except (OSError, ValueError):
        return None
    return entry.get("scores") if isinstance(entry, dict) and entry.get("key") == key else None


def check_teachers(scores: dict, kd_args: DistillationArguments, task):
    """Log each teacher's dev scores; refuse a classification teacher no better than the majority class.

    A teacher whose config carries generic LABEL_i names passes the label-order check of
    `models.load_teacher`; trained elsewhere with another label order it scores at or below the
    majority-class rate, and the student would learn the permuted labels. `--skip_teacher_check`
    turns the refusal into a warning.
    """
    split = task.eval_splits[0]
    for name, path in kd_args.teachers.items():
        score = scores[name]
        shown = ", ".join(f"{k} {v:.4g}" for k, v in score.items() if k != "examples")
        logger.info("teacher %s (%s) on the first %d %s examples: %s", name, path, score["examples"], split, shown)
        if task.is_regression:
            continue
        where = f"{_teacher_flag(name)} '{path}'"
        if score.get("nonfinite_rows"):
            problem = f"{where} gives NaN/Inf logits on {score['nonfinite_rows']} of the first {score['examples']} {split} examples"
            fix = "check or re-train the teacher"
        elif score["majority_class_rate"] >= 1.0:
            logger.warning(
                "teacher %s: the first %d %s examples all have one label, so its accuracy says nothing about label order",
                name,
                score["examples"],
                split,
            )
            continue
        elif score["accuracy"] <= score["majority_class_rate"]:
            problem = (
                f"{where} scores accuracy {score['accuracy']:.3f} on the first {score['examples']} {split} examples, no better "
                f"than always predicting the majority class ({score['majority_class_rate']:.3f}); most likely its labels are "
                f"in another order than {task.name}'s ({', '.join(task.labels)})"
            )
            fix = "re-train it with train_teacher.py or fix its config's id2label"
        else:
            continue
        if kd_args.skip_teacher_check:
            logger.warning("%s (--skip_teacher_check: distilling from it anyway)", problem)
        else:
            raise ConfigError(f"{problem}; {fix}, or pass --skip_teacher_check to distil from it anyway")


def check_hidden_sizes(student, teacher_hidden_sizes: dict, kd_args: DistillationArguments) -> bool:
    """Whether hidden-state alignment needs student->teacher projections; an error if they are disabled."""
    if kd_args.rep_alpha == 0:
        return False
    mismatched = {name: size for name, size in teacher_hidden_sizes.items() if size != student.config.hidden_size}
    if mismatched and not kd_args.rep_projection:
        name, size = next(iter(mismatched.items()))
        raise ConfigError(
            f"hidden-state alignment needs equal hidden sizes but the student has {student.config.hidden_size} and teacher "
            f"'{name}' {size}; drop --rep_projection False (learn a projection) or set --kd_rep_alpha 0"
        )
    return bool(mismatched)


def attach_projections(student, teachers: dict, kd_args: DistillationArguments):
    """Wrap the student with student->teacher hidden-size maps where hidden-state alignment needs them."""
    sizes = {name: t.hidden_size for name, t in teachers.items()}
    if not check_hidden_sizes(student, sizes, kd_args):
        return student
    return StudentWithProjections(student, sizes)


# --- train, evaluate, finish ---------------------------------------------------------------


def train_and_evaluate(trainer, task, run: Run) -> dict:
    """Train (resuming if a checkpoint exists) and evaluate every eval split of the task.

    Returns the final metrics without the `eval_` prefix; MNLI's mismatched split adds `_mm`.
    """
    if run.stale_checkpoints and trainer.is_world_process_zero():
        # only now: a run that stops at a bad flag must leave the finished folder as it was
        for path in run.stale_checkpoints:
            shutil.rmtree(path, ignore_errors=True)
    train_output = trainer.train(resume_from_checkpoint=run.resume_from)
    metrics = {}
    for position, split in enumerate(task.eval_splits):
        suffix = "" if position == 0 else ("_mm" if split == "validation_mismatched" else f"_{split}")
        scores = trainer.evaluate(eval_dataset=trainer.eval_dataset[split], metric_key_prefix="eval")
        for name, value in scores.items():
            name = name.removeprefix("eval_")
            if name not in (
                "loss",
                "runtime",
                "samples_per_second",
                "steps_per_second",
                "epoch",
                "num_input_tokens_seen",
            ):
                metrics[name + suffix] = float(value)
    return {"metrics": metrics, "train_runtime_s": float(train_output.metrics["train_runtime"])}


def finish_run(run: Run, trainer, tokenizer, task, outcome: dict, args: list, teacher_metrics: dict | None = None):
    """Save the plain student (no teachers, no projections) and tokenizer, then results.json last.

    results.json holds what the report groups runs by: the resolved arguments, the data source
    (with a fingerprint of its files) and the training history (`log_history`, which carries the
    `dkd/*` values the curves are drawn from), and `teacher_metrics` ({teacher name: dev scores}, from
    `score_teachers`) where the run had teachers.
    """
    teacher_forward_examples = trainer.teacher_forward_examples()
    if not trainer.is_world_process_zero():
        return
    student = unwrap_student(trainer.accelerator.unwrap_model(trainer.model))
    student.save_pretrained(run.output_dir)
    tokenizer.save_pretrained(run.output_dir)
    flat_args = {}
    for group in args:
        flat_args.update(group.to_dict() if hasattr(group, "to_dict") else asdict(group))
    data_args = next(group for group in args if isinstance(group, DataArguments))
    results = {
        "script": run.script,
        "task": task.name,
        "seed": trainer.args.seed,
        "method": method_label(flat_args),
        "metrics": outcome["metrics"],
        "train_runtime_s": outcome["train_runtime_s"],
        "train_examples": len(trainer.train_dataset),
        "teacher_forward_examples": teacher_forward_examples,
        "peak_gpu_memory_mb": torch.cuda.max_memory_allocated() / 2**20
        if torch.cuda.is_available()
        else None,  # rank 0's
        "args": flat_args,
        "data": data_source(task, data_args.data_dir, data_args.train_file, data_args.validation_file),
        "log_history": trainer.state.log_history,
    }
    if teacher_metrics is not None:
        results["teacher_metrics"] = teacher_metrics
    if trainer.args.load_best_model_at_end:  # `metrics` then score this checkpoint's student, not the last step's
        results["best_model_checkpoint"] = trainer.state.best_model_checkpoint
    write_atomic(os.path.join(run.output_dir, RESULTS), json.dumps(results, indent=2, sort_keys=True, default=str))
    logger.info(
        "%s %s: %s (teacher forwards: %d) -> %s",
        run.script,
        task.name,
        outcome["metrics"],
        teacher_forward_examples,
        run.output_dir,
    )


def distill(argv, script: str, defaults: dict | None = None):
    """The distillation recipe: parse -> build student, teachers, strategies -> train -> save."""
    data_args, model_args, kd_args, training_args = parse_args(
        argv, DataArguments, ModelArguments, DistillationArguments, defaults=defaults
    )
    run = start_run(script, training_args)
    task = data_args.task
    tokenizer, student = load_student(model_args, task, training_args.seed)
    refuse_decoder_student(student, model_args.model_name_or_path)
    # Models and flags are checked before the data is read and tokenised (minutes on MNLI/QQP).
    models = load_teacher_models(kd_args, task, tokenizer)
    foreign = foreign_teachers(kd_args, tokenizer, models)
    check_hidden_sizes(student, {name: m.config.hidden_size for name, m in models.items()}, kd_args)
    shared = [m for name, m in models.items() if name not in foreign]
    own_tokenizers = {name: (own, models[name]) for name, own in foreign.items()}
    data = load_data(data_args, tokenizer, [student, *shared], own_tokenizers)
    teacher_metrics = stored_teacher_scores(models, data, task, training_args, kd_args, data_args)
    check_teachers(teacher_metrics, kd_args, task)
    teachers = load_teachers(
        kd_args,
        data_args,
        tokenizer,
        data.train,
        student.config.num_hidden_layers,
        models,
        training_args=training_args,
        teacher_inputs=data.teacher_inputs,
    )
    trainer = DistillationTrainer(
        model=attach_projections(student, teachers, kd_args),
        args=training_args,
        train_dataset=data.train,
        eval_dataset=data.evals,
        data_collator=data.collator,
        processing_class=tokenizer,
        compute_metrics=metrics_fn(task),
        teachers=teachers,
        strategies=build_strategies(kd_args, kd_args.selection_scope == "batch"),
        kd_args=kd_args,
        task=task,
    )
    outcome = train_and_evaluate(trainer, task, run)
    finish_run(run, trainer, tokenizer, task, outcome, [data_args, model_args, kd_args, training_args], teacher_metrics)
    del trainer, teachers, models
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
