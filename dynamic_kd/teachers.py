"""The teachers: loading and checks, the forward pass, and the store of their outputs by `idx`
(docs/efficiency.md: a row is trusted once its `filled` flag is set, after its values are flushed)."""

import contextlib
import fcntl
import json
import logging
import os
import time

import numpy as np
import pyarrow.compute as pc
import torch
import torch.distributed as dist
from accelerate.utils import broadcast_object_list
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from torch.utils.data import DataLoader
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from dynamic_kd.cache import entry_folder, get_or_build, read_json
from dynamic_kd.errors import ConfigError
from dynamic_kd.files import atomic_path, write_atomic
from dynamic_kd.losses import layer_map
from dynamic_kd.metrics import compute_task_metrics
from dynamic_kd.models import align_pad_token, is_decoder, load_teacher, load_tokenizer, model_inputs
from dynamic_kd.precision import dtype_name, log_teacher_precision, teacher_compute_dtype
from dynamic_kd.tokenization import MODEL_INPUT_COLUMNS, dataset_fingerprint, same_tokenization

logger = logging.getLogger(__name__)

TEACHER_CACHE_MODES = ("none", "memory", "disk")
STORE_FORMAT = 1  # in every disk key: a layout change makes old stores unreachable, never misread
MEMORY_STORE_WARNING_BYTES = 1 << 30
SYNC_CHUNK_BYTES = 64 << 20  # bytes per broadcast under DDP: bounds the RAM a sync needs
TEACHER_CHECK_EXAMPLES = 256  # enough dev examples to tell a working teacher from one at chance
STORE_COLUMNS = ("idx",) + MODEL_INPUT_COLUMNS  # what a store's rows are computed from


def teacher_flag(name: str) -> str:
    return "--teacher" if name == "teacher" else f"--{name}_teacher"


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_gather(value) -> list:
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def _model_columns(dataset):
    return dataset.select_columns([c for c in MODEL_INPUT_COLUMNS if c in dataset.column_names])


# --- loading and checks ---


def load_teacher_models(kd_args, task) -> dict:
    return {name: load_teacher(path, task, teacher_flag(name)) for name, path in kd_args.teachers.items()}


def foreign_teachers(kd_args, tokenizer, models: dict) -> dict:
    """{name: its tokenizer} for every teacher that tokenizes unlike the student or is a decoder."""
    foreign = {}
    for name, path in kd_args.teachers.items():
        flag, config = teacher_flag(name), models[name].config
        try:
            own = load_tokenizer(path)
        except ConfigError:
            if config.vocab_size == len(tokenizer) and not is_decoder(config):
                logger.info("%s '%s' has no tokenizer files: it reads the student's (same vocabulary size)", flag, path)
                continue
            raise ConfigError(
                f"{flag} '{path}' has no tokenizer files and a vocabulary of {config.vocab_size} tokens, the student "
                f"{len(tokenizer)}; save the teacher's tokenizer next to it (tokenizer.save_pretrained('{path}'))"
            ) from None
        align_pad_token(own, config, flag)
        if is_decoder(config) or not same_tokenization(tokenizer, own):
            foreign[name] = own
    if foreign and kd_args.kd_rep_alpha > 0 and kd_args.rep_layers == "all":
        name = next(iter(foreign))
        raise ConfigError(
            f"--rep_layers all aligns token positions, but {teacher_flag(name)} '{kd_args.teachers[name]}' has its "
            "own tokenizer; use --rep_layers cls (sentence states) or --kd_rep_alpha 0"
        )
    return foreign


def store_location(cache_dir: str, key: dict) -> str:
    return entry_folder(cache_dir, "teacher", key)


def teacher_key(path: str, data_args, device_type: str, **fields) -> dict:
    """What a stored value depends on (re-training changes the files' sizes and mtimes)."""
    files = sorted(
        [entry.name, entry.stat().st_size, entry.stat().st_mtime_ns] for entry in os.scandir(path) if entry.is_file()
    )
    return {
        "format": STORE_FORMAT,
        "teacher": os.path.realpath(path),
        "files": files,
        "task": data_args.task.name,
        "max_seq_length": data_args.max_seq_length,
        "pad_to_max_length": data_args.pad_to_max_length,
        "device_type": device_type,
        **fields,
    }


def load_teachers(
    kd_args, data_args, train_dataset, student_layers: int, models=None, *, training_args, teacher_inputs=None
) -> dict:
    """{name: Teacher}; teacher_inputs: `recipe.Data.teacher_inputs` (foreign teachers' tokenisation)."""
    models = models or load_teacher_models(kd_args, data_args.task)
    teacher_inputs = teacher_inputs or {}
    num_examples = int(pc.max(train_dataset.with_format("arrow")["idx"]).as_py()) + 1
    dtype, why = teacher_compute_dtype(kd_args.teacher_dtype, training_args)
    device_type = training_args.device.type
    if training_args.process_index == 0:
        log_teacher_precision(dtype, why, device_type)
    disk = kd_args.teacher_cache == "disk"
    fingerprint = dataset_fingerprint(train_dataset, STORE_COLUMNS) if disk else None
    options = {"cache_mode": kd_args.teacher_cache, "batch_size": kd_args.teacher_batch_size, "dtype": dtype}
    options["dropout"] = kd_args.teacher_dropout
    teachers = {}
    for name, path in kd_args.teachers.items():
        model, own = models[name], teacher_inputs.get(name)
        cls_layers = None
        if kd_args.kd_rep_alpha > 0 and kd_args.rep_layers == "cls":
            cls_layers = [t for _, t in layer_map(student_layers, model.config.num_hidden_layers)]
        fields = {"data": fingerprint, "compute_dtype": dtype_name(dtype), "cls_layers": cls_layers}
        if own is not None and disk:  # it reads its own tokenisation's rows
            fields |= {"data": dataset_fingerprint(own.train, STORE_COLUMNS), "max_seq_length": own.max_seq_length}
        key = teacher_key(path, data_args, device_type, **fields)
        store = {"store_folder": store_location(kd_args.teacher_cache_dir, key), "store_key": key}
        teachers[name] = Teacher(name, model, path, num_examples, cls_layers=cls_layers, inputs=own, **store, **options)
    return teachers


# --- the quality check ---


def _check_sample(name: str, data, task) -> tuple:
    own = data.teacher_inputs.get(name)
    dataset = data.evals[task.eval_splits[0]] if own is None else own.check
    sample = dataset.select(range(min(TEACHER_CHECK_EXAMPLES, len(dataset))))
    return sample, data.collator if own is None else own.collator


def score_teachers(models: dict, data, task, training_args) -> dict:
    """{name: {metric: value, ..., "examples": n}} on the first n dev examples, in fp32."""
    scores, device = {}, training_args.device
    for name, model in models.items():
        sample, collator = _check_sample(name, data, task)
        labels = np.asarray(sample["labels"])
        loader = DataLoader(sample, batch_size=training_args.per_device_eval_batch_size, collate_fn=collator)
        model.eval().to(device)
        outputs = []
        with torch.no_grad():
            for batch in loader:
                inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
                outputs.append(model(**model_inputs(model, inputs)).logits.float().cpu())
        logits = torch.cat(outputs).numpy()
        metrics = compute_task_metrics(task, logits, labels)
        if not task.is_regression:
            metrics["accuracy"] = float((logits.argmax(axis=-1) == labels).mean())
            metrics["majority_class_rate"] = float(np.bincount(labels).max() / len(labels))
        nonfinite = int((~np.isfinite(logits)).any(axis=-1).sum())
        if nonfinite:
            metrics["nonfinite_rows"] = nonfinite
        scores[name] = {**metrics, "examples": len(labels)}
    return scores


def stored_teacher_scores(models: dict, data, task, training_args, kd_args, data_args) -> dict:
    """`score_teachers` on rank 0, for every rank (collective); kept next to disk stores and reused."""
    if training_args.process_index != 0:
        return broadcast_object_list([None])[0]
    if kd_args.teacher_cache != "disk":
        return broadcast_object_list([score_teachers(models, data, task, training_args)])[0]
    scores = {}
    for name, path in kd_args.teachers.items():
        sample, _ = _check_sample(name, data, task)
        fields = {"check": "teacher dev scores", "split": task.eval_splits[0], "compute_dtype": "float32"}
        fields |= {"examples": len(sample), "batch_size": training_args.per_device_eval_batch_size}
        data_key = dataset_fingerprint(sample, MODEL_INPUT_COLUMNS + ("labels",))
        key = teacher_key(path, data_args, training_args.device.type, data=data_key, **fields)
        folder = entry_folder(kd_args.teacher_cache_dir, "check", key)

        def build(tmp, name=name):
            scores[name] = score_teachers({name: models[name]}, data, task, training_args)[name]
            write_atomic(os.path.join(tmp, "scores.json"), json.dumps(scores[name], indent=1, sort_keys=True))

        def load(entry):
            return read_json(os.path.join(entry, "scores.json"))

        try:
            scores[name], reused = get_or_build(folder, key, build, load, f"teacher {name}")
        except OSError as error:  # a full disk costs the next run a re-scoring, not this run
            logger.warning("teacher %s: could not keep its dev scores in %s (%s)", name, folder, error)
            if name not in scores:
                scores[name] = score_teachers({name: models[name]}, data, task, training_args)[name]
            reused = False
        if reused:
            logger.info("teacher %s: dev scores from %s", name, folder)
    return broadcast_object_list([scores])[0]


def check_teachers(scores: dict, kd_args, task):
    """Log each teacher's dev scores; refuse a classifier no better than the majority class (the mark
    of generic LABEL_i names in another label order)."""
    split = task.eval_splits[0]
    for name, path in kd_args.teachers.items():
        score = scores[name]
        shown = ", ".join(f"{k} {v:.4g}" for k, v in score.items() if k != "examples")
        logger.info("teacher %s (%s) on the first %d %s examples: %s", name, path, score["examples"], split, shown)
        if task.is_regression:
            continue
        where, first = f"{teacher_flag(name)} '{path}'", f"{score['examples']} {split} examples"
        if score.get("nonfinite_rows"):
            problem = f"{where} gives NaN/Inf logits on {score['nonfinite_rows']} of the first {first}"
            fix = "check or re-train the teacher"
        elif score["majority_class_rate"] >= 1.0:
            logger.warning("teacher %s: the first %s all have one label: label order unchecked", name, first)
            continue
        elif score["accuracy"] <= score["majority_class_rate"]:
            problem = (
                f"{where} scores accuracy {score['accuracy']:.3f} on the first {first}, no better than always "
                f"predicting the majority class ({score['majority_class_rate']:.3f}); most likely its labels are "
                f"in another order than {task.name}'s ({', '.join(task.labels)})"
            )
            fix = "re-train it with train_teacher.py or fix its config's id2label"
        else:
            continue
        if kd_args.skip_teacher_check:
            logger.warning("%s (--skip_teacher_check: distilling from it anyway)", problem)
        else:
            raise ConfigError(f"{problem}; {fix}, or pass --skip_teacher_check to distil from it anyway")


# --- the store ---


class _FileRows:
    """A .npy file's rows, mapped only during one read or write (a lasting mapping's pages count as RSS)."""

    def __init__(self, path):
        self.path = path
        self.shape = np.load(path, mmap_mode="r").shape  # a damaged file raises here

    def __getitem__(self, idx):
        return np.array(np.load(self.path, mmap_mode="r")[idx])

    def __setitem__(self, idx, values):
        np.load(self.path, mmap_mode="r+")[idx] = values  # shared pages: other processes see them at once

    def flush(self):
        with open(self.path, "rb+") as handle:
            os.fsync(handle.fileno())


class OutputStore:
    """Teacher outputs by idx, {"logits": [N, C], "cls_states": [N, P, H]} (float32), and `filled` flags [N]."""

    def __init__(self, rows: dict, flags: np.ndarray, folder: str | None = None):
        self.rows, self.flags, self.folder = rows, flags, folder

    @classmethod
    def on_disk(cls, folder: str, key: dict, shapes: dict, what: str) -> "OutputStore":
        files = {name: (np.float32, shape) for name, shape in shapes.items()}
        files["filled"] = (np.uint8, shapes["logits"][:1])

        def build(tmp):
            for name, (dtype, shape) in files.items():  # sparse: no data written
                np.lib.format.open_memmap(os.path.join(tmp, f"{name}.npy"), "w+", dtype, shape).flush()
            open(os.path.join(tmp, "lock"), "w").close()

        def load(path):
            try:
                rows = {name: _FileRows(os.path.join(path, f"{name}.npy")) for name in shapes}
                # a lasting shared mapping: N bytes read each step, other processes' flags seen at once
                flags = np.load(os.path.join(path, "filled.npy"), mmap_mode="r+")
            except (OSError, ValueError) as error:
                logger.warning("%s: %s is unreadable (%s)", what, path, error)
                return None
            return cls(rows, flags, path)

        return get_or_build(folder, key, build, load, what)[0]

    def missing(self, idx: np.ndarray) -> np.ndarray:
        return self.flags[idx] == 0

    def filled_count(self) -> int:
        return int(np.count_nonzero(self.flags))

    def bytes_per_row(self) -> int:
        return sum(int(np.prod(rows.shape[1:], dtype=np.int64)) * 4 for rows in self.rows.values())

    def read(self, idx: np.ndarray) -> dict:
        return {name: rows[idx] for name, rows in self.rows.items()}

    def write(self, idx: np.ndarray, values: dict, overwrite: bool = False) -> np.ndarray:
        """Store the rows not filled yet (all with `overwrite`), values flushed before flags, under the lock
        (a filled row keeps its first value); return their idx."""
        with open(os.path.join(self.folder, "lock"), "a") if self.folder else contextlib.nullcontext() as lock:
            if lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            new = np.ones(len(idx), dtype=bool) if overwrite else self.missing(idx)
            if not new.any():
                return idx[:0]
            for name, rows in self.rows.items():
                rows[idx[new]] = values[name][new]
                if self.folder:
                    rows.flush()
            self.flags[idx[new]] = 1
        return idx[new]


# --- the teacher ---


class TeacherInputs:
    """A teacher's own tokenisation: training rows (by the student's idx), collator, dev rows."""

    def __init__(self, train, collator, check, max_seq_length):
        self.train, self.collator, self.check, self.max_seq_length = train, collator, check, max_seq_length
        idx = train.with_format("arrow")["idx"].to_numpy()
        self.position = np.full(idx.max(initial=-1) + 1, -1, dtype=np.int64)
        self.position[idx] = np.arange(len(idx))
        self.columns = _model_columns(train)

    def batch(self, idx: np.ndarray, device) -> dict:
        values = self.columns[self.position[idx].tolist()]
        rows = [dict(zip(values, row)) for row in zip(*values.values())]
        return {name: tensor.to(device) for name, tensor in self.collator(rows).items()}


class Teacher:
    """One teacher model, its forward counter and its output store of `num_examples` (max training idx + 1)
    rows; cls_layers: the hidden-state indices whose sentence states are stored (None: logits only)."""

    def __init__(
        self,
        name,
        model,
        path,
        num_examples,
        cache_mode="memory",
        cls_layers=None,
        *,
        batch_size,
        dtype=torch.float32,
        store_folder=None,
        store_key=None,
        inputs=None,
        dropout=False,
    ):
        self.name, self.model, self.path, self.dropout = name, model, path, dropout
        self.cls_layers, self.batch_size, self.dtype, self.inputs = cls_layers, batch_size, dtype, inputs
        self.forward_examples = 0
        self._unsynced = []  # idx this rank stored since the last sync()
        self.store = None
        shapes = {"logits": (num_examples, model.config.num_labels)}
        if cls_layers is not None:
            shapes["cls_states"] = (num_examples, len(cls_layers), model.config.hidden_size)
        if cache_mode == "disk":
            self.store = OutputStore.on_disk(store_folder, store_key, shapes, f"teacher {name}")
            filled = self.store.filled_count()
            logger.info("teacher %s: store %s (%d of %d rows filled)", name, store_folder, filled, num_examples)
        elif cache_mode == "memory":
            rows = {name: np.zeros(shape, dtype=np.float32) for name, shape in shapes.items()}
            self.store = OutputStore(rows, np.zeros(num_examples, dtype=np.uint8))
            size = self.store.bytes_per_row() * num_examples
            if size > MEMORY_STORE_WARNING_BYTES:
                logger.warning("teacher %s: --teacher_cache memory holds %.1f GB in every process", name, size / 1e9)

    def _device(self):
        return next(self.model.parameters()).device

    def autocast(self):
        return torch.autocast(self._device().type, self.dtype, enabled=self.dtype != torch.float32)

    def _forward(self, inputs: dict, hidden: bool):
        """No-grad forward (train mode with `dropout`): fp32 logits [K, C], hidden states."""
        self.model.train(self.dropout)
        with torch.no_grad(), self.autocast():
            outputs = self.model(**model_inputs(self.model, inputs), output_hidden_states=hidden)
        self.forward_examples += outputs.logits.shape[0]
        return outputs.logits.float(), outputs.hidden_states if hidden else None

    def _cls(self, states, inputs: dict) -> torch.Tensor:
        """[K, P, H] fp32 states of the token the classifier reads (the first, or a decoder's last non-padding)."""
        input_ids, config = inputs["input_ids"], self.model.config
        chosen = torch.zeros_like(input_ids[:, 0])
        if is_decoder(config):  # foreign_teachers gave it a pad token
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            chosen = (positions * (input_ids != config.pad_token_id)).argmax(-1)
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        return torch.stack([states[layer][rows, chosen] for layer in self.cls_layers], dim=1).float()

    def _keep(self, idx: np.ndarray, logits: torch.Tensor, states, inputs: dict) -> None:
        values = {"logits": logits.cpu().numpy()}
        if self.cls_layers is not None:
            values["cls_states"] = self._cls(states, inputs).cpu().numpy()
        self._unsynced.append(self.store.write(idx, values))

    def _row_inputs(self, inputs: dict, rows: torch.Tensor, idx: torch.Tensor) -> dict:
        if self.inputs is None:
            return {name: value[rows] for name, value in inputs.items()}
        return self.inputs.batch(idx[rows].cpu().numpy(), self._device())

    def query(self, inputs: dict, rows: torch.Tensor, idx: torch.Tensor, hidden: str = "none"):
        """(logits [K, C], states) of batch rows `rows` [K], given inputs {name: [B, L]} and idx [B]; states
        by `hidden`: none -> None, cls -> [K, P, H], all -> a tuple of [K, L, H]."""
        if hidden == "all" or self.store is None:
            row_inputs = self._row_inputs(inputs, rows, idx)
            logits, states = self._forward(row_inputs, hidden != "none")
            if self.store is not None and self.cls_layers is None:
                self._keep(idx[rows].cpu().numpy(), logits, None, row_inputs)
            if hidden == "cls":
                return logits, self._cls(states, row_inputs)
            return logits, None if states is None else tuple(h.float() for h in states)
        row_idx = idx[rows].cpu().numpy()
        missing = np.flatnonzero(self.store.missing(row_idx))
        for start in range(0, len(missing), self.batch_size):
            part = missing[start : start + self.batch_size]
            part_inputs = self._row_inputs(inputs, rows[torch.from_numpy(part).to(rows.device)], idx)
            logits, states = self._forward(part_inputs, self.cls_layers is not None)  # a row needs all its values
            self._keep(row_idx[part], logits, states, part_inputs)
        # Stored values even for rows computed just now: a row another process stored first keeps its value.
        values = self.store.read(row_idx)
        states = torch.from_numpy(values["cls_states"]).to(rows.device) if hidden == "cls" else None
        return torch.from_numpy(values["logits"]).to(rows.device), states

    def prefill(self, dataset, collate_fn, device, num_workers: int = 0):
        """Fill every missing row in one pass, longest first (less padding, larger batches); collective."""
        if self.store is None:
            return
        if self.inputs is not None:
            dataset, collate_fn = self.inputs.train, self.inputs.collator
        columns = dataset.with_format("arrow")
        idx = columns["idx"].to_numpy()
        lengths = pc.list_value_length(columns["input_ids"]).to_numpy()
        positions = np.flatnonzero(self.store.missing(idx))
        rank, world = _rank_and_world()
        if world > 1:
            positions = np.unique(np.concatenate(_all_gather(positions)))
        if len(positions):
            mine = positions[np.argsort(-lengths[positions], kind="stable")][rank::world]
            batches = [mine[start : start + self.batch_size].tolist() for start in range(0, len(mine), self.batch_size)]
            # its own generator: drawing from the global RNG would make a prefilling run train differently
            loader = DataLoader(
                _model_columns(dataset),
                batch_sampler=batches,
                collate_fn=collate_fn,
                num_workers=num_workers,
                generator=torch.Generator(),
            )
            started = time.perf_counter()
            for batch_positions, batch in zip(batches, loader):
                batch = {k: v.to(device) for k, v in batch.items()}
                logits, states = self._forward(batch, self.cls_layers is not None)
                self._keep(idx[batch_positions], logits, states, batch)
            seconds, shard = time.perf_counter() - started, f" (rank {rank} of {world})" if world > 1 else ""
            logger.info(
                "teacher %s: computed %d outputs before training in %.1f s%s", self.name, len(mine), seconds, shard
            )
        self.sync()

    def _take_unsynced(self) -> np.ndarray:
        return np.concatenate([np.zeros(0, dtype=np.int64), *self._unsynced])

    def sync(self):
        """Give every rank's store every row some rank stored since the last sync (collective)."""
        if self.store is None:
            return
        new, self._unsynced = self._take_unsynced(), []
        rank, world = _rank_and_world()
        if world == 1:
            return
        gathered = _all_gather(new)
        shared = self.store.folder is not None
        # on a shared file system every rank usually sees every row already
        if shared and not any(_all_gather(bool(self.store.missing(np.concatenate(gathered)).any()))):
            return
        chunk = max(1, SYNC_CHUNK_BYTES // self.store.bytes_per_row())
        for source, rows in enumerate(gathered):
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                box = [self.store.read(part) if rank == source else None]
                dist.broadcast_object_list(box, src=source)
                if rank != source:
                    # in memory, a row two ranks computed (DistributedSampler pads shards) keeps the lowest rank's
                    self.store.write(part, box[0], overwrite=not shared and source < rank)

    def save_checkpoint(self, prefix: str):
        """So a resumed run sees the outputs the interrupted one used: this rank's memory store
        (`prefix.safetensors`), or the shared disk store's name (`prefix.json`)."""
        if self.store is None:
            return
        unsynced = self._take_unsynced()
        if self.store.folder is not None:
            write_atomic(f"{prefix}.json", json.dumps({"store": self.store.folder, "unsynced": unsynced.tolist()}))
            return
        arrays = self.store.rows | {"filled": self.store.flags, "unsynced": unsynced}
        with atomic_path(f"{prefix}.safetensors") as tmp:
            save_file(arrays, tmp, metadata={"teacher": self.path})

    def load_checkpoint(self, prefix: str):
        if self.store is None:
            return
        folder, where = self.store.folder, ""
        if folder is not None:
            reference = read_json(f"{prefix}.json") or {}
            if reference.get("store") != folder:
                logger.warning("teacher %s: the checkpoint did not use the shared store %s", self.name, folder)
                return
            unsynced, where = reference["unsynced"], f" in the shared store {folder}"
        else:
            try:
                state = load_file(f"{prefix}.safetensors")
                for name, rows in (self.store.rows | {"filled": self.store.flags}).items():
                    if state[name].shape != rows.shape:
                        raise ValueError(f"{name} has shape {state[name].shape}, expected {rows.shape}")
                    rows[:] = state[name]
            except (OSError, KeyError, RuntimeError, ValueError, SafetensorError) as error:
                self.store.flags[:] = 0  # forget every row
                logger.warning("teacher %s: no usable output cache in the checkpoint (%s)", self.name, error)
                return
            unsynced = state["unsynced"]
        self._unsynced = [np.asarray(unsynced, dtype=np.int64)]
        logger.info("teacher %s: resumed with %d cached outputs%s", self.name, self.store.filled_count(), where)


class TeacherCounter(TrainerCallback, ExportableState):
    """Counts teacher forwards across ranks and resumes; prefills the stores, syncs them each epoch. The
    count is all-reduced at a saving step's end (every rank runs it), not in `state()` (only some do)."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.restored = 0
        self.at_last_save = 0

    def state(self):
        return {"args": {}, "attributes": {"forward_examples": self.at_last_save}}

    def on_train_begin(self, args, state, control, **kwargs):
        saved = (state.stateful_callbacks or {}).get(type(self).__name__)
        if saved and state.global_step > 0:
            self.restored = saved["attributes"]["forward_examples"]
        self.trainer.prefill_teachers()

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save:
            self.at_last_save = self.total()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.trainer.end_of_epoch()
        self.on_step_end(args, state, control)

    def total(self) -> int:
        """Collective under DDP."""
        local = sum(t.forward_examples for t in self.trainer.teachers.values())
        count = self.trainer.accelerator.reduce(torch.tensor(local, device=self.trainer.args.device), "sum")
        return self.restored + int(count.item())
