"""Shared fixtures: tiny, real BERT models and tokenizers written to temp folders.

Everything here is built offline from a vocab file, so no test touches the hub.
"""

import os
import stat
import string
import sys
import time
from types import SimpleNamespace

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
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
        num_labels=num_labels,
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(folder)
    return str(folder)


# The PYTHON of a sweep under test: runs its arguments as python does, but a training run waits
# after writing checkpoint-STEP (trainer_state.json included) until the test removes RELEASE.
HOLDING_PYTHON = """
import os, runpy, sys, time

if sys.argv[1] == "-m":  # python -m MODULE ...: the sweep's own process (a Slurm task)
    module, sys.argv = sys.argv[2], sys.argv[2:]
    sys.path[0] = os.getcwd()
    runpy.run_module(module, run_name="__main__", alter_sys=True)
else:  # python SCRIPT ...: an entry point
    from transformers import Trainer

    save = Trainer._save_checkpoint

    def save_and_hold(self, model, trial):
        save(self, model, trial)
        if self.state.global_step == {step} and os.path.exists({release!r}):
            open({held!r}, "w").close()
            while os.path.exists({release!r}):
                time.sleep(0.05)

    Trainer._save_checkpoint = save_and_hold
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def holding_python(folder, step=2):
    """SimpleNamespace(python, script, held, release): `python` is an executable for a sweep's PYTHON whose
    training runs stop after checkpoint-`step` (creating `held`) until the caller deletes `release`.

    A test that must act while a run is between two checkpoints (kill it, requeue it) holds it
    there instead of racing it."""
    os.makedirs(folder, exist_ok=True)
    hold = SimpleNamespace(held=os.path.join(folder, "held"), release=os.path.join(folder, "release"))
    open(hold.release, "w").close()
    hold.script = os.path.join(folder, "hold.py")  # `python hold.py SCRIPT ARGS` = `python SCRIPT ARGS`, held
    with open(hold.script, "w") as handle:
        handle.write(HOLDING_PYTHON.format(step=step, held=hold.held, release=hold.release))
    hold.python = os.path.join(folder, "python")
    with open(hold.python, "w") as handle:
        handle.write(f'#!/bin/sh\nexec "{sys.executable}" "{hold.script}" "$@"\n')
    os.chmod(hold.python, os.stat(hold.python).st_mode | stat.S_IXUSR)
    return hold


def wait_until_held(hold, running, what, hang=1800):
    """Wait until the held run created `hold.held`; fail as soon as `running()` says it ended.

    `hang` only keeps a broken run from blocking the suite forever: no run here comes near it."""
    give_up = time.monotonic() + hang
    while not os.path.exists(hold.held):
        assert running(), f"{what} ended before it reached the held checkpoint"
        assert time.monotonic() < give_up, f"{what} did not reach the held checkpoint in {hang} s"
        time.sleep(0.05)


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
