"""Students and teachers of any common encoder family as plain Hugging Face models.

Students are built from a pretrained encoder (BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT,
DeBERTa-v2/v3, ALBERT, ModernBERT, or any other whose layers form one stack) by keeping K of its
layers (`first`: 0..K-1 as in the original code; `skip`: every (L/K)-th layer as in PKD-Skip) under
a freshly initialised classifier head; `save_pretrained` output reloads with
`AutoModelForSequenceClassification`. Teachers are fine-tuned classifiers of any family, decoders
(GPT-2, Llama, Qwen2, ...) included, loaded in fp32 and returned in eval mode with gradients off;
they are never submodules of the student.
"""

import copy
import inspect
import logging
import os
import re

import torch
import torch.distributed as dist
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from dynamic_kd.errors import ConfigError

logger = logging.getLogger(__name__)


def label_maps(task) -> dict:
    """config kwargs that store the task's label names, so checkpoints say what class i means."""
    if task.is_regression:
        return {"num_labels": 1}
    return {
        "num_labels": task.num_labels,
        "id2label": dict(enumerate(task.labels)),
        "label2id": {name: i for i, name in enumerate(task.labels)},
    }


# Files one of which every saved tokenizer has (sentencepiece models end in .model).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
)


def load_tokenizer(path: str):
    """The tokenizer saved with a model. A local folder without tokenizer files is an error:
    transformers 5 would build an empty tokenizer of the config's family from nothing."""
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


def select_layers(num_layers: int, keep: int | None, init: str) -> list[int]:
    """Indices of the pretrained layers a `keep`-layer model starts from.

    first: [0, 1, ..., K-1].  skip: every (L/K)-th layer ending at the top, [L/K - 1, 2L/K - 1, ..., L-1]
    (PKD-Skip; with L not a multiple of K the stride is rounded down and the top layers kept).
    """
    keep = num_layers if keep is None else keep
    if not 1 <= keep <= num_layers:
        raise ConfigError(
            f"--student_num_layers {keep} is out of range; the pretrained model has {num_layers} layers (use 1..{num_layers})"
        )
    if init == "first":
        return list(range(keep))
    stride = num_layers // keep
    return [num_layers - 1 - stride * (keep - 1 - i) for i in range(keep)]


def build_student(model_name_or_path: str, task, num_layers: int | None = None, layer_init: str = "first"):
    """A sequence classifier with `num_layers` pretrained encoder layers and a new head.

    Works for any encoder family `AutoModel` loads whose layers form one stack (see `layer_stack`).
    Pretrained weights the classifier has no place for (RoBERTa's pooler; the attention norm of a
    layer that `skip` moves to ModernBERT's first position, which has none) are dropped with an
    info line; a weight the classifier needs but the checkpoint lacks is an error. The student is
    fp32 whatever the checkpoint's dtype: mixed precision (`--bf16`/`--fp16`) needs fp32 master weights.
    """
    config = _load_config(model_name_or_path, "--model_name_or_path")
    layers = select_layers(config.num_hidden_layers, num_layers, layer_init)
    try:
        encoder = AutoModel.from_pretrained(model_name_or_path)
    except Exception as error:  # safetensors/torch raise many types for a truncated or corrupt file
        raise ConfigError(
            f"cannot load pretrained weights from '{model_name_or_path}' ({_first_line(error)}); check the folder or re-download it"
        ) from error
    cut = len(layers) < config.num_hidden_layers  # keeping every layer needs no stack: any family trains
    stack = layer_stack(encoder, model_name_or_path) if cut else None
    state = encoder.state_dict() if stack is None else _renumber_layers(encoder.state_dict(), stack, layers)
    student = AutoModelForSequenceClassification.from_config(_cut_config(config, layers, task), dtype=torch.float32)
    missing, unexpected = student.base_model.load_state_dict(state, strict=False)
    # Buffers (position ids) are rebuilt by the constructor; only a missing parameter is a mismatch.
    parameters = dict(student.base_model.named_parameters())
    missing = [key for key in missing if key in parameters]
    if missing:
        raise ConfigError(
            f"'{model_name_or_path}' ({config.model_type}) lacks weights a {type(student).__name__} needs "
            f"({missing[:3]}); pass the pretrained encoder itself, not a model of another architecture"
        )
    in_layers = [key for key in unexpected if stack is not None and key.startswith(f"{stack}.")]
    if in_layers:
        # ModernBERT: layer 0 has no attention norm (the embedding norm precedes it), so a layer
        # moved there by `skip` loses its own.
        logger.info(
            "student: %d weights of kept layers have no place at their new position and are dropped: %s",
            len(in_layers),
            _summarise(in_layers),
        )
    others = [key for key in unexpected if key not in in_layers]
    if others:
        logger.info(
            "student: %d pretrained weights the classifier does not use are dropped: %s",
            len(others),
            _summarise(others),
        )
    if not cut:
        kept = "all"
    elif stack is None:
        kept = f"its one shared layer, run {len(layers)} times; {layer_init} has nothing to choose"
    else:
        kept = f"{layer_init}: {layers}"
    logger.info(
        "student: %d of %d layers of %s (%s, %s)",
        len(layers),
        config.num_hidden_layers,
        model_name_or_path,
        config.model_type,
        kept,
    )
    return student


def layer_stack(model, path: str) -> str | None:
    """Where `model` keeps its numbered transformer layers: the dotted name of that `ModuleList`.

    Found from the model, not from a key pattern: the one `ModuleList` with `num_hidden_layers`
    entries of one class (BERT, RoBERTa, XLM-R, ELECTRA, DeBERTa: `encoder.layer`; DistilBERT:
    `transformer.layer`; ModernBERT: `layers`). ALBERT has no per-layer weights: one shared layer
    group runs `num_hidden_layers` times, so it returns None (a K-layer student repeats it K times).
    """
    config = model.config
    family = config.model_type
    if hasattr(config, "num_hidden_groups"):
        if config.num_hidden_groups != 1 or getattr(config, "inner_group_num", 1) != 1:
            raise ConfigError(
                f"'{path}' ({family}) has {config.num_hidden_groups} layer groups of {config.inner_group_num} layers; "
                "only ALBERT models with one shared layer (num_hidden_groups 1, inner_group_num 1, as released) can be cut"
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
            "use an encoder whose layers form one stack (BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT, DeBERTa, ALBERT, ModernBERT)"
        )
    return stacks[0]


def _renumber_layers(state: dict, stack: str, layers: list[int]) -> dict:
    """Keep the chosen layers' weights of `stack`, renumbered 0..K-1; all other weights as they are."""
    new_index = {old: new for new, old in enumerate(layers)}
    prefix = f"{stack}."
    renamed = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            renamed[key] = value
            continue
        number, rest = key[len(prefix) :].split(".", 1)
        if int(number) in new_index:
            renamed[f"{prefix}{new_index[int(number)]}.{rest}"] = value
    return renamed


def _cut_config(config, layers: list[int], task):
    """The student's config: K layers, the task's labels, per-layer settings of the kept layers.

    `layer_types` (ModernBERT's global/sliding-window attention) follows the kept layers, so each
    layer keeps the attention (and RoPE base) it was pretrained with.
    """
    config = copy.deepcopy(config)
    if len(layers) < config.num_hidden_layers:
        per_layer = getattr(config, "layer_types", None)
        config.num_hidden_layers = len(layers)  # attribute_map: DistilBERT's n_layers
        if isinstance(per_layer, list) and len(per_layer) > max(layers):
            config.layer_types = [per_layer[i] for i in layers]
    for key, value in label_maps(task).items():
        setattr(config, key, value)
    return config


def _summarise(keys: list[str]) -> str:
    """Weight names grouped by module, e.g. 'pooler.dense (2)'."""
    groups = {}
    for key in keys:
        module = key.rsplit(".", 1)[0]
        groups[module] = groups.get(module, 0) + 1
    return ", ".join(f"{module} ({n})" for module, n in groups.items())


def load_teacher(path: str, task, flag: str = "--teacher"):
    """A fine-tuned teacher in eval mode with gradients off, checked against the task.

    Weights are fp32 whatever dtype the checkpoint was saved in (many hub checkpoints are bf16 or
    fp16): a lower-precision teacher pass is `--teacher_dtype`'s autocast, never a silent cast.
    """
    if not os.path.isdir(path):
        raise ConfigError(
            f"{flag} '{path}' does not exist; pass the folder train_teacher.py wrote (it holds config.json and the weights)"
        )
    config = _load_config(path, flag)
    expected = 1 if task.is_regression else task.num_labels
    if config.num_labels != expected:
        raise ConfigError(
            f"{flag} '{path}' predicts {config.num_labels} labels but {task.name} has {expected}; use a teacher fine-tuned on {task.name}"
        )
    names = [config.id2label[i] for i in range(config.num_labels)]
    generic = all(re.fullmatch(r"LABEL_\d+", str(name)) for name in names)
    if not task.is_regression and not generic and tuple(str(n) for n in names) != tuple(task.labels):
        raise ConfigError(
            f"{flag} '{path}' orders its labels {names} but {task.name} uses {list(task.labels)}; re-train the teacher with this repository's data loader"
        )
    try:
        teacher = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
    except Exception as error:  # safetensors/torch raise many types for a truncated or corrupt file
        raise ConfigError(
            f"{flag} '{path}' has unreadable weights ({_first_line(error)}); re-save or re-train the teacher"
        ) from error
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


def takes_token_type_ids(model) -> bool:
    """Whether `model` uses segment ids: its forward takes them and it has more than one segment.

    BERT, ELECTRA and ALBERT do; RoBERTa and XLM-R (one segment embedding), DeBERTa-v3 (none),
    DistilBERT and ModernBERT (no such input) do not.
    """
    return (
        "token_type_ids" in inspect.signature(model.forward).parameters
        and getattr(model.config, "type_vocab_size", 0) > 1
    )


def model_inputs(model, batch: dict) -> dict:
    """The part of a batch `model` is fed: token_type_ids only if it uses segment ids.

    A batch carries token_type_ids when any model of the run uses them (a BERT teacher of a
    DistilBERT student must see sentence B as segment 1, as in its fine-tuning); every other
    model is fed the batch without them, as its own tokenizer would give it.
    """
    if "token_type_ids" in batch and not takes_token_type_ids(model):
        return {name: value for name, value in batch.items() if name != "token_type_ids"}
    return batch


def is_decoder(config) -> bool:
    """Whether a classifier of this family is a causal decoder, which reads the last non-padding token
    (GPT-2, Llama, Qwen2, Mistral, Gemma): a causal-LM family without a masked-LM head (BERT-like
    encoders have both)."""
    family = config.model_type
    return family in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and family not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def align_pad_token(tokenizer, config, flag: str):
    """Give a decoder classifier and its tokenizer one pad token, and pad on the right.

    The classifier pools the last token whose id is not `config.pad_token_id`, so the tokenizer
    must pad with exactly that id. Right padding: causal attention never lets a real token see the
    pads after it and positions start at 0 for every row, so a text gets the same logits in any
    batch (left padding shifts the positions of Llama-style models by the padding length).
    A tokenizer without a pad token (GPT-2, Llama) pads with the config's pad id, else with eos.
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
    """The longest input `model` takes: its position table (less RoBERTa-style offsets past the pad
    id) and its tokenizer's `model_max_length`, where either is known."""
    limits = []
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions is not None:
        table = getattr(getattr(model.base_model, "embeddings", None), "position_embeddings", None)
        offset = getattr(table, "padding_idx", None)
        limits.append(positions - (offset + 1 if offset is not None else 0))
    if tokenizer.model_max_length < 1_000_000:  # "no limit" is stored as a huge number
        limits.append(tokenizer.model_max_length)
    return min(limits) if limits else None


def refuse_decoder_student(student, path: str):
    """A distillation student is an encoder: its sentence state is its first token and it is cut by layers."""
    if is_decoder(student.config):
        raise ConfigError(
            f"--model_name_or_path '{path}' is a decoder ({student.config.model_type}); distil into an encoder student "
            "(BERT, MiniLM, DistilBERT, ...): decoders can be teachers (--teacher) or fine-tuned with train_teacher.py"
        )


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


class StudentWithProjections(nn.Module):
    """The student plus learned maps from its hidden size to each teacher's (hidden-state alignment).

    Training wraps the two so the projections are optimised (and synchronised under DDP) with the
    student; only `.student` is saved as the final model, since inference never needs them.
    """

    def __init__(self, student: nn.Module, teacher_hidden_sizes: dict[str, int]):
        super().__init__()
        self.student = student
        hidden = student.config.hidden_size
        self.projections = nn.ModuleDict(
            {name: nn.Linear(hidden, size) for name, size in teacher_hidden_sizes.items() if size != hidden}
        )
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

    def activation_checkpointing_enable(self, **kwargs):
        """--gradient_checkpointing / --activation_checkpointing: the Trainer asks the model it trains."""
        self.student.activation_checkpointing_enable(**kwargs)


def unwrap_student(model: nn.Module) -> nn.Module:
    return model.student if isinstance(model, StudentWithProjections) else model
