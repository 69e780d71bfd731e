"""Tests for dynamic_kd.files: a killed or failing write never leaves a half-written target."""

import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from dynamic_kd import files


def test_write_atomic_replaces_whole_files(tmp_path):
    path = tmp_path / "deep" / "results.json"
    assert files.write_atomic(str(path), '{"new": "é"}') == str(path)
    assert path.read_text(encoding="utf-8") == '{"new": "é"}'
    files.write_atomic(str(path), b"\x89PNG")
    assert path.read_bytes() == b"\x89PNG"
    assert os.listdir(path.parent) == ["results.json"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # the usual permissions, not a temp file's 0600


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_kill_before_the_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    path.write_text('{"old": 1}')

    def killed(src, dst):  # the process dies between writing the temp file and the rename
        assert open(src).read() == '{"new": 2}' and not os.path.samefile(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(str(path), '{"new": 2}')
    assert path.read_text() == '{"old": 1}'
    assert os.listdir(tmp_path) == ["results.json"]  # the temp file is cleaned up


def test_atomic_path_for_writers_that_take_a_file_name(tmp_path):
    path = tmp_path / "cache.safetensors"
    with files.atomic_path(str(path)) as tmp:
        save_file({"x": torch.arange(3)}, tmp)
        assert not path.exists()
    assert load_file(str(path))["x"].tolist() == [0, 1, 2]
    with pytest.raises(RuntimeError):
        with files.atomic_path(str(path)) as tmp:
            save_file({"x": torch.zeros(2)}, tmp)
            raise RuntimeError("failed after writing")
    assert load_file(str(path))["x"].tolist() == [0, 1, 2]
    assert os.listdir(tmp_path) == ["cache.safetensors"]
