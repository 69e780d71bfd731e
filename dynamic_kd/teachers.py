"""Teacher forwards: counted, computed once per example, and kept in an output store by `idx`.

A teacher is queried only on the rows a strategy routed to it. With a store (`--teacher_cache
memory`, the default, or `disk`) each training example costs at most one forward per teacher: a
miss runs the teacher on the missing rows, in no-grad eval mode, and stores the logits (and, with
`--rep_layers cls`, the [CLS] states of the mapped layers) under the row's idx. Full-token hidden
states are never stored (N x L x H is too large) and are computed online.

When every row reaches a teacher (`strategies.teachers_seeing_every_row`), the trainer fills its
store before training in one pass over the data sorted by length, in batches of
`--teacher_batch_size` (`Teacher.prefill`): less padding and larger batches than the training
batches, so the same N forwards cost less. Otherwise the store fills lazily, batch by batch.

A teacher whose tokenizer differs from the student's (`recipe.foreign_teachers`) holds its own
tokenisation of the training rows (`TeacherInputs`) and builds a row's inputs from it by idx, never
from the student's batch; everything else (store, prefill, sync, checkpoints) is the same.

`OutputStore` keeps, per example idx, the logits [N, C], optionally the [CLS] states [N, P, H]
(fp32) and a `filled` flag. A row is trusted only once its flag is set; the flag is set only after
the row's values are written (and, on disk, flushed), and a filled row never changes. `memory`
holds dense arrays in this process. `disk` is the store that runs share: `.npy` files in one
folder of `--teacher_cache_dir` per key (teacher files, task, tokenisation and data, the real
compute dtype and device, the cached layers; see `recipe.load_teachers`). Rows are read and written
with pread/pwrite under a file lock, never mapped, so a process holds only the rows in flight in
RAM (the OS page cache keeps the hot ones), and concurrent runs on one key fill one store between
them. A run killed at any point leaves either unpublished temp folders or rows without a flag:
nothing that a later run trusts.

Under DDP each rank computes its own rows (training batches, or its share of a prefill);
`sync()` (after a prefill and at each epoch end) makes every rank's store hold every row some rank
computed: with one shared disk store there is nothing to send; with per-rank stores (memory, or a
node-local cache folder on several machines) the rows are sent in bounded chunks.
"""

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
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from dynamic_kd.cache import entry_folder, get_or_build
from dynamic_kd.data import MODEL_INPUT_COLUMNS
from dynamic_kd.models import is_decoder, model_inputs
from dynamic_kd.precision import native_bf16_flag, read_cpuinfo

logger = logging.getLogger(__name__)

TEACHER_CACHE_MODES = ("none", "memory", "disk")
TEACHER_DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
STORE_FORMAT = 1  # part of every disk key: a layout change makes old stores unreachable, never misread
MEMORY_STORE_WARNING_BYTES = 1 << 30
SYNC_CHUNK_BYTES = 64 << 20  # rows sent per broadcast under DDP: bounds the RAM a sync needs


# --- precision ------------------------------------------------------------------------------


def teacher_compute_dtype(teacher_dtype: str, training_args) -> tuple[torch.dtype, str]:
    """(dtype the teacher pass really runs in, why).

    auto follows the student: bf16/fp16 autocast with --bf16/--fp16, fp32 otherwise. It never
    lowers the precision on its own, so a command gives the same numbers on every machine; the
    scripts that choose for the user (quickstart, sweeps) ask `dynamic_kd.precision` and pass the
    choice explicitly.
    """
    dtype = TEACHER_DTYPES[teacher_dtype]
    if dtype is not None:
        return dtype, f"--teacher_dtype {teacher_dtype}"
    if training_args.bf16:
        return torch.bfloat16, "--teacher_dtype auto follows the student's --bf16"
    if training_args.fp16:
        return torch.float16, "--teacher_dtype auto follows the student's --fp16"
    return torch.float32, "--teacher_dtype auto follows the student's fp32"


def log_teacher_precision(dtype: torch.dtype, why: str, device_type: str):
    """One line naming the teacher pass's precision and why, plus what is faster on this CPU."""
    name = "fp32" if dtype == torch.float32 else f"{dtype_name(dtype)} autocast"
    logger.info("teacher pass: %s on %s (%s); teacher weights stay fp32", name, device_type, why)
    if device_type != "cpu":
        return
    flag = native_bf16_flag(read_cpuinfo())
    if dtype == torch.bfloat16 and flag is None:
        logger.warning(
            "this CPU lists no native bf16 flag: bf16 autocast is emulated here and can be many times slower than fp32; "
            "pass --teacher_dtype float32 (and drop --bf16) if it is"
        )
    elif dtype == torch.float32 and flag is not None:
        logger.info(
            "this CPU has native bf16 (%s): --teacher_dtype bfloat16 would run the teacher pass about 2-3x faster", flag
        )


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# --- the store --------------------------------------------------------------------------------


class _RamRows:
    """Rows of a dense in-memory array."""

    def __init__(self, shape):
        self.array = np.zeros(shape, dtype=np.float32)
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * 4

    def read(self, idx):
        return self.array[idx]

    def write(self, idx, values):
        self.array[idx] = values

    def flush(self):
        pass


class _FileRows:
    """Rows of a float32 .npy file, read and written with pread/pwrite.

    Never memory-mapped: pages of a mapping count towards the process's RSS once touched, so an
    epoch over an 11 GB [CLS]-state file would look like 11 GB of RAM. Explicit reads keep the
    process at the rows in flight and leave caching to the OS page cache.
    """

    def __init__(self, path, shape):
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            stored_shape, fortran_order, dtype = read_header(handle)
            self.offset = handle.tell()
        self.row_shape = tuple(shape[1:])
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * 4
        if (
            stored_shape != tuple(shape)
            or fortran_order
            or dtype != np.float32
            or os.path.getsize(path) != self.offset + shape[0] * self.row_bytes
        ):
            raise ValueError(f"{path} holds {stored_shape} {dtype}, expected {tuple(shape)} float32")
        self.fd = os.open(path, os.O_RDWR)

    @staticmethod
    def create(path, shape):
        np.lib.format.open_memmap(
            path, mode="w+", dtype=np.float32, shape=tuple(shape)
        ).flush()  # sparse: no data written

    def _runs(self, idx):
        """(positions in idx, first row, row count) for each run of consecutive rows."""
        order = np.argsort(idx, kind="stable")
        ordered = idx[order]
        starts = np.flatnonzero(np.diff(ordered) != 1) + 1
        for run in np.split(np.arange(len(ordered)), starts):
            if len(run):
                yield order[run], int(ordered[run[0]]), len(run)

    def read(self, idx):
        out = np.empty((len(idx),) + self.row_shape, dtype=np.float32)
        for positions, first, count in self._runs(idx):
            data = os.pread(self.fd, count * self.row_bytes, self.offset + first * self.row_bytes)
            out[positions] = np.frombuffer(data, dtype=np.float32).reshape((count,) + self.row_shape)
        return out

    def write(self, idx, values):
        values = np.ascontiguousarray(values, dtype=np.float32)
        for positions, first, _count in self._runs(idx):
            os.pwrite(self.fd, values[positions].tobytes(), self.offset + first * self.row_bytes)

    def flush(self):
        os.fdatasync(self.fd) if hasattr(os, "fdatasync") else os.fsync(self.fd)

    def __del__(self):
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)


class OutputStore:
    """Teacher outputs by example idx: named float32 row arrays plus a per-row `filled` flag.

    shapes: {name: (N, ...)}, e.g. {"logits": (N, C), "cls_states": (N, P, H)}.
    """

    def __init__(self, rows: dict, flags: np.ndarray, folder: str | None = None):
        self.rows, self.flags, self.folder = rows, flags, folder

    @classmethod
    def in_memory(cls, shapes: dict) -> "OutputStore":
        num_rows = next(iter(shapes.values()))[0]
        return cls({name: _RamRows(shape) for name, shape in shapes.items()}, np.zeros(num_rows, dtype=np.uint8))

    @classmethod
    def on_disk(cls, folder: str, key: dict, shapes: dict, what: str = "teacher store") -> "OutputStore":
        """Open the shared store `folder` for `key`, creating it (empty) if it is missing or stale."""
        num_rows = next(iter(shapes.values()))[0]

        def build(tmp):
            for name, shape in shapes.items():
                _FileRows.create(os.path.join(tmp, f"{name}.npy"), shape)
            np.lib.format.open_memmap(
                os.path.join(tmp, "filled.npy"), mode="w+", dtype=np.uint8, shape=(num_rows,)
            ).flush()
            open(os.path.join(tmp, "lock"), "w").close()

        def load(path):
            try:
                rows = {name: _FileRows(os.path.join(path, f"{name}.npy"), shape) for name, shape in shapes.items()}
                # The flags are small (N bytes) and checked every step: a shared mapping shows
                # other processes' flags as soon as they set them.
                flags = np.lib.format.open_memmap(os.path.join(path, "filled.npy"), mode="r+")
            except (OSError, ValueError) as error:
                logger.warning("%s: %s is unreadable (%s)", what, path, error)
                return None
            if flags.shape != (num_rows,) or flags.dtype != np.uint8:
                return None
            return cls(rows, flags, path)

        store, _ = get_or_build(folder, key, build, load, what)
        return store

    @contextlib.contextmanager
    def _locked(self):
        if self.folder is None:
            yield
            return
        with open(os.path.join(self.folder, "lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def missing(self, idx: np.ndarray) -> np.ndarray:
        """[K] bool: which of these rows have no trusted value yet."""
        return self.flags[idx] == 0

    def filled_count(self) -> int:
        return int(np.count_nonzero(self.flags))

    def read(self, idx: np.ndarray) -> dict:
        return {name: rows.read(idx) for name, rows in self.rows.items()}

    def write(self, idx: np.ndarray, values: dict, overwrite: bool = False) -> np.ndarray:
        """Store the rows not filled yet (all of them with `overwrite`, memory only); returns their idx.

        Values first, flushed to disk, then the flags: a process killed in between leaves rows
        that are not trusted. The lock makes check-and-write atomic between processes, so a
        filled row keeps the value it was first given.
        """
        with self._locked():
            new = np.ones(len(idx), dtype=bool) if overwrite else self.missing(idx)
            if not new.any():
                return idx[:0]
            for name, rows in self.rows.items():
                rows.write(idx[new], values[name][new])
            for rows in self.rows.values():
                rows.flush()
            self.flags[idx[new]] = 1
        return idx[new]

    def clear(self):
        """Forget every row (memory stores only: a shared store is never emptied by one run)."""
        self.flags[:] = 0

    def state(self) -> dict:
        """The whole in-memory store as tensors (for checkpoints)."""
        state = {name: torch.from_numpy(rows.array) for name, rows in self.rows.items()}
        state["filled"] = torch.from_numpy(self.flags)
        return state

    def load_state(self, state: dict):
        for name, rows in self.rows.items():
            if tuple(state[name].shape) != rows.array.shape:
                raise ValueError(f"{name} has shape {tuple(state[name].shape)}, expected {rows.array.shape}")
        for name, rows in self.rows.items():
            rows.array[:] = state[name].numpy()
        self.flags[:] = state["filled"].numpy()


def store_location(cache_dir: str, key: dict) -> str:
    return entry_folder(cache_dir, "teacher", key)


# --- teachers ---------------------------------------------------------------------------------


class TeacherInputs:
    """A teacher's own tokenisation of the training rows (its tokenizer differs from the student's).

    train: the tokenised training split (the student's rows, same idx).  collator: pads its rows.
    check: the tokenised dev rows the teacher check scores it on.  max_seq_length: its length cap.
    Every row is found by idx, so whatever routes rows by idx (selection, adoption, prefill, DDP,
    resume) routes them here too; a teacher sees exactly what it sees when used alone.
    """

    def __init__(self, train, collator, check=None, max_seq_length=None):
        self.train, self.collator, self.check, self.max_seq_length = train, collator, check, max_seq_length
        idx = train.with_format("arrow")["idx"].to_numpy()
        self.position = np.full(int(idx.max()) + 1 if len(idx) else 0, -1, dtype=np.int64)
        self.position[idx] = np.arange(len(idx))
        self.columns = train.select_columns([c for c in MODEL_INPUT_COLUMNS if c in train.column_names])

    def batch(self, idx: np.ndarray, device) -> dict:
        """The padded model inputs ({name: [K, L']}) of the rows with these idx."""
        values = self.columns[self.position[idx].tolist()]
        rows = [dict(zip(values, row)) for row in zip(*values.values())]
        return {name: tensor.to(device) for name, tensor in self.collator(rows).items()}


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class Teacher:
    """One teacher model, its forward counter, and its output store.

    num_examples: size of the idx space (max training idx + 1).  cache_mode: none | memory | disk.
    cls_layers: teacher hidden-state indices whose sentence states are stored (None = logits only):
    the first token's for an encoder ([CLS], <s>), the last non-padding token's for a decoder (the
    token its classifier reads).
    dtype: the teacher pass's compute dtype (fp32, or bf16/fp16 autocast; weights stay fp32).
    store_folder, store_key: where the disk store lives and what it must match.
    inputs: a `TeacherInputs` when the teacher reads its own tokenisation (None: the student's batch).
    dropout: train mode in every forward (`--teacher_dropout`, the released code's teachers; no store).
    """

    def __init__(
        self,
        name,
        model,
        path,
        num_examples,
        cache_mode="memory",
        cls_layers=None,
        batch_size=256,
        dtype=torch.float32,
        store_folder=None,
        store_key=None,
        inputs=None,
        dropout=False,
    ):
        if dropout and cache_mode != "none":
            raise ValueError("a teacher with dropout draws new outputs every forward; it needs cache_mode='none'")
        self.name, self.model, self.path, self.dropout = name, model, path, dropout
        self.cls_layers, self.batch_size, self.dtype = cls_layers, batch_size, dtype
        self.inputs = inputs
        self.last_token = is_decoder(model.config)
        self.forward_examples = 0
        self._unsynced = []  # idx this rank stored since the last sync()
        self.store = None
        if cache_mode == "none":
            return
        shapes = {"logits": (num_examples, model.config.num_labels)}
        if cls_layers is not None:
            shapes["cls_states"] = (num_examples, len(cls_layers), model.config.hidden_size)
        if cache_mode == "disk":
            self.store = OutputStore.on_disk(store_folder, store_key, shapes, f"teacher {name}")
            logger.info(
                "teacher %s: shared output store %s (%d of %d rows filled)",
                name,
                store_folder,
                self.store.filled_count(),
                num_examples,
            )
        else:
            self.store = OutputStore.in_memory(shapes)
            size = sum(int(np.prod(shape, dtype=np.int64)) for shape in shapes.values()) * 4
            if size > MEMORY_STORE_WARNING_BYTES:
                logger.warning(
                    "teacher %s: --teacher_cache memory holds %.1f GB of outputs in the RAM of every process; "
                    "--teacher_cache disk keeps them on disk and shares them between runs",
                    name,
                    size / 1e9,
                )

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    def autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=next(self.model.parameters()).device.type, dtype=self.dtype)

    def _forward(self, inputs: dict, hidden: bool):
        """Teacher forward without gradient, in eval mode (train mode with `dropout`): fp32 logits
        [K, C] and the hidden-state tuple in the pass's dtype (cast by the caller, which often keeps
        only the [CLS] rows)."""
        self.model.train(self.dropout)
        with torch.no_grad(), self.autocast():
            outputs = self.model(**model_inputs(self.model, inputs), output_hidden_states=hidden)
        self.forward_examples += outputs.logits.shape[0]
        return outputs.logits.float(), outputs.hidden_states if hidden else None

    def _cls(self, states, inputs: dict) -> torch.Tensor:
        """[K, P, H] fp32 sentence states of the cached layers: the first token's, or for a decoder
        the last token that is not padding, found as its classifier finds it (ids != pad_token_id)."""
        input_ids = inputs["input_ids"]
        if self.last_token and self.model.config.pad_token_id is not None:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            chosen = (positions * (input_ids != self.model.config.pad_token_id)).argmax(-1)
        else:
            chosen = torch.full_like(input_ids[:, 0], input_ids.shape[1] - 1 if self.last_token else 0)
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        return torch.stack([states[layer][rows, chosen] for layer in self.cls_layers], dim=1).float()

    def _keep(self, idx: np.ndarray, logits: torch.Tensor, states, inputs: dict) -> None:
        values = {"logits": logits.cpu().numpy()}
        if self.cls_layers is not None:
            values["cls_states"] = self._cls(states, inputs).cpu().numpy()
        self._unsynced.append(self.store.write(idx, values))

    def _row_inputs(self, inputs: dict, rows: torch.Tensor, idx: torch.Tensor | None) -> dict:
        """The model inputs of batch rows `rows`: the batch's own, or this teacher's tokenisation by idx."""
        if self.inputs is None:
            return {name: value[rows] for name, value in inputs.items()}
        if idx is None:
            raise ValueError(f"teacher {self.name} reads its own tokenisation, which needs the rows' idx")
        return self.inputs.batch(idx[rows].cpu().numpy(), next(self.model.parameters()).device)

    def query(self, inputs: dict, rows: torch.Tensor, idx: torch.Tensor | None, hidden: str = "none"):
        """Teacher outputs for batch `rows`.

        inputs: the batch's model inputs ({name: [B, L]}).  rows: [K] row indices.  idx: [B] example
        ids (None: no caching possible).  hidden: none | cls | all.
        Returns (logits [K, C], states): states is None, a [K, P, H] tensor of cached [CLS] states
        of `cls_layers` (hidden=cls), or the full hidden_states tuple of [K, L, H] (hidden=all).
        """
        if hidden == "all" and self.inputs is not None:
            raise ValueError(
                f"teacher {self.name} reads its own tokenisation: its token states align with no student token"
            )
        if hidden == "all" or self.store is None or idx is None:
            row_inputs = self._row_inputs(inputs, rows, idx)
            logits, states = self._forward(row_inputs, hidden != "none")
            if self.store is not None and idx is not None and self.cls_layers is None:
                self._keep(idx[rows].cpu().numpy(), logits, None, row_inputs)
            if hidden == "cls":
                return logits, self._cls(states, row_inputs)
            return logits, None if states is None else tuple(h.float() for h in states)
        row_idx = idx[rows].cpu().numpy()
        missing = np.flatnonzero(self.store.missing(row_idx))
        with_states = self.cls_layers is not None  # a stored row needs all of its values
        for start in range(0, len(missing), self.batch_size):
            part = missing[start : start + self.batch_size]
            part_inputs = self._row_inputs(inputs, rows[torch.from_numpy(part).to(rows.device)], idx)
            logits, states = self._forward(part_inputs, with_states)
            self._keep(row_idx[part], logits, states, part_inputs)
        # Always the stored values, also for rows computed just now: a row another process stored
        # first keeps that value, and every run reading the row sees the same numbers.
        values = self.store.read(row_idx)
        device = rows.device
        logits = torch.from_numpy(values["logits"]).to(device)
        states = torch.from_numpy(values["cls_states"]).to(device) if hidden == "cls" else None
        return logits, states

    def prefill(self, dataset, collate_fn, device, num_workers: int = 0):
        """Fill every missing row of the training set in one pass sorted by length (longest first).

        Under DDP the missing rows (the union over ranks) are dealt out to the ranks in length
        order and then shared by `sync()`, so each row is computed once. Collective: every rank
        must call it.
        """
        if self.store is None:
            return
        if self.inputs is not None:  # the same rows in this teacher's own tokenisation
            dataset, collate_fn = self.inputs.train, self.inputs.collator
        columns = dataset.with_format("arrow")
        idx = columns["idx"].to_numpy()
        lengths = pc.list_value_length(columns["input_ids"]).to_numpy()
        positions = np.flatnonzero(self.store.missing(idx))
        rank, world = (dist.get_rank(), dist.get_world_size()) if _distributed() else (0, 1)
        if world > 1:
            gathered = [None] * world
            dist.all_gather_object(gathered, positions)
            positions = np.unique(np.concatenate(gathered))
        if len(positions):
            order = positions[np.argsort(-lengths[positions], kind="stable")]
            mine = order[rank::world]
            batches = [mine[start : start + self.batch_size].tolist() for start in range(0, len(mine), self.batch_size)]
            inputs = dataset.select_columns([c for c in MODEL_INPUT_COLUMNS if c in dataset.column_names])
            # Its own generator: a DataLoader draws a seed when iterated, and drawing it from the
            # global RNG would make a run that prefills train differently from one that finds
            # its store already full.
            loader = DataLoader(
                inputs,
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
            logger.info(
                "teacher %s: computed %d outputs before training in %.1f s (length-sorted, batch %d%s)",
                self.name,
                len(mine),
                time.perf_counter() - started,
                self.batch_size,
                f", rank {rank} of {world}" if world > 1 else "",
            )
        self.sync()

    def sync(self):
        """Make every rank's store hold every row some rank stored since the last sync (collective)."""
        if self.store is None:
            return
        new = np.concatenate(self._unsynced) if self._unsynced else np.zeros(0, dtype=np.int64)
        self._unsynced = []
        if not _distributed():
            return
        rank, world = dist.get_rank(), dist.get_world_size()
        gathered = [None] * world
        dist.all_gather_object(gathered, new)
        shared = self.store.folder is not None
        if shared:
            # One store on a shared file system: usually every rank already sees every row.
            lacking = [None] * world
            dist.all_gather_object(lacking, bool(self.store.missing(np.concatenate(gathered)).any()))
            if not any(lacking):
                return
        chunk = max(1, SYNC_CHUNK_BYTES // sum(rows.row_bytes for rows in self.store.rows.values()))
        for source, rows in enumerate(gathered):
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                box = [self.store.read(part) if rank == source else None]
                dist.broadcast_object_list(box, src=source)
                if rank != source:
                    # In memory, a row two ranks both computed (DistributedSampler repeats a few
                    # rows to even out the shards) ends with the lowest rank's value everywhere.
                    self.store.write(part, box[0], overwrite=not shared and source < rank)

    # --- checkpoints: a resumed run must see exactly the outputs the interrupted one used ---
    def save_checkpoint(self, prefix: str):
        """Memory: this rank's whole store (`prefix.safetensors`). Disk: a reference to the shared store (`prefix.json`)."""
        if self.store is None:
            return
        unsynced = np.concatenate(self._unsynced) if self._unsynced else np.zeros(0, dtype=np.int64)
        if self.store.folder is None:
            state = dict(self.store.state(), unsynced=torch.from_numpy(unsynced))
            save_file(state, f"{prefix}.safetensors.tmp", metadata={"teacher": self.path})
            os.replace(f"{prefix}.safetensors.tmp", f"{prefix}.safetensors")
        else:
            with open(f"{prefix}.json.tmp", "w") as handle:
                json.dump({"store": self.store.folder, "unsynced": unsynced.tolist()}, handle)
            os.replace(f"{prefix}.json.tmp", f"{prefix}.json")

    def load_checkpoint(self, prefix: str):
        if self.store is None:
            return
        if self.store.folder is not None:
            self._load_store_reference(f"{prefix}.json")
            return
        try:
            state = load_file(f"{prefix}.safetensors")
            self.store.load_state(state)
        except (OSError, KeyError, RuntimeError, ValueError, SafetensorError) as error:
            self.store.clear()
            logger.warning(
                "teacher %s: no usable output cache in the checkpoint (%s); recomputing its outputs", self.name, error
            )
            return
        self._unsynced = [state["unsynced"].numpy()] if state["unsynced"].numel() else []
        logger.info("teacher %s: resumed with %d cached outputs", self.name, self.store.filled_count())

    def _load_store_reference(self, path: str):
        try:
            with open(path) as handle:
                reference = json.load(handle)
        except (OSError, ValueError):
            reference = {}
        if reference.get("store") != self.store.folder:
            logger.warning(
                "teacher %s: the checkpoint did not use the shared store %s; outputs it lacks are recomputed "
                "(last-bit differences from the interrupted run are possible)",
                self.name,
                self.store.folder,
            )
            return
        self._unsynced = [np.asarray(reference.get("unsynced", []), dtype=np.int64)]
        logger.info(
            "teacher %s: resumed with %d cached outputs in the shared store %s",
            self.name,
            self.store.filled_count(),
            self.store.folder,
        )


def teacher_fingerprint(path: str) -> list:
    """Names, sizes and modification times of a teacher folder's files: re-training changes them."""
    entries = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            stat = os.stat(full)
            entries.append([name, stat.st_size, stat.st_mtime_ns])
    return entries
