"""Tags (``@task(tags=...)``, ``using(tags=...)``): stored one row each, found by index."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from firefly_tasks.exceptions import InvalidTaskError
from firefly_tasks.models import TaskModel, TaskStatus, TaskTag
from tests.testapp import tasks


def test_a_calls_tags_add_to_the_tasks_in_order(db: None) -> None:
    plain = tasks.charge.schedule(1)
    more = tasks.charge.using(tags=["customer-42", "billing", "eu"]).schedule(2)

    assert plain.tags == ["billing"]
    assert TaskModel.objects.get(pk=more.pk).tags == ["billing", "customer-42", "eu"]
    assert tasks.add.schedule(1, 2).tags == []


def test_tagged_finds_the_tasks_with_every_tag(db: None) -> None:
    a = tasks.charge.using(tags=["customer-42"]).schedule(1)
    b = tasks.charge.using(tags=["customer-43"]).schedule(2)
    c = tasks.add.using(tags=["customer-42"]).schedule(1, 2)

    assert set(TaskModel.objects.tagged("customer-42").values_list("pk", flat=True)) == {
        a.pk,
        c.pk,
    }
    assert list(TaskModel.objects.tagged("billing", "customer-42")) == [a]
    assert set(TaskModel.objects.tagged("billing").values_list("pk", flat=True)) == {a.pk, b.pk}
    assert not TaskModel.objects.tagged("nobody").exists()


def test_schedule_many_tags_every_row_and_a_duplicate_adds_none(db: None) -> None:
    rows = tasks.add.using(tags=["bulk"]).schedule_many([(1, 2), (3, 4)])
    first = tasks.add.using(tags=["first"], unique_key="k").schedule(1, 2)
    again = tasks.add.using(tags=["second"], unique_key="k").schedule(1, 2)

    assert [row.tags for row in rows] == [["bulk"], ["bulk"]]
    assert again.deduplicated and TaskModel.objects.get(pk=first.pk).tags == ["first"]
    assert TaskTag.objects.count() == 3


@pytest.mark.parametrize(
    ("tags", "error"),
    [
        ("billing", "tags must be a list of strings"),
        ([""], "A tag is a non-empty string"),
        ([42], "A tag is a non-empty string"),
        (["x" * 101], "at most 100 characters"),
        ([f"t{i}" for i in range(33)], "at most 32 tags"),
    ],
)
def test_bad_tags_are_refused_at_once(tags: Any, error: str) -> None:
    with pytest.raises(InvalidTaskError, match=error):
        tasks.add.using(tags=tags)


def test_pruning_a_task_deletes_its_tags(db: None) -> None:
    row = tasks.charge.using(tags=["old"]).schedule(1)
    long_ago = timezone.now() - datetime.timedelta(days=30)
    TaskModel.objects.filter(pk=row.pk).update(status=TaskStatus.COMPLETED, completed=long_ago)

    assert TaskModel.objects.finished_before(timezone.now()).prune() == 1

    assert not TaskTag.objects.exists()


def test_the_admin_finds_tasks_by_tag_and_shows_their_tags_escaped(admin_client: Client) -> None:
    tagged = tasks.charge.using(tags=["<i>vip</i>"]).schedule(1)
    other = tasks.add.schedule(1, 2)
    changelist = reverse("admin:firefly_admin_task_changelist")

    html = admin_client.get(changelist, {"q": "tag:<i>vip</i>"}).content.decode()
    detail = admin_client.get(
        reverse("admin:firefly_admin_task_change", args=[tagged.pk])
    ).content.decode()

    assert f"#{tagged.pk}" in html or f"/{tagged.pk}/change/" in html
    assert f"/{other.pk}/change/" not in html
    assert "&lt;i&gt;vip&lt;/i&gt;" in detail and "<i>vip</i>" not in detail
    assert 'class="ff-badge ff-tag">billing</span>' in detail
