"""Students cut from pretrained encoders, and teachers of any family, as plain Hugging Face models."""

import inspect
import logging
import os
import re
from collections import Counter
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from dynamic_kd.errors import ConfigError

logger = logging.getLogger(__name__)

TOKENIZER_FILE = re.compile(r"(tokenizer|vocab|merges|special_tokens_map).*|.*\.model")


def label_maps(task) -> dict:
    if task.is_regression:
        return {"num_labels": 1}
    return {
        "num_labels": task.num_labels,
        "id2label": dict(enumerate(task.labels)),
        "label2id": {name: i for i, name in enumerate(task.labels)},
    }


def load_tokenizer(path: str):
    """The tokenizer saved with a model (transformers 5 builds an empty one from a folder without)."""
    if os.path.isdir(path) and not any(TOKENIZER_FILE.fullmatch(name) for name in os.listdir(path)):
        raise ConfigError(f"'{path}' holds no tokenizer files; save the model's tokenizer next to it")
    with _config_error(f"cannot load a tokenizer from '{path}'", "pass a model folder or hub id with one"):
        return AutoTokenizer.from_pretrained(path)


@contextmanager
def _config_error(what: str, fix: str, errors=(OSError, ValueError)):
    """Re-raise a loading error as one line."""
    try:
        yield
    except errors as error:
        first_line = str(error).strip().partition("\n")[0][:200] or type(error).__name__
        raise ConfigError(f"{what} ({first_line}); {fix}") from error


def _load_config(path: str, flag: str):
    with _config_error(f"{flag} '{path}' is not a model folder or hub id", "it must hold config.json"):
        return AutoConfig.from_pretrained(path)


def select_layers(num_layers: int, keep: int | None, init: str) -> list[int]:
    """first: layers 0..K-1; skip (PKD-Skip): every (L // K)-th layer, ending at the top one."""
    keep = num_layers if keep is None else keep
    if not 1 <= keep <= num_layers:
        raise ConfigError(f"--student_num_layers {keep} is out of range; use 1..{num_layers}, the pretrained layers")
    if init == "first":
        return list(range(keep))
    stride = num_layers // keep
    return list(range(num_layers - 1 - stride * (keep - 1), num_layers, stride))


def build_student(path: str, task, num_layers: int | None = None, layer_init: str = "first"):
    """`num_layers` pretrained layers under a new head, in fp32 (mixed precision's master weights)."""
    config = _load_config(path, "--model_name_or_path")
    total = config.num_hidden_layers
    layers = select_layers(total, num_layers, layer_init)
    with _config_error(
        f"cannot load pretrained weights from '{path}'", "check or re-download it", Exception
    ):  # of many types
        encoder = AutoModel.from_pretrained(path)
    kept = "all"
    if len(layers) < total:  # all layers need no stack: any family trains
        stack = layer_stack(encoder, path)
        kept = f"{layer_init} {layers}" if stack else "its one shared layer"
        if stack:
            encoder.set_submodule(stack, nn.ModuleList(encoder.get_submodule(stack)[i] for i in layers))
        if getattr(config, "layer_types", None):  # ModernBERT's attention kinds
            config.layer_types = [config.layer_types[i] for i in layers]
        config.num_hidden_layers = len(layers)  # attribute_map: DistilBERT's n_layers
    config.update(label_maps(task))
    student = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
    _, unexpected = student.base_model.load_state_dict(encoder.state_dict(), strict=False)
    if unexpected:  # RoBERTa's pooler; ModernBERT's layer-0 attention norm after `skip`
        modules = Counter(key.rsplit(".", 1)[0] for key in unexpected)
        dropped = ", ".join(f"{name} ({n})" for name, n in modules.items())
        logger.info("student: %d weights the classifier does not use are dropped: %s", len(unexpected), dropped)
    logger.info("student: %d of %d layers of %s (%s, %s)", len(layers), total, path, config.model_type, kept)
    return student


def layer_stack(model, path: str) -> str | None:
    """The name of the one `ModuleList` of same-class layers; None for ALBERT's one shared layer."""
    config = model.config
    if hasattr(config, "num_hidden_groups"):
        if config.num_hidden_groups != 1 or config.inner_group_num != 1:
            raise ConfigError(
                f"'{path}' has {config.num_hidden_groups} layer groups of {config.inner_group_num} layers; "
                "only ALBERT with one shared layer (num_hidden_groups 1, inner_group_num 1, as released) can be cut"
            )
        return None
    count = config.num_hidden_layers
    stacks = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) == count and len({type(layer) for layer in module}) == 1
    ]
    # not a list inside a layer (a tiny model's heads or experts)
    stacks = [name for name in stacks if not any(name.startswith(f"{outer}.") for outer in stacks)]
    if len(stacks) != 1:
        raise ConfigError(
            f"cannot find the layer stack of '{path}' ({config.model_type}: one list of {count} layers, found "
            f"{stacks or 'none'}); use an encoder with one (BERT, RoBERTa, ELECTRA, DeBERTa, ModernBERT, ...)"
        )
    return stacks[0]


def load_teacher(path: str, task, flag: str = "--teacher"):
    """The task's teacher, checked, frozen, in fp32 whatever its dtype (`--teacher_dtype` autocasts)."""
    if not os.path.isdir(path):
        raise ConfigError(f"{flag} '{path}' does not exist; pass the folder train_teacher.py wrote")
    config = _load_config(path, flag)
    if config.num_labels != task.num_labels:
        raise ConfigError(
            f"{flag} '{path}' predicts {config.num_labels} labels but {task.name} has {task.num_labels}; "
            f"use a teacher fine-tuned on {task.name}"
        )
    names = [str(config.id2label[i]) for i in range(config.num_labels)]
    generic = all(re.fullmatch(r"LABEL_\d+", name) for name in names)  # trained elsewhere: no names to check
    if not task.is_regression and not generic and names != list(task.labels):
        raise ConfigError(
            f"{flag} '{path}' orders its labels {names} but {task.name} uses {list(task.labels)}; "
            "re-train the teacher with this repository's data loader"
        )
    with _config_error(f"{flag} '{path}' has unreadable weights", "re-save or re-train it", Exception):
        teacher = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
    return teacher.eval().requires_grad_(False)


def takes_token_type_ids(model) -> bool:
    takes = "token_type_ids" in inspect.signature(model.forward).parameters
    return takes and getattr(model.config, "type_vocab_size", 0) > 1  # RoBERTa's single segment does not count


def model_inputs(model, batch: dict) -> dict:
    if "token_type_ids" in batch and not takes_token_type_ids(model):
        return {name: value for name, value in batch.items() if name != "token_type_ids"}
    return batch


def is_decoder(config) -> bool:
    """A causal LM without a masked-LM head (GPT-2, Llama): its classifier pools the last token."""
    family = config.model_type
    return family in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and family not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def align_pad_token(tokenizer, config, flag: str):
    """One pad token for a decoder classifier (it pools the last non-pad token) and its tokenizer."""
    if not is_decoder(config):
        return
    if tokenizer.pad_token is None:
        if config.pad_token_id is not None:
            tokenizer.pad_token = tokenizer.convert_ids_to_tokens(config.pad_token_id)
        elif tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            raise ConfigError(f"{flag} tokenizer has neither a pad nor an eos token; add a pad token and save it")
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id
    elif config.pad_token_id != tokenizer.pad_token_id:
        raise ConfigError(
            f"{flag} config's pad_token_id {config.pad_token_id} differs from its tokenizer's "
            f"{tokenizer.pad_token_id}; set one to the other and save the model again"
        )
    if tokenizer.padding_side != "right":
        logger.info("%s: padding on the right, so a text's logits do not depend on its batch", flag)
        tokenizer.padding_side = "right"


def usable_positions(model, tokenizer) -> int | None:
    """The longest input the position table (less RoBERTa's pad offset) and `model_max_length` allow."""
    limits = [tokenizer.model_max_length] if tokenizer.model_max_length < 1_000_000 else []  # huge: no limit
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions is not None:
        table = getattr(getattr(model.base_model, "embeddings", None), "position_embeddings", None)
        offset = getattr(table, "padding_idx", None)
        limits.append(positions - (0 if offset is None else offset + 1))
    return min(limits, default=None)


def refuse_decoder_student(student, path: str):
    if is_decoder(student.config):
        raise ConfigError(
            f"--model_name_or_path '{path}' is a decoder ({student.config.model_type}); distil into an encoder "
            "student (BERT, MiniLM, ...): a decoder can be a teacher or fine-tuned with train_teacher.py"
        )


class StudentWithProjections(nn.Module):
    """The student plus trained maps to each teacher's other hidden size; only `.student` is saved."""

    def __init__(self, student: nn.Module, teacher_hidden_sizes: dict[str, int]):
        super().__init__()
        self.student, self.config = student, student.config
        hidden = student.config.hidden_size
        sizes = {name: size for name, size in teacher_hidden_sizes.items() if size != hidden}
        self.projections = nn.ModuleDict({name: nn.Linear(hidden, size) for name, size in sizes.items()})

    def forward(self, **inputs):
        outputs = self.student(**inputs)
        if self.training and inputs.get("output_hidden_states") and dist.is_available() and dist.is_initialized():
            # DDP fails on parameters unreachable from the outputs (the projections act later)
            outputs.logits = outputs.logits + 0.0 * sum(p.sum() for p in self.projections.parameters())
        return outputs

    def activation_checkpointing_enable(self, **kwargs):
        self.student.activation_checkpointing_enable(**kwargs)


def unwrap_student(model: nn.Module) -> nn.Module:
    return model.student if isinstance(model, StudentWithProjections) else model


def check_hidden_sizes(student, teacher_hidden_sizes: dict, kd_args) -> bool:
    """Whether hidden-state alignment needs student->teacher projections."""
    hidden = student.config.hidden_size
    mismatched = [(name, size) for name, size in teacher_hidden_sizes.items() if size != hidden]
    if kd_args.kd_rep_alpha == 0 or not mismatched:
        return False
    if not kd_args.rep_projection:
        name, size = mismatched[0]
        raise ConfigError(
            f"hidden-state alignment needs equal hidden sizes but the student has {hidden} and teacher '{name}' "
            f"{size}; drop --rep_projection False (learn a projection) or set --kd_rep_alpha 0"
        )
    return True


def attach_projections(student, teachers: dict, kd_args):
    sizes = {name: t.model.config.hidden_size for name, t in teachers.items()}
    return StudentWithProjections(student, sizes) if check_hidden_sizes(student, sizes, kd_args) else student
