"""A run folder's archive: every file in it once, with its sha256, its size and its own time."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from orchestrator import rundir
from orchestrator.engine import Orchestrator
from orchestrator.rundir import RunFolder
from orchestrator.states import RunState
from orchestrator.validation import parse_config


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
        "report.tmp": b"an output whose name ends in .tmp",
    }
    for name in ("big.txt", "empty.json", "report.tmp"):
        (folder.path / name).write_bytes(contents[name])
    os.utime(folder.path / "big.txt", (1_699_963_200, 1_699_963_200))  # 2023-11-14 12:00 UTC
    (folder.path / ".left.json.tmp").write_bytes(b"half a file")  # an interrupted write: not archived

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


def test_the_archive_holds_only_regular_files_of_the_folder(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not the run's")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "other.txt").write_text("nor this")
    folder = RunFolder(tmp_path / "dag", 3)
    folder.create('{"dag_name": "d"}')
    (folder.path / "out.txt").write_text("mine")
    (folder.path / "sub").mkdir()
    (folder.path / "sub" / "deep.txt").write_text("mine too")
    (folder.path / "passwd").symlink_to(secret)  # a shell task's, or anyone's with access to the data dir
    (folder.path / "linked_dir").symlink_to(tmp_path / "outside", target_is_directory=True)
    os.link(secret, folder.path / "hard.txt")  # the same file as one outside
    os.mkfifo(folder.path / "pipe")  # would hang a plain read

    with zipfile.ZipFile(folder.make_archive()) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
    assert names == {"config.json", "out.txt", "sub/deep.txt", "manifest.json"}
    assert set(manifest["files"]) == names - {"manifest.json"}


async def test_no_output_name_collides_with_a_temporary_one(orch: Orchestrator) -> None:
    def write(task_id: str, filename: str, content: str) -> dict[str, Any]:
        params = {"content": content, "filename": filename}
        return {"id": task_id, "operation": "write_file", "independent_params": params}

    config = parse_config(
        {
            "dag_name": "names",
            "tasks": [
                write("tmp_named", "out.json.tmp", "kept"),
                write("plain", "out.json", "also kept"),  # its atomic write once went through out.json.tmp
                write("report", "report.tmp", "listed and archived"),
            ],
        }
    )
    report = await orch.run(config)
    assert report.state == RunState.SUCCESS
    folder = orch.settings.runs_dir / f"dag_{report.run.run_id}"
    assert (folder / "out.json.tmp").read_text() == "kept"
    assert (folder / "out.json").read_text() == "also kept"
    listed = {t["output_file"] for t in json.loads((folder / "run.json").read_text())["tasks"].values()}
    with zipfile.ZipFile(report.archive) as zf:
        archived = set(zf.namelist())
        manifest = set(json.loads(zf.read("manifest.json"))["files"])
    assert listed == {"out.json.tmp", "out.json", "report.tmp"}
    assert listed <= archived
    assert listed <= manifest
