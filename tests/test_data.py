"""Loading, label mapping, tokenisation and batching, all offline from tests/fixtures/glue."""
import json
import os
import shutil

import datasets
import pytest
import torch

from dynamic_kd import data
from dynamic_kd.data import TASKS, get_task, load_splits, make_collator, tokenize_splits
from dynamic_kd.errors import ConfigError

GLUE = os.path.join(os.path.dirname(__file__), "fixtures", "glue")


def fixture_dir(name):
    return os.path.join(GLUE, name)


def write(path, text):
    """Write `text` verbatim (no newline translation) and return the path as a string."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return str(path)


def config_error(call, *args, **kwargs):
    """Run `call`, expecting a ConfigError with a one-line message; return the message."""
    with pytest.raises(ConfigError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    return message


@pytest.fixture
def no_hub(monkeypatch):
    """Fail loudly if anything reaches for the hub."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"hub access attempted: {args}")
    monkeypatch.setattr(datasets, "load_dataset", refuse)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

def test_registry_has_every_task():
    assert set(TASKS) == {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli",
                          "sst5", "imdb", "boolq"}
    assert get_task("stsb").is_regression and get_task("stsb").num_labels == 1
    assert get_task("mnli").num_labels == 3 and get_task("sst5").num_labels == 5
    assert get_task("mnli").eval_splits == ("validation_matched", "validation_mismatched")
    assert get_task("SST2") is TASKS["sst2"]


def test_unknown_task_lists_the_choices():
    message = config_error(get_task, "sst3")
    assert "'sst3'" in message and "--task_name" in message
    assert "boolq, cola, imdb, mnli, mrpc, qnli, qqp, rte, sst2, sst5, stsb, wnli" in message


# --------------------------------------------------------------------------------------------
# Every fixture in its original layout
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(TASKS))
def test_load_every_task_from_its_glue_folder(name, no_hub):
    task = get_task(name)
    splits = load_splits(task, data_dir=fixture_dir(name))
    assert tuple(splits) == ("train",) + task.eval_splits
    for split, dataset in splits.items():
        assert dataset.column_names == list(task.text_keys) + ["label", "idx"]
        assert dataset["idx"] == list(range(len(dataset)))
        assert all(isinstance(text, str) and text for key in task.text_keys for text in dataset[key])
        assert dataset.cache_files == []  # in memory: nothing written to the HF cache
        if task.is_regression:
            assert all(0.0 <= score <= 5.0 for score in dataset["label"])
        else:
            # Every fixture split shows every class.
            assert sorted(set(dataset["label"])) == list(range(task.num_labels)), split
    assert 8 <= len(splits["train"])


def test_sst2_fixture_is_big_enough_to_learn():
    splits = load_splits("sst2", data_dir=fixture_dir("sst2"))
    assert len(splits["train"]) == 32 and len(splits["validation"]) == 16
    for dataset in splits.values():
        for text, label in zip(dataset["sentence"], dataset["label"]):
            assert ("good great" in text) == (label == 1) and ("bad awful" in text) == (label == 0)


def test_first_rows_are_read_exactly(no_hub):
    mnli = load_splits("mnli", data_dir=fixture_dir("mnli"))
    assert mnli["train"][1] == {"premise": "the man is eating an apple .",
                                "hypothesis": "the man is sleeping .", "label": 2, "idx": 1}
    mrpc = load_splits("mrpc", data_dir=fixture_dir("mrpc"))  # its train.tsv starts with a BOM
    assert mrpc["train"][0]["label"] == 1 and mrpc["train"][1]["label"] == 0
    assert mrpc["train"][0]["sentence2"] == "profits rose , the company said"
    stsb = load_splits("stsb", data_dir=fixture_dir("stsb"))
    assert stsb["validation"][0]["label"] == pytest.approx(4.75)
    boolq = load_splits("boolq", data_dir=fixture_dir("boolq"))
    assert boolq["train"]["label"][:2] == [1, 0]  # JSON true -> "True" (id 1), false -> id 0


def test_cola_has_no_header_row():
    train = load_splits("cola", data_dir=fixture_dir("cola"))["train"]
    # The first line is data, not a header; label_notation ("*") is ignored.
    assert len(train) == 10
    assert train[0] == {"sentence": "the cat sat on the mat .", "label": 1, "idx": 0}
    assert train[1]["label"] == 0


def test_cola_with_a_header_also_loads(tmp_path):
    path = write(tmp_path / "train.tsv", "sentence\tlabel\nthe cat sat .\t1\ncat the sat .\t0\n")
    train = load_splits("cola", train_file=path, data_dir=fixture_dir("cola"))["train"]
    assert train["sentence"] == ["the cat sat .", "cat the sat ."] and train["label"] == [1, 0]


def test_quote_characters_are_kept_literally(tmp_path):
    sst2 = load_splits("sst2", data_dir=fixture_dir("sst2"))
    assert sst2["train"][4]["sentence"] == 'the "movie" is very good great'
    assert load_splits("cola", data_dir=fixture_dir("cola"))["validation"][2]["sentence"] == 'it was "very" good .'
    # An unbalanced quote must not swallow the following lines (csv.QUOTE_NONE).
    path = write(tmp_path / "train.tsv", 'sentence\tlabel\nhe said "hi\t1\nbye" she said\t0\n"\t1\n')
    train = load_splits("sst2", train_file=path, data_dir=fixture_dir("sst2"))["train"]
    assert train["sentence"] == ['he said "hi', 'bye" she said', '"']
    assert train["label"] == [1, 0, 1]


def test_short_rows_are_skipped_with_a_warning(tmp_path, caplog):
    path = write(tmp_path / "train.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                                         "0\t1\t2\tis it\tis it so\t1\n1\t3\t4\tbroken\n2\t5\t6\ta\tb\t0\n")
    train = load_splits("qqp", train_file=path, data_dir=fixture_dir("qqp"))["train"]
    assert train["idx"] == [0, 2] and train["label"] == [1, 0]
    assert "skipped 1 malformed" in caplog.text


# --------------------------------------------------------------------------------------------
# Labels by name
# --------------------------------------------------------------------------------------------

def test_mnli_labels_map_by_name_whatever_the_source_order(tmp_path, monkeypatch):
    names = ["neutral", "contradiction", "entailment"]
    rows = "\n".join(f"p{i}\th{i}\t{name}" for i, name in enumerate(names))
    train = write(tmp_path / "train.tsv", "premise\thypothesis\tlabel\n" + rows + "\n")
    # A hub-style dataset whose ClassLabel order differs from ours: ints mean different things.
    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["contradiction", "neutral", "entailment"])})
    hub_split = datasets.Dataset.from_dict(
        {"premise": ["p0", "p1", "p2"], "hypothesis": ["h0", "h1", "h2"], "label": [1, 0, 2]}, features=features)
    hub = datasets.DatasetDict(train=hub_split, validation_matched=hub_split, validation_mismatched=hub_split)
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: hub)
    from_file = load_splits("mnli", train_file=train)
    from_hub = load_splits("mnli")
    expected = [1, 2, 0]  # neutral, contradiction, entailment in (entailment, neutral, contradiction)
    assert from_file["train"]["label"] == expected == from_hub["train"]["label"]
    assert from_hub["validation_mismatched"]["label"] == expected


def test_mnli_rejects_bare_integers(tmp_path):
    path = write(tmp_path / "train.csv", "premise,hypothesis,label\na,b,0\n")
    message = config_error(load_splits, "mnli", train_file=path, data_dir=fixture_dir("mnli"))
    assert "'0'" in message and "entailment, neutral, contradiction" in message


def test_label_aliases_and_case(tmp_path):
    path = write(tmp_path / "train.jsonl", "\n".join(json.dumps(r) for r in [
        {"question": "q", "passage": "p", "label": "TRUE"}, {"question": "q", "passage": "p", "label": "false"},
        {"question": "q", "passage": "p", "label": 1}, {"question": "q", "passage": "p", "label": 0.0},
        {"question": "q", "passage": "p", "label": False}]) + "\n")
    train = load_splits("boolq", train_file=path, data_dir=fixture_dir("boolq"))["train"]
    assert train["label"] == [1, 0, 1, 0, 0]
    sst5 = write(tmp_path / "sst5.tsv", "sentence\tlabel\na\tvery negative\nb\t4\nc\tNeutral\n")
    assert load_splits("sst5", train_file=sst5, data_dir=fixture_dir("sst5"))["train"]["label"] == [0, 4, 2]


def test_hub_classlabel_ints_become_names(monkeypatch):
    calls = []
    features = datasets.Features({"sentence": datasets.Value("string"), "idx": datasets.Value("int32"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})
    split = datasets.Dataset.from_dict({"sentence": ["bad", "good", "fine"], "idx": [0, 1, 2], "label": [0, 1, 1]},
                                       features=features)
    test = datasets.Dataset.from_dict({"sentence": ["x"], "idx": [0], "label": [-1]}, features=features)
    hub = datasets.DatasetDict(train=split, validation=split, test=test)
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: calls.append(args) or hub)
    splits = load_splits("sst2")
    assert calls == [("nyu-mll/glue", "sst2")]
    assert splits["train"]["label"] == [0, 1, 1] and splits["validation"]["idx"] == [0, 1, 2]
    assert splits["train"].column_names == ["sentence", "label", "idx"]


def test_hub_test_split_drops_unlabeled_rows_and_keeps_positions(monkeypatch):
    # imdb evaluates on the hub's "test" split; rows marked -1 there are dropped, idx keeps gaps.
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    train = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]}, features=features)
    test = datasets.Dataset.from_dict({"text": ["c", "d", "e"], "label": [1, -1, 0]}, features=features)
    hub = datasets.DatasetDict(train=train, test=test)
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: hub)
    splits = load_splits("imdb")
    assert splits["validation"]["idx"] == [0, 2] and splits["validation"]["label"] == [1, 0]


def test_hub_train_split_rejects_unlabeled_rows(monkeypatch):
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    broken = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, -1]}, features=features)
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: datasets.DatasetDict(train=broken, test=broken))
    message = config_error(load_splits, "imdb")
    assert "row 1" in message and "neg, pos" in message


def test_hub_failure_is_a_config_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the hub\nbecause you are offline")
    monkeypatch.setattr(datasets, "load_dataset", offline)
    message = config_error(load_splits, "rte")
    assert message.startswith("could not load rte from the hub")
    assert "offline" in message and "--data_dir" in message and "--train_file" in message


# --------------------------------------------------------------------------------------------
# --train_file / --validation_file
# --------------------------------------------------------------------------------------------

def test_csv_files_with_quoted_commas(tmp_path, no_hub):
    train = write(tmp_path / "train.csv", 'sentence,label\n"good, great ""film""",positive\nbad,negative\n')
    dev = write(tmp_path / "dev.csv", "label,sentence\n1,fine\n0,awful\n")
    splits = load_splits("sst2", train_file=train, validation_file=dev)
    assert splits["train"]["sentence"] == ['good, great "film"', "bad"]
    assert splits["train"]["label"] == [1, 0]
    assert splits["validation"]["label"] == [1, 0] and splits["validation"]["idx"] == [0, 1]


def test_tsv_and_json_files(tmp_path, no_hub):
    train = write(tmp_path / "train.tsv", "sentence1\tsentence2\tlabel\na b\ta c\t1.5\nx\ty\t0\n")
    dev = write(tmp_path / "dev.json", json.dumps([{"sentence1": "a", "sentence2": "b", "label": 4.25}]))
    splits = load_splits("stsb", train_file=train, validation_file=dev)
    assert splits["train"]["label"] == [1.5, 0.0]
    assert splits["validation"]["label"] == [4.25]
    wrapped = write(tmp_path / "wrapped.json", json.dumps({"version": 1, "data": [
        {"sentence1": "a", "sentence2": "b", "label": 2}]}))
    assert load_splits("stsb", train_file=wrapped, validation_file=dev)["train"]["label"] == [2.0]


def test_jsonl_files(tmp_path, no_hub):
    train = write(tmp_path / "train.jsonl", '{"question": "q1", "sentence": "s1", "label": "entailment"}\n\n'
                                            '{"question": "q2", "sentence": "s2", "label": "not_entailment"}\n')
    splits = load_splits("qnli", train_file=train, validation_file=train)
    assert splits["train"]["label"] == [0, 1] and splits["train"]["idx"] == [0, 1]


def test_files_take_priority_over_data_dir(tmp_path, no_hub):
    train = write(tmp_path / "train.tsv", "sentence\tlabel\nonly row\t1\n")
    splits = load_splits("sst2", data_dir=fixture_dir("sst2"), train_file=train)
    assert splits["train"]["sentence"] == ["only row"]
    assert len(splits["validation"]) == 16  # still from the data_dir


def test_mnli_validation_file_fills_matched_only(tmp_path, no_hub):
    dev = write(tmp_path / "dev.tsv", "sentence1\tsentence2\tgold_label\na\tb\tneutral\n")
    splits = load_splits("mnli", data_dir=fixture_dir("mnli"), validation_file=dev)
    assert splits["validation_matched"]["label"] == [1]
    assert len(splits["validation_mismatched"]) == 5 and len(splits["train"]) == 12


# --------------------------------------------------------------------------------------------
# Config errors
# --------------------------------------------------------------------------------------------

def test_missing_data_dir(tmp_path):
    message = config_error(load_splits, "sst2", data_dir=str(tmp_path / "nope"))
    assert "nope" in message and "train.tsv, dev.tsv" in message


def test_data_dir_lacking_a_file(tmp_path):
    shutil.copy(os.path.join(fixture_dir("sst2"), "train.tsv"), tmp_path / "train.tsv")
    message = config_error(load_splits, "sst2", data_dir=str(tmp_path))
    assert f"--data_dir {tmp_path} lacks dev.tsv" in message
    assert "expected GLUE files for sst2: train.tsv, dev.tsv" in message
    mnli = config_error(load_splits, "mnli", data_dir=str(tmp_path))
    assert "lacks dev_matched.tsv" in mnli and "dev_mismatched.tsv" in mnli


def test_missing_column(tmp_path):
    path = write(tmp_path / "train.tsv", "text\tlabel\nhello\t1\n")
    message = config_error(load_splits, "sst2", train_file=path, data_dir=fixture_dir("sst2"))
    assert "'sentence'" in message and path in message and "found: text, label" in message


def test_missing_label_column(tmp_path):
    path = write(tmp_path / "train.csv", "sentence,target\nhello,1\n")
    message = config_error(load_splits, "sst2", train_file=path, data_dir=fixture_dir("sst2"))
    assert "'label'" in message and "found: sentence, target" in message


def test_label_outside_the_label_set(tmp_path):
    path = write(tmp_path / "train.tsv", "sentence\tlabel\nfine\t1\nnice\tgreat\n")
    message = config_error(load_splits, "sst2", train_file=path, data_dir=fixture_dir("sst2"))
    assert f"{path} line 3" in message and "'great'" in message and "negative, positive" in message


def test_non_numeric_regression_label(tmp_path):
    path = write(tmp_path / "train.tsv", "sentence1\tsentence2\tlabel\na\tb\thigh\n")
    message = config_error(load_splits, "stsb", train_file=path, data_dir=fixture_dir("stsb"))
    assert "'high'" in message and "line 2" in message


@pytest.mark.parametrize("content", ["", "sentence\tlabel\n", "sentence\tlabel\n\n\n"])
def test_empty_training_file(tmp_path, content):
    path = write(tmp_path / "train.tsv", content)
    message = config_error(load_splits, "sst2", train_file=path, data_dir=fixture_dir("sst2"))
    assert path in message and "no labeled data rows" in message


def test_missing_or_unsupported_files(tmp_path):
    message = config_error(load_splits, "sst2", train_file=str(tmp_path / "absent.csv"))
    assert "--train_file" in message and "absent.csv" in message
    path = write(tmp_path / "train.parquet", "x")
    assert "'.parquet'" in config_error(load_splits, "sst2", train_file=path, data_dir=fixture_dir("sst2"))
    bad = write(tmp_path / "train.jsonl", '{"sentence": "a", "label": 1}\n{oops\n')
    assert "not valid JSON" in config_error(load_splits, "sst2", train_file=bad, data_dir=fixture_dir("sst2"))
    partial = write(tmp_path / "part.jsonl", '{"sentence": "a", "label": 1}\n{"sentence": "b"}\n')
    message = config_error(load_splits, "sst2", train_file=partial, data_dir=fixture_dir("sst2"))
    assert "line 2" in message and "'label'" in message


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


def test_bad_tokenize_arguments(sst2, tiny_tokenizer):
    assert "--max_seq_length" in config_error(tokenize_splits, sst2, "sst2", tiny_tokenizer, max_seq_length=0)
    assert "--max_train_samples" in config_error(tokenize_splits, sst2, "sst2", tiny_tokenizer, max_train_samples=-1)


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


def test_module_reads_hub_through_datasets_module():
    # Monkeypatching datasets.load_dataset (as the tests above do) only works if data.py looks it up.
    assert data.datasets is datasets


def test_data_source_fingerprints_the_content_read(tmp_path):
    source = data.data_source("sst2", data_dir=fixture_dir("sst2"))
    assert source["source"] == "data_dir" and source["location"] == fixture_dir("sst2")
    copy = shutil.copytree(fixture_dir("sst2"), tmp_path / "copy")
    assert data.data_source("sst2", data_dir=str(copy))["fingerprint"] == source["fingerprint"]  # same data, other folder
    with open(copy / "dev.tsv", "a", encoding="utf-8") as handle:
        handle.write("one more line\t1\n")
    assert data.data_source("sst2", data_dir=str(copy))["fingerprint"] != source["fingerprint"]
    files = data.data_source("sst2", train_file=str(copy / "train.tsv"), validation_file=fixture_dir("sst2") + "/dev.tsv")
    assert files["source"] == "files" and files["fingerprint"] == source["fingerprint"]  # the same two files
    hub = data.data_source("mnli")
    assert hub == {"source": "hub", "location": "nyu-mll/glue/mnli", "fingerprint": hub["fingerprint"]}
    assert hub["fingerprint"] != data.data_source("rte")["fingerprint"]
    # MNLI with only a matched validation file: the mismatched split comes from --data_dir
    mixed = data.data_source("mnli", data_dir=fixture_dir("mnli"), validation_file=fixture_dir("mnli") + "/dev_matched.tsv",
                             train_file=fixture_dir("mnli") + "/train.tsv")
    assert mixed["fingerprint"] == data.data_source("mnli", data_dir=fixture_dir("mnli"))["fingerprint"]
