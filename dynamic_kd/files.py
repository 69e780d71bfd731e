"""Writes never seen half-written: a temporary file in the same folder, flushed to disk, renamed over the target."""

import os
from contextlib import contextmanager


@contextmanager
def atomic_path(path: str):
    """A temporary path for writers that take a file name (safetensors, matplotlib): it replaces `path` when
    the block ends, and is removed if the block raises."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # the pid keeps two processes writing the same target (DDP ranks) from sharing a temp file
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_atomic(path: str, data) -> str:
    """Write `data` (str as UTF-8, or bytes) to `path` atomically; return `path`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    return path
