"""Shared fixtures: tiny, real BERT models and tokenizers written to temp folders.

Everything here is built offline from a vocab file, so no test touches the hub.
"""
import os
import string

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
WORDS = "the a movie film good bad great awful is was not very and or it this that i you".split()


def write_vocab(path, extra=()):
    """A word-piece vocab that spells any lowercase word (letters plus ## continuations)."""
    letters = list(string.ascii_lowercase) + list(string.digits)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(string.punctuation) + letters
    tokens += ["##" + c for c in letters] + WORDS + list(extra)
    with open(path, "w") as f:
        f.write("\n".join(dict.fromkeys(tokens)) + "\n")


def make_tiny_bert(folder, num_layers=2, hidden=32, heads=2, num_labels=2, extra_vocab=(), seed=0):
    """Save a random tiny BERT (with a classifier head) and its tokenizer to `folder`; return the path."""
    os.makedirs(folder, exist_ok=True)
    write_vocab(os.path.join(folder, "vocab.txt"), extra_vocab)
    tokenizer = BertTokenizerFast(vocab=os.path.join(folder, "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=num_layers,
        num_attention_heads=heads, intermediate_size=2 * hidden, max_position_embeddings=128,
        num_labels=num_labels,
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A 4-layer, hidden-32 'pretrained' BERT folder (model + tokenizer)."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), num_layers=4)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_bert):
    return BertTokenizerFast.from_pretrained(tiny_bert)


@pytest.fixture(scope="session", autouse=True)
def dynamic_kd_cache(tmp_path_factory):
    """Caches that runs share (tokenised data, teacher stores) go to this session's temp folder,
    never to ~/.cache; subprocesses inherit the variable."""
    path = tmp_path_factory.mktemp("dynamic_kd_cache")
    os.environ["DYNAMIC_KD_CACHE"] = str(path)
    return path
