"""Random-word data and random-weight BERTs (saved with the tokenizer) for the benchmarks of cost, not accuracy."""

import os
import random

from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from dynamic_kd.files import write_atomic


def write_data(
    folder: str, train: int, dev: int, columns: tuple, words: tuple[int, int], labels: tuple, tokenizer: str
):
    """folder/train.tsv and dev.tsv (kept if there): per text column (min, max) = `words` random words of 3+
    letters from the vocabulary (about a token each), a random label."""
    if all(os.path.exists(os.path.join(folder, name)) for name in ("train.tsv", "dev.tsv")):
        return
    vocab = AutoTokenizer.from_pretrained(tokenizer).get_vocab()
    vocab = [word for word in sorted(vocab, key=vocab.get) if word.isalpha() and word.isascii() and len(word) >= 3]
    for name, rows, seed in (("dev.tsv", dev, 1), ("train.tsv", train, 0)):
        rng = random.Random(seed)
        lines = ["\t".join((*columns, "label"))]
        for _ in range(rows):
            texts = (" ".join(rng.choices(vocab, k=rng.randint(*words))) for _ in columns)
            lines.append("\t".join((*texts, rng.choice(labels))))
        write_atomic(os.path.join(folder, name), "\n".join(lines) + "\n")


def random_bert(folder: str, tokenizer_path: str, labels: tuple[str, ...], **config):
    """A random (seed 0) BertForSequenceClassification over sorted `labels` (the custom task's order);
    `config` overrides BERT-base's sizes."""
    if os.path.exists(os.path.join(folder, "config.json")):
        return
    import torch

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    names = sorted(labels)
    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=len(tokenizer),
            num_labels=len(names),
            id2label=dict(enumerate(names)),
            label2id={name: i for i, name in enumerate(names)},
            **config,
        )
    )
    tokenizer.save_pretrained(folder + ".tmp")
    model.save_pretrained(folder + ".tmp")
    os.replace(folder + ".tmp", folder)
