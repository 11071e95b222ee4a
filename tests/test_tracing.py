"""OpenTelemetry: a task's row carries its scheduler's trace context, and its run is a span of
that trace, whichever thread or process runs it (``firefly_tasks.tracing``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from firefly_tasks.models import TaskModel
from tests.conftest import run_pending_in_thread
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider() -> None:
    """An SDK tracer provider exporting to memory (the global one can be set once)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        sdk = TracerProvider()
        sdk.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(sdk)


@pytest.fixture(autouse=True)
def spans() -> Iterator[InMemorySpanExporter]:
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


def runs(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith("run ")]


def run_elsewhere() -> None:
    """Run the pending tasks in another thread: a fresh context, nothing inherited."""
    runner = run_pending_in_thread()
    runner.join(30)
    assert not runner.is_alive()


def test_a_task_runs_in_a_span_of_the_trace_that_scheduled_it(
    spans: InMemorySpanExporter,
) -> None:
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("POST /checkout") as request:
        row = tasks.add.schedule(2, 3)
    stored = TaskModel.objects.get(pk=row.pk).trace_context
    assert '"traceparent"' in stored

    run_elsewhere()

    (span,) = runs(spans)
    assert span.name == f"run {tasks.add.name}"
    assert span.kind == trace.SpanKind.CONSUMER
    assert span.context.trace_id == request.get_span_context().trace_id
    assert span.parent is not None and span.parent.span_id == request.get_span_context().span_id
    assert span.attributes == {
        "firefly.task.id": row.pk,
        "firefly.task.name": tasks.add.name,
        "firefly.task.attempt": 1,
        "firefly.task.queue": "default",
    }


def test_a_task_scheduled_outside_a_span_starts_a_trace_of_its_own(
    spans: InMemorySpanExporter,
) -> None:
    row = tasks.add.schedule(1, 1)
    assert TaskModel.objects.get(pk=row.pk).trace_context == ""

    run_elsewhere()

    (span,) = runs(spans)
    assert span.parent is None


def test_a_failing_task_s_span_records_the_error(spans: InMemorySpanExporter) -> None:
    tasks.write_note_then_fail.schedule("x")

    run_elsewhere()

    (span,) = runs(spans)
    assert span.status.status_code == trace.StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


def test_an_unreadable_trace_context_never_fails_the_task(spans: InMemorySpanExporter) -> None:
    row = tasks.add.schedule(4, 4)
    TaskModel.objects.filter(pk=row.pk).update(trace_context="not json {")

    run_elsewhere()

    assert TaskModel.objects.get(pk=row.pk).returned == 8
    (span,) = runs(spans)
    assert span.parent is None


def test_tracing_off_stores_nothing_and_makes_no_span(spans: InMemorySpanExporter) -> None:
    with override_settings(FIREFLY_TRACING=False):
        with trace.get_tracer("tests").start_as_current_span("request"):
            row = tasks.add.schedule(1, 2)
        run_elsewhere()

    assert TaskModel.objects.get(pk=row.pk).trace_context == ""
    assert runs(spans) == []
