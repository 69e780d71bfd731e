"""Teacher forwards: lazy, counted, and cached by example `idx`.

A teacher is queried only on the rows a strategy routed to it. With a cache (`memory`, the
default, or `disk`) each training example costs at most one forward per teacher per run: a miss
runs the teacher on the missing rows of the current batch, in no-grad eval mode, and stores the
logits (and, with `--rep_layers cls`, the [CLS] states of the mapped layers) under the row's idx.
Full-token hidden states are never cached (N x L x H is too large) and are computed online.

`disk` keeps the cache in one safetensors file per (teacher weights, task, tokenisation, training
data, dtype) in `--teacher_cache_dir`; the file name is a hash of that key and the key itself is
stored inside and compared on load, so a stale or mismatched file is rebuilt, never used. Files are
written atomically (temp file + rename) at each epoch end.

Under DDP each rank computes only its own misses; `sync()` (epoch end) all-gathers the entries
each rank computed, so every rank's cache holds only values some rank actually wrote.
"""
import contextlib
import hashlib
import json
import logging
import os

import torch
import torch.distributed as dist
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dynamic_kd.files import atomic_path

logger = logging.getLogger(__name__)

TEACHER_CACHE_MODES = ("none", "memory", "disk")
TEACHER_DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Teacher:
    """One teacher model, its forward counter, and its output cache.

    num_examples: size of the idx space (max training idx + 1).  cls_layers: teacher hidden-state
    indices whose [CLS] vectors are cached (None = logits only).
    """

    def __init__(self, name, model, path, num_examples, cache_mode="memory", cls_layers=None, batch_size=256,
                 autocast=contextlib.nullcontext, cache_file=None, cache_key=None):
        self.name, self.model, self.path = name, model, path
        self.cache_mode, self.cls_layers, self.batch_size = cache_mode, cls_layers, batch_size
        self.autocast = autocast
        self.cache_file, self.cache_key = cache_file, cache_key
        self.forward_examples = 0
        self.logits = self.filled = self.cls_states = None
        self._unsynced = []
        if cache_mode != "none":
            self.filled = torch.zeros(num_examples, dtype=torch.bool)
            self.logits = torch.zeros(num_examples, model.config.num_labels)
            if cls_layers is not None:
                self.cls_states = torch.zeros(num_examples, len(cls_layers), model.config.hidden_size)
            if cache_mode == "disk":
                self._load_disk_cache()

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    def _forward(self, inputs: dict, hidden: bool):
        """Teacher forward in eval mode without gradient; outputs cast to fp32."""
        with torch.no_grad(), self.autocast():
            outputs = self.model(**inputs, output_hidden_states=hidden)
        self.forward_examples += outputs.logits.shape[0]
        states = tuple(h.float() for h in outputs.hidden_states) if hidden else None
        return outputs.logits.float(), states

    def query(self, inputs: dict, rows: torch.Tensor, idx: torch.Tensor | None, hidden: str = "none"):
        """Teacher outputs for batch `rows`.

        inputs: the batch's model inputs ({name: [B, L]}).  rows: [K] row indices.  idx: [B] example
        ids (None: no caching possible).  hidden: none | cls | all.
        Returns (logits [K, C], states): states is None, a [K, P, H] tensor of cached [CLS] states
        of `cls_layers` (hidden=cls), or the full hidden_states tuple of [K, L, H] (hidden=all).
        """
        row_inputs = {name: value[rows] for name, value in inputs.items()}
        if hidden == "all" or self.cache_mode == "none" or idx is None:
            logits, states = self._forward(row_inputs, hidden != "none")
            if hidden == "cls":
                states = torch.stack([states[layer][:, 0] for layer in self.cls_layers], dim=1)
            if self.filled is not None and idx is not None:
                self._store(idx[rows].cpu(), logits, None)
            return logits, states
        row_idx = idx[rows].cpu()
        missing = (~self.filled[row_idx]).nonzero().squeeze(1)
        for start in range(0, missing.numel(), self.batch_size):
            part = missing[start:start + self.batch_size]
            logits, states = self._forward({n: v[part.to(v.device)] for n, v in row_inputs.items()}, hidden == "cls")
            cls = torch.stack([states[layer][:, 0] for layer in self.cls_layers], dim=1) if hidden == "cls" else None
            self._store(row_idx[part], logits, cls)
        device = rows.device
        logits = self.logits[row_idx].to(device)
        states = self.cls_states[row_idx].to(device) if hidden == "cls" else None
        return logits, states

    def _store(self, idx, logits, cls):
        new = ~self.filled[idx]
        if not new.any():
            return
        idx, logits = idx[new], logits.detach().cpu()[new]
        self.logits[idx] = logits
        if cls is not None:
            self.cls_states[idx] = cls.detach().cpu()[new]
        elif self.cls_states is not None:
            # [CLS] states unknown for these rows: keep them "missing" so a cls query recomputes.
            return
        self.filled[idx] = True
        self._unsynced.append(idx)

    def sync(self):
        """Epoch end: share newly computed entries across ranks, then persist (disk mode, rank 0)."""
        if self.filled is None:
            return
        new_idx = torch.cat(self._unsynced) if self._unsynced else torch.zeros(0, dtype=torch.long)
        self._unsynced = []
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            payload = (new_idx, self.logits[new_idx], None if self.cls_states is None else self.cls_states[new_idx])
            gathered = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, payload)
            for idx, logits, cls in gathered:
                self.logits[idx] = logits
                if cls is not None:
                    self.cls_states[idx] = cls
                self.filled[idx] = True
            is_writer = dist.get_rank() == 0
        else:
            is_writer = True
        if self.cache_mode == "disk" and is_writer:
            self._save_disk_cache()

    def checkpoint_state(self) -> dict | None:
        """This rank's logit cache for a checkpoint ([CLS]-state caches are rebuilt instead: too large)."""
        if self.filled is None or self.cls_states is not None:
            return None
        unsynced = torch.cat(self._unsynced) if self._unsynced else torch.zeros(0, dtype=torch.long)
        return {"logits": self.logits, "filled": self.filled, "unsynced": unsynced}

    def load_checkpoint_state(self, state: dict):
        self.logits.copy_(state["logits"])
        self.filled.copy_(state["filled"])
        self._unsynced = [state["unsynced"]] if state["unsynced"].numel() else []

    def _tensors(self):
        tensors = {"logits": self.logits, "filled": self.filled}
        if self.cls_states is not None:
            tensors["cls_states"] = self.cls_states
        return tensors

    def _save_disk_cache(self):
        with atomic_path(self.cache_file) as tmp:
            save_file({k: v.contiguous() for k, v in self._tensors().items()}, tmp, metadata={"key": json.dumps(self.cache_key, sort_keys=True)})

    def _load_disk_cache(self):
        if not os.path.exists(self.cache_file):
            logger.info("teacher %s: no cache at %s yet; it is filled during training", self.name, self.cache_file)
            return
        try:
            from safetensors import safe_open

            with safe_open(self.cache_file, framework="pt") as handle:
                stored_key = json.loads((handle.metadata() or {}).get("key", "null"))
            tensors = load_file(self.cache_file)
        except (SafetensorError, OSError, ValueError) as error:
            logger.warning("teacher %s: cache %s is unreadable (%s); rebuilding it", self.name, self.cache_file, error)
            return
        expected = self._tensors()
        if stored_key != self.cache_key or any(tensors.get(k) is None or tensors[k].shape != v.shape for k, v in expected.items()):
            logger.warning("teacher %s: cache %s does not match this run (teacher, data or settings changed); rebuilding it", self.name, self.cache_file)
            return
        for name, value in expected.items():
            value.copy_(tensors[name])
        logger.info("teacher %s: reusing %d cached outputs from %s", self.name, int(self.filled.sum()), self.cache_file)


def teacher_fingerprint(path: str) -> list:
    """Names, sizes and modification times of a teacher folder's files: re-training changes them."""
    entries = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            stat = os.stat(full)
            entries.append([name, stat.st_size, stat.st_mtime_ns])
    return entries


def dataset_fingerprint(dataset) -> str:
    """Hash of the training examples' ids and token ids (the cache's keys and inputs)."""
    import pyarrow as pa

    digest = hashlib.sha256()
    columns = [c for c in ("idx", "input_ids", "token_type_ids", "attention_mask") if c in dataset.column_names]
    for table in dataset.select_columns(columns).with_format("arrow").iter(batch_size=20000):
        for column in columns:
            array = table.column(column).combine_chunks()
            if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
                digest.update(array.value_lengths().to_numpy(zero_copy_only=False).tobytes())
                array = array.flatten()
            digest.update(array.to_numpy(zero_copy_only=False).tobytes())
    return digest.hexdigest()


def cache_location(cache_dir: str, key: dict) -> str:
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return os.path.join(cache_dir, f"teacher-{name}.safetensors")
