"""On-disk caches that runs share: one folder per key (a JSON-able dict, kept in `key.json`), built in a
temporary sibling and renamed into place, so a reader sees none or a complete one. An entry whose key
differs or whose files do not load is rebuilt, never used.
"""

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid

from dynamic_kd.files import write_atomic

logger = logging.getLogger(__name__)

KEY_FILE = "key.json"


def cache_root() -> str:
    """`$DYNAMIC_KD_CACHE`, else `~/.cache/dynamic_kd` (read at call time: tests redirect it)."""
    return os.path.expanduser(os.environ.get("DYNAMIC_KD_CACHE") or os.path.join("~", ".cache", "dynamic_kd"))


def key_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def entry_folder(parent: str, prefix: str, key: dict) -> str:
    return os.path.join(parent, f"{prefix}-{key_hash(key)}")


def could_write(path: str) -> bool:
    """Whether `path` is or could become a writable folder, creating nothing (a sweep's DRY_RUN parses)."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    return os.path.isdir(existing) and os.access(existing, os.W_OK | os.X_OK)


def writable_folder(path: str) -> bool:
    """Whether `path` is a writable folder, created if missing."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return False
    return could_write(path)


def read_json(path: str):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def get_or_build(folder: str, key: dict, build, load, what: str):
    """(value, reused) of the entry `folder` for `key`, built first when missing or not matching:
    build(tmp_folder) writes the files, load(folder) is the value or None. Concurrent callers may each build;
    one entry is published, all use it."""
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    for _ in range(3):
        if os.path.isdir(folder):
            if read_json(os.path.join(folder, KEY_FILE)) == key:
                value = load(folder)
                if value is not None:
                    return value, True
            logger.warning(
                "%s: %s does not match this run (stale, unreadable or from another version); rebuilding it",
                what,
                folder,
            )
            # moved aside (atomic) before deleting: a process using its files keeps them
            aside = f"{folder}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            with contextlib.suppress(OSError):  # another process moved it
                os.rename(folder, aside)
            shutil.rmtree(aside, ignore_errors=True)
        tmp = tempfile.mkdtemp(prefix=os.path.basename(folder) + ".tmp", dir=os.path.dirname(folder))
        try:
            build(tmp)
            write_atomic(os.path.join(tmp, KEY_FILE), json.dumps(key, sort_keys=True))
            os.rename(tmp, folder)
        except BaseException as error:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(error, OSError) and os.path.isdir(folder):
                continue  # another process published this entry first: use theirs
            raise
        value = load(folder)
        if value is not None:
            return value, False
    raise RuntimeError(f"{what}: could not build a usable {folder}")
