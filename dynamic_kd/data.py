"""Task registry and loading. A split holds the text columns, ``label`` and ``idx`` (the row's position
in its source: teacher stores key on it); labels map by name (pipelines order MNLI's differently)."""

import csv
import hashlib
import io
import json
import logging
import math
import os
import re
from contextlib import suppress
from dataclasses import dataclass, replace
from itertools import chain

import datasets

from dynamic_kd.errors import ConfigError

logger = logging.getLogger(__name__)

csv.field_size_limit(2**31 - 1)  # IMDB reviews exceed the default 128 KiB

# Hub test splits mark missing gold labels so; such rows are dropped, never guessed.
UNLABELED_VALUES = ("-1", "", "none")
CUSTOM_TASK = "custom"  # --task_name of the user's files
_FILE_TYPES = ".csv, .tsv, .json or .jsonl"


@dataclass(frozen=True)
class Task:
    """column_aliases: (column, its name in GLUE files or on the hub); glue_files, hub_splits: each split's
    --data_dir file and hub name; glue_header: columns of header-less files (CoLA)."""

    name: str
    text_keys: tuple[str, ...]
    labels: tuple[str, ...]  # none: regression
    metric: str
    eval_splits: tuple[str, ...] = ("validation",)
    numbered: bool = False  # "0", "1", ... name the labels too
    column_aliases: tuple[tuple[str, str], ...] = ()
    glue_files: tuple[str, ...] = ("train.tsv", "dev.tsv")
    glue_header: tuple[str, ...] = ()
    hub_path: str | None = "nyu-mll/glue"  # none: the custom task
    hub_config: str | None = None
    hub_splits: tuple[str, ...] = ()
    label_column: str = "label"

    @property
    def is_regression(self) -> bool:
        return not self.labels

    @property
    def num_labels(self) -> int:
        return len(self.labels) or 1

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train",) + self.eval_splits

    @property
    def is_custom(self) -> bool:
        return self.hub_path is None

    def hub_split(self, split: str) -> str:
        return dict(zip(self.splits, self.hub_splits or self.splits))[split]

    def column_candidates(self, column: str) -> tuple[str, ...]:
        name = self.label_column if column == "label" else column
        return (name,) + tuple(alias for canonical, alias in self.column_aliases if canonical == column)


def _task(name, *args, **kwargs) -> Task:
    return Task(name, *args, **{"hub_config": name, "numbered": True, **kwargs})


# MNLI, QNLI and RTE are not numbered: pipelines order their labels differently.
_REGISTERED = (
    _task(
        "cola",
        ("sentence",),
        ("unacceptable", "acceptable"),
        "matthews",
        glue_header=("source", "label", "label_notation", "sentence"),
    ),
    _task("sst2", ("sentence",), ("negative", "positive"), "accuracy"),
    _task(
        "mrpc",
        ("sentence1", "sentence2"),
        ("not_equivalent", "equivalent"),
        "f1_accuracy",
        column_aliases=(("sentence1", "#1 String"), ("sentence2", "#2 String"), ("label", "Quality")),
    ),
    _task(
        "qqp",
        ("question1", "question2"),
        ("not_duplicate", "duplicate"),
        "f1_accuracy",
        column_aliases=(("label", "is_duplicate"),),
    ),
    _task("stsb", ("sentence1", "sentence2"), (), "pearson_spearman", column_aliases=(("label", "score"),)),
    _task(
        "mnli",
        ("premise", "hypothesis"),
        ("entailment", "neutral", "contradiction"),
        "accuracy",
        numbered=False,
        eval_splits=("validation_matched", "validation_mismatched"),
        column_aliases=(("premise", "sentence1"), ("hypothesis", "sentence2"), ("label", "gold_label")),
        glue_files=("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"),
    ),
    _task("qnli", ("question", "sentence"), ("entailment", "not_entailment"), "accuracy", numbered=False),
    _task("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), "accuracy", numbered=False),
    _task("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), "accuracy"),
    _task(
        "sst5",
        ("sentence",),
        ("very negative", "negative", "neutral", "positive", "very positive"),
        "accuracy",
        column_aliases=(("sentence", "text"),),
        hub_path="SetFit/sst5",
        hub_config=None,
    ),
    _task(
        "imdb",
        ("text",),
        ("neg", "pos"),
        "accuracy",
        column_aliases=(("text", "sentence"),),
        hub_path="stanfordnlp/imdb",
        hub_config=None,
        hub_splits=("train", "test"),
    ),
    _task(
        "boolq",
        ("question", "passage"),
        ("False", "True"),
        "accuracy",
        glue_files=("train.jsonl", "val.jsonl"),
        hub_path="aps/super_glue",
    ),
)
TASKS: dict[str, Task] = {task.name: task for task in _REGISTERED}


def get_task(name) -> Task:
    if isinstance(name, Task):
        return name
    if str(name).lower() not in TASKS:
        raise ConfigError(
            f"unknown --task_name '{name}'; choose one of: {', '.join(sorted(TASKS))}, "
            f"or {CUSTOM_TASK} (your --train_file/--validation_file)"
        )
    return TASKS[str(name).lower()]


# Readers return rows (where, position, {column: raw value}); `where` names the row in errors.


def _resolve_columns(found: list[str], task: Task, source: str) -> dict[str, str]:
    resolved = {}
    for column in task.text_keys + ("label",):
        candidates = task.column_candidates(column)
        resolved[column] = next((name for name in candidates if name in found), None)
        if resolved[column] is None:
            fix = "pass --text_column/--label_column" if task.is_custom else "rename it or check --task_name"
            raise ConfigError(
                f"{source} lacks column {' or '.join(map(repr, candidates))} for task {task.name} "
                f"(found: {', '.join(found) or 'none'}); {fix}"
            )
    return resolved


def _read_delimited(text: str, path: str, task: Task, tsv: bool) -> list:
    """The needed columns of a CSV/TSV (GLUE's TSVs: no quoting); short rows (QQP's) are skipped."""
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ConfigError(f"{path} line {line} contains a NUL character (UTF-16?); re-save it as UTF-8")
    rows, skipped = [], 0
    # strict: a stray quote is an error, not a field swallowing the rest
    quoting = csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if tsv else ",", quoting=quoting, strict=True)
    lines = (row for row in reader if row)
    try:
        header = next(lines, None)
        if header is None:
            return []
        wanted = {name for column in task.text_keys for name in task.column_candidates(column)}
        if len(header) == len(task.glue_header) and not wanted & set(header):
            header, lines = list(task.glue_header), chain([header], lines)
        positions = {column: header.index(name) for column, name in _resolve_columns(header, task, path).items()}
        width = max(positions.values()) + 1
        for position, row in enumerate(lines):
            where = f"{path} line {reader.line_num}"
            if len(row) < width:
                skipped += 1
            elif any(row[len(header) :]):  # a delimiter in a text shifted the columns
                raise ConfigError(
                    f"{where} has {len(row)} fields but the header has {len(header)}; "
                    "quote that text or drop the delimiter in it"
                )
            else:
                rows.append((where, position, {column: row[i] for column, i in positions.items()}))
    except csv.Error as exc:
        raise ConfigError(f"{path} line {reader.line_num} cannot be parsed ({exc}); close the quote") from None
    if skipped:
        logger.warning("skipped %d malformed rows (under %d fields) in %s", skipped, width, path)
    return rows


def _read_json(text: str, path: str, task: Task) -> list:
    """A JSON array of records, an object wrapping one ({"data": [...]}), a record, or JSON lines."""
    parsed = None
    with suppress(ValueError):
        parsed = json.loads(text)
    if isinstance(parsed, dict):
        lists = [value for value in parsed.values() if isinstance(value, list)]
        parsed = lists[0] if len(lists) == 1 and all(isinstance(r, dict) for r in lists[0]) else [parsed]
    whole = isinstance(parsed, list)
    records = [(f"{path} record {n}", record) for n, record in enumerate(parsed, 1)] if whole else []
    for n, line in enumerate([] if whole else text.splitlines(), 1):
        if line.strip():
            try:
                records.append((f"{path} line {n}", json.loads(line)))
            except ValueError as exc:
                raise ConfigError(f"{path} is not valid JSON (line {n}: {exc}); write one object per line") from None
    rows, names = [], {}
    for i, (where, record) in enumerate(records):
        if not isinstance(record, dict):
            raise ConfigError(f"{where} is not a JSON object; make each record one")
        names = names or _resolve_columns(list(record), task, path)  # the first record's fields
        for name in names.values():
            if name not in record:
                raise ConfigError(f"{where} lacks field '{name}'; give every record {', '.join(names.values())}")
            if isinstance(record[name], (list, dict)):
                kind = type(record[name]).__name__
                raise ConfigError(f"{where}: field '{name}' holds a JSON {kind}; give it a string or number")
        rows.append((where, i, {column: record[name] for column, name in names.items()}))
    return rows


def _read_file(path: str, task: Task) -> list:
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".csv", ".tsv", ".json", ".jsonl"):
        raise ConfigError(f"unsupported file type '{extension or path}' for {path}; use a {_FILE_TYPES} file")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror or exc}); make it readable") from None
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path} line {line} is not valid UTF-8 (byte 0x{raw[exc.start]:02x}); re-save the file as UTF-8"
        ) from None
    if extension.startswith(".json"):
        return _read_json(text, path, task)
    return _read_delimited(text, path, task, tsv=extension == ".tsv")


def _label_name(raw) -> str:
    """JSON 1, 1.0 and CSV "1" become "1"."""
    return str(int(raw) if isinstance(raw, float) and raw.is_integer() else raw).strip()


def _build_split(task: Task, rows: list, split: str, source: str, drop_unlabeled=False) -> datasets.Dataset:
    lookup = {name.lower(): i for i, name in enumerate(task.labels)}  # case never tells two labels apart
    if task.numbered:
        lookup |= {str(i): i for i in range(len(task.labels))}
    numbers = f" (or 0-{task.num_labels - 1})" if task.numbered else ""
    valid = ", ".join(task.labels) + numbers if task.labels else "a number"
    data = {column: [] for column in task.text_keys + ("label", "idx")}
    for where, position, fields in rows:
        raw, key = fields["label"], _label_name(fields["label"]).lower()
        if drop_unlabeled and key in UNLABELED_VALUES:
            continue
        if not (_is_number(raw) if task.is_regression else key in lookup):
            raise ConfigError(
                f"{where} ({split}): label {raw!r} is not a {task.name} label; valid: {valid}; "
                "fix the file or check --task_name"
            )
        for column in task.text_keys:
            data[column].append("" if fields[column] is None else str(fields[column]))
        data["label"].append(float(raw) if task.is_regression else lookup[key])
        data["idx"].append(position)
    if not data["idx"]:
        raise ConfigError(f"{source} has no labeled data rows for the {split} split; add some below its header")
    kept = len(data["idx"])
    logger.info("loaded %s %s: %d rows from %s, %d unlabeled dropped", task.name, split, kept, source, len(rows) - kept)
    features = dict.fromkeys(task.text_keys, datasets.Value("string"))
    features |= {"label": datasets.Value("float32" if task.is_regression else "int64"), "idx": datasets.Value("int64")}
    return datasets.Dataset.from_dict(data, features=datasets.Features(features))


def _load_hub(task: Task, splits: list[str]) -> dict[str, datasets.Dataset]:
    try:
        hub = datasets.load_dataset(task.hub_path, task.hub_config)
    except Exception as exc:  # any failure: the same remedy
        reason = " ".join(str(exc).split())[:160]
        raise ConfigError(
            f"could not load {task.name} from the hub ({reason}); pass --data_dir "
            f"with {', '.join(task.glue_files)} or --train_file/--validation_file"
        ) from None
    loaded = {}
    for split in splits:
        name = task.hub_split(split)
        source = f"hub {task.hub_path} {name}"
        names = _resolve_columns(hub[name].column_names, task, source)
        columns = {column: list(hub[name][found]) for column, found in names.items()}
        feature = hub[name].features[names["label"]]
        if isinstance(feature, datasets.ClassLabel):  # ints -> names, as in files
            columns["label"] = [feature.names[v] if v is not None and v >= 0 else None for v in columns["label"]]
        rows = [(f"{source} row {i}", i, dict(zip(columns, row))) for i, row in enumerate(zip(*columns.values()))]
        loaded[split] = _build_split(task, rows, split, source, drop_unlabeled=name.startswith("test"))
    return loaded


def _source_files(task: Task, data_dir, train_file, validation_file) -> dict[str, str]:
    """Split -> local file of every split not read from the hub (command-line files first)."""
    files = {}
    named = {"train": (train_file, "--train_file"), task.eval_splits[0]: (validation_file, "--validation_file")}
    for split, (path, flag) in named.items():
        if path is None:
            continue
        if os.path.isdir(path):
            raise ConfigError(f"{flag} {path} is a folder; pass a {_FILE_TYPES} file")
        if not os.path.isfile(path):
            raise ConfigError(f"{flag} {path} does not exist; pass a {_FILE_TYPES} file")
        files[split] = str(path)
    if data_dir is None or len(files) == len(task.splits):
        return files
    expected = f"expected GLUE files for {task.name}: {', '.join(task.glue_files)}"
    if not os.path.isdir(data_dir):
        raise ConfigError(f"--data_dir {data_dir} is not a folder; {expected}")
    for split, name in zip(task.splits, task.glue_files):
        if split in files:
            continue
        files[split] = os.path.join(data_dir, name)
        if os.path.isdir(files[split]):
            raise ConfigError(f"--data_dir {data_dir} holds a folder named {name}; {expected}")
        if not os.path.isfile(files[split]):
            raise ConfigError(f"--data_dir {data_dir} lacks {name}; {expected}")
    return files


def data_source(task, data_dir=None, train_file=None, validation_file=None) -> dict:
    """Where `load_splits` reads from (results.json); the fingerprint hashes each split's file, or its hub
    name (the hub versions its datasets)."""
    task = get_task(task)
    files = _source_files(task, data_dir, train_file, validation_file)
    digest = hashlib.sha256()
    for split in task.splits:
        digest.update(split.encode())
        if split in files:
            with open(files[split], "rb") as handle:
                hashlib.file_digest(handle, lambda: digest)  # adds to the running digest
        else:
            digest.update(f"{task.hub_path}/{task.hub_config}/{task.hub_split(split)}".encode())
    if train_file is not None:
        source, location = "files", os.path.abspath(train_file)
    elif data_dir is not None:
        source, location = "data_dir", os.path.abspath(data_dir)
    else:
        source, location = "hub", "/".join(p for p in (task.hub_path, task.hub_config) if p)
    return {"source": source, "location": location, "fingerprint": digest.hexdigest()[:16]}


def load_splits(task, data_dir=None, train_file=None, validation_file=None) -> dict[str, datasets.Dataset]:
    """ "train" and the eval splits; a validation file fills the first (MNLI: matched)."""
    task = get_task(task)
    files = _source_files(task, data_dir, train_file, validation_file)
    if task.is_custom and not task.is_regression:
        logger.info("%s: class i is label i of %s", task.name, list(task.labels))
    loaded = {split: _build_split(task, _read_file(path, task), split, path) for split, path in files.items()}
    if len(loaded) < len(task.splits):
        loaded |= _load_hub(task, [split for split in task.splits if split not in loaded])
    return {split: loaded[split] for split in task.splits}


def custom_task(
    train_file, validation_file, text_columns=("sentence",), label_column="label", is_regression=False
) -> Task:
    """The task of the user's files, read before any model is built (its labels size the head): the
    training file's labels as text, by value if all are integers (-1 < 2 < 10), else by code point."""
    text_columns = tuple(text_columns)
    if len(text_columns) not in (1, 2) or not all(text_columns) or len(set(text_columns)) != len(text_columns):
        raise ConfigError(
            f"--text_column takes one column or two distinct ones, got {','.join(text_columns)!r}; "
            "e.g. --text_column premise,hypothesis"
        )
    if not label_column:
        raise ConfigError("--label_column is empty; name the label column")
    clash = next((c for c in text_columns if c in (label_column, "label", "idx")), None)
    if clash is not None:
        raise ConfigError(f"--text_column {clash!r} is the label column or reserved (label, idx); rename it")
    same_folder = os.path.dirname(os.path.abspath(train_file)) == os.path.dirname(os.path.abspath(validation_file))
    validation_name = os.path.basename(validation_file) if same_folder else _short(validation_file)
    name = f"{CUSTOM_TASK}:{_short(train_file)}+{validation_name}"
    reader = Task(name, text_columns, (), "pearson_spearman", glue_files=(), hub_path=None, label_column=label_column)
    files = _source_files(reader, None, train_file, validation_file)
    train, validation = (_read_file(files[split], reader) for split in ("train", "validation"))
    for path, rows in ((files["train"], train), (files["validation"], validation)):
        if not rows:
            raise ConfigError(f"{path} has no data rows; add some below its header")
    for where, _, fields in train + validation:
        raw = fields["label"]
        if raw is None or not str(raw).strip():
            raise ConfigError(f"{where}: empty '{label_column}'; label every row or drop it")
        if is_regression and (isinstance(raw, bool) or not _is_number(raw) or not math.isfinite(float(raw))):
            raise ConfigError(f"{where}: label {raw!r} is not a finite number; for classes omit --is_regression")
    if is_regression:
        return reader
    labels = _custom_labels(train, files["train"])
    known = {label.lower() for label in labels}
    for where, _, fields in validation:
        if _label_name(fields["label"]).lower() not in known:
            raise ConfigError(
                f"{where}: validation label {fields['label']!r} does not occur in the training file "
                f"{files['train']}; fix it or add it there"
            )
    return replace(reader, labels=labels, metric="accuracy_macro_f1")


def _short(path: str) -> str:
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.basename(folder), name)


def _custom_labels(rows: list, source: str) -> tuple[str, ...]:
    names = {_label_name(fields["label"]) for _, _, fields in rows}
    integers = all(re.fullmatch(r"[+-]?\d+", name) for name in names)
    labels = tuple(sorted(names, key=lambda name: (int(name), name)) if integers else sorted(names))
    seen = {}
    for name in labels:
        if seen.setdefault(name.lower(), name) != name:
            raise ConfigError(f"{source}: labels {seen[name.lower()]!r} and {name!r} differ only in case; unify them")
    if len(labels) < 2:
        raise ConfigError(f"{source} has a single label {labels[0]!r}; add another or pass --is_regression")
    if not integers and all(map(_is_number, labels)):
        logger.warning("%s: labels like %s are taken as classes; pass --is_regression for scores", source, labels[0])
    return labels


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
