"""Task registry, loading and tokenisation for GLUE-style classification and regression tasks.

A task is either one of the registry's (``TASKS``) or the *custom* task of the user's own files
(`custom_task`), whose labels come from the training file.

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
import inspect
import json
import logging
import math
import os
import re
from dataclasses import dataclass, replace

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from transformers import DataCollatorWithPadding, default_data_collator

from dynamic_kd.cache import cache_root, entry_folder, get_or_build, key_hash, writable_folder
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
    ``hub_splits`` maps our split names to hub split names where they differ. ``label_column``
    names the label column of user files; a task without ``hub_path`` (the custom task) is read
    from ``--train_file`` / ``--validation_file`` only.
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
    hub_path: str | None = "nyu-mll/glue"
    hub_config: str | None = None
    hub_splits: tuple[tuple[str, str], ...] = ()
    label_column: str = "label"

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

    @property
    def is_custom(self) -> bool:
        """The user's own files (`custom_task`): no GLUE folder, no hub copy."""
        return self.hub_path is None

    def column_candidates(self, column: str) -> tuple[str, ...]:
        """Names under which canonical `column` may appear in a source, preferred first."""
        name = self.label_column if column == "label" else column
        return (name,) + dict(self.column_aliases).get(column, ())

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
        "cola",
        ("sentence",),
        ("unacceptable", "acceptable"),
        "matthews",
        numbered=True,
        glue_header=("source", "label", "label_notation", "sentence"),
    ),
    "sst2": _task("sst2", ("sentence",), ("negative", "positive"), "accuracy", numbered=True),
    "mrpc": _task(
        "mrpc",
        ("sentence1", "sentence2"),
        ("not_equivalent", "equivalent"),
        "f1_accuracy",
        numbered=True,
        column_aliases=(("sentence1", ("#1 String",)), ("sentence2", ("#2 String",)), ("label", ("Quality",))),
    ),
    "qqp": _task(
        "qqp",
        ("question1", "question2"),
        ("not_duplicate", "duplicate"),
        "f1_accuracy",
        numbered=True,
        column_aliases=(("label", ("is_duplicate",)),),
    ),
    "stsb": _task(
        "stsb",
        ("sentence1", "sentence2"),
        (),
        "pearson_spearman",
        column_aliases=(("label", ("score",)),),
    ),
    "mnli": _task(
        "mnli",
        ("premise", "hypothesis"),
        ("entailment", "neutral", "contradiction"),
        "accuracy",
        eval_splits=("validation_matched", "validation_mismatched"),
        column_aliases=(("premise", ("sentence1",)), ("hypothesis", ("sentence2",)), ("label", ("gold_label",))),
        glue_files=(
            ("train", "train.tsv"),
            ("validation_matched", "dev_matched.tsv"),
            ("validation_mismatched", "dev_mismatched.tsv"),
        ),
    ),
    "qnli": _task("qnli", ("question", "sentence"), ("entailment", "not_entailment"), "accuracy"),
    "rte": _task("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), "accuracy"),
    "wnli": _task(
        "wnli",
        ("sentence1", "sentence2"),
        ("not_entailment", "entailment"),
        "accuracy",
        numbered=True,
    ),
    "sst5": _task(
        "sst5",
        ("sentence",),
        _SST5_LABELS,
        "accuracy",
        numbered=True,
        column_aliases=(("sentence", ("text",)),),
        hub_path="SetFit/sst5",
        hub_config=None,
    ),
    "imdb": _task(
        "imdb",
        ("text",),
        ("neg", "pos"),
        "accuracy",
        numbered=True,
        column_aliases=(("text", ("sentence",)),),
        hub_path="stanfordnlp/imdb",
        hub_config=None,
        hub_splits=(("validation", "test"),),
    ),
    "boolq": _task(
        "boolq",
        ("question", "passage"),
        ("False", "True"),
        "accuracy",
        numbered=True,
        glue_files=(("train", "train.jsonl"), ("validation", "val.jsonl")),
        hub_path="aps/super_glue",
    ),
}


# --task_name value (also the default) of the user's own files; see `custom_task`.
CUSTOM_TASK = "custom"


def get_task(name: str) -> Task:
    """Look a registry task up by its (case-insensitive) name."""
    key = str(name).lower()
    if key not in TASKS:
        raise ConfigError(
            f"unknown --task_name '{name}'; choose one of: {', '.join(sorted(TASKS))}, "
            f"or {CUSTOM_TASK} (your own --train_file/--validation_file)"
        )
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
                f"(found: {', '.join(found) or 'none'}); "
                + (
                    "name your columns with --text_column/--label_column"
                    if task.is_custom
                    else "rename the column or check --task_name"
                )
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
        # strict: an unterminated or misplaced quote is an error, not a field swallowing the rest of the file
        reader = csv.reader(f, delimiter=delimiter, quoting=quoting, strict=True)
        rows = (row for row in reader if row)
        try:
            first = next(rows, None)
            if first is None:
                return _Columns({c: [] for c in task.text_keys + ("label",)}, [], path)
            _check_no_nul(first, f"{path} line {reader.line_num}")
            if _looks_headerless(first, task):
                header, rows = list(task.glue_header), _chain([first], rows)
            else:
                header = first
            positions = {c: header.index(n) for c, n in _resolve_columns(header, task, path).items()}
            return _collect_rows(rows, positions, len(header), lambda: f"{path} line {reader.line_num}", path)
        except csv.Error as exc:
            raise ConfigError(
                f"{path} line {reader.line_num} cannot be parsed ({_one_line(exc, 120)}); "
                "close the quote or fix the row"
            ) from None


def _check_no_nul(fields: list[str], where: str) -> None:
    """A NUL character in text means a binary or UTF-16 file read as UTF-8."""
    if any("\x00" in field for field in fields):
        raise ConfigError(
            f"{where} contains a NUL character, so this is not a UTF-8 text file (binary, or UTF-16?); "
            "re-save it as UTF-8 text"
        )


def _collect_rows(rows, positions: dict[str, int], header_width: int, locate, path: str) -> _Columns:
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
        # More fields than the header means a delimiter inside a field shifted the columns after
        # it: every value read by position could be wrong. Trailing empty fields shift nothing.
        if len(row) > header_width and any(row[header_width:]):
            raise ConfigError(
                f"{locate()} has {len(row)} fields but the header has {header_width} (a delimiter inside "
                "a text field?); quote that field (CSV) or remove the extra delimiter"
            )
        fields = [row[position] for position in positions.values()]
        _check_no_nul(fields, locate())
        for column, field in zip(positions, fields):
            values[column].append(field)
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
        raise ConfigError(
            f"{path} is not valid JSON or JSON lines ({_one_line(exc, 120)}); write one JSON object per line"
        ) from None
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
                raise ConfigError(
                    f"{path} {position} lacks field '{name}'; give every record the fields {', '.join(names.values())}"
                )
            value = record[name]
            if isinstance(value, (list, dict)):
                raise ConfigError(
                    f"{path} {position}: field '{name}' holds a JSON {type(value).__name__}, not a "
                    "single value; give it a string (a number for a label)"
                )
            values[column].append(value)
        where.append(f"{path} {position}")
    return _Columns(values, where, path)


def _json_records(text: str) -> list[tuple[str, dict]]:
    """("line N" / "record N", object) pairs from JSON lines, a JSON array or {"data": [...]}.

    The whole text is tried as one JSON document first; if that fails it is read as JSON lines,
    so an error names the first line that does not parse.
    """
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return [(f"record {n}", record) for n, record in enumerate(parsed, 1)]
        if isinstance(parsed, dict):
            # A single object either wraps the records (HF-style {"data": [...]}) or is one record.
            lists = [v for v in parsed.values() if isinstance(v, list)]
            records = lists[0] if len(lists) == 1 and all(isinstance(r, dict) for r in lists[0]) else [parsed]
            return [(f"record {n}", record) for n, record in enumerate(records, 1)]
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append((f"line {n}", json.loads(line)))
            except ValueError as exc:
                raise ValueError(f"line {n}: {exc}") from None
    return records


def _read_file(path: str, task: Task) -> _Columns:
    """Dispatch on the file extension; TSVs are read without quote handling, as GLUE needs.

    Every way a file can fail to be read becomes a ConfigError naming the file (and the line
    where one can be named): not UTF-8, a NUL character, an unterminated quote, a row wider than
    the header, a JSON line that does not parse or is not an object, an OS-level read error.
    """
    extension = os.path.splitext(path)[1].lower()
    readers = {
        ".tsv": lambda: _read_delimited(path, task, "\t", csv.QUOTE_NONE),
        ".csv": lambda: _read_delimited(path, task, ",", csv.QUOTE_MINIMAL),
        ".json": lambda: _read_json(path, task),
        ".jsonl": lambda: _read_json(path, task),
    }
    if extension not in readers:
        raise ConfigError(
            f"unsupported file type '{extension or path}' for {path}; use a .csv, .tsv, .json or .jsonl file"
        )
    try:
        return readers[extension]()
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror or exc}); check that it is a readable file") from None


def _not_utf8(path: str) -> ConfigError:
    """The error for a file that is not UTF-8, naming the line and byte of the first bad byte.

    Text files are decoded while streaming, so the decoder's offset is relative to a chunk; the
    file is read once more as bytes here, only on this error path, to locate the byte exactly.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return ConfigError(
            f"{path} line {line} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        )
    return ConfigError(f"{path} is not valid UTF-8; re-save the file as UTF-8")


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
        raise ConfigError(
            f"{where} ({split}): score {raw!r} is not a number; regression labels must be numeric"
        ) from None


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
        raise ConfigError(
            f"{columns.source} has no labeled data rows for the {split} split; "
            "give it a header line and at least one labeled row"
        )
    data = {
        key: ["" if columns.values[key][i] is None else str(columns.values[key][i]) for i in keep]
        for key in task.text_keys
    }
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
            raise ConfigError(
                f"hub dataset {task.hub_path} has no '{hub_split}' split (has: "
                f"{', '.join(hub)}); pass --data_dir or --train_file/--validation_file"
            )
        columns = _hub_columns(task, hub[hub_split], f"hub {task.hub_path} {hub_split}")
        loaded[split] = _build_split(task, columns, split, hub_split.startswith("test"))
    return loaded


def _hub_columns(task: Task, dataset: datasets.Dataset, source: str) -> _Columns:
    """Canonical columns of a hub split; ClassLabel ints become their names before mapping."""
    names = _resolve_columns(dataset.column_names, task, source)
    values = {column: list(dataset[name]) for column, name in names.items()}
    feature = dataset.features[names["label"]]
    if isinstance(feature, datasets.ClassLabel):
        values["label"] = [feature.names[v] if v is not None and v >= 0 else None for v in values["label"]]
    where = [f"{source} row {i}" for i in range(len(dataset))]
    return _Columns(values, where, source)


def _explicit_files(task: Task, train_file, validation_file) -> dict[str, str]:
    """Split -> path for files named on the command line; each must exist."""
    files = {}
    for split, path, flag in (
        ("train", train_file, "--train_file"),
        (task.eval_splits[0], validation_file, "--validation_file"),
    ):
        if path is None:
            continue
        if os.path.isdir(path):
            raise ConfigError(
                f"{flag} {path} is a folder; pass the path of a .csv, .tsv, .json or .jsonl "
                "file (or the folder as --data_dir)"
            )
        if not os.path.isfile(path):
            raise ConfigError(f"{flag} {path} does not exist; pass the path of a .csv, .tsv, .json or .jsonl file")
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
        if os.path.isdir(path):
            raise ConfigError(
                f"--data_dir {data_dir} holds a folder named {task.glue_file(split)} where a file is "
                f"expected; {expected}"
            )
        if not os.path.isfile(path):
            raise ConfigError(f"--data_dir {data_dir} lacks {task.glue_file(split)}; {expected}")
        files[split] = path
    return files


# --------------------------------------------------------------------------------------------
# The custom task: the user's own files
# --------------------------------------------------------------------------------------------

_INTEGER = re.compile(r"[+-]?\d+")
# Columns of every loaded split besides the texts: a text column may not take these names.
_RESERVED_COLUMNS = ("label", "idx")


def custom_task(
    train_file, validation_file, text_columns=("sentence",), label_column="label", is_regression=False
) -> Task:
    """The task of the user's own CSV/TSV/JSON(L) files, read the way HF's classification examples read them.

    ``text_columns``: one column, or two for sentence pairs. Classification labels are the
    distinct values of ``label_column`` in the whole training file, kept as strings (a JSON ``1``
    or ``1.0`` is ``"1"``) and sorted: by integer value when every label is an integer
    (``-1 < 2 < 10``), otherwise as strings in Python's code-point order (``neg < neu < pos``;
    ``B < a``). Class i is the i-th label; models store the list as ``id2label``, which the
    distillation scripts check teachers against. A validation label the training file lacks is an
    error (no class could predict it), as are two labels that differ only in case and a file with
    a single label. Metrics: accuracy and macro-F1. With ``is_regression`` the labels are numeric
    targets instead: one output, Pearson/Spearman.

    The name, ``custom:<folder>/<train file>+<validation file>``, keeps the results and teacher
    caches of different datasets apart. The files are read here, before any model is built,
    because the labels fix the size of the classifier head; `load_splits` reads them again.
    """
    if train_file is None or validation_file is None:
        raise ConfigError(f"the {CUSTOM_TASK} task needs --train_file and --validation_file (your own data)")
    text_columns = tuple(text_columns)
    _check_custom_columns(text_columns, label_column)
    reader = Task(
        _custom_name(train_file, validation_file),
        text_columns,
        (),
        "pearson_spearman",
        glue_files=(),
        hub_path=None,
        label_column=label_column,
    )
    files = _explicit_files(reader, train_file, validation_file)
    train = _read_file(files["train"], reader)
    validation = _read_file(files["validation"], reader)
    for columns in (train, validation):
        _check_filled(columns, label_column)
    if is_regression:
        for columns in (train, validation):
            _check_scores(columns)
        return reader
    labels = _custom_labels(train)
    _check_seen(validation, labels, train.source)
    return replace(reader, labels=labels, metric="accuracy_macro_f1")


def _check_custom_columns(text_columns: tuple[str, ...], label_column: str) -> None:
    """One or two distinct, non-empty text columns, none of them the label column or a reserved name."""
    if len(text_columns) not in (1, 2) or not all(text_columns) or len(set(text_columns)) != len(text_columns):
        raise ConfigError(
            f"--text_column takes one column or two distinct comma-separated ones (a sentence pair), "
            f"got {','.join(text_columns)!r}; e.g. --text_column sentence or --text_column premise,hypothesis"
        )
    if not label_column:
        raise ConfigError("--label_column is empty; name the column holding the labels (default: label)")
    clash = next((c for c in text_columns if c == label_column or c in _RESERVED_COLUMNS), None)
    if clash is not None:
        raise ConfigError(
            f"--text_column {clash!r} is the label column or a reserved name ({', '.join(_RESERVED_COLUMNS)}); "
            "rename that column in your files"
        )


def _custom_name(train_file: str, validation_file: str) -> str:
    """custom:<train folder>/<train file>+<validation file> (with its folder when that differs)."""

    def short(path):
        folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
        return f"{folder}/{os.path.basename(path)}" if folder else os.path.basename(path)

    same_folder = os.path.dirname(os.path.abspath(train_file)) == os.path.dirname(os.path.abspath(validation_file))
    return f"{CUSTOM_TASK}:{short(train_file)}+{os.path.basename(validation_file) if same_folder else short(validation_file)}"


def _label_name(raw) -> str:
    """A raw label as a class name: JSON 1, 1.0 and CSV "1" all become "1"; case is kept."""
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    return str(raw).strip()


def _check_filled(columns: _Columns, label_column: str) -> None:
    """Every row of a custom file needs a label; a file needs rows."""
    if not columns.where:
        raise ConfigError(f"{columns.source} has no data rows; give it a header line and at least one labeled row")
    for raw, where in zip(columns.values["label"], columns.where):
        if raw is None or not str(raw).strip():
            raise ConfigError(f"{where}: empty '{label_column}'; label every row (or drop the row)")


def _check_scores(columns: _Columns) -> None:
    """Regression targets must be finite numbers."""
    for raw, where in zip(columns.values["label"], columns.where):
        try:
            finite = not isinstance(raw, bool) and math.isfinite(float(raw))
        except (TypeError, ValueError):
            finite = False
        if not finite:
            raise ConfigError(
                f"{where}: label {raw!r} is not a finite number; --is_regression needs numeric "
                "labels (omit it to treat the labels as classes)"
            )


def _custom_labels(columns: _Columns) -> tuple[str, ...]:
    """The training file's distinct labels in the documented order (see `custom_task`)."""
    names = {_label_name(raw) for raw in columns.values["label"]}
    if all(_INTEGER.fullmatch(name) for name in names):
        labels = tuple(sorted(names, key=lambda name: (int(name), name)))
    else:
        labels = tuple(sorted(names))
    seen = {}
    for name in labels:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise ConfigError(
                f"{columns.source}: labels {other!r} and {name!r} differ only in case (labels are "
                "matched without case); spell each label one way"
            )
    if len(labels) < 2:
        raise ConfigError(
            f"{columns.source} has a single label {labels[0]!r}; classification needs at least two "
            "(for numeric targets pass --is_regression)"
        )
    if all(_is_number(name) for name in labels) and not all(_INTEGER.fullmatch(name) for name in labels):
        logger.warning(
            "%s: the %d labels look like numeric scores (e.g. %s); they are taken as classes; "
            "pass --is_regression to fit them as numbers",
            columns.source,
            len(labels),
            labels[0],
        )
    return labels


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_seen(columns: _Columns, labels: tuple[str, ...], train_source: str) -> None:
    """Each validation label must be one of the training labels (compared as `_convert_labels` does)."""
    known = {name.lower() for name in labels}
    for raw, where in zip(columns.values["label"], columns.where):
        if _label_key(raw) not in known:
            raise ConfigError(
                f"{where}: validation label {raw!r} does not occur in the training file {train_source}, "
                "so no class can predict it; fix the label or add training rows with it"
            )


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
    User files need the task's label column (``task.label_column``: ``label`` unless a custom task
    names another) and its text columns (``task.text_keys``; the GLUE file names such as MNLI's
    ``sentence1``/``gold_label`` are accepted too). A custom task reads its two files only.

    Returns split name -> in-memory Dataset with the text columns, ``label`` and ``idx``.
    """
    task = task if isinstance(task, Task) else get_task(task)
    files = _source_files(task, data_dir, train_file, validation_file)
    missing = [split for split in task.splits if split not in files]
    if missing and task.is_custom:
        raise ConfigError(f"{task.name} is read from your own files only; pass --train_file and --validation_file")
    if task.is_custom and not task.is_regression:
        logger.info(
            "%s: %d labels from the training file; class i is the i-th of %s",
            task.name,
            task.num_labels,
            list(task.labels),
        )
    loaded = {
        split: _build_split(task, _read_file(path, task), split, drop_unlabeled=False) for split, path in files.items()
    }
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


def _encoder(task: Task, tokenizer, max_seq_length: int, pad_to_max_length: bool, token_type_ids: bool | None = None):
    """A batched map function: texts -> model inputs, label -> labels, idx kept."""
    padding = "max_length" if pad_to_max_length else False

    def encode(batch):
        texts = [batch[key] for key in task.text_keys]
        encoded = tokenizer(
            *texts, truncation=True, max_length=max_seq_length, padding=padding, return_token_type_ids=token_type_ids
        )
        out = {key: encoded[key] for key in MODEL_INPUT_COLUMNS if key in encoded}
        out["labels"] = batch["label"]
        out["idx"] = batch["idx"]
        return out

    return encode


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
    """Tokenise every split; columns become input_ids, attention_mask, [token_type_ids], labels, idx.

    ``token_type_ids``: True/False force segment ids on/off (``models.takes_token_type_ids``
    decides); None keeps the tokenizer's default.

    ``pad_to_max_length`` pads every row to ``max_seq_length`` (as the original code did);
    otherwise padding is left to the collator. ``max_train_samples`` / ``max_eval_samples`` keep the
    first N rows of the train / eval splits. Without ``cache_dir`` the results stay in memory;
    with it, each split is tokenised once per (its rows' content, tokenizer, ``max_seq_length``,
    padding) and read back memory-mapped by every later call (see ``tokenized_cache_dir``).
    """
    task = task if isinstance(task, Task) else get_task(task)
    if not isinstance(max_seq_length, int) or max_seq_length < 2:
        raise ConfigError(f"--max_seq_length must be an integer >= 2, got {max_seq_length!r}; the paper uses 128")
    _check_limit(max_train_samples, "--max_train_samples")
    _check_limit(max_eval_samples, "--max_eval_samples")
    encode = _encoder(task, tokenizer, max_seq_length, pad_to_max_length, token_type_ids)
    settings = None
    if cache_dir is not None:
        # The encoder's own source is part of the key: editing how rows are encoded invalidates the cache.
        settings = {
            "encoder": hashlib.sha256(inspect.getsource(_encoder).encode()).hexdigest(),
            "text_keys": list(task.text_keys),
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "max_seq_length": max_seq_length,
            "pad_to_max_length": pad_to_max_length,
            "token_type_ids": token_type_ids,
        }
    tokenized = {}
    for name, dataset in splits.items():
        dataset = _take_first(dataset, max_train_samples if name == "train" else max_eval_samples)
        desc = f"tokenizing {task.name} {name}"
        if settings is None:
            mapped = dataset.map(
                encode, batched=True, remove_columns=dataset.column_names, keep_in_memory=True, desc=desc
            )
        else:
            mapped = _cached_map(dataset, encode, dict(settings, data=dataset_fingerprint(dataset)), cache_dir, desc)
        order = [c for c in MODEL_INPUT_COLUMNS if c in mapped.column_names] + ["labels", "idx"]
        tokenized[name] = mapped.select_columns(order)
    return tokenized


def _cached_map(dataset, encode, key: dict, cache_dir: str, desc: str) -> datasets.Dataset:
    """`dataset.map(encode)` written once to an Arrow file in a keyed folder, memory-mapped after."""
    folder = entry_folder(cache_dir, "tokenized", key)

    def build(tmp):
        dataset.map(
            encode,
            batched=True,
            remove_columns=dataset.column_names,
            desc=desc,
            cache_file_name=os.path.join(tmp, "data.arrow"),
            new_fingerprint=key_hash(key),
        )

    def load(path):
        try:
            return datasets.Dataset.from_file(os.path.join(path, "data.arrow"))
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            logger.warning("tokenised data %s is unreadable (%s)", path, _one_line(exc, 120))
            return None

    mapped, reused = get_or_build(folder, key, build, load, "tokenised data")
    logger.info(
        "%s tokenised %s (%d rows) %s %s",
        "reusing" if reused else "cached",
        desc.removeprefix("tokenizing "),
        len(mapped),
        "from" if reused else "in",
        folder,
    )
    return mapped


def tokenized_cache_dir() -> str | None:
    """Where tokenised splits are cached: `$DYNAMIC_KD_CACHE/tokenized`; None (tokenise in memory,
    with one log line) when the folder is not writable or `datasets.disable_caching()` is in effect."""
    folder = os.path.join(cache_root(), "tokenized")
    if not datasets.is_caching_enabled():
        logger.info("datasets caching is disabled: tokenising in memory")
        return None
    if not writable_folder(folder):
        logger.warning(
            "%s is not writable: tokenising in memory (set DYNAMIC_KD_CACHE to a writable folder to reuse it across runs)",
            folder,
        )
        return None
    return folder


def _tokenizer_spec(tokenizer):
    """Its full spec (vocab, normaliser, pre-tokeniser, post-processor), or the vocab of a slow one."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return sorted(tokenizer.get_vocab().items())
    spec = json.loads(backend.to_str())
    # Per-call state that the tokenizer sets on its backend before each call, not its identity.
    spec.pop("truncation", None)
    spec.pop("padding", None)
    return spec


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of everything that decides a tokenizer's output: its full spec (vocab, normaliser,
    pre-tokeniser, post-processor) and the sides it truncates and pads."""
    described = [
        type(tokenizer).__name__,
        _tokenizer_spec(tokenizer),
        tokenizer.padding_side,
        tokenizer.truncation_side,
        list(tokenizer.model_input_names),
    ]
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def same_tokenization(a, b) -> bool:
    """Whether two tokenizers turn every text into the same input_ids and attention_mask, padded alike.

    The class and the input names may differ (a DistilBERT tokenizer emits no token_type_ids,
    BERT's does; `models.model_inputs` feeds each model its part of one batch).
    """
    return (
        _tokenizer_spec(a) == _tokenizer_spec(b)
        and a.pad_token_id == b.pad_token_id
        and a.padding_side == b.padding_side
        and a.truncation_side == b.truncation_side
    )


def dataset_fingerprint(dataset: datasets.Dataset, columns=None) -> str:
    """Hash of the names, types and values of `columns` (default: all) of every row, in order."""
    columns = [c for c in (columns or dataset.column_names) if c in dataset.column_names]
    digest = hashlib.sha256(json.dumps([[c, str(dataset.features[c])] for c in columns]).encode())
    digest.update(str(len(dataset)).encode())
    for table in dataset.select_columns(columns).with_format("arrow").iter(batch_size=20000):
        for column in columns:
            _hash_array(digest, table.column(column).combine_chunks())
    return digest.hexdigest()


def _hash_array(digest, array: pa.Array):
    """Feed an Arrow array's values (not its memory layout) into `digest`."""
    if array.null_count:
        digest.update(pc.is_null(array).to_numpy(zero_copy_only=False).tobytes())
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        digest.update(pc.list_value_length(array).to_numpy(zero_copy_only=False).tobytes())
        _hash_array(digest, array.flatten())
    elif (
        pa.types.is_string(array.type)
        or pa.types.is_binary(array.type)
        or pa.types.is_large_string(array.type)
        or pa.types.is_large_binary(array.type)
    ):
        wide = pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type)
        _, offsets, data = array.buffers()
        offsets = np.frombuffer(offsets, dtype=np.int64 if wide else np.int32)[
            array.offset : array.offset + len(array) + 1
        ]
        digest.update(np.diff(offsets).tobytes())
        if data is not None and len(offsets):
            digest.update(memoryview(data)[offsets[0] : offsets[-1]])
    else:
        digest.update(array.to_numpy(zero_copy_only=False).tobytes())


def make_collator(tokenizer, pad_to_max_length: bool):
    """Batching function: pads dynamically unless the rows were pre-padded to max length.

    Batches carry ``idx`` (LongTensor) and ``labels`` (long, or float for regression). Callers
    using ``transformers.Trainer`` must set ``remove_unused_columns=False`` to keep ``idx``.
    """
    if pad_to_max_length:
        return default_data_collator
    return DataCollatorWithPadding(tokenizer)
