"""Tokenisation, its on-disk cache, and tokenizer and dataset fingerprints (teacher stores key on them)."""

import hashlib
import inspect
import json
import logging
import os
from contextlib import suppress

import datasets
from datasets.fingerprint import Hasher
from transformers import DataCollatorWithPadding, default_data_collator

from dynamic_kd.cache import cache_root, entry_folder, get_or_build, key_hash, writable_folder
from dynamic_kd.data import get_task

logger = logging.getLogger(__name__)

MODEL_INPUT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")
MIN_SEQ_LENGTH = 8  # the smallest --max_seq_length: [CLS], [SEP] and a few tokens of text


def tokenize_splits(
    splits,
    task,
    tokenizer,
    max_seq_length=128,
    pad_to_max_length=False,
    max_train_samples=None,
    max_eval_samples=None,
    token_type_ids=None,
    cache_dir=None,
) -> dict[str, datasets.Dataset]:
    """Splits of input_ids, attention_mask, [token_type_ids], labels, idx; cached in `cache_dir` if given.
    token_type_ids: True/False force segment ids on/off, None: the tokenizer's default."""
    task = get_task(task)
    padding = "max_length" if pad_to_max_length else False

    def encode(batch):
        texts = [batch[key] for key in task.text_keys]
        encoded = tokenizer(
            *texts, truncation=True, max_length=max_seq_length, padding=padding, return_token_type_ids=token_type_ids
        )
        inputs = {key: encoded[key] for key in MODEL_INPUT_COLUMNS if key in encoded}
        return inputs | {"labels": batch["label"], "idx": batch["idx"]}

    tokenized = {}
    for name, dataset in splits.items():
        limit = max_train_samples if name == "train" else max_eval_samples
        if limit is not None and limit < len(dataset):
            dataset = dataset.select(range(limit))
        options = {"batched": True, "remove_columns": dataset.column_names, "desc": f"tokenizing {task.name} {name}"}
        if cache_dir is None:
            mapped = dataset.map(encode, **options, keep_in_memory=True)
        else:
            key = {
                # editing the encoder invalidates the cache
                "encoder": hashlib.sha256(inspect.getsource(encode).encode()).hexdigest(),
                "text_keys": list(task.text_keys),
                "tokenizer": tokenizer_fingerprint(tokenizer),
                "max_seq_length": max_seq_length,
                "pad_to_max_length": pad_to_max_length,
                "token_type_ids": token_type_ids,
                "data": dataset_fingerprint(dataset),
            }
            mapped = _cached_map(dataset, encode, options, key, cache_dir)
        order = [c for c in MODEL_INPUT_COLUMNS if c in mapped.column_names] + ["labels", "idx"]
        tokenized[name] = mapped.select_columns(order)
    return tokenized


def _cached_map(dataset, encode, options: dict, key: dict, cache_dir: str) -> datasets.Dataset:
    folder = entry_folder(cache_dir, "tokenized", key)

    def build(tmp):
        dataset.map(encode, **options, cache_file_name=os.path.join(tmp, "data.arrow"), new_fingerprint=key_hash(key))

    def load(path):  # None if unreadable (pyarrow's errors derive from these): rebuilt
        with suppress(OSError, ValueError):
            return datasets.Dataset.from_file(os.path.join(path, "data.arrow"))

    mapped, reused = get_or_build(folder, key, build, load, "tokenised data")
    done = "reusing tokenised %s (%d rows) from %s" if reused else "cached tokenised %s (%d rows) in %s"
    logger.info(done, options["desc"].removeprefix("tokenizing "), len(mapped), folder)
    return mapped


def tokenized_cache_dir() -> str | None:
    """`$DYNAMIC_KD_CACHE/tokenized`, or None (tokenise in memory)."""
    folder = os.path.join(cache_root(), "tokenized")
    if not datasets.is_caching_enabled():
        logger.info("datasets caching is disabled: tokenising in memory")
    elif not writable_folder(folder):
        logger.warning("%s is not writable: tokenising in memory (set DYNAMIC_KD_CACHE)", folder)
    else:
        return folder
    return None


def _tokenizer_spec(tokenizer):
    """The full spec (vocab, normaliser, pre-/post-processor), or a slow tokenizer's vocab."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return sorted(tokenizer.get_vocab().items())
    spec = json.loads(backend.to_str())
    # per-call state, not identity
    spec.pop("truncation", None)
    spec.pop("padding", None)
    return spec


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of everything that decides a tokenizer's output."""
    described = [
        type(tokenizer).__name__,
        _tokenizer_spec(tokenizer),
        tokenizer.padding_side,
        tokenizer.truncation_side,
        list(tokenizer.model_input_names),
    ]
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def same_tokenization(a, b) -> bool:
    """Whether two tokenizers give every text the same input_ids and attention_mask, padded alike (their
    classes and input names may differ: DistilBERT's emits no token_type_ids)."""
    attributes = ("pad_token_id", "padding_side", "truncation_side")
    return _tokenizer_spec(a) == _tokenizer_spec(b) and all(getattr(a, n) == getattr(b, n) for n in attributes)


def dataset_fingerprint(dataset: datasets.Dataset, columns=None) -> str:
    """Hash of the names, types and values of `columns` (default: all) in row order, whatever their layout
    in memory (slices, chunks)."""
    columns = [c for c in (columns or dataset.column_names) if c in dataset.column_names]
    hasher = Hasher()
    hasher.update([[c, str(dataset.features[c])] for c in columns])
    for table in dataset.select_columns(columns).with_format("arrow").iter(batch_size=20000):
        hasher.update(table)
    return hasher.hexdigest()


def make_collator(tokenizer, pad_to_max_length: bool):
    """Pads per batch unless rows are padded. Batches carry `idx`: use remove_unused_columns=False."""
    return default_data_collator if pad_to_max_length else DataCollatorWithPadding(tokenizer)
