"""The SQLite store on a real file: the journal of task transitions and the runs' archives."""

from __future__ import annotations

from pathlib import Path

from orchestrator.records import TaskRecord
from orchestrator.states import RunState, TaskState
from orchestrator.store import Store


async def test_every_transition_is_journalled_and_the_row_keeps_the_last(tmp_path: Path) -> None:
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", '{"dag_name": "d"}', ["a", "b"], trigger="test")
        for state in (TaskState.QUEUED, TaskState.RUNNING, TaskState.SUCCESS):
            store.record_task(
                run_id, TaskRecord("a", state, attempts=1), output='{"n": 1}' if state == "success" else None
            )
        store.record_task(run_id, TaskRecord("b", TaskState.QUEUED))
        await store.flush()  # all five in one batch
        events = [(e.task_id, e.state) for e in await store.get_events(run_id) if e.task_id]
        tasks = {t.task_id: t.state for t in await store.get_tasks(run_id)}
        outputs = await store.get_outputs(run_id)
    assert events == [("a", "queued"), ("a", "running"), ("a", "success"), ("b", "queued")]
    assert tasks == {"a": TaskState.SUCCESS, "b": TaskState.QUEUED}
    assert outputs == {"a": {"n": 1}}


async def test_an_output_survives_a_later_row_of_the_same_batch(tmp_path: Path) -> None:
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", '{"dag_name": "d"}', ["a"], trigger="test")
        store.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1), output='"kept"')
        store.record_task(run_id, TaskRecord("a", TaskState.SUCCESS, attempts=1, error="noted"))
        await store.flush()
        assert (await store.get_outputs(run_id)) == {"a": "kept"}


async def test_a_run_going_again_has_no_archive_until_it_ends(tmp_path: Path) -> None:
    async with Store(tmp_path / "t.db") as store:
        run_id = await store.create_run("d", '{"dag_name": "d"}', ["a"], trigger="test")
        await store.set_run_state(run_id, RunState.FAILED, archive="dag/dag_1.zip")
        assert (await store.get_run(run_id)).archive == "dag/dag_1.zip"
        await store.set_run_state(run_id, RunState.QUEUED)  # a re-run: the old ZIP is out of date
        assert (await store.get_run(run_id)).archive is None
        await store.set_run_state(run_id, RunState.SUCCESS, archive="dag/dag_1.zip")
        assert (await store.get_run(run_id)).archive == "dag/dag_1.zip"
