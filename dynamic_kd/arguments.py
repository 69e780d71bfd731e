"""The one argument set shared by all four entry points.

Each script parses the dataclasses it needs together with `TrainingArguments` via `parse_args`.
Strategy choices come from the registries that implement them, so help, validation and code
cannot drift apart. Every check raises `ConfigError` with a one-line message listing the fix.
"""

import math
import os
import sys
from dataclasses import dataclass, field

import torch
from accelerate.utils import get_int_from_env
from transformers import HfArgumentParser, TrainingArguments

from dynamic_kd.cache import cache_root
from dynamic_kd.data import CUSTOM_TASK, TASKS, custom_task, get_task
from dynamic_kd.errors import ConfigError
from dynamic_kd.losses import KD_LOSSES, REP_NORMALIZATIONS
from dynamic_kd.metrics import metric_names
from dynamic_kd.strategies import (
    OBJECTIVE_STRATEGIES,
    SELECTION_ALIASES,
    SELECTION_STRATEGIES,
    TEACHER_MODES,
    UNCERTAINTY_STRATEGIES,
    UNCERTAINTY_WEIGHTED_MODES,
    UNCERTAINTY_WEIGHTED_OBJECTIVES,
)
from dynamic_kd.teachers import TEACHER_CACHE_MODES, TEACHER_DTYPES


def _one_of(registry):
    return ", ".join(registry)


def _check_choice(flag, value, registry, aliases=()):
    if value not in registry and value not in aliases:
        raise ConfigError(f"unknown {flag} '{value}'; choose one of: {_one_of(registry)}")


# Numeric flags: the values that mean something, as (test, description).
_RANGES = {
    "positive": (lambda v: v > 0, "a positive number"),
    "non-negative": (lambda v: v >= 0, "a number >= 0"),
    "fraction": (lambda v: 0 <= v < 1, "in [0, 1)"),
}


def _check_number(flag, value, kind, fix):
    """`value` must be finite and of the `kind` in `_RANGES` (NaN fails every comparison, so test it first)."""
    test, description = _RANGES[kind]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not test(value):
        raise ConfigError(f"{flag} must be {description}, got {value}; {fix}")


def _check_writable_dir(flag, path):
    """Fail now, not at the first epoch end (where only rank 0 writes), if `path` cannot be a writable folder."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{flag} {path} cannot be created or written ({existing} is not a writable folder); pass a writable folder or use --teacher_cache memory"
        )


@dataclass
class DataArguments:
    task_name: str | None = field(
        default=None,
        metadata={
            "help": f"A GLUE-style task: {', '.join(TASKS)}; or {CUSTOM_TASK} (the default): your own --train_file/--validation_file, labels read from the training file."
        },
    )
    data_dir: str | None = field(
        default=None, metadata={"help": "Folder in the original GLUE format (train.tsv, dev.tsv, ...); loaded offline."}
    )
    train_file: str | None = field(
        default=None, metadata={"help": "CSV/TSV/JSON(L) training file with the text column(s) and a label column."}
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "CSV/TSV/JSON(L) validation file with the same columns."}
    )
    text_column: str | None = field(
        default=None,
        metadata={
            "help": f"{CUSTOM_TASK} task: the text column, or two comma-separated ones for sentence pairs (e.g. premise,hypothesis); default sentence."
        },
    )
    label_column: str | None = field(
        default=None, metadata={"help": f"{CUSTOM_TASK} task: the label column; default label."}
    )
    is_regression: bool = field(
        default=False,
        metadata={
            "help": f"{CUSTOM_TASK} task: the labels are numeric targets (one output, MSE, Pearson/Spearman) instead of classes."
        },
    )
    max_seq_length: int = field(default=128, metadata={"help": "Truncate inputs to this many tokens."})
    pad_to_max_length: bool = field(
        default=False,
        metadata={"help": "Pad every input to --max_seq_length (the original code); default pads per batch."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep the first N training examples."})
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep the first N examples of each evaluation split."}
    )

    def __post_init__(self):
        if self.max_seq_length < 8:
            raise ConfigError(f"--max_seq_length {self.max_seq_length} is too small; use at least 8 (default 128)")
        for flag in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, flag)
            if value is not None and value < 1:
                raise ConfigError(f"--{flag} must be a positive integer, got {value}; omit it to use all rows")
        if (self.train_file is None) != (self.validation_file is None):
            raise ConfigError("--train_file and --validation_file go together; pass both (or use --data_dir)")
        self.task = self._resolve_task()

    def _resolve_task(self):
        """A registry task by name, or the custom task built from the user's files (read last: it opens them)."""
        custom_flags = [
            flag
            for flag, value in (
                ("--text_column", self.text_column),
                ("--label_column", self.label_column),
                ("--is_regression", self.is_regression),
            )
            if value not in (None, False)
        ]
        if self.task_name is not None and self.task_name.lower() != CUSTOM_TASK:
            task = get_task(self.task_name)
            if custom_flags:
                raise ConfigError(
                    f"{custom_flags[0]} is for your own data (--task_name {CUSTOM_TASK} or none); {task.name} has fixed columns and labels"
                )
            return task
        if self.train_file is None:
            raise ConfigError(
                f"no data: pass --task_name (one of {', '.join(TASKS)}) or your own --train_file and --validation_file"
            )
        if self.data_dir is not None:
            raise ConfigError(
                f"--data_dir holds a registry task's GLUE files; the {CUSTOM_TASK} task reads --train_file/--validation_file only (or pass --task_name)"
            )
        text_column = "sentence" if self.text_column is None else self.text_column
        label_column = "label" if self.label_column is None else self.label_column
        text_columns = tuple(name.strip() for name in text_column.split(","))
        return custom_task(self.train_file, self.validation_file, text_columns, label_column, self.is_regression)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        metadata={"help": "Pretrained model (hub id or local folder) the student or teacher starts from."}
    )
    student_num_layers: int | None = field(
        default=None, metadata={"help": "Keep K transformer layers of the pretrained model (default: all)."}
    )
    student_layer_init: str = field(
        default="first",
        metadata={
            "help": "Which pretrained layers a K-layer model keeps: first (0..K-1, the original) or skip (every L/K-th, PKD-Skip)."
        },
    )

    def __post_init__(self):
        _check_choice("--student_layer_init", self.student_layer_init, ("first", "skip"))
        if self.student_num_layers is not None and self.student_num_layers < 1:
            raise ConfigError(
                f"--student_num_layers must be at least 1, got {self.student_num_layers}; omit it to keep every pretrained layer"
            )


@dataclass
class DistillationArguments:
    teacher: str | None = field(
        default=None, metadata={"help": "Fine-tuned teacher folder (single-teacher distillation)."}
    )
    small_teacher: str | None = field(
        default=None, metadata={"help": "Smaller fine-tuned teacher (teacher adoption, paper Sec. 3.1)."}
    )
    large_teacher: str | None = field(
        default=None, metadata={"help": "Larger fine-tuned teacher (teacher adoption, paper Sec. 3.1)."}
    )
    uncertainty_mode: str | None = field(
        default=None,
        metadata={"help": f"Teacher adoption: {_one_of(TEACHER_MODES)}. Needs --small_teacher/--large_teacher."},
    )
    small_teacher_alpha: float = field(
        default=0.5, metadata={"help": "Weight of the small teacher's KD term (hard and average modes)."}
    )
    large_teacher_alpha: float = field(
        default=0.5, metadata={"help": "Weight of the large teacher's KD term (hard and average modes)."}
    )
    selection_strategy: str = field(
        default="none",
        metadata={
            "help": f"Data selection (paper Sec. 3.2): {_one_of(SELECTION_STRATEGIES)} (lc also as least_confidence, confidence)."
        },
    )
    selection_ratio: float = field(
        default=1.0, metadata={"help": "Fraction r in (0, 1] of instances that get a teacher query and a KD term."}
    )
    selection_scope: str = field(
        default="batch",
        metadata={
            "help": "batch: select within each batch (the paper); epoch: score the whole train set each epoch and train on the top r only."
        },
    )
    strategy: str = field(
        default="none", metadata={"help": f"Supervision adjustment (paper Sec. 3.3): {_one_of(OBJECTIVE_STRATEGIES)}."}
    )
    kd_loss: str = field(
        default="auto",
        metadata={"help": f"Logit KD loss: {_one_of(KD_LOSSES)}, or auto (kl for classification, mse for regression)."},
    )
    temperature: float = field(
        default=1.0, metadata={"help": "Softmax temperature T of the KL loss (the paper uses 1)."}
    )
    ce_alpha: float = field(
        default=1.0, metadata={"help": "Weight of the cross-entropy (or MSE, regression) term on gold labels."}
    )
    kd_alpha: float = field(
        default=1.0, metadata={"help": "Weight of the logit KD term.", "aliases": ["--kd_kl_alpha"]}
    )
    rep_alpha: float = field(
        default=0.0,
        metadata={"help": "Weight of the hidden-state alignment term (0 = off).", "aliases": ["--kd_rep_alpha"]},
    )
    rep_layers: str = field(
        default="all",
        metadata={"help": "Hidden-state alignment over all tokens of the mapped layers, or cls ([CLS] only, PKD)."},
    )
    rep_normalization: str = field(
        default="hidden",
        metadata={
            "help": (
                "Axis each hidden state is normalised along in the REP term: hidden (each token's state) or sequence "
                "(each unit over the tokens: the released static baseline; needs --rep_layers all)."
            )
        },
    )
    rep_include_padding: bool = field(
        default=False,
        metadata={
            "help": (
                "Let padding positions into the REP term's norm and mean, as the released scripts did (with "
                "--pad_to_max_length, to reproduce them); needs --kd_rep_alpha > 0 and --rep_layers all."
            )
        },
    )
    uncertainty_grad: bool = field(
        default=False,
        metadata={
            "help": (
                "Let gradient flow through the uncertainty weights (soft/soft-instance adoption, the uncertainty "
                "objectives), as the released code did; one process, no gradient accumulation."
            )
        },
    )
    teacher_dropout: bool = field(
        default=False,
        metadata={
            "help": (
                "Run the teachers in train mode, with dropout, as the released code did; fresh outputs every "
                "step, so it needs --teacher_cache none."
            )
        },
    )
    rep_projection: bool = field(
        default=True,
        metadata={
            "help": "Learn a linear map from student to teacher hidden size when they differ (never saved with the student)."
        },
    )
    teacher_cache: str = field(
        default="memory",
        metadata={
            "help": f"Teacher-output store keyed by example idx: {_one_of(TEACHER_CACHE_MODES)} (memory: this run only; disk: shared by every run with the same teacher, data, tokenisation and precision)."
        },
    )
    teacher_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where --teacher_cache disk keeps its stores (default: $DYNAMIC_KD_CACHE/teacher_outputs, DYNAMIC_KD_CACHE defaulting to ~/.cache/dynamic_kd)."
        },
    )
    teacher_dtype: str = field(
        default="auto",
        metadata={
            "help": f"Precision of the teacher pass: {_one_of(TEACHER_DTYPES)} (auto = autocast like the student's --bf16/--fp16, else fp32; others autocast to that dtype; weights stay fp32)."
        },
    )
    teacher_batch_size: int = field(
        default=256,
        metadata={
            "help": "Rows per teacher forward when filling the store (before training, and the misses of a batch)."
        },
    )
    skip_teacher_check: bool = field(
        default=False,
        metadata={
            "help": "Distil even from a classification teacher that scores no better than the majority class on the first dev examples (a warning instead of an error)."
        },
    )

    def __post_init__(self):
        if self.uncertainty_mode is not None:
            _check_choice("--uncertainty_mode", self.uncertainty_mode, TEACHER_MODES)
        _check_choice("--selection_strategy", self.selection_strategy, SELECTION_STRATEGIES, SELECTION_ALIASES)
        self.selection_strategy = SELECTION_ALIASES.get(self.selection_strategy, self.selection_strategy)
        _check_choice("--selection_scope", self.selection_scope, ("batch", "epoch"))
        _check_choice("--strategy", self.strategy, OBJECTIVE_STRATEGIES)
        _check_choice("--kd_loss", self.kd_loss, tuple(KD_LOSSES) + ("auto",))
        _check_choice("--rep_layers", self.rep_layers, ("all", "cls"))
        _check_choice("--rep_normalization", self.rep_normalization, REP_NORMALIZATIONS)
        if self.rep_normalization == "sequence" and self.rep_layers == "cls":
            raise ConfigError(
                "--rep_normalization sequence normalises each hidden unit over the tokens, "
                "and --rep_layers cls keeps one; use --rep_layers all"
            )
        if self.rep_include_padding and (self.rep_alpha == 0 or self.rep_layers == "cls"):
            raise ConfigError(
                "--rep_include_padding changes the REP term over every token; "
                "it needs --kd_rep_alpha > 0 and --rep_layers all"
            )
        _check_choice("--teacher_cache", self.teacher_cache, TEACHER_CACHE_MODES)
        if self.teacher_dropout and self.teacher_cache != "none":
            raise ConfigError(
                "--teacher_dropout draws new teacher dropout every step, so no stored output can stand in "
                f"for a forward; add --teacher_cache none (got {self.teacher_cache})"
            )
        if (
            self.uncertainty_grad
            and self.uncertainty_mode not in UNCERTAINTY_WEIGHTED_MODES
            and self.strategy not in UNCERTAINTY_WEIGHTED_OBJECTIVES
        ):
            raise ConfigError(
                "--uncertainty_grad acts on weights computed from the uncertainty: use it with --uncertainty_mode "
                f"{'/'.join(UNCERTAINTY_WEIGHTED_MODES)} or --strategy "
                f"{'/'.join(UNCERTAINTY_WEIGHTED_OBJECTIVES)}, or drop it"
            )
        _check_choice("--teacher_dtype", self.teacher_dtype, TEACHER_DTYPES)
        self.teacher_cache_dir = os.path.expanduser(
            self.teacher_cache_dir or os.path.join(cache_root(), "teacher_outputs")
        )
        if self.teacher_cache == "disk":
            _check_writable_dir("--teacher_cache_dir", self.teacher_cache_dir)
        if self.selection_scope == "epoch" and self.selection_strategy == "none":
            raise ConfigError(
                "--selection_scope epoch needs a --selection_strategy (random, entropy, margin or lc) to choose each epoch's rows; add one or drop --selection_scope"
            )
        if not 0.0 < self.selection_ratio <= 1.0:
            raise ConfigError(
                f"--selection_ratio must be in (0, 1], got {self.selection_ratio}; e.g. 0.1 distils the 10% most uncertain instances, 1 all of them"
            )
        if self.selection_strategy == "none" and self.selection_ratio != 1.0:
            raise ConfigError(
                "--selection_ratio needs a --selection_strategy (random, entropy, margin or lc); 'none' keeps every instance"
            )
        _check_number("--temperature", self.temperature, "positive", "the paper uses 1")
        for name, flag in (
            ("ce_alpha", "--ce_alpha"),
            ("kd_alpha", "--kd_kl_alpha"),
            ("rep_alpha", "--kd_rep_alpha"),
            ("small_teacher_alpha", "--small_teacher_alpha"),
            ("large_teacher_alpha", "--large_teacher_alpha"),
        ):
            _check_number(flag, getattr(self, name), "non-negative", "a loss weight of 0 turns its term off")
        if self.ce_alpha == self.kd_alpha == self.rep_alpha == 0:
            raise ConfigError(
                "--ce_alpha, --kd_kl_alpha and --kd_rep_alpha are all 0, so there is no loss to train on; give at least one a positive weight"
            )
        if self.teacher_batch_size < 1:
            raise ConfigError(
                f"--teacher_batch_size must be at least 1, got {self.teacher_batch_size}; the default is 256"
            )
        if self.strategy != "none" and self.rep_alpha == 0.0:
            raise ConfigError(
                f"--strategy {self.strategy} weighs KD against hidden-state alignment; set --kd_rep_alpha > 0"
            )
        self.teachers = self._teacher_paths()

    def _teacher_paths(self) -> dict[str, str]:
        """Name -> folder of every teacher this run needs, checked against the adoption mode."""
        if self.uncertainty_mode is None:
            if self.small_teacher or self.large_teacher:
                raise ConfigError(
                    "--small_teacher/--large_teacher need --uncertainty_mode; for one teacher use --teacher"
                )
            if not self.teacher:
                raise ConfigError(
                    "no teacher given; pass --teacher DIR (a fine-tuned model folder, e.g. from train_teacher.py)"
                )
            return {"teacher": self.teacher}
        if self.teacher:
            raise ConfigError(
                "--teacher is for single-teacher runs; with --uncertainty_mode pass --small_teacher and --large_teacher"
            )
        needed = TEACHER_MODES[self.uncertainty_mode].teachers
        given = {"small": self.small_teacher, "large": self.large_teacher}
        missing = [f"--{name}_teacher" for name in needed if not given[name]]
        if missing:
            raise ConfigError(f"--uncertainty_mode {self.uncertainty_mode} needs {' and '.join(missing)}")
        return {name: given[name] for name in needed}

    def check_task(self, task):
        """Cross-checks that need the task: uncertainty is undefined for regression outputs."""
        if not task.is_regression:
            return
        uses_entropy = [
            flag
            for flag, value, registry in (
                ("--selection_strategy", self.selection_strategy, UNCERTAINTY_STRATEGIES),
                ("--uncertainty_mode", self.uncertainty_mode, UNCERTAINTY_STRATEGIES),
                ("--strategy", self.strategy, UNCERTAINTY_STRATEGIES),
            )
            if value in registry
        ]
        if uses_entropy:
            raise ConfigError(
                f"{task.name} is a regression task and {uses_entropy[0]} needs class probabilities; "
                "use --selection_strategy none/random, --uncertainty_mode single-small/single-large/average, --strategy none"
            )
        if self.kd_loss == "kl":
            raise ConfigError(f"{task.name} is a regression task; use --kd_loss mse (or auto)")

    def check_training(self, training_args):
        """Cross-checks with `TrainingArguments`: epoch scope brings its own sampler; gradient through
        the uncertainty weights needs the plan made from the logits the loss back-propagates through."""
        if self.uncertainty_grad and (training_args.world_size > 1 or training_args.gradient_accumulation_steps > 1):
            raise ConfigError(
                "--uncertainty_grad needs the global batch in one forward (one process, --gradient_accumulation_steps 1): "
                f"here it spans {training_args.world_size} process(es) x {training_args.gradient_accumulation_steps} "
                "accumulation step(s); drop one of the two"
            )
        if self.selection_scope == "epoch" and training_args.train_sampling_strategy != "random":
            raise ConfigError(
                f"--selection_scope epoch trains each epoch on its selected rows in a shuffled order, so --train_sampling_strategy "
                f"{training_args.train_sampling_strategy} (or --group_by_length) would be ignored; drop one of the two"
            )


@dataclass
class RunArguments(TrainingArguments):
    """HF `TrainingArguments` plus the project's own run-level flags."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Allow a run in an --output_dir that already holds a finished results.json (replaced only when this run finishes)."
        },
    )
    group_by_length: bool = field(
        default=False,
        metadata={
            "help": "Batch examples of similar length together (sets --train_sampling_strategy group_by_length)."
        },
    )
    dataloader_pin_memory: bool | None = field(
        default=None,
        metadata={
            "help": "Pin batches in host memory for faster copies to the accelerator (default: on with a GPU, off on CPU, where torch can only warn about it).",
            "nargs": "?",
            "const": True,
        },
    )
    do_train: bool = field(
        default=True,
        metadata={"help": "Every entry point trains (run_glue.py's flag, accepted); --do_train False is refused."},
    )
    do_eval: bool = field(
        default=True,
        metadata={
            "help": "Every entry point evaluates on the dev splits at the end (run_glue.py's flag, accepted); "
            "--do_eval False is refused."
        },
    )
    warmup_ratio: float | None = field(
        default=None,
        metadata={
            "help": "Fraction of the training steps with a linear warmup (the released scripts' flag, gone from "
            "transformers 5): sets --warmup_steps to it, which reads values below 1 as a fraction."
        },
    )

    def __post_init__(self):
        for flag in ("do_train", "do_eval"):
            if not getattr(self, flag):
                raise ConfigError(
                    f"--{flag} False: every entry point trains, then evaluates on the dev splits "
                    "(results.json needs both); drop the flag"
                )
        if self.warmup_ratio is not None:
            _check_number("--warmup_ratio", self.warmup_ratio, "fraction", "0.1 warms up over the first 10% of steps")
            if self.warmup_steps:
                raise ConfigError(
                    f"--warmup_ratio {self.warmup_ratio} and --warmup_steps {self.warmup_steps} both set "
                    "the warmup; pass one"
                )
            self.warmup_steps = self.warmup_ratio
        if self.group_by_length:
            if self.train_sampling_strategy not in ("random", "group_by_length"):
                raise ConfigError(
                    f"--group_by_length conflicts with --train_sampling_strategy {self.train_sampling_strategy}; pass only one"
                )
            self.train_sampling_strategy = "group_by_length"
        if not self.use_cpu and _launched_as_several_processes() and torch.accelerator.current_accelerator() is None:
            # accelerate builds a CPU process group (gloo) only when told the run is on CPU; without
            # it each process of `torchrun --nproc_per_node N` trains its own copy on all the data.
            self.use_cpu = True
        # before HF's own checks, some of which fail with a traceback (--deepspeed without the package)
        for flag, is_set, reason in _UNSUPPORTED:
            if is_set(self):
                raise ConfigError(f"--{flag} is not supported by the distillation trainer: {reason}")
        super().__post_init__()
        if self.fp16 and self.device.type == "cpu":
            raise ConfigError(
                "--fp16 on a CPU: accelerate has no fp16 autocast there and would train in fp32; "
                "drop it, or use --bf16 --use_cpu where the CPU has native bf16 "
                "(`python -m dynamic_kd.precision` says)"
            )
        if self.dataloader_pin_memory is None:  # not passed: pinning only helps copies to a GPU-like device
            self.dataloader_pin_memory = self.device.type not in ("cpu", "mps")
        if self.accelerator_config.split_batches:  # a dict or JSON text until HF's __post_init__ parses it
            raise ConfigError(
                "--accelerator_config split_batches is not supported by the distillation trainer: it would make "
                "--per_device_train_batch_size the batch of all processes together, changing the batch the strategies plan over; drop it"
            )
        self._check_numbers()

    def _check_numbers(self):
        """Numeric flags with no meaningful value (0 epochs, batch size 0, a negative rate, NaN, ...)."""
        for flag, fix in (
            ("per_device_train_batch_size", "the paper uses 32"),
            ("per_device_eval_batch_size", "e.g. 32"),
            ("gradient_accumulation_steps", "1 = no accumulation"),
            ("ddp_timeout", "seconds, default 1800"),
        ):
            _check_number(f"--{flag}", getattr(self, flag), "positive", fix)
        if self.max_steps <= 0:
            _check_number(
                "--num_train_epochs",
                self.num_train_epochs,
                "positive",
                "the paper trains for 3 epochs (or set --max_steps)",
            )
        _check_number("--learning_rate", self.learning_rate, "positive", "the paper uses 2e-5")
        for flag, fix in (
            ("max_grad_norm", "0 turns gradient clipping off"),
            ("weight_decay", "0 turns weight decay off"),
            ("adam_epsilon", "the default is 1e-8"),
            ("dataloader_num_workers", "0 loads data in the main process"),
            ("seed", "any integer >= 0"),
            ("warmup_steps", "0 = no warmup"),
            ("eval_delay", "0 = no delay"),
        ):
            _check_number(f"--{flag}", getattr(self, flag), "non-negative", fix)
        if self.data_seed is not None:
            _check_number("--data_seed", self.data_seed, "non-negative", "any integer >= 0, or omit it to use --seed")
        for flag in ("adam_beta1", "adam_beta2"):
            _check_number(f"--{flag}", getattr(self, flag), "fraction", "the defaults are 0.9 and 0.999")
        _check_number(
            "--label_smoothing_factor", self.label_smoothing_factor, "fraction", "0 turns smoothing off, 0.1 is common"
        )
        if self.eval_accumulation_steps is not None:
            _check_number(
                "--eval_accumulation_steps",
                self.eval_accumulation_steps,
                "positive",
                "omit it to accumulate on the device",
            )
        for flag, strategy in (
            ("logging_steps", self.logging_strategy),
            ("eval_steps", self.eval_strategy),
            ("save_steps", self.save_strategy),
        ):
            if strategy == "steps":
                _check_number(
                    f"--{flag}",
                    getattr(self, flag),
                    "positive",
                    "a step count, or a fraction of the training steps below 1",
                )

    def check_task(self, task):
        """Label smoothing is undefined for a regression output; the best-model metric is one the task reports."""
        if task.is_regression and self.label_smoothing_factor:
            raise ConfigError(
                f"--label_smoothing_factor applies to class labels and {task.name} is a regression task; drop it"
            )
        if self.metric_for_best_model is not None:
            split = task.eval_splits[0]
            name = self.metric_for_best_model.removeprefix("eval_").removeprefix(f"{split}_")
            known = ("loss", *metric_names(task))
            if name not in known:
                raise ConfigError(
                    f"--metric_for_best_model {self.metric_for_best_model} is not a {task.name} metric; "
                    f"choose one of: {', '.join(known)}"
                )
            # The trainer evaluates a dict of splits and names each score eval_<split>_<metric> (it adds `eval_`).
            self.metric_for_best_model = f"{split}_{name}"


# `TrainingArguments` fields that would change the loss, the data, the batch layout or the
# precision in ways `DistillationTrainer` does not implement: refused rather than ignored (with
# `--accelerator_config '{"split_batches": true}'`, checked in `RunArguments.__post_init__`).
_UNSUPPORTED = (
    (
        "average_tokens_across_devices False",
        lambda a: not a.average_tokens_across_devices,
        "every loss term is a mean over the rows it covers (one label per row), so HF's token count plays no part; drop the flag",
    ),
    (
        "use_liger_kernel",
        lambda a: a.use_liger_kernel,
        "Liger kernels replace decoder-LLM layers and losses; BERT-style students have none, drop the flag",
    ),
    (
        "neftune_noise_alpha",
        lambda a: a.neftune_noise_alpha is not None,
        "NEFTune would add noise to the student's input embeddings but not the teacher's, changing what is distilled; drop the flag",
    ),
    (
        "auto_find_batch_size",
        lambda a: a.auto_find_batch_size,
        "it would shrink the batch the strategies plan over after an out-of-memory error; lower --per_device_train_batch_size and raise --gradient_accumulation_steps instead",
    ),
    (
        "label_names",
        lambda a: a.label_names not in (None, ["labels"]),
        "the gold labels are always the `labels` column the data loader writes; drop the flag",
    ),
    (
        "length_column_name",
        lambda a: a.length_column_name != "length",
        "the datasets carry no length column (length grouping measures input_ids); drop the flag",
    ),
    (
        "dataloader_drop_last",
        lambda a: a.dataloader_drop_last,
        "it would also drop the last batch of every evaluation split, so the dev metrics would miss examples; drop the flag",
    ),
    (
        "bf16_full_eval",
        lambda a: a.bf16_full_eval,
        "HF casts the student's weights to bf16 in place for the final evaluation, so the saved student would be bf16 too; use --bf16 (mixed precision)",
    ),
    (
        "fp16_full_eval",
        lambda a: a.fp16_full_eval,
        "HF casts the student's weights to fp16 in place for the final evaluation, so the saved student would be fp16 too; use --fp16 (mixed precision)",
    ),
    (
        "prediction_loss_only",
        lambda a: a.prediction_loss_only,
        "results.json needs the task metrics, not only the evaluation loss; drop the flag",
    ),
    (
        "batch_eval_metrics",
        lambda a: a.batch_eval_metrics,
        "the GLUE metrics are computed over the whole evaluation split; drop the flag",
    ),
    (
        "eval_do_concat_batches False",
        lambda a: not a.eval_do_concat_batches,
        "the GLUE metrics need every evaluation batch's predictions concatenated; drop the flag",
    ),
    (
        "restore_callback_states_from_checkpoint",
        lambda a: a.restore_callback_states_from_checkpoint,
        "the trainer's callbacks (teacher counters, epoch selection) restore their own state when a run resumes; drop the flag",
    ),
    (
        "do_predict",
        lambda a: a.do_predict,
        "the entry points train, then evaluate on the dev splits; test-set prediction is not implemented, drop the flag",
    ),
    (
        "resume_from_checkpoint",
        lambda a: a.resume_from_checkpoint is not None,
        "a run resumes by itself from the newest complete checkpoint in its --output_dir; rerun the same command instead",
    ),
    (
        "push_to_hub",
        lambda a: a.push_to_hub,
        "HF would upload from inside the training loop (checkpoints with teacher caches), and a hub error would end "
        "the run; upload the finished --output_dir (student, tokenizer, results.json) with "
        "`hf upload REPO_ID OUTPUT_DIR`",
    ),
    (
        "fsdp",
        lambda a: bool(a.fsdp),
        "teachers, caches and projections are built for one process or DDP; launch with torchrun (DDP) instead",
    ),
    (
        "deepspeed",
        lambda a: bool(a.deepspeed),
        "teachers, caches and projections are built for one process or DDP; launch with torchrun (DDP) instead",
    ),
    (
        "parallelism_config",
        lambda a: a.parallelism_config is not None,
        "teachers, caches and projections are built for one process or DDP; launch with torchrun (DDP) instead",
    ),
)


def _launched_as_several_processes() -> bool:
    """A launcher (torchrun, mpirun) started this process as one of several: accelerate's own test."""
    return (
        int(os.environ.get("LOCAL_RANK", -1)) != -1
        or get_int_from_env(["PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "WORLD_SIZE"], 1) > 1
    )


# Flags of HF's run_glue.py or of transformers 4 that this parser does not know: what to do instead.
_UNKNOWN_FLAGS = {
    "--evaluation_strategy": "renamed in transformers 5; use --eval_strategy",
    "--per_gpu_train_batch_size": "renamed in transformers 5; use --per_device_train_batch_size",
    "--per_gpu_eval_batch_size": "renamed in transformers 5; use --per_device_eval_batch_size",
    "--logging_dir": "gone from transformers 5, which reads the TensorBoard folder from the environment; "
    "set TENSORBOARD_LOGGING_DIR=PATH",
    "--cache_dir": "models and tokenizers are read from the Hugging Face cache; set HF_HOME=PATH "
    "(tokenised data: DYNAMIC_KD_CACHE=PATH)",
    "--overwrite_cache": "the tokenised-data cache is keyed on the files, tokenizer and settings it was built from, "
    "so it is never stale; drop the flag",
}


def _check_unknown_flags(argv):
    for argument in argv:
        flag = argument.split("=", 1)[0]
        if flag in _UNKNOWN_FLAGS:
            raise ConfigError(f"{flag} is not a flag of these scripts: {_UNKNOWN_FLAGS[flag]}")


class _OneLineErrorParser(HfArgumentParser):
    """argparse prints the whole usage (hundreds of flags) on a typo; we raise one line instead."""

    def error(self, message):
        raise ConfigError(f"{message} (see --help)")


def parse_args(argv, *dataclass_types, defaults=None):
    """Parse `argv` (default sys.argv[1:]) into the given dataclasses followed by `RunArguments`.

    `defaults` lets a script change a shared default (e.g. dynamic_teacher.py sets
    `uncertainty_mode="hard"`) without a second copy of the argument code.
    """
    parser = _OneLineErrorParser((*dataclass_types, RunArguments))
    if defaults:
        parser.set_defaults(**defaults)
    argv = sys.argv[1:] if argv is None else list(argv)
    _check_unknown_flags(argv)
    try:
        parsed = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:  # TrainingArguments' own checks
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(" ".join(line.strip() for line in str(error).splitlines() if line.strip())) from error
    data_args = next((a for a in parsed if isinstance(a, DataArguments)), None)
    kd_args = next((a for a in parsed if isinstance(a, DistillationArguments)), None)
    training_args = parsed[-1]
    if data_args is not None:
        training_args.check_task(data_args.task)
    if kd_args is not None:
        kd_args.check_training(training_args)
        if data_args is not None:
            kd_args.check_task(data_args.task)
    return parsed
