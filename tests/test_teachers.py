"""Teacher outputs: hits, misses, laziness, the shared disk store (reuse, staleness, kills,
concurrent processes), the length-sorted prefill, DDP consistency, checkpoints, precision keys."""

import json
import logging
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import FIXTURES, make_tiny_bert, wait_until_held
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

import dynamic_data
from dynamic_kd.arguments import DistillationArguments, parse_args
from dynamic_kd.precision import teacher_compute_dtype
from dynamic_kd.teachers import Teacher, store_location

SENTENCES = [
    "good great movie",
    "bad awful film",
    "it was good",
    "it was not good",
    "a very bad movie",
    "great",
    "awful awful",
    "this is it",
]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SST2 = os.path.join(FIXTURES, "glue", "sst2")


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("teacher"), num_layers=2, seed=3)


@pytest.fixture(scope="module")
def batch(teacher_dir):
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    return dict(tokenizer(SENTENCES, padding=True, return_tensors="pt"))


def make_teacher(
    path, cache="memory", cls_layers=None, folder=None, key=None, num_examples=len(SENTENCES), batch_size=3
):
    model = AutoModelForSequenceClassification.from_pretrained(path).eval().requires_grad_(False)
    return Teacher(
        "teacher",
        model,
        path,
        num_examples,
        cache,
        cls_layers,
        batch_size=batch_size,
        store_folder=folder,
        store_key=key,
    )


def disk_teacher(path, root, key=None, **kwargs):
    key = key or {"teacher": path, "data": "sentences"}
    return make_teacher(path, "disk", folder=store_location(str(root), key), key=key, **kwargs)


def direct_logits(teacher, batch, rows):
    with torch.no_grad():
        return teacher.model(**{k: v[rows] for k, v in batch.items()}).logits


def tokenized_dataset(path, sentences=SENTENCES):
    """A training split as the recipe builds it: model inputs plus idx, unpadded."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoded = tokenizer(sentences)
    return Dataset.from_dict({**encoded, "idx": list(range(len(sentences)))}), DataCollatorWithPadding(tokenizer)


def query_all(teacher, batch, order=None, size=3):
    """Query every row lazily in training-like batches; returns the logits by idx."""
    order = list(range(len(SENTENCES))) if order is None else order
    out = torch.zeros(len(SENTENCES), 2)
    for start in range(0, len(order), size):
        rows = torch.tensor(order[start : start + size])
        sub = {k: v[rows] for k, v in batch.items()}
        logits, _ = teacher.query(sub, torch.arange(len(rows)), rows)
        out[rows] = logits
    return out


# --- the lazy path -------------------------------------------------------------------------------


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
    assert teacher.store.filled_count() == 4  # lazy: rows never asked for are never computed


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


# --- the shared disk store -------------------------------------------------------------------------


def test_disk_store_is_reused_with_zero_forwards(teacher_dir, batch, tmp_path):
    first = disk_teacher(teacher_dir, tmp_path)
    computed = query_all(first, batch)
    assert first.forward_examples == 8
    (folder,) = [name for name in os.listdir(tmp_path)]
    assert sorted(os.listdir(tmp_path / folder)) == ["filled.npy", "key.json", "lock", "logits.npy"]

    second = disk_teacher(teacher_dir, tmp_path)  # a later run with the same key
    assert second.store.filled_count() == 8
    reused = query_all(second, batch, order=[7, 3, 5, 1, 0, 2, 4, 6])
    assert second.forward_examples == 0
    assert torch.equal(reused, computed)  # bit for bit: the stored values, whatever the batch
    torch.testing.assert_close(computed, direct_logits(first, batch, torch.arange(8)))


def test_a_changed_key_gets_its_own_store(teacher_dir, batch, tmp_path):
    key = {"teacher": teacher_dir, "compute_dtype": "float32"}
    query_all(disk_teacher(teacher_dir, tmp_path, key), batch)
    other = disk_teacher(teacher_dir, tmp_path, dict(key, compute_dtype="bfloat16"))
    assert other.store.filled_count() == 0 and len(os.listdir(tmp_path)) == 2
    assert disk_teacher(teacher_dir, tmp_path, key).store.filled_count() == 8  # the first one is untouched


@pytest.mark.parametrize("damage", ["key", "truncated", "flags"])
def test_a_stale_or_damaged_store_is_rebuilt_never_used(teacher_dir, batch, tmp_path, caplog, damage):
    key = {"teacher": teacher_dir, "data": "sentences"}
    query_all(disk_teacher(teacher_dir, tmp_path, key), batch)
    folder = store_location(str(tmp_path), key)
    if damage == "key":  # e.g. written by another version for another setting
        with open(os.path.join(folder, "key.json"), "w") as handle:
            json.dump(dict(key, data="other"), handle)
    elif damage == "truncated":
        with open(os.path.join(folder, "logits.npy"), "r+b") as handle:
            handle.truncate(100)
    else:
        with open(os.path.join(folder, "filled.npy"), "wb") as handle:
            handle.write(b"not numpy")
    rebuilt = disk_teacher(teacher_dir, tmp_path, key)
    assert "rebuilding it" in caplog.text
    assert rebuilt.store.filled_count() == 0
    query_all(rebuilt, batch)
    assert rebuilt.forward_examples == 8
    assert os.listdir(tmp_path) == [os.path.basename(folder)]  # the damaged one is gone


def test_a_temp_folder_left_by_a_killed_creator_is_never_opened(teacher_dir, batch, tmp_path):
    key = {"teacher": teacher_dir, "data": "sentences"}
    folder = store_location(str(tmp_path), key)
    query_all(disk_teacher(teacher_dir, tmp_path / "elsewhere", key), batch)
    # a creator killed before its rename: a complete-looking store under a temp name
    os.rename(store_location(str(tmp_path / "elsewhere"), key), folder + ".tmpabc123")
    teacher = disk_teacher(teacher_dir, tmp_path, key)
    assert teacher.store.folder == folder and teacher.store.filled_count() == 0


KILL_BETWEEN_VALUES_AND_FLAGS = r"""
import os, signal, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from dynamic_kd import teachers
teacher_dir, folder, key = sys.argv[1], sys.argv[2], {"teacher": sys.argv[1], "data": "sentences"}
flush = teachers._FileRows.flush
def flush_then_die(self):  # the values are written and flushed; the flags are not set yet
    flush(self)
    os.kill(os.getpid(), signal.SIGKILL)
teachers._FileRows.flush = flush_then_die
model = AutoModelForSequenceClassification.from_pretrained(teacher_dir).eval()
teacher = teachers.Teacher("teacher", model, teacher_dir, 8, "disk", batch_size=4, store_folder=folder, store_key=key)
batch = dict(AutoTokenizer.from_pretrained(teacher_dir)(sys.argv[3:], padding=True, return_tensors="pt"))
teacher.query(batch, torch.arange(len(sys.argv[3:])), torch.arange(len(sys.argv[3:])))
"""


def test_a_fill_killed_between_values_and_flags_leaves_rows_untrusted(teacher_dir, batch, tmp_path):
    key = {"teacher": teacher_dir, "data": "sentences"}
    folder = store_location(str(tmp_path), key)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_BETWEEN_VALUES_AND_FLAGS, teacher_dir, folder, *SENTENCES[:4]],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    written = np.load(os.path.join(folder, "logits.npy"))
    assert np.abs(written[:4]).sum() > 0  # the values did reach the file ...
    teacher = disk_teacher(teacher_dir, tmp_path, key)
    assert teacher.store.filled_count() == 0  # ... but without their flags nothing is trusted
    query_all(teacher, batch)
    assert teacher.forward_examples == 8


HELD_PREFILL = r"""
import os, sys, time, torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding
from dynamic_kd.teachers import Teacher
teacher_dir, folder, key = sys.argv[1], sys.argv[2], {"teacher": sys.argv[1], "data": "many"}
held, release, sentences = sys.argv[3], sys.argv[4], sys.argv[5:]
tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
dataset = Dataset.from_dict({**tokenizer(sentences), "idx": list(range(len(sentences)))})
model = AutoModelForSequenceClassification.from_pretrained(teacher_dir).eval()
forwards = []


def hold(*args):  # the 6th forward (5 rows stored) waits until the test has killed the fill
    forwards.append(1)
    if len(forwards) == 6:
        open(held, "w").close()
        while os.path.exists(release):
            time.sleep(0.05)


model.register_forward_hook(hold)
teacher = Teacher(
    "teacher", model, teacher_dir, len(sentences), "disk", batch_size=1, store_folder=folder, store_key=key
)
teacher.prefill(dataset, DataCollatorWithPadding(tokenizer), "cpu")
"""


def test_a_fill_killed_at_any_moment_leaves_only_correct_trusted_rows(teacher_dir, tmp_path):
    sentences = [
        f"{a} {b} movie"
        for a in ("good", "bad", "great", "awful", "very good", "not bad")
        for b in ("it was", "this is", "a", "the", "i")
    ] * 2
    key = {"teacher": teacher_dir, "data": "many"}
    folder = store_location(str(tmp_path), key)
    hold = SimpleNamespace(held=str(tmp_path / "held"), release=str(tmp_path / "release"))
    open(hold.release, "w").close()
    argv = [sys.executable, "-c", HELD_PREFILL, teacher_dir, folder, hold.held, hold.release, *sentences]
    job = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE)
    wait_until_held(hold, lambda: job.poll() is None, "the fill")
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert job.returncode == -signal.SIGKILL

    dataset, collate = tokenized_dataset(teacher_dir, sentences)
    teacher = make_teacher(teacher_dir, "disk", folder=folder, key=key, num_examples=len(sentences))
    trusted = np.flatnonzero(~teacher.store.missing(np.arange(len(sentences))))
    assert len(trusted) == 5  # the rows stored before the kill, no more, no less
    stored = torch.from_numpy(teacher.store.read(trusted)["logits"])
    batch = collate([dataset[int(i)] for i in trusted])
    torch.testing.assert_close(
        stored, direct_logits(teacher, {k: v for k, v in batch.items() if k != "idx"}, torch.arange(len(trusted)))
    )
    teacher.prefill(dataset, collate, "cpu")  # the rest is filled; what was trusted is not recomputed
    assert teacher.forward_examples == len(sentences) - len(trusted)
    assert teacher.store.filled_count() == len(sentences)


def _concurrent_worker(rank, teacher_dir, root, out_dir):
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    batch = dict(tokenizer(SENTENCES, padding=True, return_tensors="pt"))
    teacher = disk_teacher(teacher_dir, root, batch_size=1)
    order = list(range(8)) if rank == 0 else list(range(7, -1, -1))
    logits = query_all(teacher, batch, order=order, size=1)
    torch.save({"logits": logits, "forwards": teacher.forward_examples}, os.path.join(out_dir, f"proc{rank}.pt"))


def test_concurrent_runs_fill_one_store_between_them(teacher_dir, batch, tmp_path):
    mp.spawn(_concurrent_worker, args=(teacher_dir, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    runs = [torch.load(tmp_path / f"proc{r}.pt") for r in range(2)]
    assert len(os.listdir(tmp_path / "store")) == 1  # one store, however the creation raced
    teacher = disk_teacher(teacher_dir, tmp_path / "store")
    assert teacher.store.filled_count() == 8
    stored = torch.from_numpy(teacher.store.read(np.arange(8))["logits"])
    torch.testing.assert_close(stored, direct_logits(teacher, batch, torch.arange(8)))
    for run in runs:  # each run used exactly the stored value of every row
        assert torch.equal(run["logits"], stored)
    assert 8 <= runs[0]["forwards"] + runs[1]["forwards"] <= 16


# --- prefill --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_prefill_matches_the_lazy_path_in_one_length_sorted_pass(teacher_dir, batch, tmp_path, cache):
    dataset, collate = tokenized_dataset(teacher_dir)
    kwargs = {"folder": store_location(str(tmp_path), {"k": 1}), "key": {"k": 1}} if cache == "disk" else {}
    prefilled = make_teacher(teacher_dir, cache, cls_layers=[0, 2], batch_size=3, **kwargs)
    seen = []
    prefilled.model.register_forward_hook(
        lambda module, args, kwargs, out: seen.append(kwargs["attention_mask"].sum(1).tolist()), with_kwargs=True
    )
    prefilled.prefill(dataset, collate, "cpu")
    assert prefilled.forward_examples == 8 and prefilled.store.filled_count() == 8
    lengths = [n for batch_lengths in seen for n in batch_lengths]
    assert lengths == sorted(lengths, reverse=True) and [len(b) for b in seen] == [3, 3, 2]

    lazy = make_teacher(teacher_dir, cls_layers=[0, 2])
    idx = torch.arange(8)
    for rows in (torch.tensor([4, 0, 6]), torch.tensor([1, 7]), torch.tensor([2, 3, 5])):
        lazy.query(batch, rows, idx, hidden="cls")
    logits, states = prefilled.query(batch, idx, idx, hidden="cls")
    assert prefilled.forward_examples == 8  # training queries are all hits
    lazy_logits, lazy_states = lazy.query(batch, idx, idx, hidden="cls")
    torch.testing.assert_close(logits, lazy_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(states, lazy_states, rtol=1e-5, atol=1e-5)

    again = make_teacher(teacher_dir, cache, cls_layers=[0, 2], **kwargs)
    again.prefill(dataset, collate, "cpu")
    assert again.forward_examples == (0 if cache == "disk" else 8)


# --- DDP --------------------------------------------------------------------------------------------

DDP_CASES = [("memory", False), ("disk", False), ("local", False), ("memory", True), ("disk", True)]


def _ddp_worker(rank, world, init_file, teacher_dir, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
        batch = dict(tokenizer(SENTENCES, padding=True, return_tensors="pt"))
        dataset, collate = tokenized_dataset(teacher_dir)
        for cache, prefill in DDP_CASES:
            case = os.path.join(out_dir, f"{cache}-{prefill}")
            if cache == "memory":
                teacher = make_teacher(teacher_dir)
            else:  # one store on a shared file system, or one per machine ("local")
                teacher = disk_teacher(teacher_dir, os.path.join(case, "store" if cache == "disk" else f"store{rank}"))
            if prefill:
                teacher.prefill(dataset, collate, "cpu")
            else:
                mine = torch.arange(rank, len(SENTENCES), world)  # each rank sees its own shard
                teacher.query(batch, mine, torch.arange(len(SENTENCES)))
                teacher.sync()
            logits, _ = teacher.query(batch, torch.arange(len(SENTENCES)), torch.arange(len(SENTENCES)))
            torch.save(
                {"filled": teacher.store.filled_count(), "logits": logits, "forwards": teacher.forward_examples},
                f"{case}-rank{rank}.pt",
            )
            dist.barrier()
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_share_what_each_computed(teacher_dir, tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), teacher_dir, str(tmp_path)), nprocs=2, join=True)
    for cache, prefill in DDP_CASES:
        ranks = [torch.load(tmp_path / f"{cache}-{prefill}-rank{r}.pt") for r in range(2)]
        for state in ranks:
            assert state["filled"] == len(SENTENCES), (cache, prefill)
            assert state["forwards"] == len(SENTENCES) // 2, (cache, prefill)  # each row computed once, by one rank
        assert torch.equal(ranks[0]["logits"], ranks[1]["logits"]), (cache, prefill)


# --- checkpoints ------------------------------------------------------------------------------------


def test_memory_checkpoint_round_trip(teacher_dir, batch, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    teacher = make_teacher(teacher_dir, cls_layers=[2])
    teacher.query(batch, torch.tensor([1, 5]), torch.arange(8), hidden="cls")
    teacher.save_checkpoint(str(tmp_path / "teacher_cache-teacher-rank0"))
    resumed = make_teacher(teacher_dir, cls_layers=[2])
    resumed.load_checkpoint(str(tmp_path / "teacher_cache-teacher-rank0"))
    assert "resumed with 2 cached outputs" in caplog.text
    for name in ("logits", "cls_states"):
        assert np.array_equal(resumed.store.read(np.array([1, 5]))[name], teacher.store.read(np.array([1, 5]))[name])
    assert [i.tolist() for i in resumed._unsynced] == [[1, 5]]  # still to be shared at the epoch end


def test_disk_checkpoint_references_the_shared_store(teacher_dir, batch, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    teacher = disk_teacher(teacher_dir, tmp_path / "store")
    teacher.query(batch, torch.tensor([0, 3]), torch.arange(8))
    teacher.save_checkpoint(str(tmp_path / "ck"))
    assert json.loads((tmp_path / "ck.json").read_text()) == {"store": teacher.store.folder, "unsynced": [0, 3]}
    disk_teacher(teacher_dir, tmp_path / "store").load_checkpoint(str(tmp_path / "ck"))
    assert "resumed with 2 cached outputs in the shared store" in caplog.text
    disk_teacher(teacher_dir, tmp_path / "other").load_checkpoint(str(tmp_path / "ck"))
    assert "did not use the shared store" in caplog.text


# --- precision and keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags,teacher_dtype,expected",
    [
        ([], "auto", torch.float32),
        (["--bf16", "--use_cpu"], "auto", torch.bfloat16),
        ([], "bfloat16", torch.bfloat16),
        (["--bf16", "--use_cpu"], "float32", torch.float32),
        ([], "float16", torch.float16),
    ],
)
def test_teacher_compute_dtype(flags, teacher_dtype, expected, tmp_path):
    kd_args, training_args = parse_args(
        ["--teacher", "t", "--teacher_dtype", teacher_dtype, "--output_dir", str(tmp_path), *flags],
        DistillationArguments,
    )
    dtype, why = teacher_compute_dtype(kd_args.teacher_dtype, training_args)
    assert dtype == expected and "--teacher_dtype" in why


def store_args(teacher, out, cache_dir, *extra):
    return [
        "--model_name_or_path",
        teacher,
        "--student_num_layers",
        "1",
        "--task_name",
        "sst2",
        "--data_dir",
        SST2,
        "--output_dir",
        str(out),
        "--num_train_epochs",
        "1",
        "--per_device_train_batch_size",
        "8",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--teacher",
        teacher,
        "--teacher_cache",
        "disk",
        "--teacher_cache_dir",
        str(cache_dir),
        "--skip_teacher_check",
        *extra,  # the teacher is the random tiny BERT itself: at chance
    ]


def results(out):
    return json.loads((out / "results.json").read_text())


def test_runs_share_the_store_keyed_on_the_real_precision(teacher_dir, tmp_path):
    cache = tmp_path / "stores"
    dynamic_data.main(store_args(teacher_dir, tmp_path / "first", cache))
    dynamic_data.main(
        store_args(
            teacher_dir,
            tmp_path / "second",
            cache,
            "--seed",
            "7",
            "--selection_strategy",
            "entropy",
            "--selection_ratio",
            "0.5",
        )
    )
    assert results(tmp_path / "first")["teacher_forward_examples"] == 32  # the prefill
    assert results(tmp_path / "second")["teacher_forward_examples"] == 0
    # --teacher_dtype float32 is what auto ran for an fp32 student: the same store
    dynamic_data.main(store_args(teacher_dir, tmp_path / "explicit", cache, "--teacher_dtype", "float32"))
    assert results(tmp_path / "explicit")["teacher_forward_examples"] == 0
    # same outputs, same random state (filling the store draws nothing from the global RNG)
    assert torch.equal(
        *(
            AutoModelForSequenceClassification.from_pretrained(tmp_path / name).classifier.weight
            for name in ("first", "explicit")
        )
    )
    # a bf16 student makes auto run the teacher in bf16: other numbers, another store
    dynamic_data.main(store_args(teacher_dir, tmp_path / "bf16", cache, "--bf16", "--use_cpu"))
    assert results(tmp_path / "bf16")["teacher_forward_examples"] == 32
    stores = sorted(name for name in os.listdir(cache) if name.startswith("teacher-"))  # not the check-*.json scores
    keys = [json.loads((cache / name / "key.json").read_text()) for name in stores]
    assert sorted(k["compute_dtype"] for k in keys) == ["bfloat16", "float32"]
