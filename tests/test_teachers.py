"""Teacher-output cache: hits, misses, laziness, staleness, disk round trips, DDP consistency."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import make_tiny_bert
from dynamic_kd.teachers import Teacher, cache_location, dataset_fingerprint

SENTENCES = ["good great movie", "bad awful film", "it was good", "it was not good", "a very bad movie", "great", "awful awful", "this is it"]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("teacher"), num_layers=2, seed=3)


@pytest.fixture(scope="module")
def batch(teacher_dir):
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    return dict(tokenizer(SENTENCES, padding=True, return_tensors="pt"))


def make_teacher(path, cache="memory", cls_layers=None, cache_file=None, key=None, num_examples=len(SENTENCES)):
    model = AutoModelForSequenceClassification.from_pretrained(path).eval().requires_grad_(False)
    return Teacher("teacher", model, path, num_examples, cache, cls_layers, batch_size=3, cache_file=cache_file, cache_key=key)


def direct_logits(teacher, batch, rows):
    with torch.no_grad():
        return teacher.model(**{k: v[rows] for k, v in batch.items()}).logits


def test_memory_cache_computes_each_example_once(teacher_dir, batch):
    teacher = make_teacher(teacher_dir)
    idx = torch.arange(len(SENTENCES))
    rows = torch.tensor([0, 2, 5])
    first, _ = teacher.query(batch, rows, idx)
    assert teacher.forward_examples == 3
    again, _ = teacher.query(batch, torch.tensor([5, 2, 0, 1]), idx)
    assert teacher.forward_examples == 4  # only row 1 was missing
    torch.testing.assert_close(first, direct_logits(teacher, batch, rows))
    torch.testing.assert_close(again[:3], first.flip(0))
    assert int(teacher.filled.sum()) == 4  # lazy: rows never asked for are never computed


def test_cache_keys_on_idx_not_row_position(teacher_dir, batch):
    teacher = make_teacher(teacher_dir)
    teacher.query(batch, torch.tensor([0]), torch.arange(8))
    # The same example (idx 0) sitting at row 3 of another batch is a hit.
    shuffled = {k: v[[1, 2, 3, 0]] for k, v in batch.items()}
    logits, _ = teacher.query(shuffled, torch.tensor([3]), torch.tensor([1, 2, 3, 0]))
    assert teacher.forward_examples == 1
    torch.testing.assert_close(logits, direct_logits(teacher, batch, torch.tensor([0])))


def test_no_cache_runs_every_query(teacher_dir, batch):
    teacher = make_teacher(teacher_dir, cache="none")
    idx = torch.arange(8)
    teacher.query(batch, torch.tensor([0, 1]), idx)
    teacher.query(batch, torch.tensor([0, 1]), idx)
    assert teacher.forward_examples == 4


def test_full_hidden_states_are_computed_online(teacher_dir, batch):
    teacher = make_teacher(teacher_dir)
    idx = torch.arange(8)
    for _ in range(2):
        logits, states = teacher.query(batch, torch.tensor([1, 4]), idx, hidden="all")
        assert len(states) == 3 and states[0].shape[:2] == (2, batch["input_ids"].shape[1])
    assert teacher.forward_examples == 4
    # ... but their logits fill the cache for logit-only queries.
    teacher.query(batch, torch.tensor([1, 4]), idx)
    assert teacher.forward_examples == 4


def test_cls_states_cached(teacher_dir, batch):
    teacher = make_teacher(teacher_dir, cls_layers=[0, 2])
    idx = torch.arange(8)
    _, states = teacher.query(batch, torch.tensor([2, 3]), idx, hidden="cls")
    assert states.shape == (2, 2, 32)
    _, again = teacher.query(batch, torch.tensor([3, 2]), idx, hidden="cls")
    assert teacher.forward_examples == 2
    with torch.no_grad():
        full = teacher.model(**{k: v[[2, 3]] for k, v in batch.items()}, output_hidden_states=True).hidden_states
    torch.testing.assert_close(states[:, 1], full[2][:, 0])
    torch.testing.assert_close(again[1], states[0])


def test_disk_cache_round_trip_and_staleness(teacher_dir, batch, tmp_path, caplog):
    key = {"teacher": teacher_dir, "task": "sst2", "data": "abc"}
    path = cache_location(str(tmp_path), key)
    first = make_teacher(teacher_dir, "disk", cache_file=path, key=key)
    first.query(batch, torch.arange(8), torch.arange(8))
    first.sync()
    assert os.path.exists(path) and not [f for f in os.listdir(tmp_path) if ".tmp" in f]

    reused = make_teacher(teacher_dir, "disk", cache_file=path, key=key)
    logits, _ = reused.query(batch, torch.arange(8), torch.arange(8))
    assert reused.forward_examples == 0
    torch.testing.assert_close(logits, first.logits)

    other_key = dict(key, data="changed")
    assert cache_location(str(tmp_path), other_key) != path  # new settings -> a new file

    # A file whose stored key disagrees (e.g. written by another setting) is rebuilt, not used.
    stale = make_teacher(teacher_dir, "disk", cache_file=path, key=other_key)
    assert int(stale.filled.sum()) == 0
    assert "does not match" in caplog.text

    with open(path, "wb") as handle:
        handle.write(b"truncated")
    broken = make_teacher(teacher_dir, "disk", cache_file=path, key=key)
    assert int(broken.filled.sum()) == 0
    broken.query(batch, torch.arange(8), torch.arange(8))
    assert broken.forward_examples == 8


def test_dataset_fingerprint_sees_token_changes():
    from datasets import Dataset

    a = Dataset.from_dict({"idx": [0, 1], "input_ids": [[2, 5, 3], [2, 6, 3]]})
    b = Dataset.from_dict({"idx": [0, 1], "input_ids": [[2, 5, 3], [2, 7, 3]]})
    assert dataset_fingerprint(a) == dataset_fingerprint(Dataset.from_dict(a.to_dict()))
    assert dataset_fingerprint(a) != dataset_fingerprint(b)
    big = Dataset.from_dict({"idx": list(range(6)), "input_ids": [[i] for i in range(6)]})
    assert dataset_fingerprint(big.select(range(2))) != dataset_fingerprint(big.select(range(3)))


def _ddp_worker(rank, world, init_file, teacher_dir, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
        batch = dict(tokenizer(SENTENCES, padding=True, return_tensors="pt"))
        teacher = make_teacher(teacher_dir)
        mine = torch.arange(rank, len(SENTENCES), world)  # each rank sees its own shard
        teacher.query(batch, mine, torch.arange(len(SENTENCES)))
        teacher.sync()
        teacher.query(batch, torch.arange(len(SENTENCES)), torch.arange(len(SENTENCES)))
        torch.save({"filled": teacher.filled, "logits": teacher.logits, "forwards": teacher.forward_examples}, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_share_what_each_computed(teacher_dir, tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), teacher_dir, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for state in ranks:
        assert bool(state["filled"].all())
        assert state["forwards"] == len(SENTENCES) // 2  # after the sync nothing is recomputed
    torch.testing.assert_close(ranks[0]["logits"], ranks[1]["logits"])
