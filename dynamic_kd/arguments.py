"""The one argument set shared by the four entry points, parsed with `HfArgumentParser`.

Choices come from the registries that implement them; numeric checks are tables of
(field, range, fix) read by one loop, with each default formatted from its field. Every check
raises a one-line `ConfigError` that names the fix.
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

# What a numeric flag may be, as the message words it -> the test (NaN fails every comparison).
_RANGES = {
    "a positive number": lambda v: v > 0,
    "a number >= 0": lambda v: v >= 0,
    "in [0, 1)": lambda v: 0 <= v < 1,
    "in (0, 1]": lambda v: 0 < v <= 1,
    "at least 1": lambda v: v >= 1,
    "a positive integer": lambda v: v >= 1,
}


def _one_of(registry):
    return ", ".join(registry)


def _flag(args, name):
    """The flag a message names: the field's first alias (`kd_alpha` -> `--kd_kl_alpha`), else `--name`."""
    return args.__dataclass_fields__[name].metadata.get("aliases", [f"--{name}"])[0]


def _check_number(flag, value, kind, fix):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not _RANGES[kind](value)
    ):
        raise ConfigError(f"{flag} must be {kind}, got {value}; {fix}")


def _check_values(args, choices=None, bounds=()):
    """`choices`: field -> the names it takes; `bounds`: (field, `_RANGES` key, fix). A field left at None is not
    checked; `{default}` in a fix is the field's default."""
    for name, registry in (choices or {}).items():
        value = getattr(args, name)
        if value is not None and value not in registry:
            raise ConfigError(f"unknown {_flag(args, name)} '{value}'; choose one of: {_one_of(registry)}")
    for name, kind, fix in bounds:
        value = getattr(args, name)
        if value is not None:
            default = args.__dataclass_fields__[name].default
            _check_number(_flag(args, name), value, kind, fix.format(default=default))


def _check_writable_dir(flag, path):
    """Fail now, not at the first epoch end (where only rank 0 writes), if `path` cannot be a writable folder."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{flag} {path} cannot be created or written ({existing} is not a writable folder); "
            "pass a writable folder or use --teacher_cache memory"
        )


@dataclass
class DataArguments:
    task_name: str | None = field(
        default=None,
        metadata={
            "help": f"A GLUE-style task: {', '.join(TASKS)}; or {CUSTOM_TASK} (the default): your own "
            "--train_file/--validation_file, labels read from the training file."
        },
    )
    data_dir: str | None = field(
        default=None, metadata={"help": "Folder in the original GLUE format (train.tsv, dev.tsv, ...); read offline."}
    )
    train_file: str | None = field(
        default=None, metadata={"help": "CSV/TSV/JSON(L) training file: the text column(s) and a label column."}
    )
    validation_file: str | None = field(default=None, metadata={"help": "Validation file with the same columns."})
    text_column: str | None = field(
        default=None,
        metadata={"help": f"{CUSTOM_TASK} task: the text column, or two comma-separated ones; default sentence."},
    )
    label_column: str | None = field(
        default=None, metadata={"help": f"{CUSTOM_TASK} task: the label column; default label."}
    )
    is_regression: bool = field(
        default=False, metadata={"help": f"{CUSTOM_TASK} task: numeric labels (one output, MSE, Pearson/Spearman)."}
    )
    max_seq_length: int = field(default=128, metadata={"help": "Truncate inputs to this many tokens."})
    pad_to_max_length: bool = field(
        default=False, metadata={"help": "Pad every input to --max_seq_length (the original code), not per batch."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep the first N training examples."})
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep the first N examples of each evaluation split."}
    )

    def __post_init__(self):
        if self.max_seq_length < 8:
            raise ConfigError(f"--max_seq_length {self.max_seq_length} is too small; use at least 8 (default 128)")
        limits = ("max_train_samples", "max_eval_samples")
        _check_values(self, bounds=[(name, "a positive integer", "omit it to use all rows") for name in limits])
        if (self.train_file is None) != (self.validation_file is None):
            raise ConfigError("--train_file and --validation_file go together; pass both (or use --data_dir)")
        self.task = self._resolve_task()

    def _resolve_task(self):
        """A registry task by name, or the custom task built from the user's files (read last: it opens them)."""
        custom_flags = [
            n for n in ("text_column", "label_column", "is_regression") if getattr(self, n) not in (None, False)
        ]
        if self.task_name is not None and self.task_name.lower() != CUSTOM_TASK:
            task = get_task(self.task_name)
            if custom_flags:
                raise ConfigError(
                    f"--{custom_flags[0]} is for your own data (--task_name {CUSTOM_TASK} or none); "
                    f"{task.name} has fixed columns and labels"
                )
            return task
        if self.train_file is None:
            raise ConfigError(
                f"no data: pass --task_name (one of {', '.join(TASKS)}) or your own --train_file and --validation_file"
            )
        if self.data_dir is not None:
            raise ConfigError(
                f"--data_dir holds a registry task's GLUE files; the {CUSTOM_TASK} task reads "
                "--train_file/--validation_file only (or pass --task_name)"
            )
        columns = {}  # what is not given keeps custom_task's default
        if self.text_column is not None:
            columns["text_columns"] = tuple(name.strip() for name in self.text_column.split(","))
        if self.label_column is not None:
            columns["label_column"] = self.label_column
        return custom_task(self.train_file, self.validation_file, is_regression=self.is_regression, **columns)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "Pretrained model (hub id or folder) the run starts from."})
    student_num_layers: int | None = field(
        default=None, metadata={"help": "Keep K transformer layers of the pretrained model (default: all)."}
    )
    student_layer_init: str = field(
        default="first",
        metadata={"help": "Which K layers: first (0..K-1, the original) or skip (every L/K-th, PKD-Skip)."},
    )

    def __post_init__(self):
        _check_values(
            self,
            choices={"student_layer_init": ("first", "skip")},
            bounds=[("student_num_layers", "at least 1", "omit it to keep every pretrained layer")],
        )


@dataclass
class DistillationArguments:
    teacher: str | None = field(default=None, metadata={"help": "Fine-tuned teacher folder (one teacher)."})
    small_teacher: str | None = field(default=None, metadata={"help": "Smaller teacher (teacher adoption, Sec. 3.1)."})
    large_teacher: str | None = field(default=None, metadata={"help": "Larger teacher (teacher adoption, Sec. 3.1)."})
    uncertainty_mode: str | None = field(
        default=None, metadata={"help": f"Teacher adoption: {_one_of(TEACHER_MODES)}; needs the two teachers."}
    )
    small_teacher_alpha: float = field(default=0.5, metadata={"help": "Small teacher's KD weight (hard, average)."})
    large_teacher_alpha: float = field(default=0.5, metadata={"help": "Large teacher's KD weight (hard, average)."})
    selection_strategy: str = field(
        default="none",
        metadata={
            "help": f"Data selection (Sec. 3.2): {_one_of(SELECTION_STRATEGIES)} (lc also as {_one_of(SELECTION_ALIASES)})."
        },
    )
    selection_ratio: float = field(
        default=1.0, metadata={"help": "Fraction r in (0, 1] of instances that get a teacher query and a KD term."}
    )
    selection_scope: str = field(
        default="batch",
        metadata={"help": "batch: select in each batch (the paper); epoch: train each epoch on the top r of the set."},
    )
    strategy: str = field(
        default="none", metadata={"help": f"Supervision adjustment (Sec. 3.3): {_one_of(OBJECTIVE_STRATEGIES)}."}
    )
    kd_loss: str = field(
        default="auto", metadata={"help": f"Logit KD loss: {_one_of(KD_LOSSES)}, or auto (mse for regression)."}
    )
    temperature: float = field(default=1.0, metadata={"help": "Softmax temperature T of the KL loss."})
    ce_alpha: float = field(default=1.0, metadata={"help": "Weight of the gold-label (CE or MSE) term."})
    kd_alpha: float = field(
        default=1.0, metadata={"help": "Weight of the logit KD term.", "aliases": ["--kd_kl_alpha"]}
    )
    rep_alpha: float = field(
        default=0.0,
        metadata={"help": "Weight of the hidden-state alignment term (0 = off).", "aliases": ["--kd_rep_alpha"]},
    )
    rep_layers: str = field(
        default="all", metadata={"help": "Align hidden states over all tokens, or cls ([CLS] only, PKD)."}
    )
    rep_normalization: str = field(
        default="hidden",
        metadata={
            "help": "Normalise each token's state (hidden) or each unit over the tokens (sequence: the released "
            "static baseline; needs --rep_layers all)."
        },
    )
    rep_include_padding: bool = field(
        default=False,
        metadata={
            "help": "Count padding in the REP term's norm and mean, as the released scripts did; needs "
            "--kd_rep_alpha > 0 and --rep_layers all."
        },
    )
    uncertainty_grad: bool = field(
        default=False,
        metadata={
            "help": "Back-propagate through the uncertainty weights, as the released code did; one process, "
            "no gradient accumulation."
        },
    )
    teacher_dropout: bool = field(
        default=False,
        metadata={"help": "Run the teachers with dropout, as the released code did; needs --teacher_cache none."},
    )
    rep_projection: bool = field(
        default=True,
        metadata={"help": "Learn a linear map when the hidden sizes differ (never saved with the student)."},
    )
    teacher_cache: str = field(
        default="memory",
        metadata={
            "help": f"Teacher-output store: {_one_of(TEACHER_CACHE_MODES)} (memory: this run; disk: shared by runs "
            "with the same teacher, data, tokenisation and precision)."
        },
    )
    teacher_cache_dir: str | None = field(
        default=None,
        metadata={"help": "Where --teacher_cache disk stores (default: $DYNAMIC_KD_CACHE/teacher_outputs)."},
    )
    teacher_dtype: str = field(
        default="auto",
        metadata={
            "help": f"Teacher precision: {_one_of(TEACHER_DTYPES)} (auto follows --bf16/--fp16; weights stay fp32)."
        },
    )
    teacher_batch_size: int = field(default=256, metadata={"help": "Rows per teacher forward when filling the store."})
    skip_teacher_check: bool = field(
        default=False,
        metadata={"help": "Warn instead of failing when the teacher scores no better than the majority class."},
    )

    def __post_init__(self):
        self.selection_strategy = SELECTION_ALIASES.get(self.selection_strategy, self.selection_strategy)
        weight = "a loss weight of 0 turns its term off"
        _check_values(
            self,
            choices={
                "uncertainty_mode": TEACHER_MODES,
                "selection_strategy": SELECTION_STRATEGIES,
                "selection_scope": ("batch", "epoch"),
                "strategy": OBJECTIVE_STRATEGIES,
                "kd_loss": (*KD_LOSSES, "auto"),
                "rep_layers": ("all", "cls"),
                "rep_normalization": REP_NORMALIZATIONS,
                "teacher_cache": TEACHER_CACHE_MODES,
                "teacher_dtype": TEACHER_DTYPES,
            },
            bounds=[
                ("selection_ratio", "in (0, 1]", "e.g. 0.1 distils the 10% most uncertain instances, 1 all of them"),
                ("temperature", "a positive number", "the paper uses 1"),
                *[(name, "a number >= 0", weight) for name in ("ce_alpha", "kd_alpha", "rep_alpha")],
                *[(f"{size}_teacher_alpha", "a number >= 0", weight) for size in ("small", "large")],
                ("teacher_batch_size", "at least 1", "the default is {default}"),
            ],
        )
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
        self.teacher_cache_dir = os.path.expanduser(
            self.teacher_cache_dir or os.path.join(cache_root(), "teacher_outputs")
        )
        if self.teacher_cache == "disk":
            _check_writable_dir("--teacher_cache_dir", self.teacher_cache_dir)
        chosen = [name for name in SELECTION_STRATEGIES if name != "none"]
        selectors = f"{', '.join(chosen[:-1])} or {chosen[-1]}"
        if self.selection_scope == "epoch" and self.selection_strategy == "none":
            raise ConfigError(
                f"--selection_scope epoch needs a --selection_strategy ({selectors}) to choose each epoch's rows; "
                "add one or drop --selection_scope"
            )
        if self.selection_strategy == "none" and self.selection_ratio != 1.0:
            raise ConfigError(
                f"--selection_ratio needs a --selection_strategy ({selectors}); 'none' keeps every instance"
            )
        if self.ce_alpha == self.kd_alpha == self.rep_alpha == 0:
            raise ConfigError(
                "--ce_alpha, --kd_kl_alpha and --kd_rep_alpha are all 0, so there is no loss to train on; "
                "give at least one a positive weight"
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
        """Uncertainty is undefined for a regression output."""
        if not task.is_regression:
            return
        for flag in ("selection_strategy", "uncertainty_mode", "strategy"):
            if getattr(self, flag) in UNCERTAINTY_STRATEGIES:
                raise ConfigError(
                    f"{task.name} is a regression task and --{flag} needs class probabilities; use --selection_strategy"
                    " none/random, --uncertainty_mode single-small/single-large/average, --strategy none"
                )
        if self.kd_loss == "kl":
            raise ConfigError(f"{task.name} is a regression task; use --kd_loss mse (or auto)")

    def check_training(self, training_args):
        """Gradient through the uncertainty weights needs the plan made from the logits the loss back-propagates
        through; epoch scope brings its own sampler."""
        if self.uncertainty_grad and (training_args.world_size > 1 or training_args.gradient_accumulation_steps > 1):
            raise ConfigError(
                "--uncertainty_grad needs the global batch in one forward (one process, --gradient_accumulation_steps"
                f" 1): here it spans {training_args.world_size} process(es) x "
                f"{training_args.gradient_accumulation_steps} accumulation step(s); drop one of the two"
            )
        if self.selection_scope == "epoch" and training_args.train_sampling_strategy != "random":
            raise ConfigError(
                "--selection_scope epoch trains each epoch on its selected rows in a shuffled order, so "
                f"--train_sampling_strategy {training_args.train_sampling_strategy} (or --group_by_length) would be "
                "ignored; drop one of the two"
            )


# Run flags whose values mean nothing: (field, range, fix); a `*_steps` flag is checked when its strategy is steps.
_RUN_BOUNDS = (
    ("per_device_train_batch_size", "a positive number", "the paper uses 32"),
    ("per_device_eval_batch_size", "a positive number", "e.g. 32"),
    ("gradient_accumulation_steps", "a positive number", "1 = no accumulation"),
    ("ddp_timeout", "a positive number", "seconds, default {default}"),
    ("learning_rate", "a positive number", "the paper uses 2e-5"),
    ("eval_accumulation_steps", "a positive number", "omit it to accumulate on the device"),
    ("max_grad_norm", "a number >= 0", "0 turns gradient clipping off"),
    ("weight_decay", "a number >= 0", "0 turns weight decay off"),
    ("adam_epsilon", "a number >= 0", "the default is {default}"),
    ("dataloader_num_workers", "a number >= 0", "0 loads data in the main process"),
    ("seed", "a number >= 0", "any integer >= 0"),
    ("data_seed", "a number >= 0", "any integer >= 0, or omit it to use --seed"),
    ("warmup_steps", "a number >= 0", "0 = no warmup"),
    ("eval_delay", "a number >= 0", "0 = no delay"),
    ("adam_beta1", "in [0, 1)", "the default is {default}"),
    ("adam_beta2", "in [0, 1)", "the default is {default}"),
    ("label_smoothing_factor", "in [0, 1)", "0 turns smoothing off, 0.1 is common"),
)

_MULTI_PROCESS = "teachers, caches and projections are built for one process or DDP; launch with torchrun (DDP) instead"
# `TrainingArguments` fields that would change the loss, the data, the batch layout or the precision in ways
# `DistillationTrainer` does not implement: refused unless left at HF's default (or a value in `_HARMLESS`).
# A flag whose default is True is refused as `--flag False`.
_UNSUPPORTED = {
    "average_tokens_across_devices": "every loss term is a mean over the rows it covers (one label per row), so "
    "HF's token count plays no part; drop the flag",
    "use_liger_kernel": "Liger kernels replace decoder-LLM layers and losses; BERT-style students have none, "
    "drop the flag",
    "neftune_noise_alpha": "NEFTune would add noise to the student's input embeddings but not the teacher's, "
    "changing what is distilled; drop the flag",
    "auto_find_batch_size": "it would shrink the batch the strategies plan over after an out-of-memory error; "
    "lower --per_device_train_batch_size and raise --gradient_accumulation_steps instead",
    "label_names": "the gold labels are always the `labels` column the data loader writes; drop the flag",
    "length_column_name": "the datasets carry no length column (length grouping measures input_ids); drop the flag",
    "dataloader_drop_last": "it would also drop the last batch of every evaluation split, so the dev metrics "
    "would miss examples; drop the flag",
    "bf16_full_eval": "HF casts the student's weights to bf16 in place for the final evaluation, so the saved "
    "student would be bf16 too; use --bf16 (mixed precision)",
    "fp16_full_eval": "HF casts the student's weights to fp16 in place for the final evaluation, so the saved "
    "student would be fp16 too; use --fp16 (mixed precision)",
    "prediction_loss_only": "results.json needs the task metrics, not only the evaluation loss; drop the flag",
    "batch_eval_metrics": "the GLUE metrics are computed over the whole evaluation split; drop the flag",
    "eval_do_concat_batches": "the GLUE metrics need every evaluation batch's predictions concatenated; drop the flag",
    "restore_callback_states_from_checkpoint": "the trainer's callbacks (teacher counters, epoch selection) "
    "restore their own state when a run resumes; drop the flag",
    "do_predict": "the entry points train, then evaluate on the dev splits; test-set prediction is not "
    "implemented, drop the flag",
    "resume_from_checkpoint": "a run resumes by itself from the newest complete checkpoint in its --output_dir; "
    "rerun the same command instead",
    "push_to_hub": "HF would upload from inside the training loop (checkpoints with teacher caches), and a hub "
    "error would end the run; upload the finished --output_dir (student, tokenizer, results.json) with "
    "`hf upload REPO_ID OUTPUT_DIR`",
    "fsdp": _MULTI_PROCESS,
    "deepspeed": _MULTI_PROCESS,
    "parallelism_config": _MULTI_PROCESS,
}
_HARMLESS = {"label_names": (["labels"],), "fsdp": ("", []), "deepspeed": ("",)}


@dataclass
class RunArguments(TrainingArguments):
    """HF `TrainingArguments` plus the project's own run-level flags."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Run in an --output_dir with a finished results.json (replaced when this run finishes)."},
    )
    group_by_length: bool = field(
        default=False, metadata={"help": "Batch similar lengths together (--train_sampling_strategy group_by_length)."}
    )
    dataloader_pin_memory: bool | None = field(
        default=None,
        metadata={
            "help": "Pin batches in host memory (default: on with a GPU, off on CPU).",
            "nargs": "?",
            "const": True,
        },
    )
    do_train: bool = field(default=True, metadata={"help": "run_glue.py's flag: always on; False is refused."})
    do_eval: bool = field(default=True, metadata={"help": "run_glue.py's flag: always on; False is refused."})
    warmup_ratio: float | None = field(
        default=None,
        metadata={
            "help": "Linear warmup over this fraction of the steps (gone from transformers 5): sets --warmup_steps."
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
            _check_values(self, bounds=[("warmup_ratio", "in [0, 1)", "0.1 warms up over the first 10% of steps")])
            if self.warmup_steps:
                raise ConfigError(
                    f"--warmup_ratio {self.warmup_ratio} and --warmup_steps {self.warmup_steps} both set "
                    "the warmup; pass one"
                )
            self.warmup_steps = self.warmup_ratio  # HF reads a value below 1 as a fraction
        if self.group_by_length:
            if self.train_sampling_strategy not in ("random", "group_by_length"):
                raise ConfigError(
                    f"--group_by_length conflicts with --train_sampling_strategy {self.train_sampling_strategy}; "
                    "pass only one"
                )
            self.train_sampling_strategy = "group_by_length"
        if not self.use_cpu and _launched_as_several_processes() and torch.accelerator.current_accelerator() is None:
            # accelerate builds a CPU process group (gloo) only when told the run is on CPU; without
            # it each process of `torchrun --nproc_per_node N` trains its own copy on all the data.
            self.use_cpu = True
        # before HF's own checks, some of which fail with a traceback (--deepspeed without the package)
        for name, reason in _UNSUPPORTED.items():
            default = TrainingArguments.__dataclass_fields__[name].default
            if getattr(self, name) not in (default, *_HARMLESS.get(name, ())):
                flag = f"{name} False" if default is True else name
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
                "--per_device_train_batch_size the batch of all processes together, changing the batch the "
                "strategies plan over; drop it"
            )
        bounds = list(_RUN_BOUNDS)
        if self.max_steps <= 0:
            bounds.append(
                ("num_train_epochs", "a positive number", "the paper trains for 3 epochs (or set --max_steps)")
            )
        for kind in ("logging", "eval", "save"):
            if getattr(self, f"{kind}_strategy") == "steps":
                bounds.append(
                    (f"{kind}_steps", "a positive number", "a step count, or a fraction of the training steps below 1")
                )
        _check_values(self, bounds=bounds)

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


class _OneLineErrorParser(HfArgumentParser):
    """argparse prints the whole usage (hundreds of flags) on a typo; we raise one line instead."""

    def error(self, message):
        raise ConfigError(f"{message} (see --help)")


def parse_args(argv, *dataclass_types, defaults=None):
    """Parse `argv` (default sys.argv[1:]) into the given dataclasses followed by `RunArguments`.

    `defaults` lets a script change a shared default (dynamic_teacher.py: `uncertainty_mode="hard"`).
    """
    parser = _OneLineErrorParser((*dataclass_types, RunArguments))
    if defaults:
        parser.set_defaults(**defaults)
    argv = sys.argv[1:] if argv is None else list(argv)
    for flag in (argument.split("=", 1)[0] for argument in argv):
        if flag in _UNKNOWN_FLAGS:
            raise ConfigError(f"{flag} is not a flag of these scripts: {_UNKNOWN_FLAGS[flag]}")
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
