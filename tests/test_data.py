"""Loading, label mapping and the custom task, all offline from tests/fixtures/glue."""

import json
import os
import shutil

import datasets
import pytest

from dynamic_kd import data
from dynamic_kd.data import TASKS, get_task, load_splits
from dynamic_kd.errors import ConfigError
from dynamic_kd.tokenization import tokenize_splits

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
    assert set(TASKS) == {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli", "sst5", "imdb", "boolq"}
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
    assert mnli["train"][1] == {
        "premise": "the man is eating an apple .",
        "hypothesis": "the man is sleeping .",
        "label": 2,
        "idx": 1,
    }
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
    path = write(
        tmp_path / "train.tsv",
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
        "0\t1\t2\tis it\tis it so\t1\n1\t3\t4\tbroken\n2\t5\t6\ta\tb\t0\n",
    )
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
    features = datasets.Features(
        {
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["contradiction", "neutral", "entailment"]),
        }
    )
    hub_split = datasets.Dataset.from_dict(
        {"premise": ["p0", "p1", "p2"], "hypothesis": ["h0", "h1", "h2"], "label": [1, 0, 2]}, features=features
    )
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
    path = write(
        tmp_path / "train.jsonl",
        "\n".join(
            json.dumps(r)
            for r in [
                {"question": "q", "passage": "p", "label": "TRUE"},
                {"question": "q", "passage": "p", "label": "false"},
                {"question": "q", "passage": "p", "label": 1},
                {"question": "q", "passage": "p", "label": 0.0},
                {"question": "q", "passage": "p", "label": False},
            ]
        )
        + "\n",
    )
    train = load_splits("boolq", train_file=path, data_dir=fixture_dir("boolq"))["train"]
    assert train["label"] == [1, 0, 1, 0, 0]
    sst5 = write(tmp_path / "sst5.tsv", "sentence\tlabel\na\tvery negative\nb\t4\nc\tNeutral\n")
    assert load_splits("sst5", train_file=sst5, data_dir=fixture_dir("sst5"))["train"]["label"] == [0, 4, 2]


def test_hub_classlabel_ints_become_names(monkeypatch):
    calls = []
    features = datasets.Features(
        {
            "sentence": datasets.Value("string"),
            "idx": datasets.Value("int32"),
            "label": datasets.ClassLabel(names=["negative", "positive"]),
        }
    )
    split = datasets.Dataset.from_dict(
        {"sentence": ["bad", "good", "fine"], "idx": [0, 1, 2], "label": [0, 1, 1]}, features=features
    )
    test = datasets.Dataset.from_dict({"sentence": ["x"], "idx": [0], "label": [-1]}, features=features)
    hub = datasets.DatasetDict(train=split, validation=split, test=test)
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: calls.append(args) or hub)
    splits = load_splits("sst2")
    assert calls == [("nyu-mll/glue", "sst2")]
    assert splits["train"]["label"] == [0, 1, 1] and splits["validation"]["idx"] == [0, 1, 2]
    assert splits["train"].column_names == ["sentence", "label", "idx"]


def test_hub_test_split_drops_unlabeled_rows_and_keeps_positions(monkeypatch):
    # imdb evaluates on the hub's "test" split; rows marked -1 there are dropped, idx keeps gaps.
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    train = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]}, features=features)
    test = datasets.Dataset.from_dict({"text": ["c", "d", "e"], "label": [1, -1, 0]}, features=features)
    hub = datasets.DatasetDict(train=train, test=test)
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: hub)
    splits = load_splits("imdb")
    assert splits["validation"]["idx"] == [0, 2] and splits["validation"]["label"] == [1, 0]


def test_hub_train_split_rejects_unlabeled_rows(monkeypatch):
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    broken = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, -1]}, features=features)
    monkeypatch.setattr(
        datasets, "load_dataset", lambda *args, **kwargs: datasets.DatasetDict(train=broken, test=broken)
    )
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
    wrapped = write(
        tmp_path / "wrapped.json",
        json.dumps({"version": 1, "data": [{"sentence1": "a", "sentence2": "b", "label": 2}]}),
    )
    assert load_splits("stsb", train_file=wrapped, validation_file=dev)["train"]["label"] == [2.0]


def test_jsonl_files(tmp_path, no_hub):
    train = write(
        tmp_path / "train.jsonl",
        '{"question": "q1", "sentence": "s1", "label": "entailment"}\n\n'
        '{"question": "q2", "sentence": "s2", "label": "not_entailment"}\n',
    )
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


def write_bytes(path, raw):
    with open(path, "wb") as f:
        f.write(raw)
    return str(path)


@pytest.mark.parametrize(
    "name, raw, line, byte",
    [
        ("train.tsv", b"sentence\tlabel\ngood\t1\ncaf\xe9 good\t1\n", 3, "0xe9"),  # Latin-1
        ("train.csv", b"sentence,label\ncaf\xe9,1\n", 2, "0xe9"),
        ("train.jsonl", b'{"sentence": "ok", "label": 1}\n{"sentence": "caf\xe9", "label": 1}\n', 2, "0xe9"),
        ("train.tsv", "sentence\tlabel\ngood\t1\n".encode("utf-16"), 1, "0xff"),  # UTF-16 with its byte-order mark
    ],
)
def test_file_that_is_not_utf8(tmp_path, name, raw, line, byte):
    path = write_bytes(tmp_path / name, raw)
    message = config_error(load_splits, "sst2", train_file=path, data_dir=fixture_dir("sst2"))
    assert f"{path} line {line} is not valid UTF-8 (byte {byte}" in message and "re-save the file as UTF-8" in message


def test_nul_character_means_not_a_text_file(tmp_path):
    # UTF-16 without a byte-order mark decodes as "valid" UTF-8 full of NULs
    path = write_bytes(tmp_path / "train.tsv", "sentence\tlabel\ngood\t1\n".encode("utf-16-le"))
    message = config_error(load_splits, "sst2", train_file=path, data_dir=fixture_dir("sst2"))
    assert f"{path} line 1 contains a NUL character" in message
    path = write(tmp_path / "nul.tsv", "sentence\tlabel\ngood\t1\nba\x00d\t0\n")
    assert f"{path} line 3 contains a NUL" in config_error(
        load_splits, "sst2", train_file=path, data_dir=fixture_dir("sst2")
    )


def test_row_wider_than_the_header(tmp_path):
    # a tab inside the sentence shifts the label column: refused, not read as label "movie"
    path = write(tmp_path / "train.tsv", "sentence\tlabel\nthe movie\t1\nbad\tmovie\t0\n")
    message = config_error(load_splits, "sst2", train_file=path, data_dir=fixture_dir("sst2"))
    assert f"{path} line 3 has 3 fields but the header has 2" in message
    path = write(tmp_path / "train.csv", "sentence,label\nbad, awful,0\n")  # an unquoted comma
    assert "line 2 has 3 fields" in config_error(load_splits, "sst2", train_file=path, data_dir=fixture_dir("sst2"))
    # a trailing delimiter shifts nothing
    path = write(tmp_path / "trailing.tsv", "sentence\tlabel\ngood\t1\t\n")
    assert load_splits("sst2", train_file=path, validation_file=path)["train"]["label"] == [1]


def test_unterminated_quote_in_csv(tmp_path):
    path = write(tmp_path / "train.csv", 'sentence,label\n"good movie,1\nbad,0\n')
    message = config_error(load_splits, "sst2", train_file=path, data_dir=fixture_dir("sst2"))
    assert path in message and "cannot be parsed" in message and "close the quote" in message
    path = write(tmp_path / "stray.csv", 'sentence,label\n"good" movie,1\n')
    assert "line 2 cannot be parsed" in config_error(load_splits, "sst2", train_file=path, data_dir=fixture_dir("sst2"))


def test_json_lines_that_are_not_objects(tmp_path):
    path = write(tmp_path / "train.jsonl", '{"sentence": "a", "label": 1}\n[1, 2]\n')
    message = config_error(load_splits, "sst2", train_file=path, data_dir=fixture_dir("sst2"))
    assert f"{path} line 2 is not a JSON object" in message
    path = write(tmp_path / "broken.jsonl", '{"sentence": "a", "label": 1}\n{"sentence": "b", "label": 0\n')
    assert "line 2" in config_error(load_splits, "sst2", train_file=path, data_dir=fixture_dir("sst2"))
    path = write(tmp_path / "nested.jsonl", '{"sentence": "a", "label": 1}\n{"sentence": ["b", "c"], "label": 0}\n')
    message = config_error(load_splits, "sst2", train_file=path, data_dir=fixture_dir("sst2"))
    assert "line 2: field 'sentence' holds a JSON list" in message


def test_folder_where_a_file_is_expected(tmp_path):
    (tmp_path / "train.csv").mkdir()
    message = config_error(
        load_splits, "sst2", train_file=str(tmp_path / "train.csv"), validation_file=str(tmp_path / "train.csv")
    )
    assert "--train_file" in message and "is a folder" in message
    glue = tmp_path / "glue"
    glue.mkdir()
    shutil.copy(os.path.join(fixture_dir("sst2"), "train.tsv"), glue / "train.tsv")
    (glue / "dev.tsv").mkdir()
    assert "holds a folder named dev.tsv" in config_error(load_splits, "sst2", data_dir=str(glue))


def test_module_reads_hub_through_datasets_module():
    # Monkeypatching datasets.load_dataset (as the tests do) only works if data.py looks it up.
    assert data.datasets is datasets


# --------------------------------------------------------------------------------------------
# The custom task: labels, texts and metric from the user's own files
# --------------------------------------------------------------------------------------------


def custom_files(folder, train_rows, dev_rows, header="sentence,label"):
    """train.csv and dev.csv in `folder` from lists of already comma-joined rows."""
    os.makedirs(folder, exist_ok=True)
    return (
        write(os.path.join(folder, "train.csv"), "\n".join([header, *train_rows]) + "\n"),
        write(os.path.join(folder, "dev.csv"), "\n".join([header, *dev_rows]) + "\n"),
    )


def test_custom_labels_are_strings_in_sorted_order(tmp_path, no_hub):
    train, dev = custom_files(
        tmp_path / "reviews", ["good film,pos", "bad film,neg", "a film,neu", "great,pos"], ["awful,neg", "good,pos"]
    )
    task = data.custom_task(train, dev)
    assert task.labels == ("neg", "neu", "pos")  # sorted, not first-seen (pos, neg, neu)
    assert task.name == "custom:reviews/train.csv+dev.csv"
    assert (task.metric, task.num_labels, task.is_regression, task.is_custom) == ("accuracy_macro_f1", 3, False, True)
    splits = load_splits(task, train_file=train, validation_file=dev)
    assert splits["train"]["label"] == [2, 0, 1, 2] and splits["validation"]["label"] == [0, 2]
    assert splits["train"].column_names == ["sentence", "label", "idx"]


def test_custom_integer_labels_sort_by_value(tmp_path):
    train, dev = custom_files(tmp_path, ["a,10", "b,2", "c,-1", "d,2"], ["e,-1"])
    assert data.custom_task(train, dev).labels == ("-1", "2", "10")  # not "-1" < "10" < "2"
    # JSON numbers name the same classes as their text: 1, 1.0 and "1" are all class "1".
    rows = [{"sentence": "a", "label": 1.0}, {"sentence": "b", "label": 0}, {"sentence": "c", "label": "1"}]
    json_train = write(tmp_path / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    json_dev = write(tmp_path / "dev.json", json.dumps([{"sentence": "d", "label": 1}]))
    task = data.custom_task(json_train, json_dev)
    assert task.labels == ("0", "1")
    assert load_splits(task, train_file=json_train, validation_file=json_dev)["train"]["label"] == [1, 0, 1]


def test_custom_mixed_labels_sort_as_strings(tmp_path):
    train, dev = custom_files(tmp_path, ["a,yes", "b,10", "c,No", "d,2"], ["e,2"])
    assert data.custom_task(train, dev).labels == ("10", "2", "No", "yes")  # code-point order


def test_custom_pairs_from_json_with_a_named_label_column(tmp_path, tiny_tokenizer, no_hub):
    rows = [
        {"premise": "a man eats", "hypothesis": "he sleeps", "gold": "contradiction", "label": "junk"},
        {"premise": "a man eats", "hypothesis": "he eats", "gold": "entailment", "label": "junk"},
    ]
    train = write(tmp_path / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    dev = write(tmp_path / "dev.jsonl", json.dumps(rows[1]) + "\n")
    task = data.custom_task(train, dev, ("premise", "hypothesis"), label_column="gold")
    assert task.text_keys == ("premise", "hypothesis") and task.labels == ("contradiction", "entailment")
    splits = load_splits(task, train_file=train, validation_file=dev)
    assert splits["train"][0] == {"premise": "a man eats", "hypothesis": "he sleeps", "label": 0, "idx": 0}
    tokenized = tokenize_splits(splits, task, tiny_tokenizer)
    assert 1 in tokenized["train"][0]["token_type_ids"]  # encoded as a pair


def test_custom_regression(tmp_path):
    train, dev = custom_files(tmp_path, ["a,0.5", "b,4", "c,-2.25"], ["d,1e-1"], header="text,score")
    task = data.custom_task(train, dev, ("text",), "score", is_regression=True)
    assert (task.is_regression, task.num_labels, task.metric, task.labels) == (True, 1, "pearson_spearman", ())
    splits = load_splits(task, train_file=train, validation_file=dev)
    assert splits["train"]["label"] == pytest.approx([0.5, 4.0, -2.25])
    assert splits["validation"]["label"] == pytest.approx([0.1])


@pytest.mark.parametrize("bad", ["pos", "nan", "inf"])
def test_custom_regression_refuses_non_numeric_labels(tmp_path, bad):
    train, dev = custom_files(tmp_path, ["a,0.5", "b,4"], [f"d,{bad}"])
    message = config_error(data.custom_task, train, dev, is_regression=True)
    assert f"{dev} line 2" in message and repr(bad) in message and "--is_regression" in message


def test_custom_unseen_validation_label_is_an_error(tmp_path):
    train, dev = custom_files(tmp_path, ["a,neg", "b,pos"], ["c,pos", "d,neu"])
    message = config_error(data.custom_task, train, dev)
    assert f"{dev} line 3" in message and "'neu'" in message and "does not occur in the training file" in message


def test_custom_labels_compare_without_case(tmp_path):
    train, dev = custom_files(tmp_path, ["a,neg", "b,pos"], ["c,POS"])
    task = data.custom_task(train, dev)
    assert load_splits(task, train_file=train, validation_file=dev)["validation"]["label"] == [1]
    train, dev = custom_files(tmp_path / "clash", ["a,neg", "b,Neg", "c,pos"], ["c,pos"])
    assert "'Neg' and 'neg' differ only in case" in config_error(data.custom_task, train, dev)


@pytest.mark.parametrize(
    "train_rows, expected",
    [
        (["a,pos", "b,pos"], "single label 'pos'"),
        (["a,pos", "b,"], "line 3: empty 'label'"),
    ],
)
def test_custom_label_set_errors(tmp_path, train_rows, expected):
    train, dev = custom_files(tmp_path, train_rows, ["c,pos"])
    assert expected in config_error(data.custom_task, train, dev)


def test_custom_scores_as_classes_get_a_warning(tmp_path, caplog):
    train, dev = custom_files(tmp_path, ["a,0.5", "b,1.5"], ["c,0.5"])
    with caplog.at_level("WARNING"):
        assert data.custom_task(train, dev).labels == ("0.5", "1.5")
    assert "--is_regression" in caplog.text


@pytest.mark.parametrize(
    "columns, expected",
    [
        (("sentence", "a", "b"), "one column or two"),
        (("sentence", "sentence"), "one column or two"),
        (("",), "one column or two"),
        (("label",), "reserved"),
        (("idx",), "reserved"),
    ],
)
def test_custom_text_column_errors(tmp_path, columns, expected):
    train, dev = custom_files(tmp_path, ["a,pos", "b,neg"], ["c,pos"])
    assert expected in config_error(data.custom_task, train, dev, columns)


def test_custom_missing_column_names_the_flags(tmp_path):
    train, dev = custom_files(tmp_path, ["a,pos", "b,neg"], ["c,pos"], header="text,label")
    message = config_error(data.custom_task, train, dev)
    assert "lacks column 'sentence'" in message and "found: text, label" in message
    assert "--text_column" in message
    assert "lacks column 'stars'" in config_error(data.custom_task, train, dev, ("text",), "stars")


def test_custom_names_keep_datasets_apart(tmp_path):
    first = custom_files(tmp_path / "tweets", ["a,pos", "b,neg"], ["c,pos"])
    second = custom_files(tmp_path / "reviews", ["a,pos", "b,neg"], ["c,pos"])
    assert data.custom_task(*first).name == "custom:tweets/train.csv+dev.csv"
    assert data.custom_task(*second).name == "custom:reviews/train.csv+dev.csv"
    assert data.custom_task(first[0], second[1]).name == "custom:tweets/train.csv+reviews/dev.csv"


def test_custom_task_needs_both_files(tmp_path):
    train, _ = custom_files(tmp_path, ["a,pos", "b,neg"], ["c,pos"])
    assert "does not exist" in config_error(data.custom_task, train, str(tmp_path / "nope.csv"))


# --------------------------------------------------------------------------------------------
# The custom task end to end: train_teacher.py, then the distillation scripts and the report
# --------------------------------------------------------------------------------------------

# The teachers here train one epoch on a couple of dozen rows (near chance), so the distillation
# runs pass --skip_teacher_check; test_a_teacher_with_other_labels_is_refused keeps the check on.
TRAINING = [
    "--num_train_epochs",
    "1",
    "--per_device_train_batch_size",
    "8",
    "--learning_rate",
    "1e-3",
    "--report_to",
    "none",
    "--save_strategy",
    "no",
    "--disable_tqdm",
    "true",
]
# First-seen order pos, neg, neu: the model must still number them neg=0, neu=1, pos=2.
THREE_CLASSES = [("good great movie", "pos"), ("bad awful film", "neg"), ("it is a film", "neu")]


@pytest.fixture(scope="module")
def custom_world(tmp_path_factory):
    """A tiny pretrained BERT, three-class CSV files and a teacher trained on them by train_teacher.py."""
    from conftest import make_tiny_bert

    import train_teacher

    root = tmp_path_factory.mktemp("custom")
    base = make_tiny_bert(root / "base", num_layers=2)
    rows = [f"{text} {i},{label}" for i in range(8) for text, label in THREE_CLASSES]
    train, dev = custom_files(root / "tweets", rows, rows[:9])
    teacher = str(root / "teacher")
    train_teacher.main(
        [
            "--model_name_or_path",
            base,
            "--train_file",
            train,
            "--validation_file",
            dev,
            "--output_dir",
            teacher,
            *TRAINING,
        ]
    )
    return {"root": root, "base": base, "train": train, "dev": dev, "teacher": teacher}


def results_of(folder):
    with open(os.path.join(folder, "results.json")) as f:
        return json.load(f)


def id2label(folder):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(folder).id2label


def test_custom_teacher_stores_the_sorted_labels(custom_world):
    assert id2label(custom_world["teacher"]) == {0: "neg", 1: "neu", 2: "pos"}
    results = results_of(custom_world["teacher"])
    assert results["task"] == "custom:tweets/train.csv+dev.csv"
    assert set(results["metrics"]) == {"accuracy", "macro_f1"}


def test_every_method_distils_on_the_custom_task(custom_world):
    import dynamic_data
    import dynamic_objective
    import dynamic_teacher
    from dynamic_kd import report

    world, runs = custom_world, custom_world["root"] / "runs"
    student = [
        "--model_name_or_path",
        world["base"],
        "--student_num_layers",
        "1",
        "--train_file",
        world["train"],
        "--validation_file",
        world["dev"],
        "--task_name",
        "custom",
        "--skip_teacher_check",
        *TRAINING,
    ]
    cache = str(world["root"] / "cache")
    selected = str(runs / "data")
    dynamic_data.main(
        student
        + [
            "--teacher",
            world["teacher"],
            "--selection_strategy",
            "entropy",
            "--selection_ratio",
            "0.5",
            "--teacher_cache",
            "disk",
            "--teacher_cache_dir",
            cache,
            "--output_dir",
            selected,
        ]
    )
    assert os.listdir(cache)  # the teacher outputs were cached on disk
    # The distilled student is a custom-task model too, so it can serve as the small teacher.
    dynamic_teacher.main(
        student
        + ["--small_teacher", selected, "--large_teacher", world["teacher"], "--output_dir", str(runs / "teacher")]
    )
    dynamic_objective.main(
        student
        + [
            "--teacher",
            world["teacher"],
            "--strategy",
            "uncertainty",
            "--kd_rep_alpha",
            "1",
            "--output_dir",
            str(runs / "objective"),
        ]
    )
    for name, method in (
        ("data", "kd+data/entropy/r0.5"),
        ("teacher", "teacher/hard"),
        ("objective", "kd+objective/uncertainty"),
    ):
        results = results_of(runs / name)
        assert (results["task"], results["method"]) == ("custom:tweets/train.csv+dev.csv", method)
        assert set(results["metrics"]) == {"accuracy", "macro_f1"}
        assert id2label(runs / name) == {0: "neg", 1: "neu", 2: "pos"}
    table = report.format_report(*report.load_runs([str(runs)]))
    assert "custom:tweets/train.csv+dev.csv (accuracy/macro_f1)" in table and "teacher/hard" in table


def test_a_teacher_with_other_labels_is_refused(custom_world, tmp_path, capsys):
    import dynamic_data
    from dynamic_kd.recipe import cli

    other = tmp_path / "other"
    shutil.copytree(custom_world["teacher"], other)
    config = json.loads((other / "config.json").read_text())
    config["id2label"] = {"0": "bad", "1": "good", "2": "meh"}
    config["label2id"] = {"bad": 0, "good": 1, "meh": 2}
    (other / "config.json").write_text(json.dumps(config))
    argv = [
        "--model_name_or_path",
        custom_world["base"],
        "--student_num_layers",
        "1",
        "--train_file",
        custom_world["train"],
        "--validation_file",
        custom_world["dev"],
        "--teacher",
        str(other),
        "--output_dir",
        str(tmp_path / "out"),
        *TRAINING,
    ]
    assert cli(lambda: dynamic_data.main(argv)) == 2
    assert (
        "orders its labels ['bad', 'good', 'meh'] but custom:tweets/train.csv+dev.csv uses ['neg', 'neu', 'pos']"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def test_unseen_validation_label_stops_train_teacher_with_exit_2(custom_world, tmp_path, capsys):
    import train_teacher
    from dynamic_kd.recipe import cli

    train, dev = custom_files(tmp_path, ["good,pos", "bad,neg"], ["good,pos", "meh,neu"])
    argv = [
        "--model_name_or_path",
        custom_world["base"],
        "--train_file",
        train,
        "--validation_file",
        dev,
        "--output_dir",
        str(tmp_path / "out"),
        *TRAINING,
    ]
    assert cli(lambda: train_teacher.main(argv)) == 2
    # the last line: pytest may leave logging handlers on streams of earlier tests, which complain here
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "validation label 'neu'" in err
    assert not (tmp_path / "out").exists()


def test_custom_pairs_with_integer_labels_end_to_end(custom_world, tmp_path):
    import dynamic_data
    import train_teacher

    rows = [
        {"premise": f"the movie {i}", "hypothesis": text, "stars": stars}
        for i in range(6)
        for text, stars in (("good great", 10), ("bad awful", 2))
    ]
    train = write(tmp_path / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    dev = write(tmp_path / "dev.json", json.dumps(rows[:4]))
    data_flags = [
        "--train_file",
        train,
        "--validation_file",
        dev,
        "--text_column",
        "premise,hypothesis",
        "--label_column",
        "stars",
    ]
    teacher = str(tmp_path / "teacher")
    train_teacher.main(["--model_name_or_path", custom_world["base"], *data_flags, "--output_dir", teacher, *TRAINING])
    assert id2label(teacher) == {0: "2", 1: "10"}
    dynamic_data.main(
        [
            "--model_name_or_path",
            custom_world["base"],
            "--student_num_layers",
            "1",
            *data_flags,
            "--teacher",
            teacher,
            "--skip_teacher_check",
            "--output_dir",
            str(tmp_path / "student"),
            *TRAINING,
        ]
    )
    assert results_of(tmp_path / "student")["task"] == f"custom:{tmp_path.name}/train.jsonl+dev.json"


def test_custom_regression_end_to_end(custom_world, tmp_path):
    from transformers import AutoConfig

    import dynamic_data
    import train_teacher

    rows = [f"{text} {i},{score + i / 10}" for i in range(8) for text, score in (("good great", 4), ("bad awful", 1))]
    train, dev = custom_files(tmp_path, rows, rows[:6], header="sentence,score")
    data_flags = ["--train_file", train, "--validation_file", dev, "--label_column", "score", "--is_regression"]
    teacher = str(tmp_path / "teacher")
    train_teacher.main(["--model_name_or_path", custom_world["base"], *data_flags, "--output_dir", teacher, *TRAINING])
    assert AutoConfig.from_pretrained(teacher).num_labels == 1
    assert set(results_of(teacher)["metrics"]) == {"pearson", "spearmanr"}
    dynamic_data.main(
        [
            "--model_name_or_path",
            custom_world["base"],
            "--student_num_layers",
            "1",
            *data_flags,
            "--teacher",
            teacher,
            "--selection_strategy",
            "random",
            "--selection_ratio",
            "0.5",
            "--output_dir",
            str(tmp_path / "student"),
            *TRAINING,
        ]
    )
    results = results_of(tmp_path / "student")
    assert AutoConfig.from_pretrained(tmp_path / "student").num_labels == 1
    assert results["args"]["kd_loss"] == "auto" and set(results["metrics"]) == {"pearson", "spearmanr"}


def test_data_source_fingerprints_the_content_read(tmp_path):
    source = data.data_source("sst2", data_dir=fixture_dir("sst2"))
    assert source["source"] == "data_dir" and source["location"] == fixture_dir("sst2")
    copy = shutil.copytree(fixture_dir("sst2"), tmp_path / "copy")
    assert (
        data.data_source("sst2", data_dir=str(copy))["fingerprint"] == source["fingerprint"]
    )  # same data, other folder
    with open(copy / "dev.tsv", "a", encoding="utf-8") as handle:
        handle.write("one more line\t1\n")
    assert data.data_source("sst2", data_dir=str(copy))["fingerprint"] != source["fingerprint"]
    files = data.data_source(
        "sst2", train_file=str(copy / "train.tsv"), validation_file=fixture_dir("sst2") + "/dev.tsv"
    )
    assert files["source"] == "files" and files["fingerprint"] == source["fingerprint"]  # the same two files
    hub = data.data_source("mnli")
    assert hub == {"source": "hub", "location": "nyu-mll/glue/mnli", "fingerprint": hub["fingerprint"]}
    assert hub["fingerprint"] != data.data_source("rte")["fingerprint"]
    # MNLI with only a matched validation file: the mismatched split comes from --data_dir
    mixed = data.data_source(
        "mnli",
        data_dir=fixture_dir("mnli"),
        validation_file=fixture_dir("mnli") + "/dev_matched.tsv",
        train_file=fixture_dir("mnli") + "/train.tsv",
    )
    assert mixed["fingerprint"] == data.data_source("mnli", data_dir=fixture_dir("mnli"))["fingerprint"]
