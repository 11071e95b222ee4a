"""The workers page (a process pool's children, whatever the heartbeat's JSON holds) and the
task list's filter by attempt outcome."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse

from firefly_tasks.models import TaskStatus, WorkerModel
from tests.admin.conftest import make_attempt, make_task, make_worker


def test_a_process_pool_workers_page_lists_its_children(admin_client: Client) -> None:
    task = make_task(TaskStatus.RUNNING)
    worker = make_worker(
        "w-pool",
        pool="process",
        children=[
            {"slot": 0, "pid": 4242, "memory_kib": 204800, "task": task.pk},
            {"slot": 1, "pid": None, "memory_kib": None, "task": None},
        ],
    )

    html = admin_client.get(reverse("admin:firefly_admin_worker_change", args=[worker.pk]))

    page = html.content.decode()
    table = page.split('class="firefly-children"')[1].split("</table>")[0]
    rows = table.split("<tr>")[2:]
    assert "4242" in rows[0] and "200.0 MiB" in rows[0]
    assert reverse("admin:firefly_admin_task_change", args=[task.pk]) in rows[0]
    assert "starting" in rows[1] and "idle" in rows[1]
    listed = admin_client.get(reverse("admin:firefly_admin_worker_changelist")).content.decode()
    assert "process" in listed.split(">w-pool<")[1].split("</tr>")[0]


def test_a_thread_pool_worker_has_no_children(admin_client: Client) -> None:
    worker = make_worker("w-threads")

    page = admin_client.get(reverse("admin:firefly_admin_worker_change", args=[worker.pk]))

    assert 'class="firefly-children"' not in page.content.decode()


def test_children_render_escaped_whatever_their_json_holds(admin_client: Client) -> None:
    worker = make_worker(
        "w-odd",
        pool="process",
        children=[
            {"slot": "<script>alert(1)</script>", "pid": "<b>9</b>", "task": "1; drop"},
            "not a child",
            7,
            {"memory_kib": "lots"},
        ],
    )

    response = admin_client.get(reverse("admin:firefly_admin_worker_change", args=[worker.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "<b>9</b>" not in page
    assert "1; drop" not in page  # not a task id: shown as idle


def test_the_task_list_filters_by_an_attempts_outcome(admin_client: Client) -> None:
    timed_out = make_task(TaskStatus.FAILED)
    make_attempt(timed_out, 1, outcome="timed_out")
    retried = make_task(TaskStatus.COMPLETED)
    make_attempt(retried, 1, outcome="timed_out")
    make_attempt(retried, 2, outcome="completed")
    cancelled = make_task(TaskStatus.CANCELLED)
    make_attempt(cancelled, 1, outcome="cancelled")
    plain = make_task(TaskStatus.FAILED)
    make_attempt(plain, 1, outcome="failed")
    changelist = reverse("admin:firefly_admin_task_changelist")

    def listed(outcome: str) -> set[int]:
        response = admin_client.get(f"{changelist}?outcome={outcome}")
        return {row.pk for row in response.context["cl"].result_list}

    assert listed("timed_out") == {timed_out.pk, retried.pk}
    assert listed("cancelled") == {cancelled.pk}
    assert listed("completed") == {timed_out.pk, retried.pk, cancelled.pk, plain.pk}  # not offered
    assert "?outcome=timed_out" in admin_client.get(changelist).content.decode()


def test_a_workers_page_shows_its_memory_and_release(admin_client: Client) -> None:
    worker = make_worker(memory_kib=150 * 1024, version="9.9.9")

    page = admin_client.get(reverse("admin:firefly_admin_worker_change", args=[worker.pk]))
    html = page.content.decode()

    assert "150.0 MiB" in html and "9.9.9" in html
    listed = admin_client.get(reverse("admin:firefly_admin_worker_changelist")).content.decode()
    assert "150.0 MiB" in listed


def test_stop_gracefully_asks_once_with_permission_post_and_csrf(
    staff_client: Callable[..., Client], django_user_model: type[User]
) -> None:
    worker = make_worker()
    page_url = reverse("admin:firefly_admin_worker_change", args=[worker.pk])
    stop_url = reverse("admin:firefly_admin_worker_stop", args=[worker.pk])

    viewer = staff_client("view_worker", username="viewer")
    assert "Stop gracefully" not in viewer.get(page_url).content.decode()
    assert viewer.get(stop_url).status_code == 403
    assert viewer.post(stop_url).status_code == 403

    operator = staff_client("view_worker", "stop_worker", username="stopper")
    assert stop_url in operator.get(page_url).content.decode()
    confirm = operator.get(stop_url).content.decode()
    assert "<code>SIGTERM</code> would" in confirm and "Stop web-1:42:abc" in confirm
    assert WorkerModel.objects.get(pk=worker.pk).stop_requested is None

    csrf_checked = Client(enforce_csrf_checks=True)
    csrf_checked.force_login(django_user_model.objects.get(username="stopper"))
    assert csrf_checked.post(stop_url).status_code == 403

    done = operator.post(stop_url, follow=True)
    assert done.redirect_chain == [(page_url, 302)]
    assert "was asked to stop" in done.content.decode()
    worker.refresh_from_db()
    assert worker.stop_requested is not None and worker.stop_requested_by == "stopper"
    assert LogEntry.objects.filter(object_id=str(worker.pk), change_message="Asked to stop.")
    again = operator.post(stop_url, follow=True).content.decode()
    assert "was asked to stop already" in again
    assert "Stop gracefully" not in operator.get(page_url).content.decode()


def test_the_outcome_filter_reads_the_partial_index_of_rare_outcomes(
    admin_client: Client,
) -> None:
    # With 10,000,000 attempts a scan for the outcome took 750 ms (bench/bigtable.py).
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's plan: MariaDB has no partial index, SQLite reads none here")
    task = make_task(TaskStatus.FAILED)
    make_attempt(task, 1, outcome="lost")
    with connection.cursor() as cursor:  # a handful of rows: a scan would be cheaper
        cursor.execute("SET LOCAL enable_seqscan = off")
    changelist = reverse("admin:firefly_admin_task_changelist")

    response = admin_client.get(f"{changelist}?outcome=lost")

    plan = response.context["cl"].queryset.explain()
    assert "firefly_attempt_attention" in plan, plan
    assert [row.pk for row in response.context["cl"].result_list] == [task.pk]
