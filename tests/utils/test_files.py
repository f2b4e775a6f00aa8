import json
import os

import pytest

from autoencoder.utils import files
from autoencoder.utils.errors import UserError
from autoencoder.utils.files import write_atomic, write_json


def test_write_atomic_replaces_the_file(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    write_atomic(path, "first\n")
    write_atomic(path, "second\n")
    assert path.read_text() == "second\n" and [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_a_crash_while_writing_leaves_the_previous_version_whole(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_atomic(path, '{"test_loss": 0.01}\n')

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    with pytest.raises(UserError, match=rf"cannot write metrics.json in {tmp_path}: No space left on device \(28 bytes needed\)"):
        write_atomic(path, '{"test_loss": 0.02, "half": ')
    assert path.read_text() == '{"test_loss": 0.01}\n'
    assert os.listdir(tmp_path) == ["metrics.json"]  # no temporary file left behind


def test_bytes_are_written_as_they_are(tmp_path):
    write_atomic(tmp_path / "model.ckpt", b"\x00\xff checkpoint")
    assert (tmp_path / "model.ckpt").read_bytes() == b"\x00\xff checkpoint"


def test_json_is_written_indented_with_a_final_newline_and_reads_back(tmp_path):
    write_json(tmp_path / "record.json", {"status": "completed", "history": [{"epoch": 1}]})
    text = (tmp_path / "record.json").read_text()
    assert text.endswith("}\n") and '\n  "status": "completed"' in text
    assert json.loads(text) == {"status": "completed", "history": [{"epoch": 1}]}
