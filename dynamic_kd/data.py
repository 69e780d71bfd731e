"""Task registry, loading and tokenisation for GLUE-style classification and regression tasks.

Each split is read from one source, first match wins:

1. ``--train_file`` / ``--validation_file`` (CSV, TSV, JSON or JSON lines),
2. ``--data_dir`` holding the original GLUE distribution files (fully offline),
3. the Hugging Face hub.

Whatever the source, a loaded split has the task's text columns, ``label`` (an int class id, or a
float for STS-B) and ``idx``, the row's position in its source file or hub split. ``idx`` is stable
across runs, so teacher-output caches key on it.

Labels are always mapped by *name* onto the task's label list: pipelines disagree on the integer
order of some label sets (MNLI above all), so a bare integer is only trusted where the task lists
it as an alias.
"""
import csv
import hashlib
import json
import logging
import os
from dataclasses import dataclass

import datasets
from transformers import DataCollatorWithPadding, default_data_collator

from dynamic_kd.errors import ConfigError

logger = logging.getLogger(__name__)

# IMDB reviews and GLUE passages can exceed the csv module's default 128 KiB field limit.
csv.field_size_limit(2**31 - 1)

MODEL_INPUT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")
# Hub test splits mark missing gold labels like this; such rows are dropped, never guessed.
UNLABELED_VALUES = ("-1", "", "none")


@dataclass(frozen=True)
class Task:
    """One benchmark task: its columns, label names, metric and where its data lives.

    ``column_aliases`` lists, per canonical column (a text key or ``label``), the other names it
    has in the GLUE files or on the hub. ``glue_files`` maps split names to file names inside
    ``--data_dir``; ``glue_header`` names the columns of header-less GLUE files (CoLA).
    ``hub_splits`` maps our split names to hub split names where they differ.
    """

    name: str
    text_keys: tuple[str, ...]
    labels: tuple[str, ...]
    metric: str
    eval_splits: tuple[str, ...] = ("validation",)
    label_aliases: tuple[tuple[str, str], ...] = ()
    column_aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()
    glue_files: tuple[tuple[str, str], ...] = (("train", "train.tsv"), ("validation", "dev.tsv"))
    glue_header: tuple[str, ...] = ()
    hub_path: str = "nyu-mll/glue"
    hub_config: str | None = None
    hub_splits: tuple[tuple[str, str], ...] = ()

    @property
    def is_regression(self) -> bool:
        """STS-B-style tasks have no label names: the label is a float score."""
        return not self.labels

    @property
    def num_labels(self) -> int:
        """Size of the classifier head: one output for regression."""
        return 1 if self.is_regression else len(self.labels)

    @property
    def splits(self) -> tuple[str, ...]:
        """Every split `load_splits` returns: train first, then the eval splits."""
        return ("train",) + self.eval_splits

    @property
    def expected_files(self) -> tuple[str, ...]:
        """File names `--data_dir` must hold for this task."""
        return tuple(filename for _, filename in self.glue_files)

    def glue_file(self, split: str) -> str:
        """The GLUE distribution file name holding `split`."""
        return dict(self.glue_files)[split]

    def hub_split(self, split: str) -> str:
        """The hub split name holding our `split`."""
        return dict(self.hub_splits).get(split, split)

    def column_candidates(self, column: str) -> tuple[str, ...]:
        """Names under which canonical `column` may appear in a source, preferred first."""
        return (column,) + dict(self.column_aliases).get(column, ())

    def label_lookup(self) -> dict[str, int]:
        """Lower-cased label name or alias -> class id (case never distinguishes two labels)."""
        lookup = {name.lower(): i for i, name in enumerate(self.labels)}
        for alias, name in self.label_aliases:
            lookup[alias.lower()] = self.labels.index(name)
        return lookup

    def describe_labels(self) -> str:
        """The valid label values, for error messages."""
        text = ", ".join(self.labels)
        if self.label_aliases:
            text += " (or " + ", ".join(alias for alias, _ in self.label_aliases) + ")"
        return text


def _numbered(labels: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Aliases "0", "1", ... for label sets whose integer order is fixed by the original data."""
    return tuple((str(i), name) for i, name in enumerate(labels))


def _task(name, text_keys, labels, metric, numbered=False, **kwargs) -> Task:
    """Registry helper: the hub config defaults to the task name (GLUE convention)."""
    kwargs.setdefault("hub_config", name)
    aliases = _numbered(labels) if numbered else ()
    return Task(name, text_keys, labels, metric, label_aliases=aliases, **kwargs)


_SST5_LABELS = ("very negative", "negative", "neutral", "positive", "very positive")

# MNLI, QNLI and RTE get no numeric aliases on purpose: their integer order differs between
# pipelines, so only label names are accepted for them.
TASKS: dict[str, Task] = {
    "cola": _task(
        "cola", ("sentence",), ("unacceptable", "acceptable"), "matthews", numbered=True,
        glue_header=("source", "label", "label_notation", "sentence"),
    ),
    "sst2": _task("sst2", ("sentence",), ("negative", "positive"), "accuracy", numbered=True),
    "mrpc": _task(
        "mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), "f1_accuracy",
        numbered=True,
        column_aliases=(("sentence1", ("#1 String",)), ("sentence2", ("#2 String",)),
                        ("label", ("Quality",))),
    ),
    "qqp": _task(
        "qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), "f1_accuracy",
        numbered=True, column_aliases=(("label", ("is_duplicate",)),),
    ),
    "stsb": _task(
        "stsb", ("sentence1", "sentence2"), (), "pearson_spearman",
        column_aliases=(("label", ("score",)),),
    ),
    "mnli": _task(
        "mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), "accuracy",
        eval_splits=("validation_matched", "validation_mismatched"),
        column_aliases=(("premise", ("sentence1",)), ("hypothesis", ("sentence2",)),
                        ("label", ("gold_label",))),
        glue_files=(("train", "train.tsv"), ("validation_matched", "dev_matched.tsv"),
                    ("validation_mismatched", "dev_mismatched.tsv")),
    ),
    "qnli": _task("qnli", ("question", "sentence"), ("entailment", "not_entailment"), "accuracy"),
    "rte": _task("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), "accuracy"),
    "wnli": _task(
        "wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), "accuracy",
        numbered=True,
    ),
    "sst5": _task(
        "sst5", ("sentence",), _SST5_LABELS, "accuracy", numbered=True,
        column_aliases=(("sentence", ("text",)),), hub_path="SetFit/sst5", hub_config=None,
    ),
    "imdb": _task(
        "imdb", ("text",), ("neg", "pos"), "accuracy", numbered=True,
        column_aliases=(("text", ("sentence",)),),
        hub_path="stanfordnlp/imdb", hub_config=None, hub_splits=(("validation", "test"),),
    ),
    "boolq": _task(
        "boolq", ("question", "passage"), ("False", "True"), "accuracy", numbered=True,
        glue_files=(("train", "train.jsonl"), ("validation", "val.jsonl")),
        hub_path="aps/super_glue",
    ),
}


def get_task(name: str) -> Task:
    """Look a task up by its (case-insensitive) name."""
    key = str(name).lower()
    if key not in TASKS:
        raise ConfigError(f"unknown --task_name '{name}'; choose one of: {', '.join(sorted(TASKS))}")
    return TASKS[key]


# --------------------------------------------------------------------------------------------
# Reading sources into columns
# --------------------------------------------------------------------------------------------

@dataclass
class _Columns:
    """Raw canonical columns of one split, each row's position in its source (its future idx)
    and where it came from (for error messages)."""

    values: dict[str, list]
    where: list[str]
    source: str
    positions: list[int] | None = None

    def __post_init__(self):
        if self.positions is None:
            self.positions = list(range(len(self.where)))


def _one_line(text: str, limit: int = 300) -> str:
    """Collapse an arbitrary message onto one short line (ConfigError messages are one line)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _resolve_columns(found: list[str], task: Task, source: str) -> dict[str, str]:
    """Map each canonical column (text keys + label) to the name it has in `found`."""
    resolved = {}
    for column in task.text_keys + ("label",):
        match = next((name for name in task.column_candidates(column) if name in found), None)
        if match is None:
            names = " or ".join(repr(n) for n in task.column_candidates(column))
            raise ConfigError(
                f"{source} lacks column {names} needed by task {task.name} "
                f"(found: {', '.join(found) or 'none'}); rename the column or check --task_name"
            )
        resolved[column] = match
    return resolved


def _looks_headerless(first_row: list[str], task: Task) -> bool:
    """CoLA's GLUE files have no header: recognise them by width and missing column names."""
    if not task.glue_header or len(first_row) != len(task.glue_header):
        return False
    wanted = {name for column in task.text_keys for name in task.column_candidates(column)}
    return not wanted & set(first_row)


def _read_delimited(path: str, task: Task, delimiter: str, quoting: int) -> _Columns:
    """Read only the needed columns of a CSV/TSV file (big GLUE files carry many unused ones)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
        rows = (row for row in reader if row)
        first = next(rows, None)
        if first is None:
            return _Columns({c: [] for c in task.text_keys + ("label",)}, [], path)
        if _looks_headerless(first, task):
            header, rows = list(task.glue_header), _chain([first], rows)
        else:
            header = first
        positions = {c: header.index(n) for c, n in _resolve_columns(header, task, path).items()}
        return _collect_rows(rows, positions, lambda: f"{path} line {reader.line_num}", path)


def _collect_rows(rows, positions: dict[str, int], locate, path: str) -> _Columns:
    """Pick the `positions` fields out of each row; `locate()` names the current row's line."""
    values = {column: [] for column in positions}
    where, kept, skipped = [], [], 0
    width = max(positions.values()) + 1
    for row_number, row in enumerate(rows):
        # Original pipelines skip the few truncated rows of GLUE's QQP file; so do we, but the
        # row still counts, so idx stays the row's position in the file.
        if len(row) < width:
            skipped += 1
            continue
        for column, position in positions.items():
            values[column].append(row[position])
        where.append(locate())
        kept.append(row_number)
    if skipped:
        logger.warning("skipped %d malformed rows (fewer than %d fields) in %s", skipped, width, path)
    return _Columns(values, where, path, kept)


def _chain(first: list, rest):
    """Yield the items of `first`, then those of the iterator `rest`."""
    yield from first
    yield from rest


def _read_json(path: str, task: Task) -> _Columns:
    """Read a JSON-lines file, a JSON array of objects, or an object holding one such array."""
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    try:
        records = _json_records(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON or JSON lines ({_one_line(exc, 120)}); "
                          "write one JSON object per line") from None
    if not records:
        return _Columns({c: [] for c in task.text_keys + ("label",)}, [], path)
    for position, record in records:
        if not isinstance(record, dict):
            raise ConfigError(f"{path} {position} is not a JSON object; write one object per record")
    names = _resolve_columns(list(records[0][1]), task, path)
    values = {column: [] for column in names}
    where = []
    for position, record in records:
        for column, name in names.items():
            if name not in record:
                raise ConfigError(f"{path} {position} lacks field '{name}'; "
                                  f"give every record the fields {', '.join(names.values())}")
            values[column].append(record[name])
        where.append(f"{path} {position}")
    return _Columns(values, where, path)


def _json_records(text: str) -> list[tuple[str, dict]]:
    """("line N" / "record N", object) pairs from JSON lines, a JSON array or {"data": [...]}."""
    stripped = text.strip()
    if stripped.startswith("["):
        parsed = json.loads(stripped)
    elif stripped.startswith("{") and "\n{" not in stripped:
        parsed = json.loads(stripped)
        # A single object either wraps the records (HF-style {"data": [...]}) or is one record.
        lists = [v for v in parsed.values() if isinstance(v, list)]
        parsed = lists[0] if len(lists) == 1 and all(isinstance(r, dict) for r in lists[0]) else [parsed]
    else:
        lines = enumerate(text.splitlines(), 1)
        return [(f"line {n}", json.loads(line)) for n, line in lines if line.strip()]
    return [(f"record {n}", record) for n, record in enumerate(parsed, 1)]


def _read_file(path: str, task: Task) -> _Columns:
    """Dispatch on the file extension; TSVs are read without quote handling, as GLUE needs."""
    extension = os.path.splitext(path)[1].lower()
    if extension == ".tsv":
        return _read_delimited(path, task, "\t", csv.QUOTE_NONE)
    if extension == ".csv":
        return _read_delimited(path, task, ",", csv.QUOTE_MINIMAL)
    if extension in (".json", ".jsonl"):
        return _read_json(path, task)
    raise ConfigError(f"unsupported file type '{extension or path}' for {path}; "
                      "use a .csv, .tsv, .json or .jsonl file")


# --------------------------------------------------------------------------------------------
# Labels and datasets
# --------------------------------------------------------------------------------------------

def _label_key(value) -> str:
    """Normalise a raw label so that 1, 1.0, "1", True and "true" compare as strings."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def _convert_labels(task: Task, columns: _Columns, split: str, drop_unlabeled: bool) -> list:
    """Class ids (or float scores) per row; None marks a dropped unlabeled test row."""
    converted = []
    lookup = task.label_lookup()
    for raw, where in zip(columns.values["label"], columns.where):
        key = _label_key(raw)
        if drop_unlabeled and (raw is None or key in UNLABELED_VALUES):
            converted.append(None)
        elif task.is_regression:
            converted.append(_parse_score(raw, where, split))
        elif key in lookup:
            converted.append(lookup[key])
        else:
            raise ConfigError(
                f"{where} ({split}): label {raw!r} is not a {task.name} label; valid labels: "
                f"{task.describe_labels()}; fix the file or check --task_name"
            )
    return converted


def _parse_score(raw, where: str, split: str) -> float:
    """A regression target; anything non-numeric is a data error."""
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} ({split}): score {raw!r} is not a number; "
                          "regression labels must be numeric") from None


def _features(task: Task) -> datasets.Features:
    """Arrow schema of a loaded split."""
    label = datasets.Value("float32" if task.is_regression else "int64")
    features = {key: datasets.Value("string") for key in task.text_keys}
    features.update(label=label, idx=datasets.Value("int64"))
    return datasets.Features(features)


def _build_split(task: Task, columns: _Columns, split: str, drop_unlabeled: bool) -> datasets.Dataset:
    """Turn raw columns into an in-memory Dataset with mapped labels and original-position idx."""
    labels = _convert_labels(task, columns, split, drop_unlabeled)
    keep = [i for i, label in enumerate(labels) if label is not None]
    if not keep:
        raise ConfigError(f"{columns.source} has no labeled data rows for the {split} split; "
                          "give it a header line and at least one labeled row")
    data = {key: ["" if columns.values[key][i] is None else str(columns.values[key][i]) for i in keep]
            for key in task.text_keys}
    data["label"] = [labels[i] for i in keep]
    data["idx"] = [columns.positions[i] for i in keep]
    dropped = len(labels) - len(keep)
    if dropped:
        logger.info("dropped %d unlabeled rows from %s (%s)", dropped, columns.source, split)
    logger.info("loaded %s %s: %d rows from %s", task.name, split, len(keep), columns.source)
    return datasets.Dataset.from_dict(data, features=_features(task))


def _load_hub(task: Task, splits: list[str]) -> dict[str, datasets.Dataset]:
    """Fetch `splits` from the hub, wrapping every failure in a ConfigError."""
    try:
        hub = datasets.load_dataset(task.hub_path, task.hub_config)
    except Exception as exc:  # any hub/network/cache failure gets the same remedy
        raise ConfigError(
            f"could not load {task.name} from the hub ({_one_line(exc, 160)}); pass --data_dir "
            f"with the GLUE files ({', '.join(task.expected_files)}) or --train_file/--validation_file"
        ) from None
    loaded = {}
    for split in splits:
        hub_split = task.hub_split(split)
        if hub_split not in hub:
            raise ConfigError(f"hub dataset {task.hub_path} has no '{hub_split}' split (has: "
                              f"{', '.join(hub)}); pass --data_dir or --train_file/--validation_file")
        columns = _hub_columns(task, hub[hub_split], f"hub {task.hub_path} {hub_split}")
        loaded[split] = _build_split(task, columns, split, hub_split.startswith("test"))
    return loaded


def _hub_columns(task: Task, dataset: datasets.Dataset, source: str) -> _Columns:
    """Canonical columns of a hub split; ClassLabel ints become their names before mapping."""
    names = _resolve_columns(dataset.column_names, task, source)
    values = {column: list(dataset[name]) for column, name in names.items()}
    feature = dataset.features[names["label"]]
    if isinstance(feature, datasets.ClassLabel):
        values["label"] = [feature.names[v] if v is not None and v >= 0 else None
                           for v in values["label"]]
    where = [f"{source} row {i}" for i in range(len(dataset))]
    return _Columns(values, where, source)


def _explicit_files(task: Task, train_file, validation_file) -> dict[str, str]:
    """Split -> path for files named on the command line; each must exist."""
    files = {}
    for split, path, flag in (("train", train_file, "--train_file"),
                              (task.eval_splits[0], validation_file, "--validation_file")):
        if path is None:
            continue
        if not os.path.isfile(path):
            raise ConfigError(f"{flag} {path} does not exist; pass the path of a .csv, .tsv, "
                              ".json or .jsonl file")
        files[split] = str(path)
    return files


def _data_dir_files(task: Task, data_dir, splits: list[str]) -> dict[str, str]:
    """Split -> path inside the GLUE-format `data_dir` for the splits still unsourced."""
    expected = f"expected GLUE files for {task.name}: {', '.join(task.expected_files)}"
    if not os.path.isdir(data_dir):
        raise ConfigError(f"--data_dir {data_dir} does not exist or is not a folder; {expected}")
    files = {}
    for split in splits:
        path = os.path.join(data_dir, task.glue_file(split))
        if not os.path.isfile(path):
            raise ConfigError(f"--data_dir {data_dir} lacks {task.glue_file(split)}; {expected}")
        files[split] = path
    return files


def _source_files(task: Task, data_dir, train_file, validation_file) -> dict[str, str]:
    """Split -> local file for every split not read from the hub (command-line files first)."""
    files = _explicit_files(task, train_file, validation_file)
    missing = [split for split in task.splits if split not in files]
    if data_dir is not None and missing:
        files.update(_data_dir_files(task, data_dir, missing))
    return files


def data_source(task, data_dir=None, train_file=None, validation_file=None) -> dict:
    """Where `load_splits` reads the task from, for results.json and the report.

    ``source`` is ``files`` (--train_file/--validation_file), ``data_dir`` or ``hub``;
    ``location`` the train file, the folder (absolute) or the hub dataset; ``fingerprint`` a
    SHA-256 prefix over every split's local file content, so the same folder with other data (or
    the same data in another folder) is told apart (or not). Hub splits enter by name only: the
    hub versions its datasets.
    """
    task = task if isinstance(task, Task) else get_task(task)
    files = _source_files(task, data_dir, train_file, validation_file)
    digest = hashlib.sha256()
    for split in task.splits:
        digest.update(split.encode())
        if split in files:
            with open(files[split], "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
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
    """Load "train" and every ``task.eval_splits`` split, each from the best source available.

    Per split: ``train_file`` / ``validation_file`` first, then ``data_dir`` (original GLUE
    layout, see ``Task.glue_files``), then the hub. For MNLI, ``validation_file`` fills
    ``validation_matched`` only; ``validation_mismatched`` still comes from ``data_dir`` or the hub.
    User files need a ``label`` column and the task's text columns (``task.text_keys``; the GLUE
    file names such as MNLI's ``sentence1``/``gold_label`` are accepted too).

    Returns split name -> in-memory Dataset with the text columns, ``label`` and ``idx``.
    """
    task = task if isinstance(task, Task) else get_task(task)
    files = _source_files(task, data_dir, train_file, validation_file)
    loaded = {split: _build_split(task, _read_file(path, task), split, drop_unlabeled=False)
              for split, path in files.items()}
    missing = [split for split in task.splits if split not in loaded]
    if missing:
        loaded.update(_load_hub(task, missing))
    return {split: loaded[split] for split in task.splits}


# --------------------------------------------------------------------------------------------
# Tokenisation and batching
# --------------------------------------------------------------------------------------------

def _check_limit(value, flag: str) -> None:
    """Sample limits must be positive integers when given."""
    if value is not None and (not isinstance(value, int) or value <= 0):
        raise ConfigError(f"{flag} must be a positive integer, got {value!r}; omit it to use all rows")


def _take_first(dataset: datasets.Dataset, limit) -> datasets.Dataset:
    """The first `limit` rows (idx keeps the original positions)."""
    if limit is None or limit >= len(dataset):
        return dataset
    return dataset.select(range(limit))


def _encoder(task: Task, tokenizer, max_seq_length: int, pad_to_max_length: bool):
    """A batched map function: texts -> model inputs, label -> labels, idx kept."""
    padding = "max_length" if pad_to_max_length else False

    def encode(batch):
        texts = [batch[key] for key in task.text_keys]
        encoded = tokenizer(*texts, truncation=True, max_length=max_seq_length, padding=padding)
        out = {key: encoded[key] for key in MODEL_INPUT_COLUMNS if key in encoded}
        out["labels"] = batch["label"]
        out["idx"] = batch["idx"]
        return out

    return encode


def tokenize_splits(splits, task, tokenizer, max_seq_length=128, pad_to_max_length=False,
                    max_train_samples=None, max_eval_samples=None) -> dict[str, datasets.Dataset]:
    """Tokenise every split; columns become input_ids, attention_mask, [token_type_ids], labels, idx.

    ``pad_to_max_length`` pads every row to ``max_seq_length`` (as the original code did);
    otherwise padding is left to the collator. ``max_train_samples`` / ``max_eval_samples`` keep the
    first N rows of the train / eval splits. Results stay in memory: nothing goes to the HF cache.
    """
    task = task if isinstance(task, Task) else get_task(task)
    if not isinstance(max_seq_length, int) or max_seq_length < 2:
        raise ConfigError(f"--max_seq_length must be an integer >= 2, got {max_seq_length!r}; "
                          "the paper uses 128")
    _check_limit(max_train_samples, "--max_train_samples")
    _check_limit(max_eval_samples, "--max_eval_samples")
    encode = _encoder(task, tokenizer, max_seq_length, pad_to_max_length)
    tokenized = {}
    for name, dataset in splits.items():
        dataset = _take_first(dataset, max_train_samples if name == "train" else max_eval_samples)
        mapped = dataset.map(encode, batched=True, remove_columns=dataset.column_names,
                             keep_in_memory=True, desc=f"tokenizing {task.name} {name}")
        order = [c for c in MODEL_INPUT_COLUMNS if c in mapped.column_names] + ["labels", "idx"]
        tokenized[name] = mapped.select_columns(order)
    return tokenized


def make_collator(tokenizer, pad_to_max_length: bool):
    """Batching function: pads dynamically unless the rows were pre-padded to max length.

    Batches carry ``idx`` (LongTensor) and ``labels`` (long, or float for regression). Callers
    using ``transformers.Trainer`` must set ``remove_unused_columns=False`` to keep ``idx``.
    """
    if pad_to_max_length:
        return default_data_collator
    return DataCollatorWithPadding(tokenizer)
