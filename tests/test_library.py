"""The DAG library: saved versions, the filename edit, and the dags/ folder."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine import Orchestrator
from orchestrator.errors import ConfigError, NotFoundError
from orchestrator.library import DagLibrary, output_names
from orchestrator.settings import Settings
from orchestrator.states import RunState
from orchestrator.validation import parse_config
from tests.engine_harness import running


def dag(name: str = "lib", description: str = "first") -> dict[str, Any]:
    """A small valid DAG: ``a`` saves to a.json, ``b`` renders it."""
    return {
        "dag_name": name,
        "description": description,
        "tasks": [
            {"id": "a", "operation": "noop", "independent_params": {"value": {"n": 1}, "filename": "a.json"}},
            {
                "id": "b",
                "operation": "json_to_string",
                "independent_params": {"template": "n={n}"},
                "dependent_params": {"data": "a"},
                "dependencies": ["a"],
            },
        ],
    }


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_dag_file(path: Path, content: str | dict[str, Any]) -> None:
    """Write a file into dags/ with an mtime later than any it had before (a real edit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    later = max(path.stat().st_mtime_ns, old + 1_000_000_000)
    os.utime(path, ns=(later, later))


# -- save and versions ------------------------------------------------------------------------


async def test_save_keeps_earlier_versions(library: DagLibrary, settings: Settings):
    folder = settings.configs_dir / "lib"
    first = await library.save(parse_config(dag(description="first")), source="test")
    assert first.version == 1
    assert first.source == "test"
    assert read_json(folder / "config.json")["description"] == "first"
    assert library.versions("lib") == []

    await library.save(parse_config(dag(description="second")), source="test")
    third = await library.save(parse_config(dag(description="third")), source="upload")
    assert third.version == 3
    assert third.source == "upload"
    assert read_json(folder / "config.json")["description"] == "third"
    assert [p.name for p in library.versions("lib")] == ["config.v1.json", "config.v2.json"]
    assert read_json(folder / "config.v1.json")["description"] == "first"
    assert read_json(folder / "config.v2.json")["description"] == "second"
    assert (await library.get("lib")).description == "third"
    # The copy on disk is a valid config again.
    assert parse_config((folder / "config.json").read_bytes()).dag_id == "lib"


async def test_add_json_validates(library: DagLibrary):
    record = await library.add_json(json.dumps(dag("uploaded")), source="upload")
    assert record.dag_id == "uploaded"
    bad = dag("refused")
    bad["tasks"][1]["dependencies"] = ["ghost"]
    with pytest.raises(ConfigError) as info:
        await library.add_json(json.dumps(bad), source="upload")
    assert "tasks[1].dependencies: unknown task 'ghost'" in [str(p) for p in info.value.problems]
    with pytest.raises(NotFoundError):
        await library.get("refused")
    assert [r.dag_id for r in await library.list()] == ["uploaded"]


async def test_versions_sort_numerically(library: DagLibrary):
    for n in range(12):
        await library.save(parse_config(dag(description=f"v{n}")), source="test")
    versions = library.versions("lib")
    assert [p.name for p in versions] == [f"config.v{n}.json" for n in range(1, 12)]
    assert read_json(versions[-1])["description"] == "v10"


# -- set_filename -----------------------------------------------------------------------------


async def test_set_filename_changes_only_that_param(library: DagLibrary, settings: Settings):
    await library.save(parse_config(dag()), source="test")
    before = (await library.get("lib")).model_dump()
    config = await library.set_filename("lib", "b", "message.txt")
    assert config.task("b").filename == "message.txt"

    after = (await library.get("lib")).model_dump()
    assert after["tasks"][1]["independent_params"] == {"template": "n={n}", "filename": "message.txt"}
    after["tasks"][1]["independent_params"].pop("filename")
    assert after == before
    record = (await library.list())[0]
    assert record.source == "filename edit"
    assert record.version == 2
    folder = settings.configs_dir / "lib"
    assert read_json(folder / "config.json")["tasks"][1]["independent_params"]["filename"] == "message.txt"
    assert "filename" not in read_json(folder / "config.v1.json")["tasks"][1]["independent_params"]

    # Replacing an existing filename works too.
    await library.set_filename("lib", "a", "inventory.json")
    assert (await library.get("lib")).task("a").filename == "inventory.json"


async def test_next_runs_use_the_edited_filename(library: DagLibrary, orch: Orchestrator, settings: Settings):
    await library.save(parse_config(dag()), source="test")
    await library.set_filename("lib", "b", "message.txt")
    report = await orch.run(await library.get("lib"))
    assert report.state == RunState.SUCCESS
    assert report.tasks["b"].output_file == "message.txt"
    assert (settings.runs_dir / f"dag_{report.run.run_id}" / "message.txt").read_text() == "n=1"


@pytest.mark.parametrize(
    "name",
    ["../x", "/etc/passwd", "a/b", "a\\b", ".hidden", "..", "bad\x07bell", "new\nline", "x" * 129, "run.log", ""],
)
async def test_set_filename_refuses_bad_names(library: DagLibrary, settings: Settings, name: str):
    await library.save(parse_config(dag()), source="test")
    with pytest.raises(ConfigError) as info:
        await library.set_filename("lib", "b", name)
    problems = info.value.problems
    assert len(problems) == 1
    assert problems[0].location == "b.filename"
    assert problems[0].message
    assert (await library.get("lib")).task("b").filename is None
    assert library.versions("lib") == []  # nothing was saved


async def test_set_filename_accepts_the_longest_name(library: DagLibrary):
    await library.save(parse_config(dag()), source="test")
    name = "x" * 123 + ".json"
    assert len(name) == 128
    await library.set_filename("lib", "b", name)
    assert (await library.get("lib")).task("b").filename == name


async def test_set_filename_refuses_another_tasks_file(library: DagLibrary):
    await library.save(parse_config(dag()), source="test")
    with pytest.raises(ConfigError) as info:
        await library.set_filename("lib", "b", "a.json")
    assert [p.location for p in info.value.problems] == ["tasks[1].independent_params.filename"]
    assert (await library.get("lib")).task("b").filename is None


async def test_set_filename_of_unknown_dag_or_task(library: DagLibrary):
    with pytest.raises(NotFoundError, match="'ghost'"):
        await library.set_filename("ghost", "b", "x.txt")
    await library.save(parse_config(dag()), source="test")
    with pytest.raises(NotFoundError, match="no task 'zz'"):
        await library.set_filename("lib", "zz", "x.txt")


async def test_get_unknown_dag(library: DagLibrary):
    with pytest.raises(NotFoundError):
        await library.get("nothing")


# -- the dags/ folder -------------------------------------------------------------------------


async def test_sync_folder_loads_every_json_file(library: DagLibrary, settings: Settings):
    write_dag_file(settings.dags_dir / "one.json", dag("one"))
    write_dag_file(settings.dags_dir / "two.json", dag("two"))
    (settings.dags_dir / "notes.txt").write_text("not a DAG", encoding="utf-8")
    assert await library.sync_folder() == {}
    records = {r.dag_id: r for r in await library.list()}
    assert set(records) == {"one", "two"}
    assert records["one"].source == "file:one.json"
    assert (settings.configs_dir / "two" / "config.json").is_file()
    # Nothing changed: nothing is saved again.
    assert await library.sync_folder() == {}
    assert {r.dag_id: r.version for r in await library.list()} == {"one": 1, "two": 1}


async def test_sync_folder_without_a_dags_folder(library: DagLibrary, settings: Settings):
    assert not settings.dags_dir.exists()
    assert await library.sync_folder() == {}
    assert await library.list() == []


async def test_sync_folder_reports_invalid_files(library: DagLibrary, settings: Settings):
    write_dag_file(settings.dags_dir / "broken.json", '{"dag_name": "broken",\n  "tasks": [}')
    unknown_dep = dag("unknown_dep")
    unknown_dep["tasks"][1]["dependencies"] = ["fecth"]
    write_dag_file(settings.dags_dir / "unknown_dep.json", unknown_dep)
    write_dag_file(settings.dags_dir / "good.json", dag("good"))

    problems = await library.sync_folder()
    assert set(problems) == {"broken.json", "unknown_dep.json"}
    assert len(problems["broken.json"]) == 1
    assert problems["broken.json"][0].startswith("line 2, column 13: invalid JSON")
    assert "tasks[1].dependencies: unknown task 'fecth'" in problems["unknown_dep.json"]
    assert [r.dag_id for r in await library.list()] == ["good"]


async def test_an_invalid_file_keeps_the_previous_version(library: DagLibrary, settings: Settings):
    path = settings.dags_dir / "lib.json"
    write_dag_file(path, dag(description="good one"))
    assert await library.sync_folder() == {}

    bad = dag(description="bad one")
    bad["tasks"][0]["operation"] = "no_such_op"
    write_dag_file(path, bad)
    problems = await library.sync_folder()
    assert len(problems["lib.json"]) == 1
    assert problems["lib.json"][0].startswith("tasks[0].operation: unknown operation 'no_such_op'")
    assert (await library.get("lib")).description == "good one"
    assert library.versions("lib") == []


async def test_an_unchanged_file_keeps_a_users_edit_after_a_restart(
    library: DagLibrary, orch: Orchestrator, settings: Settings
):
    path = settings.dags_dir / "lib.json"
    write_dag_file(path, dag())
    assert await library.sync_folder() == {}
    await library.set_filename("lib", "b", "edited.txt")

    # Touched but not changed: the same library does not undo the edit either.
    later = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(later, later))
    assert await library.sync_folder() == {}
    assert (await library.get("lib")).task("b").filename == "edited.txt"

    restarted = DagLibrary(settings, orch.store)
    assert await restarted.sync_folder() == {}
    assert (await restarted.get("lib")).task("b").filename == "edited.txt"
    assert (await restarted.list())[0].version == 2


async def test_a_changed_file_replaces_the_dag(library: DagLibrary, orch: Orchestrator, settings: Settings):
    path = settings.dags_dir / "lib.json"
    write_dag_file(path, dag(description="v1"))
    assert await library.sync_folder() == {}
    await library.set_filename("lib", "b", "edited.txt")

    changed = dag(description="v2")
    changed["tasks"].append({"id": "c", "operation": "noop", "dependencies": ["b"]})
    write_dag_file(path, changed)
    assert await library.sync_folder() == {}
    config = await library.get("lib")
    assert config.description == "v2"
    assert [t.id for t in config.tasks] == ["a", "b", "c"]
    assert config.task("b").filename is None  # the file wins over the earlier edit
    record = (await library.list())[0]
    assert record.version == 3
    assert record.source == "file:lib.json"
    assert len(library.versions("lib")) == 2

    # A restart after the change keeps the new version as it is.
    restarted = DagLibrary(settings, orch.store)
    assert await restarted.sync_folder() == {}
    assert (await restarted.list())[0].version == 3


async def test_a_file_fixed_after_a_bad_edit_is_loaded(library: DagLibrary, settings: Settings):
    path = settings.dags_dir / "lib.json"
    write_dag_file(path, "{ nope")
    assert set(await library.sync_folder()) == {"lib.json"}
    with pytest.raises(NotFoundError):
        await library.get("lib")
    write_dag_file(path, dag(description="fixed"))
    assert await library.sync_folder() == {}
    assert (await library.get("lib")).description == "fixed"


async def test_dags_folder_is_loaded_into_a_fresh_database(library: DagLibrary, settings: Settings):
    write_dag_file(settings.dags_dir / "lib.json", dag())
    assert await library.sync_folder() == {}
    fresh = settings.model_copy(update={"db_setting": settings.data_dir / "fresh.db"})
    async with running(fresh) as other:
        restarted = DagLibrary(fresh, other.store)
        assert await restarted.sync_folder() == {}
        assert [r.dag_id for r in await restarted.list()] == ["lib"]


async def test_a_file_is_its_dags_identity(library: DagLibrary, settings: Settings, caplog: pytest.LogCaptureFixture):
    path = settings.dags_dir / "lib.json"
    write_dag_file(path, dag("before"))
    assert await library.sync_folder() == {}
    write_dag_file(path, dag("after"))  # dag_name renamed inside the file
    with caplog.at_level(logging.INFO, logger="taskflow.library"):
        assert await library.sync_folder() == {}
    assert [(r.dag_id, r.source) for r in await library.list()] == [("after", "file:lib.json")]
    assert "DAG 'before' removed: lib.json now holds DAG 'after'" in caplog.text

    caplog.clear()
    path.unlink()
    with caplog.at_level(logging.INFO, logger="taskflow.library"):
        assert await library.sync_folder() == {}
    assert await library.list() == []
    assert "DAG 'after' removed: its file lib.json was deleted" in caplog.text
    assert (settings.configs_dir / "after" / "config.json").is_file(), "its saved versions stay"


async def test_a_file_deleted_while_the_service_was_down_removes_its_dag(
    library: DagLibrary, orch: Orchestrator, settings: Settings
):
    write_dag_file(settings.dags_dir / "gone.json", dag("gone"))
    write_dag_file(settings.dags_dir / "kept.json", dag("kept"))
    await library.save(parse_config(dag("by_api")), source="api")
    assert await library.sync_folder() == {}
    (settings.dags_dir / "gone.json").unlink()
    restarted = DagLibrary(settings, orch.store)
    assert await restarted.sync_folder() == {}
    assert [r.dag_id for r in await restarted.list()] == ["by_api", "kept"]


async def test_a_file_may_not_take_over_a_dag_made_elsewhere(
    library: DagLibrary, settings: Settings, caplog: pytest.LogCaptureFixture
):
    await library.save(parse_config(dag("shared", description="from the API")), source="api")
    write_dag_file(settings.dags_dir / "clash.json", dag("shared", description="from a file"))
    write_dag_file(settings.dags_dir / "first.json", dag("twice"))
    write_dag_file(settings.dags_dir / "second.json", dag("twice", description="second"))
    with caplog.at_level(logging.WARNING, logger="taskflow.library"):
        problems = await library.sync_folder()
    assert problems == {
        "clash.json": [
            "dag_name: DAG 'shared' exists already, made by a user (API, bot or upload); rename dag_name in this file"
        ],
        "second.json": ["dag_name: DAG 'twice' exists already, made by dags/first.json; rename dag_name in this file"],
    }
    assert "clash.json is invalid" in caplog.text
    records = {r.dag_id: r for r in await library.list()}
    assert (records["shared"].source, records["shared"].version) == ("api", 1)
    assert (await library.get("shared")).description == "from the API"
    assert (await library.get("twice")).description == "first"
    assert records["twice"].source == "file:first.json"


async def test_the_first_scan_says_where_dags_come_from(
    library: DagLibrary, orch: Orchestrator, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.INFO, logger="taskflow.library"):
        await library.sync_folder()
    assert f"no DAGs loaded from files: {settings.dags_dir} does not exist (TASKFLOW_DAGS_DIR)" in caplog.text

    elsewhere = tmp_path / "my dags"
    write_dag_file(elsewhere / "one.json", dag("one"))
    write_dag_file(elsewhere / "two.json", dag("two"))
    caplog.clear()
    moved = DagLibrary(Settings(data_dir=settings.data_dir, TASKFLOW_DAGS_DIR=str(elsewhere)), orch.store)
    assert moved.settings.dags_dir == elsewhere
    with caplog.at_level(logging.INFO, logger="taskflow.library"):
        await moved.sync_folder()
        await moved.sync_folder()
    assert caplog.text.count(f"reading DAGs from {elsewhere} (TASKFLOW_DAGS_DIR): 2 loaded") == 1
    assert [r.dag_id for r in await moved.list()] == ["one", "two"]


async def test_only_a_task_that_writes_a_file_has_a_filename_to_change(library: DagLibrary):
    config = dag("outputs")
    config["tasks"].append({"id": "nap", "operation": "sleep", "independent_params": {"seconds": 0}})
    config["tasks"].append({"id": "text", "operation": "json_to_string", "independent_params": {"template": "x"}})
    parsed = parse_config(config)
    assert output_names(parsed) == {"a": "a.json", "b": "b.txt", "text": "text.txt"}
    await library.save(parsed, source="test")
    with pytest.raises(ConfigError, match="task 'nap' \\(sleep\\) writes no output file"):
        await library.set_filename("outputs", "nap", "w.txt")
    assert (await library.get("outputs")).task("nap").filename is None


async def test_set_filename_takes_templates_but_no_secret(library: DagLibrary):
    await library.save(parse_config(dag()), source="test")
    await library.set_filename("lib", "b", "report_{{ run.ds }}.txt")
    assert (await library.get("lib")).task("b").filename == "report_{{ run.ds }}.txt"
    with pytest.raises(ConfigError) as info:
        await library.set_filename("lib", "b", "{{ secrets.API_KEY }}.txt")
    assert [p.message for p in info.value.problems] == ["a filename may not hold a secret"]
    assert (await library.get("lib")).task("b").filename == "report_{{ run.ds }}.txt"
