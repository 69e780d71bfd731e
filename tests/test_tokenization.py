"""Tokenisation, batching, the tokenisation cache and the fingerprints (dynamic_kd/tokenization.py)."""

import os

import datasets
import pytest
import torch

from dynamic_kd import tokenization
from dynamic_kd.data import get_task, load_splits
from dynamic_kd.tokenization import make_collator, tokenize_splits

GLUE = os.path.join(os.path.dirname(__file__), "fixtures", "glue")


def fixture_dir(name):
    return os.path.join(GLUE, name)


# --------------------------------------------------------------------------------------------
# Tokenisation and batching
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sst2():
    return load_splits("sst2", data_dir=fixture_dir("sst2"))


def test_tokenize_columns_and_dynamic_padding(sst2, tiny_tokenizer):
    tokenized = tokenize_splits(sst2, get_task("sst2"), tiny_tokenizer)
    for split in ("train", "validation"):
        assert tokenized[split].column_names == ["input_ids", "attention_mask", "token_type_ids", "labels", "idx"]
        assert tokenized[split]["labels"] == sst2[split]["label"]
        assert tokenized[split].cache_files == []
    lengths = {len(ids) for ids in tokenized["train"]["input_ids"]}
    assert len(lengths) > 1  # unpadded: lengths follow the text
    first = tokenized["train"][0]
    assert first["input_ids"][0] == tiny_tokenizer.cls_token_id
    assert tiny_tokenizer.decode(first["input_ids"], skip_special_tokens=True) == "the movie is good great"


def test_truncation_and_max_length_padding(sst2, tiny_tokenizer):
    truncated = tokenize_splits(sst2, "sst2", tiny_tokenizer, max_seq_length=5)["train"]
    assert max(len(ids) for ids in truncated["input_ids"]) == 5
    assert all(ids[-1] == tiny_tokenizer.sep_token_id for ids in truncated["input_ids"])
    padded = tokenize_splits(sst2, "sst2", tiny_tokenizer, max_seq_length=24, pad_to_max_length=True)["train"]
    assert {len(ids) for ids in padded["input_ids"]} == {24}
    assert padded[0]["attention_mask"].count(1) < 24


def test_sentence_pairs_get_segment_ids(tiny_tokenizer):
    mnli = load_splits("mnli", data_dir=fixture_dir("mnli"))
    row = tokenize_splits(mnli, "mnli", tiny_tokenizer)["validation_mismatched"][0]
    assert row["token_type_ids"][0] == 0 and row["token_type_ids"][-1] == 1
    assert row["input_ids"].count(tiny_tokenizer.sep_token_id) == 2


def test_sample_limits_keep_original_idx(sst2, tiny_tokenizer):
    tokenized = tokenize_splits(sst2, "sst2", tiny_tokenizer, max_train_samples=3, max_eval_samples=5)
    assert tokenized["train"]["idx"] == [0, 1, 2]
    assert tokenized["validation"]["idx"] == [0, 1, 2, 3, 4]
    big = tokenize_splits(sst2, "sst2", tiny_tokenizer, max_train_samples=1000)
    assert len(big["train"]) == 32


@pytest.mark.parametrize("pad", [False, True])
def test_collator_batches_carry_idx_and_labels(sst2, tiny_tokenizer, pad):
    tokenized = tokenize_splits(sst2, "sst2", tiny_tokenizer, max_seq_length=16, pad_to_max_length=pad)["train"]
    batch = make_collator(tiny_tokenizer, pad)([tokenized[i] for i in (3, 0, 7)])
    assert batch["idx"].dtype == torch.long and batch["idx"].tolist() == [3, 0, 7]
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [0, 1, 0]
    width = 16 if pad else max(len(tokenized[i]["input_ids"]) for i in (3, 0, 7))
    assert batch["input_ids"].shape == (3, width) and batch["attention_mask"].shape == (3, width)


def test_collator_regression_labels_are_float(tiny_tokenizer):
    stsb = load_splits("stsb", data_dir=fixture_dir("stsb"))
    tokenized = tokenize_splits(stsb, "stsb", tiny_tokenizer)["validation"]
    batch = make_collator(tiny_tokenizer, False)([tokenized[i] for i in range(3)])
    assert batch["labels"].dtype == torch.float32
    assert batch["labels"].tolist() == pytest.approx([4.75, 0.25, 3.5])
    assert batch["idx"].dtype == torch.long


# --------------------------------------------------------------------------------------------
# Fingerprints and the tokenisation cache
# --------------------------------------------------------------------------------------------


def test_dataset_fingerprint_sees_every_value():
    a = datasets.Dataset.from_dict({"idx": [0, 1], "input_ids": [[2, 5, 3], [2, 6, 3]], "sentence": ["a b", "c"]})
    assert tokenization.dataset_fingerprint(a) == tokenization.dataset_fingerprint(
        datasets.Dataset.from_dict(a.to_dict())
    )
    changed = [
        {"idx": [0, 1], "input_ids": [[2, 5, 3], [2, 7, 3]], "sentence": ["a b", "c"]},  # a token
        {"idx": [0, 1], "input_ids": [[2, 5], [3, 2, 6, 3]], "sentence": ["a b", "c"]},  # where rows split
        {"idx": [0, 1], "input_ids": [[2, 5, 3], [2, 6, 3]], "sentence": ["a", "b c"]},  # where texts split
        {"idx": [1, 0], "input_ids": [[2, 5, 3], [2, 6, 3]], "sentence": ["a b", "c"]},  # an idx
    ]
    assert (
        len(
            {tokenization.dataset_fingerprint(a)}
            | {tokenization.dataset_fingerprint(datasets.Dataset.from_dict(c)) for c in changed}
        )
        == 5
    )
    big = datasets.Dataset.from_dict(
        {"idx": list(range(6)), "input_ids": [[i] for i in range(6)], "sentence": list("abcdef")}
    )
    assert tokenization.dataset_fingerprint(big.select(range(2))) != tokenization.dataset_fingerprint(
        big.select(range(3))
    )
    assert tokenization.dataset_fingerprint(big.select(range(1, 3))) == tokenization.dataset_fingerprint(
        datasets.Dataset.from_dict(big.select(range(1, 3)).to_dict())
    )
    assert tokenization.dataset_fingerprint(a, ["idx"]) != tokenization.dataset_fingerprint(a)


def test_tokenizer_fingerprint_follows_the_vocabulary(tiny_tokenizer, tmp_path):
    from conftest import make_tiny_bert
    from transformers import AutoTokenizer

    before = tokenization.tokenizer_fingerprint(tiny_tokenizer)
    tiny_tokenizer("a call sets per-call truncation state", truncation=True, max_length=4)
    assert tokenization.tokenizer_fingerprint(tiny_tokenizer) == before
    other = AutoTokenizer.from_pretrained(make_tiny_bert(tmp_path / "other", extra_vocab=("zebra",)))
    assert tokenization.tokenizer_fingerprint(other) != before


def cached_files(folder):
    return sorted(
        os.path.relpath(os.path.join(root, name), folder) for root, _, names in os.walk(folder) for name in names
    )


def test_second_tokenisation_is_a_cache_hit(sst2, tiny_tokenizer, tmp_path, caplog):
    caplog.set_level("INFO")
    first = tokenize_splits(sst2, "sst2", tiny_tokenizer, max_seq_length=16, cache_dir=str(tmp_path))
    files = cached_files(tmp_path)
    assert len([f for f in files if f.endswith("data.arrow")]) == 2 and caplog.text.count("cached tokenised sst2") == 2
    arrow = first["train"].cache_files[0]["filename"]
    assert arrow.startswith(str(tmp_path))
    stamp = os.stat(arrow).st_mtime_ns
    caplog.clear()

    second = tokenize_splits(sst2, "sst2", tiny_tokenizer, max_seq_length=16, cache_dir=str(tmp_path))
    assert caplog.text.count("reusing tokenised sst2") == 2 and "cached tokenised" not in caplog.text
    assert cached_files(tmp_path) == files and os.stat(arrow).st_mtime_ns == stamp  # nothing written
    assert second["train"].cache_files[0]["filename"] == arrow  # memory-mapped from the cache
    in_memory = tokenize_splits(sst2, "sst2", tiny_tokenizer, max_seq_length=16)
    for split in second:
        assert second[split].column_names == in_memory[split].column_names
        assert second[split].to_dict() == in_memory[split].to_dict()


def test_tokenisation_cache_keys_on_what_changes_the_tokens(sst2, tiny_tokenizer, tmp_path):
    tokenize_splits(sst2, "sst2", tiny_tokenizer, cache_dir=str(tmp_path))
    entries = set(os.listdir(tmp_path))
    for kwargs in ({"max_seq_length": 5}, {"pad_to_max_length": True}, {"max_train_samples": 3}):
        tokenize_splits(sst2, "sst2", tiny_tokenizer, cache_dir=str(tmp_path), **kwargs)
        assert len(set(os.listdir(tmp_path)) - entries) >= 1, kwargs
        entries = set(os.listdir(tmp_path))
    edited = {**sst2, "train": sst2["train"].map(lambda row: {"sentence": row["sentence"] + " good"})}
    tokenize_splits(edited, "sst2", tiny_tokenizer, cache_dir=str(tmp_path))
    assert len(set(os.listdir(tmp_path)) - entries) == 1  # only the edited split is tokenised again


def test_a_damaged_tokenisation_cache_is_rebuilt(sst2, tiny_tokenizer, tmp_path, caplog):
    first = tokenize_splits(sst2, "sst2", tiny_tokenizer, cache_dir=str(tmp_path))
    with open(first["train"].cache_files[0]["filename"], "r+b") as handle:
        handle.truncate(64)
    os.makedirs(tmp_path / "tokenized-leftover.tmpx")  # a killed writer's unpublished folder
    again = tokenize_splits(sst2, "sst2", tiny_tokenizer, cache_dir=str(tmp_path))
    assert "rebuilding it" in caplog.text
    assert again["train"]["input_ids"] == tokenize_splits(sst2, "sst2", tiny_tokenizer)["train"]["input_ids"]


def test_load_data_uses_the_cache_root(tiny_bert, tiny_tokenizer, tmp_path, monkeypatch):
    from dynamic_kd.arguments import DataArguments
    from dynamic_kd.recipe import load_data

    monkeypatch.setenv("DYNAMIC_KD_CACHE", str(tmp_path / "root"))
    loaded = load_data(DataArguments(task_name="sst2", data_dir=fixture_dir("sst2")), tiny_tokenizer)
    assert loaded.train.cache_files[0]["filename"].startswith(str(tmp_path / "root" / "tokenized"))
    monkeypatch.setenv(
        "DYNAMIC_KD_CACHE", os.path.join(fixture_dir("sst2"), "train.tsv")
    )  # a file: not writable as a folder
    assert (
        load_data(DataArguments(task_name="sst2", data_dir=fixture_dir("sst2")), tiny_tokenizer).train.cache_files == []
    )
