"""The one way this project writes a file that must never be seen half-written.

A finished run is one whose `results.json` exists, teacher caches and checkpoints are read back
by later runs, tables and figures are replaced in place: each is written to a temporary file in
the same folder, flushed to disk, then renamed over the target in one `os.replace`, so a reader
sees the old file or the new one, never a part.
"""

import os
from contextlib import contextmanager


@contextmanager
def atomic_path(path: str):
    """Yield a temporary path next to `path`; when the block ends, it replaces `path` in one rename.

    For writers that take a file name (safetensors, matplotlib). If the block raises, the
    temporary file is removed and `path` keeps its old content.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # the pid keeps two processes writing the same target (e.g. DDP ranks) from sharing a temp file
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
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    return path
