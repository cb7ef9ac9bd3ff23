"""A run folder's archive: every file in it once, with its sha256, its size and its own time."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from orchestrator import rundir
from orchestrator.rundir import RunFolder


@pytest.mark.parametrize("one_read_max", [rundir.ONE_READ_MAX, 0], ids=["read-whole", "streamed"])
def test_the_archive_holds_each_file_with_its_sum_size_and_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_read_max: int
) -> None:
    monkeypatch.setattr(rundir, "ONE_READ_MAX", one_read_max)
    folder = RunFolder(tmp_path, 7)
    folder.create('{"dag_name": "d"}')
    contents = {
        "config.json": (folder.path / "config.json").read_bytes(),
        "big.txt": os.urandom(300_000),  # more than one 8 KiB chunk, and incompressible
        "empty.json": b"",
    }
    for name in ("big.txt", "empty.json"):
        (folder.path / name).write_bytes(contents[name])
    os.utime(folder.path / "big.txt", (1_699_963_200, 1_699_963_200))  # 2023-11-14 12:00 UTC
    (folder.path / "left.tmp").write_bytes(b"half a file")  # an interrupted write: not archived

    archive = folder.make_archive()

    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["run_id"] == 7
        assert sorted(zf.namelist()) == sorted([*contents, "manifest.json"])
        for name, data in contents.items():
            assert zf.read(name) == data
            assert manifest["files"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            assert zf.getinfo(name).compress_type == zipfile.ZIP_DEFLATED
        assert zf.getinfo("big.txt").date_time[:3] == (2023, 11, 14)
    assert not archive.with_suffix(".zip.tmp").exists()
