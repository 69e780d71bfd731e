"""BERT-style students and teachers as plain Hugging Face models.

Students are built from a pretrained encoder by keeping K of its layers (`first`: 0..K-1 as in
the original code; `skip`: every (L/K)-th layer as in PKD-Skip) under a freshly initialised
classifier head; `save_pretrained` output reloads with `AutoModelForSequenceClassification`.
Teachers are fine-tuned classifiers, returned in eval mode with gradients off; they are never
submodules of the student.
"""
import logging
import os
import re

import torch.distributed as dist
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from dynamic_kd.errors import ConfigError

logger = logging.getLogger(__name__)

_LAYER_KEY = re.compile(r"(^|\.)layer\.(\d+)\.")


def label_maps(task) -> dict:
    """config kwargs that store the task's label names, so checkpoints say what class i means."""
    if task.is_regression:
        return {"num_labels": 1}
    return {
        "num_labels": task.num_labels,
        "id2label": dict(enumerate(task.labels)),
        "label2id": {name: i for i, name in enumerate(task.labels)},
    }


def load_tokenizer(path: str):
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot load a tokenizer from '{path}' ({_first_line(error)}); pass a model folder or hub id that has one") from error


def select_layers(num_layers: int, keep: int | None, init: str) -> list[int]:
    """Indices of the pretrained layers a `keep`-layer model starts from.

    first: [0, 1, ..., K-1].  skip: every (L/K)-th layer ending at the top, [L/K - 1, 2L/K - 1, ..., L-1]
    (PKD-Skip; with L not a multiple of K the stride is rounded down and the top layers kept).
    """
    keep = num_layers if keep is None else keep
    if not 1 <= keep <= num_layers:
        raise ConfigError(f"--student_num_layers {keep} is out of range; the pretrained model has {num_layers} layers (use 1..{num_layers})")
    if init == "first":
        return list(range(keep))
    stride = num_layers // keep
    return [num_layers - 1 - stride * (keep - 1 - i) for i in range(keep)]


def build_student(model_name_or_path: str, task, num_layers: int | None = None, layer_init: str = "first"):
    """A sequence classifier with `num_layers` pretrained encoder layers and a new head."""
    config = _load_config(model_name_or_path, "--model_name_or_path")
    layers = select_layers(config.num_hidden_layers, num_layers, layer_init)
    try:
        encoder = AutoModel.from_pretrained(model_name_or_path)
    except Exception as error:  # safetensors/torch raise many types for a truncated or corrupt file
        raise ConfigError(f"cannot load pretrained weights from '{model_name_or_path}' ({_first_line(error)}); check the folder or re-download it") from error
    state = _renumber_layers(encoder.state_dict(), layers)
    student_config = AutoConfig.from_pretrained(model_name_or_path, num_hidden_layers=len(layers), **label_maps(task))
    student = AutoModelForSequenceClassification.from_config(student_config)
    missing, unexpected = student.base_model.load_state_dict(state, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    if missing or unexpected:
        raise ConfigError(f"'{model_name_or_path}' does not match a {type(student).__name__} (missing {missing[:3]}, unexpected {unexpected[:3]}); use a BERT-style encoder")
    logger.info("student: %d of %d layers of %s (%s: %s)", len(layers), config.num_hidden_layers, model_name_or_path, layer_init, layers)
    return student


def _renumber_layers(state: dict, layers: list[int]) -> dict:
    """Keep the chosen encoder layers' weights, renumbered 0..K-1; all other weights as they are."""
    new_index = {old: new for new, old in enumerate(layers)}
    renamed = {}
    for key, value in state.items():
        match = _LAYER_KEY.search(key)
        if match is None:
            renamed[key] = value
        elif int(match.group(2)) in new_index:
            start, end = match.span(2)
            renamed[key[:start] + str(new_index[int(match.group(2))]) + key[end:]] = value
    return renamed


def load_teacher(path: str, task, flag: str = "--teacher"):
    """A fine-tuned teacher in eval mode with gradients off, checked against the task."""
    if not os.path.isdir(path):
        raise ConfigError(f"{flag} '{path}' does not exist; pass the folder train_teacher.py wrote (it holds config.json and the weights)")
    config = _load_config(path, flag)
    expected = 1 if task.is_regression else task.num_labels
    if config.num_labels != expected:
        raise ConfigError(f"{flag} '{path}' predicts {config.num_labels} labels but {task.name} has {expected}; use a teacher fine-tuned on {task.name}")
    names = [config.id2label[i] for i in range(config.num_labels)]
    generic = all(re.fullmatch(r"LABEL_\d+", str(name)) for name in names)
    if not task.is_regression and not generic and tuple(str(n) for n in names) != tuple(task.labels):
        raise ConfigError(f"{flag} '{path}' orders its labels {names} but {task.name} uses {list(task.labels)}; re-train the teacher with this repository's data loader")
    try:
        teacher = AutoModelForSequenceClassification.from_pretrained(path)
    except Exception as error:  # safetensors/torch raise many types for a truncated or corrupt file
        raise ConfigError(f"{flag} '{path}' has unreadable weights ({_first_line(error)}); re-save or re-train the teacher") from error
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


def check_same_vocabulary(student_tokenizer, teacher_tokenizer, teacher_path: str, flag: str = "--teacher"):
    """KD compares outputs on the same token ids, so teacher and student must share a vocabulary."""
    if student_tokenizer.get_vocab() != teacher_tokenizer.get_vocab():
        raise ConfigError(
            f"{flag} '{teacher_path}' uses a different vocabulary ({len(teacher_tokenizer)} tokens) than the student "
            f"({len(student_tokenizer)} tokens); distil between models that share a tokenizer"
        )


def _load_config(path: str, flag: str):
    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{flag} '{path}' is not a model folder or hub id ({_first_line(error)}); it must hold config.json") from error


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


class StudentWithProjections(nn.Module):
    """The student plus learned maps from its hidden size to each teacher's (hidden-state alignment).

    Training wraps the two so the projections are optimised (and synchronised under DDP) with the
    student; only `.student` is saved as the final model, since inference never needs them.
    """

    def __init__(self, student: nn.Module, teacher_hidden_sizes: dict[str, int]):
        super().__init__()
        self.student = student
        hidden = student.config.hidden_size
        self.projections = nn.ModuleDict({name: nn.Linear(hidden, size) for name, size in teacher_hidden_sizes.items() if size != hidden})
        self.config = student.config

    def forward(self, **inputs):
        outputs = self.student(**inputs)
        if self.training and inputs.get("output_hidden_states") and dist.is_available() and dist.is_initialized():
            # The trainer applies the projections after this forward. DDP (HF's default
            # find_unused_parameters=True) marks parameters it cannot reach from the outputs as
            # unused, then fails when their gradient arrives ("mark a variable ready only once").
            # A zero-valued term makes them reachable without changing any value or gradient.
            outputs.logits = outputs.logits + 0.0 * sum(p.sum() for p in self.projections.parameters())
        return outputs


def unwrap_student(model: nn.Module) -> nn.Module:
    return model.student if isinstance(model, StudentWithProjections) else model
