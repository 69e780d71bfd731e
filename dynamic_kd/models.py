"""Students cut from pretrained encoders and teachers of any family, as plain Hugging Face models.

A teacher is loaded in fp32, eval mode, gradients off, and is never a submodule of the student.
"""

import inspect
import logging
import os
import re
from collections import Counter

import torch
import torch.distributed as dist
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from dynamic_kd.errors import ConfigError

logger = logging.getLogger(__name__)

# One of these (or a sentencepiece *.model) is in every saved tokenizer.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
)


def label_maps(task) -> dict:
    """Config kwargs that store the task's label names, so a checkpoint says what class i means."""
    if task.is_regression:
        return {"num_labels": 1}
    return {
        "num_labels": task.num_labels,
        "id2label": dict(enumerate(task.labels)),
        "label2id": {name: i for i, name in enumerate(task.labels)},
    }


def load_tokenizer(path: str):
    """The tokenizer saved with a model (transformers 5 would build an empty one for a folder without)."""
    if os.path.isdir(path) and not any(name in TOKENIZER_FILES or name.endswith(".model") for name in os.listdir(path)):
        raise ConfigError(
            f"'{path}' holds no tokenizer files; save the model's tokenizer next to it (tokenizer.save_pretrained)"
        )
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"cannot load a tokenizer from '{path}' ({_first_line(error)}); pass a model folder or hub id that has one"
        ) from error


def _load_config(path: str, flag: str):
    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"{flag} '{path}' is not a model folder or hub id ({_first_line(error)}); it must hold config.json"
        ) from error


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def select_layers(num_layers: int, keep: int | None, init: str) -> list[int]:
    """first: layers 0..K-1.  skip (PKD-Skip): every (L // K)-th layer, ending at the top one."""
    keep = num_layers if keep is None else keep
    if not 1 <= keep <= num_layers:
        raise ConfigError(
            f"--student_num_layers {keep} is out of range; the pretrained model has {num_layers} layers "
            f"(use 1..{num_layers})"
        )
    if init == "first":
        return list(range(keep))
    stride = num_layers // keep
    return list(range(num_layers - 1 - stride * (keep - 1), num_layers, stride))


def build_student(model_name_or_path: str, task, num_layers: int | None = None, layer_init: str = "first"):
    """A classifier of `num_layers` pretrained layers (see `layer_stack`) and a new head, in fp32
    whatever the checkpoint's dtype (mixed precision needs fp32 master weights)."""
    path = model_name_or_path
    config = _load_config(path, "--model_name_or_path")
    total = config.num_hidden_layers
    layers = select_layers(total, num_layers, layer_init)
    try:
        encoder = AutoModel.from_pretrained(path)
    except Exception as error:  # safetensors/torch raise many types for a truncated or corrupt file
        raise ConfigError(
            f"cannot load pretrained weights from '{path}' ({_first_line(error)}); check the folder or re-download it"
        ) from error
    stack, kept = None, "all"
    if len(layers) < total:  # keeping every layer needs no stack: any family trains
        stack = layer_stack(encoder, path)
        if stack is None:
            kept = f"its one shared layer, run {len(layers)} times; {layer_init} has nothing to choose"
        else:
            kept = f"{layer_init}: {layers}"
            # the state dict of the kept layers alone numbers them 0..K-1
            encoder.set_submodule(stack, nn.ModuleList(encoder.get_submodule(stack)[i] for i in layers))
        per_layer = getattr(config, "layer_types", None)  # ModernBERT: each layer keeps its attention kind
        config.num_hidden_layers = len(layers)  # attribute_map: DistilBERT's n_layers
        if per_layer:
            config.layer_types = [per_layer[i] for i in layers]
    config.update(label_maps(task))
    student = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
    missing, unexpected = student.base_model.load_state_dict(encoder.state_dict(), strict=False)
    parameters = dict(student.base_model.named_parameters())
    missing = [key for key in missing if key in parameters]  # buffers (position ids) are rebuilt
    if missing:
        raise ConfigError(
            f"'{path}' ({config.model_type}) lacks weights a {type(student).__name__} needs ({missing[:3]}); "
            "pass the pretrained encoder itself, not a model of another architecture"
        )
    # ModernBERT's layer 0 has no attention norm, so a layer `skip` moves there loses its own.
    moved = [key for key in unexpected if stack and key.startswith(f"{stack}.")]
    _log_dropped(moved, "weights of kept layers have no place at their new position and are dropped")
    unused = [key for key in unexpected if key not in moved]
    _log_dropped(unused, "pretrained weights the classifier does not use are dropped")
    logger.info("student: %d of %d layers of %s (%s, %s)", len(layers), total, path, config.model_type, kept)
    return student


def _log_dropped(keys: list[str], what: str):
    """One info line naming the dropped weights by module, e.g. 'pooler.dense (2)'."""
    if keys:
        modules = Counter(key.rsplit(".", 1)[0] for key in keys)
        logger.info("student: %d %s: %s", len(keys), what, ", ".join(f"{name} ({n})" for name, n in modules.items()))


def layer_stack(model, path: str) -> str | None:
    """The dotted name of the one `ModuleList` of `num_hidden_layers` layers of one class, found from
    the model. ALBERT runs one shared layer `num_hidden_layers` times: None (a student runs it K times)."""
    config = model.config
    family = config.model_type
    if hasattr(config, "num_hidden_groups"):
        if config.num_hidden_groups != 1 or config.inner_group_num != 1:
            raise ConfigError(
                f"'{path}' ({family}) has {config.num_hidden_groups} layer groups of {config.inner_group_num} "
                "layers; only ALBERT models with one shared layer (num_hidden_groups 1, inner_group_num 1, "
                "as released) can be cut"
            )
        return None
    count = config.num_hidden_layers
    stacks = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) == count and len({type(layer) for layer in module}) == 1
    ]
    # a list of the same length inside a layer (a tiny model's heads or experts) is not the stack
    stacks = [name for name in stacks if not any(name.startswith(f"{outer}.") for outer in stacks)]
    if len(stacks) != 1:
        found = f"found {stacks}" if stacks else "found none"
        raise ConfigError(
            f"cannot find the layer stack of '{path}' ({family}: one list of {count} numbered layers, {found}); "
            "use an encoder whose layers form one stack "
            "(BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT, DeBERTa, ALBERT, ModernBERT)"
        )
    return stacks[0]


def load_teacher(path: str, task, flag: str = "--teacher"):
    """A fine-tuned teacher checked against the task's labels, in fp32 whatever the checkpoint's dtype
    (a lower-precision pass is `--teacher_dtype`'s autocast, never a silent cast)."""
    if not os.path.isdir(path):
        raise ConfigError(
            f"{flag} '{path}' does not exist; pass the folder train_teacher.py wrote "
            "(it holds config.json and the weights)"
        )
    config = _load_config(path, flag)
    expected = 1 if task.is_regression else task.num_labels
    if config.num_labels != expected:
        raise ConfigError(
            f"{flag} '{path}' predicts {config.num_labels} labels but {task.name} has {expected}; "
            f"use a teacher fine-tuned on {task.name}"
        )
    names = [str(config.id2label[i]) for i in range(config.num_labels)]
    generic = all(re.fullmatch(r"LABEL_\d+", name) for name in names)
    if not task.is_regression and not generic and tuple(names) != tuple(task.labels):
        raise ConfigError(
            f"{flag} '{path}' orders its labels {names} but {task.name} uses {list(task.labels)}; "
            "re-train the teacher with this repository's data loader"
        )
    try:
        teacher = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
    except Exception as error:  # safetensors/torch raise many types for a truncated or corrupt file
        raise ConfigError(
            f"{flag} '{path}' has unreadable weights ({_first_line(error)}); re-save or re-train the teacher"
        ) from error
    return teacher.eval().requires_grad_(False)


def takes_token_type_ids(model) -> bool:
    """Whether `model` uses segment ids (BERT, ELECTRA, ALBERT; not RoBERTa's single segment)."""
    forward = inspect.signature(model.forward).parameters
    return "token_type_ids" in forward and getattr(model.config, "type_vocab_size", 0) > 1


def model_inputs(model, batch: dict) -> dict:
    """The batch without token_type_ids for a model that takes none. A batch has them when any model
    of the run uses them (a BERT teacher of a DistilBERT student sees sentence B as segment 1)."""
    if "token_type_ids" in batch and not takes_token_type_ids(model):
        return {name: value for name, value in batch.items() if name != "token_type_ids"}
    return batch


def is_decoder(config) -> bool:
    """Whether the family's classifier pools its last non-padding token (GPT-2, Llama, Qwen2, ...):
    a causal-LM family without a masked-LM head (BERT-like encoders have both)."""
    return (
        config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )


def align_pad_token(tokenizer, config, flag: str):
    """Give a decoder classifier and its tokenizer one pad token (else eos), padding on the right.

    The classifier pools the last token whose id is not `config.pad_token_id`. Right padding keeps
    positions from 0 in every row, so a text gets the same logits in any batch.
    """
    if not is_decoder(config):
        return
    if tokenizer.pad_token is None:
        if config.pad_token_id is not None:
            tokenizer.pad_token = tokenizer.convert_ids_to_tokens(config.pad_token_id)
        elif tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            raise ConfigError(
                f"{flag} tokenizer has neither a pad nor an eos token; add a pad token to it and save it again"
            )
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id
    elif config.pad_token_id != tokenizer.pad_token_id:
        raise ConfigError(
            f"{flag} config's pad_token_id {config.pad_token_id} differs from its tokenizer's pad token id "
            f"{tokenizer.pad_token_id}; set one to the other and save the model again"
        )
    if tokenizer.padding_side != "right":
        logger.info(
            "%s: padding on the right (not %s), so a text's logits do not depend on its batch",
            flag,
            tokenizer.padding_side,
        )
        tokenizer.padding_side = "right"


def usable_positions(model, tokenizer) -> int | None:
    """The longest input `model` takes: its position table (less RoBERTa's offset past the pad id)
    and its tokenizer's `model_max_length`, where either is known."""
    limits = []
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions is not None:
        table = getattr(getattr(model.base_model, "embeddings", None), "position_embeddings", None)
        offset = getattr(table, "padding_idx", None)
        limits.append(positions - (0 if offset is None else offset + 1))
    if tokenizer.model_max_length < 1_000_000:  # "no limit" is stored as a huge number
        limits.append(tokenizer.model_max_length)
    return min(limits, default=None)


def refuse_decoder_student(student, path: str):
    """A student is an encoder: its sentence state is its first token and it is cut by layers."""
    if is_decoder(student.config):
        raise ConfigError(
            f"--model_name_or_path '{path}' is a decoder ({student.config.model_type}); distil into an encoder "
            "student (BERT, MiniLM, DistilBERT, ...): decoders can be teachers (--teacher) or fine-tuned with "
            "train_teacher.py"
        )


class StudentWithProjections(nn.Module):
    """The student plus learned maps from its hidden size to each other teacher hidden size,
    trained with it; only `.student` is saved."""

    def __init__(self, student: nn.Module, teacher_hidden_sizes: dict[str, int]):
        super().__init__()
        self.student = student
        self.config = student.config
        hidden = student.config.hidden_size
        self.projections = nn.ModuleDict(
            {name: nn.Linear(hidden, size) for name, size in teacher_hidden_sizes.items() if size != hidden}
        )

    def forward(self, **inputs):
        outputs = self.student(**inputs)
        if self.training and inputs.get("output_hidden_states") and dist.is_available() and dist.is_initialized():
            # The trainer applies the projections after this forward, so DDP would mark them unused and
            # fail when their gradient arrives; a zero-valued term makes them reachable.
            outputs.logits = outputs.logits + 0.0 * sum(p.sum() for p in self.projections.parameters())
        return outputs

    def activation_checkpointing_enable(self, **kwargs):
        """--gradient_checkpointing: the Trainer asks the model it trains."""
        self.student.activation_checkpointing_enable(**kwargs)


def unwrap_student(model: nn.Module) -> nn.Module:
    return model.student if isinstance(model, StudentWithProjections) else model
