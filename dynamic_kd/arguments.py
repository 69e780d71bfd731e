"""The one argument set of the four entry points. Choices come from the registries that implement them; a bad
value raises a one-line `ConfigError` (problem; fix)."""

import math
import os
import sys
from dataclasses import dataclass, field

import torch
from accelerate.utils import get_int_from_env
from transformers import HfArgumentParser, TrainingArguments

from dynamic_kd.cache import cache_root, could_write
from dynamic_kd.data import CUSTOM_TASK, TASKS, custom_task, get_task
from dynamic_kd.errors import ConfigError
from dynamic_kd.losses import KD_LOSSES, REP_NORMALIZATIONS
from dynamic_kd.metrics import metric_names
from dynamic_kd.precision import TEACHER_DTYPES
from dynamic_kd.strategies import (
    OBJECTIVE_STRATEGIES,
    SELECTION_ALIASES,
    SELECTION_STRATEGIES,
    TEACHER_MODES,
    UNCERTAINTY_STRATEGIES,
    UNCERTAINTY_WEIGHTED_MODES,
    UNCERTAINTY_WEIGHTED_OBJECTIVES,
)
from dynamic_kd.teachers import TEACHER_CACHE_MODES
from dynamic_kd.tokenization import MIN_SEQ_LENGTH

# a numeric flag's bound, as its message words it -> its test (NaN fails every comparison)
_RANGES = {
    "a positive number": lambda v: v > 0,
    "a number >= 0": lambda v: v >= 0,
    "in [0, 1)": lambda v: 0 <= v < 1,
    "in (0, 1]": lambda v: 0 < v <= 1,
    "at least 1": lambda v: v >= 1,
    f"at least {MIN_SEQ_LENGTH}": lambda v: v >= MIN_SEQ_LENGTH,
}
_DEFAULT = "the default is {default}"


def _arg(default, text, **metadata):
    return field(default=default, metadata={"help": text, **metadata})


def _check(args, bounds):
    """`bounds`: `_RANGES` key -> {field: fix}; None is not set."""
    for kind, fixes in bounds.items():
        for name, fix in fixes.items():
            value, spec = getattr(args, name), args.__dataclass_fields__[name]
            if value is not None and not (math.isfinite(value) and _RANGES[kind](value)):
                raise ConfigError(f"--{name} must be {kind}, got {value}; {fix.format(default=spec.default)}")


@dataclass
class DataArguments:
    task_name: str | None = _arg(None, f"{', '.join(TASKS)}; or {CUSTOM_TASK} (the default): your own files.")
    data_dir: str | None = _arg(None, "GLUE-format folder (train.tsv, dev.tsv, ...).")
    train_file: str | None = _arg(None, "CSV/TSV/JSON(L) file: text column(s) and a label.")
    validation_file: str | None = _arg(None, "The same for validation.")
    text_column: str | None = _arg(None, "Own data: text column(s), comma-separated; default sentence.")
    label_column: str | None = _arg(None, "Own data: label column; default label.")
    is_regression: bool = _arg(False, "Own data: numeric labels (MSE, Pearson/Spearman).")
    max_seq_length: int = _arg(128, "Truncate inputs to this many tokens.")
    pad_to_max_length: bool = _arg(False, "Pad to --max_seq_length (the original code).")
    max_train_samples: int | None = _arg(None, "Keep the first N training examples.")
    max_eval_samples: int | None = _arg(None, "Keep the first N of each eval split.")

    def __post_init__(self):
        bounds = {
            f"at least {MIN_SEQ_LENGTH}": {"max_seq_length": _DEFAULT},
            "at least 1": dict.fromkeys(("max_train_samples", "max_eval_samples"), "omit it for all rows"),
        }
        _check(self, bounds)
        if (self.train_file is None) != (self.validation_file is None):
            raise ConfigError("--train_file and --validation_file go together; pass both (or use --data_dir)")
        self.task = self._resolve_task()

    def _resolve_task(self):
        """A registry task, or the custom task of the user's files (last: it opens them)."""
        own_data = ("text_column", "label_column", "is_regression")
        custom = [name for name in own_data if getattr(self, name) not in (None, False)]
        if self.task_name is not None and self.task_name.lower() != CUSTOM_TASK:
            task = get_task(self.task_name)
            if custom:
                raise ConfigError(f"--{custom[0]} is for your own data ({task.name} has fixed columns); drop it")
            return task
        if self.train_file is None:
            raise ConfigError(
                f"no data: pass --task_name (one of {', '.join(TASKS)}) or --train_file and --validation_file"
            )
        if self.data_dir is not None:
            raise ConfigError("--data_dir holds a registry task's GLUE files; pass --task_name, or drop it")
        columns = {}  # a column not given keeps its default
        if self.text_column is not None:
            columns["text_columns"] = tuple(name.strip() for name in self.text_column.split(","))
        if self.label_column is not None:
            columns["label_column"] = self.label_column
        return custom_task(self.train_file, self.validation_file, is_regression=self.is_regression, **columns)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "Pretrained model: hub id or folder."})
    student_num_layers: int | None = _arg(None, "Keep K layers (default: all).")
    student_layer_init: str = _arg("first", "The first K or every L/K-th (PKD-Skip).", choices=("first", "skip"))

    def __post_init__(self):
        _check(self, {"at least 1": {"student_num_layers": "omit it to keep every pretrained layer"}})


@dataclass
class DistillationArguments:
    teacher: str | None = _arg(None, "Fine-tuned teacher folder.")
    small_teacher: str | None = _arg(None, "Smaller teacher (Sec. 3.1).")
    large_teacher: str | None = _arg(None, "Larger teacher (Sec. 3.1).")
    uncertainty_mode: str | None = _arg(None, "Teacher adoption (Sec. 3.1).", choices=TEACHER_MODES)
    small_teacher_alpha: float = _arg(0.5, "Small teacher's KD weight (hard, average).")
    large_teacher_alpha: float = _arg(0.5, "Large teacher's KD weight (hard, average).")
    selection_strategy: str = _arg(
        "none", "Data selection (Sec. 3.2).", choices=(*SELECTION_STRATEGIES, *SELECTION_ALIASES)
    )
    selection_ratio: float = _arg(1.0, "Fraction r of instances distilled.")
    selection_scope: str = _arg("batch", "Select per batch (the paper) or per epoch.", choices=("batch", "epoch"))
    strategy: str = _arg("none", "Supervision adjustment (Sec. 3.3).", choices=OBJECTIVE_STRATEGIES)
    kd_loss: str = _arg("auto", "Logit KD loss; auto: mse for regression.", choices=(*KD_LOSSES, "auto"))
    temperature: float = _arg(1.0, "Softmax temperature T of the KL loss.")
    ce_alpha: float = _arg(1.0, "Weight of the gold-label term.")
    kd_kl_alpha: float = _arg(1.0, "Weight of the logit KD term.")
    kd_rep_alpha: float = _arg(0.0, "Weight of the hidden-state (REP) term.")
    rep_layers: str = _arg("all", "REP over all tokens, or [CLS] only (PKD).", choices=("all", "cls"))
    rep_normalization: str = _arg("hidden", "REP normalisation axis.", choices=REP_NORMALIZATIONS)
    rep_include_padding: bool = _arg(False, "Count padding in REP (released code).")
    uncertainty_grad: bool = _arg(False, "Gradient through uncertainty weights (released code).")
    teacher_dropout: bool = _arg(False, "Teachers with dropout (released code).")
    rep_projection: bool = _arg(True, "Learn a map between different hidden sizes.")
    teacher_cache: str = _arg("memory", "Teacher-output store (disk: across runs).", choices=TEACHER_CACHE_MODES)
    teacher_cache_dir: str | None = _arg(None, "Default: $DYNAMIC_KD_CACHE/teacher_outputs.")
    teacher_dtype: str = _arg("auto", "Teacher precision (auto: like --bf16/--fp16).", choices=TEACHER_DTYPES)
    teacher_batch_size: int = _arg(256, "Rows per teacher forward.")
    skip_teacher_check: bool = _arg(False, "Only warn on a teacher no better than the majority class.")

    def __post_init__(self):
        self.selection_strategy = SELECTION_ALIASES.get(self.selection_strategy, self.selection_strategy)
        weights = ("ce_alpha", "kd_kl_alpha", "kd_rep_alpha", "small_teacher_alpha", "large_teacher_alpha")
        bounds = {
            "in (0, 1]": {"selection_ratio": "e.g. 0.1 distils the 10% most uncertain instances, 1 all"},
            "a positive number": {"temperature": "the paper uses 1"},
            "a number >= 0": dict.fromkeys(weights, "a weight of 0 turns its term off"),
            "at least 1": {"teacher_batch_size": _DEFAULT},
        }
        _check(self, bounds)
        store = self.teacher_cache_dir or os.path.join(cache_root(), "teacher_outputs")
        self.teacher_cache_dir = os.path.expanduser(store)
        if self.rep_normalization == "sequence" and self.rep_layers == "cls":
            raise ConfigError("--rep_normalization sequence normalises over the tokens; use --rep_layers all")
        if self.rep_include_padding and (self.kd_rep_alpha == 0 or self.rep_layers == "cls"):
            raise ConfigError("--rep_include_padding changes REP; it needs --kd_rep_alpha > 0 and --rep_layers all")
        if self.teacher_dropout and self.teacher_cache != "none":
            raise ConfigError("--teacher_dropout needs a fresh teacher forward each step; use --teacher_cache none")
        modes, objectives = UNCERTAINTY_WEIGHTED_MODES, UNCERTAINTY_WEIGHTED_OBJECTIVES
        if self.uncertainty_grad and self.uncertainty_mode not in modes and self.strategy not in objectives:
            raise ConfigError(
                f"--uncertainty_grad acts on uncertainty weights; use --uncertainty_mode {'/'.join(modes)} "
                f"or --strategy {'/'.join(objectives)}, or drop it"
            )
        if self.teacher_cache == "disk" and not could_write(self.teacher_cache_dir):
            raise ConfigError(
                f"--teacher_cache_dir {self.teacher_cache_dir} is not a writable folder; "
                "pass another or use --teacher_cache memory"
            )
        chosen = ", ".join(name for name in SELECTION_STRATEGIES if name != "none")
        needs_strategy = f"needs a --selection_strategy ({chosen})"
        if self.selection_scope == "epoch" and self.selection_strategy == "none":
            raise ConfigError(f"--selection_scope epoch {needs_strategy}; add one or drop --selection_scope")
        if self.selection_strategy == "none" and self.selection_ratio != 1.0:
            raise ConfigError(f"--selection_ratio {needs_strategy}; 'none' keeps every instance")
        if self.ce_alpha == self.kd_kl_alpha == self.kd_rep_alpha == 0:
            raise ConfigError("--ce_alpha, --kd_kl_alpha, --kd_rep_alpha all 0: no loss to train on; raise one")
        if self.strategy != "none" and self.kd_rep_alpha == 0:
            raise ConfigError(f"--strategy {self.strategy} weighs KD against REP; set --kd_rep_alpha > 0")
        self.teachers = self._teacher_paths()

    def _teacher_paths(self) -> dict[str, str]:
        if self.uncertainty_mode is None:
            if self.small_teacher or self.large_teacher:
                raise ConfigError("--small_teacher/--large_teacher need --uncertainty_mode; for one use --teacher")
            if not self.teacher:
                raise ConfigError("no teacher given; pass --teacher DIR (e.g. from train_teacher.py)")
            return {"teacher": self.teacher}
        if self.teacher:
            raise ConfigError("--teacher is one teacher; --uncertainty_mode takes --small_teacher/--large_teacher")
        teachers = {name: getattr(self, f"{name}_teacher") for name in TEACHER_MODES[self.uncertainty_mode].teachers}
        missing = [f"--{name}_teacher" for name, path in teachers.items() if not path]
        if missing:
            raise ConfigError(f"--uncertainty_mode {self.uncertainty_mode} needs {' and '.join(missing)}")
        return teachers

    def check_task(self, task):
        """Uncertainty is undefined for a regression output."""
        if not task.is_regression:
            return
        registries = {
            "selection_strategy": SELECTION_STRATEGIES,
            "uncertainty_mode": TEACHER_MODES,
            "strategy": OBJECTIVE_STRATEGIES,
        }
        for name, registry in registries.items():
            if getattr(self, name) in UNCERTAINTY_STRATEGIES:
                usable = ", ".join(key for key in registry if key not in UNCERTAINTY_STRATEGIES)
                raise ConfigError(
                    f"{task.name} is a regression task and --{name} needs class probabilities; use one of: {usable}"
                )
        if self.kd_loss == "kl":
            raise ConfigError(f"{task.name} is a regression task; use --kd_loss mse (or auto)")

    def check_training(self, run):
        if self.uncertainty_grad and (run.world_size > 1 or run.gradient_accumulation_steps > 1):
            raise ConfigError(
                "--uncertainty_grad needs the global batch in one forward; use one process and "
                "--gradient_accumulation_steps 1"
            )
        if self.selection_scope == "epoch" and run.train_sampling_strategy != "random":
            raise ConfigError(
                "--selection_scope epoch orders each epoch's rows itself; drop --train_sampling_strategy "
                f"{run.train_sampling_strategy} (or --group_by_length)"
            )


_RUN_BOUNDS = {
    "a positive number": {
        "per_device_train_batch_size": "the paper uses 32",
        **dict.fromkeys(("per_device_eval_batch_size", "gradient_accumulation_steps", "ddp_timeout"), _DEFAULT),
        "learning_rate": "the paper uses 2e-5",
        "eval_accumulation_steps": "omit it to accumulate on the device",
    },
    "a number >= 0": {
        "max_grad_norm": "0 turns gradient clipping off",
        **dict.fromkeys(("weight_decay", "adam_epsilon", "dataloader_num_workers", "seed", "eval_delay"), _DEFAULT),
        "data_seed": "omit it to use --seed",
        "warmup_steps": "0 = no warmup",
    },
    "in [0, 1)": dict.fromkeys(("adam_beta1", "adam_beta2", "label_smoothing_factor"), _DEFAULT),
}

_DDP_ONLY = "the teachers work in one process or DDP; launch with torchrun"
_WHOLE_SPLIT = "the metrics need every prediction of a split"
# HF flags `DistillationTrainer` does not implement: refused unless at HF's default or in `_HARMLESS`;
# a reason with no fix of its own ("...; fix") is told to drop the flag
_UNSUPPORTED = {
    "average_tokens_across_devices": "the losses are means over rows",
    "use_liger_kernel": "BERT-style students have no Liger kernels",
    "neftune_noise_alpha": "it would noise the student's inputs only",
    "auto_find_batch_size": "it changes the batch the strategies plan over; lower --per_device_train_batch_size",
    "label_names": "the labels are always `labels`",
    "length_column_name": "length grouping measures input_ids",
    "dataloader_drop_last": "the dev metrics would miss examples",
    "bf16_full_eval": "HF would save a bf16 student; use --bf16 (mixed precision)",
    "fp16_full_eval": "HF would save an fp16 student; use --fp16 (mixed precision)",
    "prediction_loss_only": "results.json needs the task metrics",
    "batch_eval_metrics": _WHOLE_SPLIT,
    "eval_do_concat_batches": _WHOLE_SPLIT,
    "restore_callback_states_from_checkpoint": "the callbacks restore their own state",
    "do_predict": "there is no test-set prediction",
    "resume_from_checkpoint": "a run resumes from its --output_dir itself; rerun the same command",
    "push_to_hub": "a hub error would end the run; upload --output_dir with `hf upload REPO DIR`",
    "fsdp": _DDP_ONLY,
    "deepspeed": _DDP_ONLY,
    "parallelism_config": _DDP_ONLY,
}
_HARMLESS = {"label_names": (["labels"],), "fsdp": ("", []), "deepspeed": ("",)}
_ALWAYS = "run_glue.py's flag: always on; False is refused."
_WORLD_SIZE_VARIABLES = ["PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "WORLD_SIZE"]


@dataclass
class RunArguments(TrainingArguments):
    overwrite_output_dir: bool = _arg(False, "Replace a finished run in --output_dir.")
    group_by_length: bool = _arg(False, "--train_sampling_strategy group_by_length.")
    dataloader_pin_memory: bool | None = _arg(None, "Pin batches (default: with a GPU).", nargs="?", const=True)
    do_train: bool = _arg(True, _ALWAYS)
    do_eval: bool = _arg(True, _ALWAYS)
    warmup_ratio: float | None = _arg(None, "Warmup fraction of the steps (sets --warmup_steps).")

    def __post_init__(self):
        for name in ("do_train", "do_eval"):
            if not getattr(self, name):
                raise ConfigError(f"--{name} False: every entry point trains, then evaluates; drop the flag")
        if self.warmup_ratio is not None:
            _check(self, {"in [0, 1)": {"warmup_ratio": "0.1 warms up over the first 10% of steps"}})
            if self.warmup_steps:
                raise ConfigError(f"--warmup_ratio and --warmup_steps {self.warmup_steps} both set warmup; pass one")
            self.warmup_steps = self.warmup_ratio  # HF reads a value below 1 as a fraction
        if self.group_by_length:
            if self.train_sampling_strategy not in ("random", "group_by_length"):
                raise ConfigError(
                    f"--group_by_length conflicts with --train_sampling_strategy {self.train_sampling_strategy}; "
                    "pass only one"
                )
            self.train_sampling_strategy = "group_by_length"
        # one of several processes (accelerate's own test) without an accelerator: accelerate builds the CPU
        # process group only when told, else each process trains its own copy
        launched = os.environ.get("LOCAL_RANK", "-1") != "-1" or get_int_from_env(_WORLD_SIZE_VARIABLES, 1) > 1
        if launched and not self.use_cpu and torch.accelerator.current_accelerator() is None:
            self.use_cpu = True
        for name, reason in _UNSUPPORTED.items():  # before HF's checks, some of which end in a traceback
            default = TrainingArguments.__dataclass_fields__[name].default
            if getattr(self, name) not in (default, *_HARMLESS.get(name, ())):
                flag = f"{name} False" if default is True else name
                fix = "" if ";" in reason else "; drop the flag"
                raise ConfigError(f"--{flag} is not supported by the distillation trainer: {reason}{fix}")
        super().__post_init__()
        if self.fp16 and self.device.type == "cpu":
            raise ConfigError(
                "--fp16 on a CPU would train in fp32; drop it, or use --bf16 --use_cpu if the CPU has native bf16 "
                "(`python -m dynamic_kd.precision`)"
            )
        if self.dataloader_pin_memory is None:
            self.dataloader_pin_memory = self.device.type not in ("cpu", "mps")  # it helps copies to a GPU only
        if self.accelerator_config.split_batches:
            raise ConfigError(
                "--accelerator_config split_batches is not supported by the distillation trainer: it changes "
                "the batch the strategies plan over; drop it"
            )
        positive = {}  # flags that count only in some runs
        if self.max_steps <= 0:
            positive["num_train_epochs"] = "the paper trains for 3 epochs (or set --max_steps)"
        for kind in ("logging", "eval", "save"):
            if getattr(self, f"{kind}_strategy") == "steps":
                positive[f"{kind}_steps"] = "a step count, or a fraction of all steps below 1"
        _check(self, _RUN_BOUNDS)
        _check(self, {"a positive number": positive})

    def check_task(self, task):
        if task.is_regression and self.label_smoothing_factor:
            raise ConfigError(f"--label_smoothing_factor needs classes, but {task.name} is a regression task; drop it")
        if self.metric_for_best_model is not None:
            split = task.eval_splits[0]
            name = self.metric_for_best_model.removeprefix("eval_").removeprefix(f"{split}_")
            known = ("loss", *metric_names(task))
            if name not in known:
                raise ConfigError(
                    f"--metric_for_best_model {self.metric_for_best_model} is not a {task.name} metric; "
                    f"choose one of: {', '.join(known)}"
                )
            self.metric_for_best_model = f"{split}_{name}"  # the trainer logs eval_<split>_<metric>


_RENAMED = "renamed in transformers 5; use --"
# flags of HF's run_glue.py or of transformers 4 that this parser does not know: what to do instead
_UNKNOWN_FLAGS = {
    "--evaluation_strategy": _RENAMED + "eval_strategy",
    "--per_gpu_train_batch_size": _RENAMED + "per_device_train_batch_size",
    "--per_gpu_eval_batch_size": _RENAMED + "per_device_eval_batch_size",
    "--logging_dir": "gone from transformers 5; set TENSORBOARD_LOGGING_DIR=PATH",
    "--cache_dir": "models come from the Hugging Face cache; set HF_HOME=PATH (data: DYNAMIC_KD_CACHE=PATH)",
    "--overwrite_cache": "the data cache is keyed on its inputs: never stale; drop the flag",
}


class _OneLineErrorParser(HfArgumentParser):
    """One line on a typo, where argparse prints the whole usage (hundreds of flags)."""

    def error(self, message):
        raise ConfigError(f"{message} (see --help)")

    def _check_value(self, action, value):  # argparse's test of a flag's `choices`
        if action.choices is not None and value not in action.choices:
            flag = action.option_strings[0]
            raise ConfigError(f"unknown {flag} '{value}'; choose one of: {', '.join(map(str, action.choices))}")


def parse_args(argv, *dataclass_types, defaults=None):
    """`argv` (default sys.argv[1:]) as the dataclasses and `RunArguments`; `defaults`: a script's own."""
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
        raise ConfigError(" ".join(line.strip() for line in str(error).splitlines() if line.strip())) from error
    task = next((args.task for args in parsed if isinstance(args, DataArguments)), None)
    for args in parsed:  # the checks that need the task or the run
        if isinstance(args, DistillationArguments):
            args.check_training(parsed[-1])
        if task is not None and hasattr(args, "check_task"):
            args.check_task(task)
    return parsed
