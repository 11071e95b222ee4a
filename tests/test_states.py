"""The state machine written as data: ``firefly_tasks.states``, and docs/states.md drawn from it."""

from __future__ import annotations

from pathlib import Path

from firefly_tasks.states import (
    TRANSITIONS,
    Event,
    TaskStatus,
    markdown_table,
    mermaid,
    sources,
    target,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "states.md"


def test_the_docs_show_the_diagram_and_the_table_of_the_code() -> None:
    text = DOC.read_text()
    assert f"```mermaid\n{mermaid()}\n```" in text
    assert markdown_table() in text


def test_every_event_has_a_transition_and_every_state_is_reachable() -> None:
    assert {t.event for t in TRANSITIONS} == set(Event)
    reached = {TaskStatus.CREATED} | {t.target for t in TRANSITIONS}
    assert reached == set(TaskStatus)


def test_no_transition_leaves_a_finished_state_but_requeue_and_rename() -> None:
    for t in TRANSITIONS:
        if t.source in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED):
            assert t.event in (Event.REQUEUE, Event.RENAME), t


def test_guards_and_targets_are_read_from_the_table() -> None:
    assert sources(Event.CLAIM) == (TaskStatus.CREATED,)
    assert target(Event.CLAIM) == TaskStatus.RUNNING
    assert set(sources(Event.REQUEUE)) == {TaskStatus.FAILED, TaskStatus.CANCELLED}
    assert target(Event.REQUEUE) == TaskStatus.CREATED
    assert TaskStatus.RUNNING not in sources(Event.RENAME)
